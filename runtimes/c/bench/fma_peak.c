/*
 * fma_peak: this core's float32 multiply-add peak, the ceiling against which the kernels' GFLOP/s are read
 * (runtimes/c/bench/README.md). `make -C runtimes/c bench` builds it with the kernels' flags for this host.
 *
 *     fma_peak    -> "clock ... GHz" (x86-64 only), "peak ... GFLOP/s ... flops per cycle"
 *
 * The peak: ACCUMULATORS independent vector multiply-adds in a loop, as many in flight as any current core can
 * issue (two FMA pipes with a latency of 4 or 5 cycles need 8 to 10), each counted as 2 flops per lane. The clock:
 * a chain of dependent one-cycle integer additions, so flops per cycle (32 for two 8-lane FMA pipes) can be read
 * without trusting a nominal frequency. Both take the best of TRIALS timings: a peak is what the core can do, and a
 * shared machine only ever slows a trial down.
 */
#define _POSIX_C_SOURCE 199309L

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "thread_time.h"

#if !defined(__GNUC__)
#error "fma_peak needs GNU C vector extensions (gcc or clang)"
#endif

#if defined(__AVX512F__)
#define LANES 16
#elif defined(__AVX__)
#define LANES 8
#else
#define LANES 4
#endif
#define ACCUMULATORS 12
#define TRIALS 9
#define ITERATIONS 20000000L

typedef float vec __attribute__((vector_size(LANES * sizeof(float))));

/* Read through volatile so the compiler cannot know the values and fold the loop away. */
static volatile float factor_source = 0.999999f, addend_source = 1e-7f;
static volatile float sink;

/** Seconds for ITERATIONS rounds of ACCUMULATORS independent multiply-adds (fused: built with -ffp-contract=fast). */
static double time_fma(void) {
    vec acc[ACCUMULATORS], factor, addend;
    double started;
    long i;
    int a, lane;
    for (lane = 0; lane < LANES; lane++) {
        factor[lane] = factor_source;
        addend[lane] = addend_source;
    }
    for (a = 0; a < ACCUMULATORS; a++) acc[a] = addend * (float)(a + 1);
    started = thread_cpu_seconds();
    for (i = 0; i < ITERATIONS; i++) {
        for (a = 0; a < ACCUMULATORS; a++) acc[a] = acc[a] * factor + addend;
    }
    started = thread_cpu_seconds() - started;
    for (a = 1; a < ACCUMULATORS; a++) acc[0] += acc[a];
    sink = acc[0][0];
    return started;
}

#if defined(__x86_64__)
#define CHAIN 16
/** Cycles per second: ITERATIONS rounds of CHAIN dependent one-cycle additions (the loop's own counter runs beside). */
static double clock_hz(void) {
    uint64_t value = 0;
    double started = thread_cpu_seconds();
    long i;
    for (i = 0; i < ITERATIONS; i++) {
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
                         "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
                         : "+r"(value));
    }
    started = thread_cpu_seconds() - started;
    sink = (float)value;
    return (double)ITERATIONS * CHAIN / started;
}
#endif

int main(void) {
    double best = 0.0, seconds, flops = 2.0 * LANES * ACCUMULATORS * (double)ITERATIONS;
    int trial;
    for (trial = 0; trial < TRIALS; trial++) {
        seconds = time_fma();
        if (best == 0.0 || seconds < best) best = seconds;
    }
    printf("vectors of %d float32 lanes, %d independent multiply-adds in flight\n", LANES, ACCUMULATORS);
#if defined(__x86_64__)
    {
        double hz = 0.0, trial_hz;
        for (trial = 0; trial < TRIALS; trial++) {
            trial_hz = clock_hz();
            if (trial_hz > hz) hz = trial_hz;
        }
        printf("clock %.2f GHz\n", hz * 1e-9);
        printf("peak %.1f GFLOP/s, %.1f flops per cycle\n", flops / best * 1e-9, flops / best / hz);
    }
#else
    printf("peak %.1f GFLOP/s\n", flops / best * 1e-9);
#endif
    return 0;
}
