/* This core's fused multiply-add peak: 12 independent chains of 8-float vectors (gcc/clang
 * vector extensions, so -O3 -march=native emits the widest FMA the 8 floats fit), best of
 * 20 runs. Prints GMAC/s (one MAC = one multiply-add of one float). */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>

typedef float v8 __attribute__((vector_size(32)));

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void)
{
    v8 a0 = {0}, a1 = {1}, a2 = {2}, a3 = {3}, a4 = {4}, a5 = {5};
    v8 a6 = {6}, a7 = {7}, a8 = {8}, a9 = {9}, a10 = {10}, a11 = {11}, s;
    const v8 m = {0.999999f, 0.999999f, 0.999999f, 0.999999f, 0.999999f, 0.999999f, 0.999999f, 0.999999f};
    const v8 c = {1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f, 1e-7f};
    const long n = 2000000;
    double best = 1e30;
    long i;
    int r;
    for (r = 0; r < 20; ++r) {
        double t0 = now(), dt;
        for (i = 0; i < n; ++i) {
            a0 = a0 * m + c; a1 = a1 * m + c; a2 = a2 * m + c; a3 = a3 * m + c;
            a4 = a4 * m + c; a5 = a5 * m + c; a6 = a6 * m + c; a7 = a7 * m + c;
            a8 = a8 * m + c; a9 = a9 * m + c; a10 = a10 * m + c; a11 = a11 * m + c;
        }
        dt = now() - t0;
        if (dt < best) best = dt;
    }
    s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    printf("%.3f %g\n", (double)n * 96.0 / best / 1e9, (double)s[0]);
    return 0;
}
