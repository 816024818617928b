/*
 * mcu_harness.c -- counts the instructions one inference executes on an emulated Cortex-M
 * (bench_mcu.py builds it with a generated model and runs it on qemu with -icount).
 *
 * Under `qemu-system-arm -icount shift=S` the virtual clock advances exactly 2^S ns per
 * executed instruction, and SysTick (processor clock, 25 MHz on mps2-an386) counts that
 * clock: ticks = instructions * 2^S * 0.025. The harness reads SysTick (a 24-bit down
 * counter; its wrap interrupt extends it to 64 bits) around the call, and around a loop of
 * a known number of instructions to calibrate the ratio, and prints both. Deterministic:
 * the same ELF gives the same counts on every run.
 *
 * -D options: BENCH_PREDICT (the function), BENCH_IN_T / BENCH_OUT_T (element types), and
 * bench_inputs.h (generated) with bench_x[], BENCH_T, BENCH_OUTPUTS.
 */
#include <stdint.h>
#include <stdio.h>

#include BENCH_HEADER
#include "bench_inputs.h"

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static volatile uint32_t wraps;

void arm_systick_isr(void);
void arm_systick_isr(void) { wraps++; }

static uint64_t ticks(void)
{
    uint32_t w, v;
    do {
        w = wraps;
        v = SYST_CVR;
    } while (w != wraps);
    return (uint64_t)w * 0x1000000u + (0xFFFFFFu - v);
}

/* exactly 2 instructions per iteration (subs, bne), plus the call's own */
__attribute__((noinline)) static void known_loop(uint32_t n)
{
    __asm volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
}

static BENCH_OUT_T y[BENCH_OUTPUTS];

int main(void)
{
    uint64_t t0, t1, t2, t3, t4, t5;
    int rc, k;
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* processor clock, wrap interrupt, enabled */
    t0 = ticks();
    t1 = ticks(); /* empty interval: the cost of reading the clock */
    known_loop(1000000u);
    t2 = ticks();
    t3 = ticks();
    rc = BENCH_PREDICT(bench_x, BENCH_T, y);
    t4 = ticks();
    t5 = ticks();
    (void)t5;
    printf("rc %d\n", rc);
    printf("ticks_empty %llu\n", (unsigned long long)(t1 - t0));
    printf("ticks_known_2000000 %llu\n", (unsigned long long)(t2 - t1));
    printf("ticks_inference %llu\n", (unsigned long long)(t4 - t3));
    for (k = 0; k < BENCH_OUTPUTS; ++k) printf("y %d %ld\n", k, (long)(y[k] * BENCH_PRINT_SCALE));
    return rc != 0;
}
