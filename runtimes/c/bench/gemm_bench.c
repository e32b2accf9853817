/*
 * gemm_bench: the GFLOP/s of sbif_kernel_gemm on one shape, to set beside fma_peak's ceiling
 * (runtimes/c/bench/README.md). `make -C runtimes/c bench` builds it with the kernels as the host build compiles them.
 *
 *     gemm_bench ROWS K N [relu]   -> "ROWSxKxN relu: best B GFLOP/s, median M GFLOP/s (T us per call, R calls)"
 *
 * x [ROWS, K] times weights [K, N] packed at start, plus a bias, through relu when asked, as a linear node runs in a
 * workspace: ROWS is the rows of one chunk (sbif_kernel_batch_rows; a TD3 400x300 policy's chunk is 84 rows on a
 * 512 KiB L2) or a whole batch. Calls are timed in blocks of at least a millisecond over about a second, after one
 * warm-up second; GFLOP/s counts 2 K N flops per row.
 */
#define _POSIX_C_SOURCE 199309L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "thread_time.h"

#include "sbif_kernels.h"

#define SAMPLES 41

static float *aligned_floats(size_t count, void **block) {
    unsigned char *raw = malloc(count * sizeof(float) + SBIF_KERNEL_ALIGN);
    *block = raw;
    if (raw == NULL) return NULL;
    return (float *)(void *)(raw + (SBIF_KERNEL_ALIGN - (size_t)raw % SBIF_KERNEL_ALIGN) % SBIF_KERNEL_ALIGN);
}

static long parse_size(const char *text) {
    char *end;
    long value = strtol(text, &end, 10);
    return end != text && *end == '\0' && value > 0 && value <= 1L << 20 ? value : -1;
}

int main(int argc, char **argv) {
    long rows, k, n, block = 1, calls, i;
    sbif_kernel_activation activation = SBIF_KERNEL_IDENTITY;
    void *blocks[5];
    float *x, *w, *bias, *y, *packed;
    double per_call, samples[SAMPLES], flops, started;
    int sample;
    if (argc < 4 || argc > 5 || (rows = parse_size(argv[1])) < 0 || (k = parse_size(argv[2])) < 0 ||
        (n = parse_size(argv[3])) < 0 || (argc == 5 && strcmp(argv[4], "relu") != 0)) {
        fprintf(stderr, "usage: gemm_bench ROWS K N [relu]   (sizes from 1 to 2^20)\n");
        return 2;
    }
    if (argc == 5) activation = SBIF_KERNEL_RELU;
    x = aligned_floats((size_t)(rows * k), &blocks[0]);
    w = aligned_floats((size_t)(k * n), &blocks[1]);
    bias = aligned_floats((size_t)n, &blocks[2]);
    y = aligned_floats((size_t)(rows * n), &blocks[3]);
    packed = aligned_floats(sbif_kernel_packed_floats(k, n), &blocks[4]);
    if (!x || !w || !bias || !y || !packed) {
        fprintf(stderr, "gemm_bench: out of memory\n");
        return 1;
    }
    for (i = 0; i < rows * k; i++) x[i] = (float)(i % 17) / 17.0f - 0.5f;
    for (i = 0; i < k * n; i++) w[i] = (float)(i % 13) / 13.0f - 0.5f;
    for (i = 0; i < n; i++) bias[i] = 0.25f;
    sbif_kernel_pack(w, k, n, packed);

    started = thread_cpu_seconds();
    for (calls = 0; thread_cpu_seconds() - started < 1.0; calls++)
        sbif_kernel_gemm(x, rows, k, packed, n, bias, activation, y);
    per_call = 1.0 / (double)calls;
    while (block * per_call < 1e-3 || block * per_call * SAMPLES < 1.0) block *= 2;
    for (sample = 0; sample < SAMPLES; sample++) {
        started = thread_cpu_seconds();
        for (i = 0; i < block; i++) sbif_kernel_gemm(x, rows, k, packed, n, bias, activation, y);
        samples[sample] = (thread_cpu_seconds() - started) / (double)block;
    }
    qsort(samples, SAMPLES, sizeof *samples, compare_doubles);
    flops = 2.0 * (double)rows * (double)k * (double)n;
    printf("%ldx%ldx%ld%s: best %.1f GFLOP/s, median %.1f GFLOP/s (%.2f us per call, %ld calls) [%s]\n", rows, k, n,
           activation == SBIF_KERNEL_RELU ? " relu" : "", flops / samples[0] * 1e-9,
           flops / samples[SAMPLES / 2] * 1e-9, samples[SAMPLES / 2] * 1e6, block * SAMPLES, sbif_kernel_target());
    for (i = 0; i < 5; i++) free(blocks[i]);
    return 0;
}
