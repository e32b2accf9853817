/*
 * sbif_kernels.h: the float32 sums of products of linear, matmul and conv2d, blocked and vectorised for the build
 * target (internal to the runtime: sbif.c and the kernels' test driver call them, nothing else should).
 *
 * spec/ops.md leaves the order of these sums unspecified and allows a product to be fused with its addition, so
 * here, and only here, float32 accumulates in several independent vector accumulators and products may be fused
 * (sbif_kernels.c is compiled with -ffp-contract=fast). Every other op keeps its exact rounding in sbif.c.
 *
 * Weights [K, N] are packed into panels of NR columns (two vectors): panel p holds w[0..K)[p*NR .. p*NR+NR) row
 * after row, the columns past N zero (their outputs are never stored); outputs narrower than half a panel are
 * packed transposed instead (w[0..K)[c] contiguous per output c). The vector width comes from the target:
 * 16 lanes with AVX-512F, 8 with AVX or AVX2, 4 otherwise (SSE, NEON, or plain C arrays); defining
 * SBIF_KERNELS_PORTABLE forces the plain C99 fallback whatever the target.
 */
#ifndef SBIF_KERNELS_H
#define SBIF_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/** The alignment of packed panels and of the scratch: one cache line, a 64-byte vector. */
#define SBIF_KERNEL_ALIGN 64

/** The sizes of an NHWC convolution with HWIO weights, and the zero padding before the first row and column. */
typedef struct sbif_conv_geometry {
    int64_t batch, height, width, channels, kernel_h, kernel_w, filters;
    int64_t stride_h, stride_w, out_h, out_w, pad_top, pad_left;
} sbif_conv_geometry;

/** What the kernels were built for, e.g. "avx512f vector extensions: 16 lanes, tiles of 8 rows x 32 columns, L2
 * 2097152 bytes". */
const char *sbif_kernel_target(void);

/** The rows of a batch to compute at a time when every row's values take `row_bytes` together: as many as fit in
 * half the L2 (the other half holds the weights and the products' blocks), in whole tiles (at least one tile). */
int64_t sbif_kernel_batch_rows(int64_t row_bytes);

/** The rows to compute at a time when no product's tiles need whole tiles of them: as many as fit in half the L2, at
 * least one. */
int64_t sbif_kernel_cached_rows(int64_t row_bytes);

/** Floats of a [k, n] weight packed into panels (at least 1). */
size_t sbif_kernel_packed_floats(int64_t k, int64_t n);
/** Pack w [k, n] (row-major) into `packed` (sbif_kernel_packed_floats of them, SBIF_KERNEL_ALIGN-aligned). */
void sbif_kernel_pack(const float *w, int64_t k, int64_t n, float *packed);

/** What a product's outputs go through as they are stored: nothing, or relu (`x < 0 ? 0 : x`, exact, NaN stays NaN,
 * -0 stays -0, as the op itself), which a relu node that alone reads the product's output then costs no pass. */
typedef enum sbif_kernel_activation { SBIF_KERNEL_IDENTITY, SBIF_KERNEL_RELU } sbif_kernel_activation;

/** y[r, c] = activation((sum over i of x[r, i] * w[i, c], rounded to float32) + bias[c]), for r < rows and c < n: x
 * is [rows, k] row-major, w packed by sbif_kernel_pack, bias NULL for none (matmul). */
void sbif_kernel_gemm(const float *x, int64_t rows, int64_t k, const float *packed, int64_t n, const float *bias,
                      sbif_kernel_activation activation, float *y);

/** Floats of scratch sbif_kernel_conv2d needs for a convolution (at least 1). */
size_t sbif_kernel_conv2d_scratch_floats(const sbif_conv_geometry *g);
/** conv2d (spec/ops.md) of x [batch, height, width, channels] with weights packed from [kh * kw * C, O] and a bias
 * of O, into y [batch, out_h, out_w, filters] through `activation`: the product of im2col's matrix by the weights,
 * bit for bit, with each window read where it lies in x when none overhangs it, else copied into `scratch`
 * (padding as zeros, which still multiply the weights: 0 * inf is NaN). */
void sbif_kernel_conv2d(const float *x, const float *packed, const float *bias, sbif_kernel_activation activation,
                        float *y, const sbif_conv_geometry *g, float *scratch);

#endif /* SBIF_KERNELS_H */
