/* Timing harness for generated C: bench_harness INPUTS OUTPUTS N T MIN_SECONDS
 * Reads N sequences of T x NET_INPUT_SIZE float32 from INPUTS, writes the outputs of
 * net_predict to OUTPUTS (for the correctness check), then calls net_predict on them in
 * a loop for at least MIN_SECONDS and prints the best microseconds per sequence of 5 runs. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "net.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int n, t_len, i, run;
    long reps, r;
    double min_seconds, best = 1e30, sink = 0.0;
    size_t in_floats, out_floats;
    float *x, *y;
    FILE *f;
    if (argc != 6) return 2;
    n = atoi(argv[3]);
    t_len = atoi(argv[4]);
    min_seconds = atof(argv[5]);
    in_floats = (size_t)n * (size_t)t_len * NET_INPUT_SIZE;
    out_floats = (size_t)n * (size_t)(NET_RETURNS_SEQUENCES ? t_len : 1) * NET_OUTPUT_SIZE;
    x = (float *)malloc(in_floats * sizeof(float));
    y = (float *)malloc(out_floats * sizeof(float));
    if (!x || !y) return 3;
    f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof(float), in_floats, f) != in_floats) return 4;
    fclose(f);
    for (i = 0; i < n; ++i)
        if (net_predict(x + (size_t)i * t_len * NET_INPUT_SIZE, t_len,
                        y + (size_t)i * (out_floats / (size_t)n)) != 0) return 5;
    f = fopen(argv[2], "wb");
    if (!f || fwrite(y, sizeof(float), out_floats, f) != out_floats) return 6;
    fclose(f);
    /* calibrate the repetition count, then keep the best of 5 runs */
    for (reps = 1;; reps *= 2) {
        double t0 = now();
        for (r = 0; r < reps; ++r) net_predict(x + (size_t)(r % n) * t_len * NET_INPUT_SIZE, t_len, y);
        if (now() - t0 > min_seconds / 5.0) break;
    }
    for (run = 0; run < 5; ++run) {
        double t0 = now(), dt;
        for (r = 0; r < reps; ++r) {
            net_predict(x + (size_t)(r % n) * t_len * NET_INPUT_SIZE, t_len, y);
            sink += y[0];
        }
        dt = (now() - t0) / (double)reps;
        if (dt < best) best = dt;
    }
    printf("%.4f %g\n", best * 1e6, sink);
    free(x);
    free(y);
    return 0;
}
