/* Streaming harness for generated C: stream_harness X N T CALLS OUT [single|many]
 * X holds N input sequences of T rows of NET_INPUT_SIZE floats; stream i reads sequence i.
 * The check pass runs T timesteps from the reset state and writes every output,
 * [N][T][NET_OUTPUT_SIZE] floats, to OUT (the benchmark checks them against Keras before it
 * reports a time). Then CALLS timesteps (state carried, inputs cycling over the T rows) are
 * timed in chunks of about 4,800 samples, and the best chunk's nanoseconds per timestep (all
 * N streams) is printed: a shared machine preempts some chunks.
 * "single" (default) advances the N streams with N calls of net_step; "many" with one call
 * of net_step_n (build with -DNET_HAS_STEP_N). */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void advance(net_state *s, int n, const float *xt, float *yt, int many)
{
    int i;
#ifdef NET_HAS_STEP_N
    if (many) {
        net_step_n(s, n, xt, yt);
        return;
    }
#else
    (void)many;
#endif
    for (i = 0; i < n; ++i)
        net_step(&s[i], xt + (size_t)i * NET_INPUT_SIZE, yt + (size_t)i * NET_OUTPUT_SIZE);
}

int main(int argc, char **argv)
{
    int n, t_len, t, i, many;
    long calls, r, chunk;
    double best = 1e30, sink = 0.0;
    size_t in_floats, out_floats;
    float *x, *xt, *y, *yt;
    net_state *s;
    FILE *f;
    if (argc < 6) return 2;
    n = atoi(argv[2]);
    t_len = atoi(argv[3]);
    calls = atol(argv[4]);
    many = argc > 6 && strcmp(argv[6], "many") == 0;
    if (n < 1 || t_len < 1 || calls < 1) return 2;
    in_floats = (size_t)n * (size_t)t_len * NET_INPUT_SIZE;
    out_floats = (size_t)n * (size_t)t_len * NET_OUTPUT_SIZE;
    x = (float *)malloc(sizeof(float) * in_floats);
    xt = (float *)malloc(sizeof(float) * in_floats); /* [T][N][D]: one timestep of every stream */
    y = (float *)malloc(sizeof(float) * out_floats);
    yt = (float *)malloc(sizeof(float) * (size_t)n * NET_OUTPUT_SIZE);
    s = (net_state *)malloc(sizeof(net_state) * (size_t)n);
    if (!x || !xt || !y || !yt || !s) return 3;
    f = fopen(argv[1], "rb");
    if (!f || fread(x, sizeof(float), in_floats, f) != in_floats) return 4;
    fclose(f);
    for (t = 0; t < t_len; ++t)
        for (i = 0; i < n; ++i)
            memcpy(xt + ((size_t)t * n + i) * NET_INPUT_SIZE,
                   x + ((size_t)i * t_len + t) * NET_INPUT_SIZE, sizeof(float) * NET_INPUT_SIZE);
    for (i = 0; i < n; ++i) net_reset(&s[i]);
    for (t = 0; t < t_len; ++t) {
        advance(s, n, xt + (size_t)t * n * NET_INPUT_SIZE, yt, many);
        for (i = 0; i < n; ++i)
            memcpy(y + ((size_t)i * t_len + t) * NET_OUTPUT_SIZE, yt + (size_t)i * NET_OUTPUT_SIZE,
                   sizeof(float) * NET_OUTPUT_SIZE);
    }
    f = fopen(argv[5], "wb");
    if (!f || fwrite(y, sizeof(float), out_floats, f) != out_floats) return 5;
    fclose(f);
    chunk = 4800 / n > 50 ? 4800 / n : 50;
    for (r = 0, t = 0; r + chunk <= calls || r == 0; r += chunk) {
        long c;
        double t0 = now(), dt;
        for (c = 0; c < chunk; ++c) {
            advance(s, n, xt + (size_t)t * n * NET_INPUT_SIZE, yt, many);
            if (++t == t_len) t = 0;
        }
        dt = (now() - t0) / (double)chunk;
        sink += yt[0];
        if (dt < best) best = dt;
    }
    printf("%.3f %g\n", best * 1e9, sink);
    free(x);
    free(xt);
    free(y);
    free(yt);
    free(s);
    return 0;
}
