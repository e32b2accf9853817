/*
 * sbif_kernels.c: the float32 sums of products of linear, matmul and conv2d (see sbif_kernels.h).
 *
 * Built with -ffp-contract=fast: spec/ops.md allows these sums, and only these, any order and fused multiply-adds
 * (on x86 with FMA every multiply-add is fused explicitly, vmuladd). Whatever the order, a row's sums never depend on
 * the rows computed with it: a batch gives each observation, bit for bit, what it alone gives.
 * A tile of ROWS rows of x times one panel of weights keeps ROWS x 2 vector accumulators in registers; tiles of
 * fewer rows take several panels at once instead, so that at least 8 independent sums are in flight (an FMA's
 * latency is about 4 cycles and two issue per cycle). Rows are taken in blocks that fill half the
 * L2 (SBIF_L2_BYTES, which the Makefile reads from the host for native builds), so every panel passes over a block
 * of x that stays in cache. Outputs narrower than half a panel pack the weights transposed instead, one contiguous
 * column per output (zero-padded to whole vectors), and take dot products, several rows and columns at a time:
 * zero-padding them to a panel would multiply the work and the memory.
 * A convolution is the same product with output pixels as rows, each window read in place where none overhangs the
 * image (else copied by im2col), and a product's outputs can be stored through relu (sbif_kernel_activation).
 */
#include "sbif_kernels.h"

#include <math.h>
#include <string.h>

#if !defined(SBIF_KERNELS_PORTABLE) && defined(__GNUC__)
#define VECTOR_EXTENSIONS 1
#endif

/* A tile's stores inlined into it, so that its accumulators stay in registers rather than pass through memory. */
#if defined(__GNUC__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE
#endif

#if defined(VECTOR_EXTENSIONS) && defined(__FMA__)
#include <immintrin.h>
#endif

#if defined(VECTOR_EXTENSIONS) && defined(__AVX512F__)
#define LANES 16
#define ROWS 8
#define TARGET_TEXT "avx512f vector extensions: 16 lanes, tiles of 8 rows x 32 columns"
#elif defined(VECTOR_EXTENSIONS) && defined(__AVX__)
#define LANES 8
#define ROWS 6
#define TARGET_TEXT "avx vector extensions: 8 lanes, tiles of 6 rows x 16 columns"
#elif defined(VECTOR_EXTENSIONS)
#define LANES 4
#define ROWS 4
#define TARGET_TEXT "128-bit vector extensions: 4 lanes, tiles of 4 rows x 8 columns"
#else
#define LANES 4
#define ROWS 4
#define TARGET_TEXT "portable C99: arrays of 4 lanes, tiles of 4 rows x 8 columns"
#endif

/* Where the packed weights exceed half the L2 (a policy's widest layer, which cannot stay in cache), a tile asks for
 * the panel's row PREFETCH_ROWS ahead of the one it multiplies (2 KiB ahead at 8 lanes: a few hundred cycles of
 * FMAs), so the weights come from memory while it works rather than stalling it, as the hardware prefetcher alone
 * leaves them (the nature CNN's 3136 x 512 layer in batches of 6 with its panels evicted: 1.5x faster). Weights that
 * stay in cache are not prefetched: the instructions would only take load slots. */
#if defined(__GNUC__)
#define PREFETCH(address) __builtin_prefetch(address)
#else
#define PREFETCH(address) ((void)0)
#endif
#define PREFETCH_ROWS 32

/** Vectors per panel row: a panel is two vectors wide. */
#define VECTORS 2
#define PANEL (VECTORS * LANES)

#ifndef SBIF_L2_BYTES
#define SBIF_L2_BYTES 262144 /* the smallest L2 per core of current x86 and ARM server cores */
#endif
#define TEXT(x) #x
#define EXPANDED_TEXT(x) TEXT(x)

#ifdef VECTOR_EXTENSIONS
typedef float vec __attribute__((vector_size(LANES * sizeof(float))));

static vec vzero(void) {
    vec v = {0.0f};
    return v;
}
static vec vsplat(float s) { return s - vzero(); } /* s - (+0) is s for every s, -0 and NaN included */
static vec vload(const float *p) {
    vec v;
    memcpy(&v, p, sizeof v);
    return v;
}
static void vstore(float *p, vec v) { memcpy(p, &v, sizeof v); }
static vec vadd(vec a, vec b) { return a + b; }
#if defined(__FMA__) && (LANES == 8 || LANES == 16)
/* Every multiply-add fused, explicitly: left to -ffp-contract, GCC's tuning for some cores (znver's avoidance of FMA
 * chains) splits some of them into a multiply and an add, and the same sum would round differently in different
 * tiles. */
#if LANES == 16
static vec vmuladd(vec acc, vec a, vec b) { return (vec)_mm512_fmadd_ps((__m512)a, (__m512)b, (__m512)acc); }
#else
static vec vmuladd(vec acc, vec a, vec b) { return (vec)_mm256_fmadd_ps((__m256)a, (__m256)b, (__m256)acc); }
#endif
#else
static vec vmuladd(vec acc, vec a, vec b) { return acc + a * b; }
#endif
typedef int32_t lanes_mask __attribute__((vector_size(LANES * sizeof(int32_t))));
/* the lanes below zero cleared: a comparison is false for NaN and -0, which pass through as relu_f32 keeps them */
static vec vrelu(vec v) { return (vec)((lanes_mask)v & ~(v < vzero())); }
#else
typedef struct vec {
    float lane[LANES];
} vec;

static vec vzero(void) {
    vec v;
    int i;
    for (i = 0; i < LANES; i++) v.lane[i] = 0.0f;
    return v;
}
static vec vsplat(float s) {
    vec v;
    int i;
    for (i = 0; i < LANES; i++) v.lane[i] = s;
    return v;
}
static vec vload(const float *p) {
    vec v;
    memcpy(v.lane, p, sizeof v.lane);
    return v;
}
static void vstore(float *p, vec v) { memcpy(p, v.lane, sizeof v.lane); }
static vec vadd(vec a, vec b) {
    int i;
    for (i = 0; i < LANES; i++) a.lane[i] += b.lane[i];
    return a;
}
/* fused where C99 says a fused multiply-add is fast (as with the vector extensions: always or never, whichever tile) */
static vec vmuladd(vec acc, vec a, vec b) {
    int i;
#ifdef FP_FAST_FMAF
    for (i = 0; i < LANES; i++) acc.lane[i] = fmaf(a.lane[i], b.lane[i], acc.lane[i]);
#else
    for (i = 0; i < LANES; i++) acc.lane[i] += a.lane[i] * b.lane[i];
#endif
    return acc;
}
static vec vrelu(vec v) {
    int i;
    for (i = 0; i < LANES; i++) v.lane[i] = v.lane[i] < 0.0f ? 0.0f : v.lane[i];
    return v;
}
#endif

/** relu as the op computes it (sbif.c's relu_f32), for the lanes stored one at a time. */
static float relu(float v) { return v < 0.0f ? 0.0f : v; }

/** a * b + c for one lane: fused, explicitly, where the target has a fast fused multiply-add, so that a sum computed
 * lane by lane rounds alike in every tile (however the compiler would contract it in each). */
static float muladd(float a, float b, float c) {
#if defined(__FMA__) || defined(FP_FAST_FMAF)
    return fmaf(a, b, c);
#else
    return a * b + c;
#endif
}

const char *sbif_kernel_target(void) { return TARGET_TEXT ", L2 " EXPANDED_TEXT(SBIF_L2_BYTES) " bytes"; }

/** Whether a [k, n] weight is packed transposed (narrow outputs) rather than in panels. */
static int transposed(int64_t n) { return n < PANEL / 2; }

static int64_t panels_of(int64_t n) { return (n + PANEL - 1) / PANEL; }

size_t sbif_kernel_packed_floats(int64_t k, int64_t n) {
    int64_t floats = transposed(n) ? k * n : panels_of(n) * k * PANEL;
    return floats > 0 ? (size_t)floats : 1;
}

void sbif_kernel_pack(const float *w, int64_t k, int64_t n, float *packed) {
    int64_t p, i, j;
    if (transposed(n)) {
        for (j = 0; j < n; j++) {
            for (i = 0; i < k; i++) *packed++ = w[i * n + j];
        }
        return;
    }
    for (p = 0; p < panels_of(n); p++) {
        for (i = 0; i < k; i++) {
            for (j = p * PANEL; j < (p + 1) * PANEL; j++) *packed++ = j < n ? w[i * n + j] : 0.0f;
        }
    }
}

/** Store a tile's row of sums, plus the bias when there is one (a separate rounding, as spec/ops.md says), through
 * the activation, into the first `columns` columns of y. */
static ALWAYS_INLINE void store_row(const vec *sums, const float *bias, sbif_kernel_activation activation, float *y,
                      int64_t columns) {
    float lanes[PANEL];
    int64_t c;
    int v;
    if (columns == PANEL) {
        for (v = 0; v < VECTORS; v++) {
            vec out = bias != NULL ? vadd(sums[v], vload(bias + v * LANES)) : sums[v];
            vstore(y + v * LANES, activation == SBIF_KERNEL_RELU ? vrelu(out) : out);
        }
        return;
    }
    for (v = 0; v < VECTORS; v++) vstore(lanes + v * LANES, sums[v]);
    for (c = 0; c < columns; c++) {
        float out = bias != NULL ? lanes[c] + bias[c] : lanes[c];
        y[c] = activation == SBIF_KERNEL_RELU ? relu(out) : out;
    }
}

/** Where the rows of x a product multiplies are. A matrix's row r is x[r * k .. r * k + k). A convolution's row is an
 * output pixel's window, read where it lies in the image: kernel_h runs of kernel_w * C values, one image row
 * apart, in the order im2col would copy them (only for windows that never overhang the image: no padding). */
typedef struct row_source {
    const float *x;
    int64_t k;
    const sbif_conv_geometry *g; /* NULL: a matrix */
    int streams_weights;         /* the packed weights exceed half the L2: the tiles prefetch them */
} row_source;

/** Rows first .. first + count of a source: where each starts, and its layout as `runs` runs of `run` values, each
 * `run_stride` floats after the one before. */
static void locate_rows(const row_source *source, int64_t first, int count, const float **rows, int64_t *runs,
                        int64_t *run, int64_t *run_stride) {
    const sbif_conv_geometry *g = source->g;
    int m;
    if (g == NULL) {
        for (m = 0; m < count; m++) rows[m] = source->x + (first + m) * source->k;
        *runs = 1;
        *run = source->k;
        *run_stride = 0;
        return;
    }
    for (m = 0; m < count; m++) {
        int64_t pixel = first + m, image = pixel / (g->out_h * g->out_w), within = pixel % (g->out_h * g->out_w);
        rows[m] = source->x + ((image * g->height + within / g->out_w * g->stride_h) * g->width +
                               within % g->out_w * g->stride_w) * g->channels;
    }
    *runs = g->kernel_h;
    *run = g->kernel_w * g->channels;
    *run_stride = g->width * g->channels;
}

/* A tile of M rows of a source (from row `first`) times P consecutive panels (stride k * PANEL) into y (stride n), of
 * which `columns` exist. Every output is one accumulator summed over k in order, whatever M and P, so a row's results
 * do not depend on the rows computed with it (a batch gives each observation what it alone gives), and a
 * convolution's window read in place sums exactly as its im2col row would. Fewer rows take more panels at once
 * instead, to keep at least 8 independent sums in flight. The loops over M, P and VECTORS have constant bounds, which
 * the compiler unrolls into registers. Where the weights stream from memory, it prefetches them (PREFETCH_ROWS). */
#define DEFINE_TILE(NAME, M, P)                                                                                    \
    static void NAME(const row_source *source, int64_t first, const float *panels, const float *bias,              \
                     sbif_kernel_activation activation, float *y, int64_t n, int64_t columns) {                    \
        vec acc[M][P * VECTORS];                                                                                   \
        const float *rows[M];                                                                                      \
        int64_t k = source->k, runs, run, run_stride, r, i, prefetch_end;                                          \
        int m, v;                                                                                                  \
        locate_rows(source, first, M, rows, &runs, &run, &run_stride);                                             \
        prefetch_end = source->streams_weights ? run - PREFETCH_ROWS : 0;                                          \
        for (m = 0; m < M; m++)                                                                                    \
            for (v = 0; v < P * VECTORS; v++) acc[m][v] = vzero();                                                 \
        for (r = 0; r < runs; r++) {                                                                               \
            const float *w0 = panels + r * run * PANEL;                                                            \
            for (i = 0; i < run; i++) {                                                                            \
                vec w[P * VECTORS];                                                                                \
                if (i < prefetch_end) PREFETCH(w0 + (i + PREFETCH_ROWS) * PANEL);                                  \
                for (v = 0; v < P * VECTORS; v++) w[v] = vload(w0 + (v / VECTORS) * k * PANEL + i * PANEL +       \
                                                               (v % VECTORS) * LANES);                             \
                for (m = 0; m < M; m++) {                                                                          \
                    vec xs = vsplat(rows[m][r * run_stride + i]);                                                  \
                    for (v = 0; v < P * VECTORS; v++) acc[m][v] = vmuladd(acc[m][v], xs, w[v]);                    \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
        if (columns >= P * PANEL) { /* every column exists: the accumulators stored from registers */             \
            vec biases[P * VECTORS];                                                                               \
            for (v = 0; v < P * VECTORS; v++) biases[v] = bias != NULL ? vload(bias + v * LANES) : vzero();        \
            for (m = 0; m < M; m++) {                                                                              \
                for (v = 0; v < P * VECTORS; v++) {                                                                \
                    vec out = bias != NULL ? vadd(acc[m][v], biases[v]) : acc[m][v];                               \
                    vstore(y + m * n + v * LANES, activation == SBIF_KERNEL_RELU ? vrelu(out) : out);              \
                }                                                                                                  \
            }                                                                                                      \
            return;                                                                                                \
        }                                                                                                          \
        { /* the last panel, part of whose columns exist: the accumulators go through memory, copied first (with  \
           * constant indices: in any loop the compiler may not unroll, they would leave the registers everywhere) */ \
            vec sums[M][P * VECTORS];                                                                              \
            for (m = 0; m < M; m++)                                                                                \
                for (v = 0; v < P * VECTORS; v++) sums[m][v] = acc[m][v];                                          \
            for (m = 0; m < M; m++) {                                                                              \
                for (v = 0; v < P && v * PANEL < columns; v++) {                                                   \
                    store_row(&sums[m][v * VECTORS], bias != NULL ? bias + v * PANEL : NULL, activation,           \
                              y + m * n + v * PANEL, columns - v * PANEL < PANEL ? columns - v * PANEL : PANEL);   \
                }                                                                                                  \
            }                                                                                                      \
        }                                                                                                          \
    }

DEFINE_TILE(tile_1, 1, 1)
DEFINE_TILE(tile_2, 2, 1)
DEFINE_TILE(tile_3, 3, 1)
DEFINE_TILE(tile_4, 4, 1)
DEFINE_TILE(wide_tile_1, 1, 4)
DEFINE_TILE(wide_tile_2, 2, 2)
DEFINE_TILE(wide_tile_3, 3, 2)
#if ROWS > 4
DEFINE_TILE(tile_5, 5, 1)
DEFINE_TILE(tile_6, 6, 1)
#endif
#if ROWS > 6
DEFINE_TILE(tile_7, 7, 1)
DEFINE_TILE(tile_8, 8, 1)
#endif
#undef DEFINE_TILE

typedef void (*tile_fn)(const row_source *source, int64_t first, const float *panels, const float *bias,
                        sbif_kernel_activation activation, float *y, int64_t n, int64_t columns);

/** The one-panel tile of each row count, 1..ROWS. */
static const tile_fn TILES[ROWS + 1] = {NULL, tile_1, tile_2, tile_3, tile_4,
#if ROWS > 4
                                        tile_5, tile_6,
#endif
#if ROWS > 6
                                        tile_7, tile_8
#endif
};

/** The tiles of fewer than 4 rows over several panels, and how many panels each takes. */
static const tile_fn WIDE_TILES[4] = {NULL, wide_tile_1, wide_tile_2, wide_tile_3};
static const int64_t WIDE_PANELS[4] = {1, 4, 2, 2};

/** Whether [k, n] weights, packed, exceed half the L2 (see PREFETCH_ROWS). */
static int streams_weights(int64_t k, int64_t n) {
    return sbif_kernel_packed_floats(k, n) * sizeof(float) > (size_t)(SBIF_L2_BYTES / 2);
}

int64_t sbif_kernel_cached_rows(int64_t row_bytes) {
    int64_t rows = (int64_t)(SBIF_L2_BYTES / 2) / (row_bytes > 0 ? row_bytes : 1);
    return rows > 1 ? rows : 1;
}

int64_t sbif_kernel_batch_rows(int64_t row_bytes) {
    int64_t rows = sbif_kernel_cached_rows(row_bytes);
    rows -= rows % ROWS;
    return rows > ROWS ? rows : ROWS;
}

/** Rows of x [., k] that fill half the L2, in whole tiles. */
static int64_t block_rows(int64_t k) { return sbif_kernel_batch_rows(k * (int64_t)sizeof(float)); }

/** The sum of a vector's lanes, halving: lane i takes lane i + half, for halves of LANES / 2 down to 1. */
static ALWAYS_INLINE float lanes_sum(vec v) {
    float lanes[LANES];
    int half, i;
    vstore(lanes, v);
    for (half = LANES / 2; half > 0; half /= 2) {
        for (i = 0; i < half; i++) lanes[i] += lanes[i + half];
    }
    return lanes[0];
}

/* Narrow outputs: M rows of x [., k] times G transposed columns (each k long) into y (stride n). Each output is a dot
 * product: one vector accumulator over the row's whole vectors in order, its lanes summed (lanes_sum), then the last
 * k % LANES products added one by one (muladd), as a sum shorter than a vector is computed everywhere. Whatever M
 * and G, a row's outputs are computed so, as a single observation's: rows and columns taken together only share
 * their loads, M x G accumulators in flight. */
#define DEFINE_NARROW(NAME, M, G)                                                                                  \
    static void NAME(const float *x, int64_t k, const float *columns, const float *bias,                           \
                     sbif_kernel_activation activation, float *y, int64_t n) {                                     \
        vec acc[M][G], xs[M];                                                                                      \
        float sums[M][G];                                                                                          \
        int64_t i;                                                                                                 \
        int m, c;                                                                                                  \
        for (m = 0; m < M; m++)                                                                                    \
            for (c = 0; c < G; c++) acc[m][c] = vzero();                                                           \
        for (i = 0; i + LANES <= k; i += LANES) {                                                                  \
            for (m = 0; m < M; m++) xs[m] = vload(x + m * k + i);                                                  \
            for (c = 0; c < G; c++) {                                                                              \
                vec w = vload(columns + c * k + i);                                                                \
                for (m = 0; m < M; m++) acc[m][c] = vmuladd(acc[m][c], xs[m], w);                                  \
            }                                                                                                      \
        }                                                                                                          \
        for (m = 0; m < M; m++)                                                                                    \
            for (c = 0; c < G; c++) sums[m][c] = lanes_sum(acc[m][c]);                                             \
        for (; i < k; i++) {                                                                                       \
            for (m = 0; m < M; m++)                                                                                \
                for (c = 0; c < G; c++) sums[m][c] = muladd(x[m * k + i], columns[c * k + i], sums[m][c]);         \
        }                                                                                                          \
        for (m = 0; m < M; m++) {                                                                                  \
            for (c = 0; c < G; c++) {                                                                              \
                float out = bias != NULL ? sums[m][c] + bias[c] : sums[m][c];                                      \
                y[m * n + c] = activation == SBIF_KERNEL_RELU ? relu(out) : out;                                   \
            }                                                                                                      \
        }                                                                                                          \
    }

/** Columns taken together by a narrow tile, at most: with two rows, 12 accumulators (of 16 vector registers). */
#define NARROW_GROUP 6

DEFINE_NARROW(narrow_1x1, 1, 1)
DEFINE_NARROW(narrow_1x2, 1, 2)
DEFINE_NARROW(narrow_1x3, 1, 3)
DEFINE_NARROW(narrow_1x4, 1, 4)
DEFINE_NARROW(narrow_1x5, 1, 5)
DEFINE_NARROW(narrow_1x6, 1, 6)
DEFINE_NARROW(narrow_2x1, 2, 1)
DEFINE_NARROW(narrow_2x2, 2, 2)
DEFINE_NARROW(narrow_2x3, 2, 3)
DEFINE_NARROW(narrow_2x4, 2, 4)
DEFINE_NARROW(narrow_2x5, 2, 5)
DEFINE_NARROW(narrow_2x6, 2, 6)
DEFINE_NARROW(narrow_4x1, 4, 1)
DEFINE_NARROW(narrow_4x2, 4, 2)
DEFINE_NARROW(narrow_4x3, 4, 3)
#undef DEFINE_NARROW

typedef void (*narrow_fn)(const float *x, int64_t k, const float *columns, const float *bias,
                          sbif_kernel_activation activation, float *y, int64_t n);

/** The narrow tiles by rows (1, 2, 4) and columns (1..NARROW_GROUP); four rows only up to 3 columns. */
static const narrow_fn NARROW_TILES[3][NARROW_GROUP + 1] = {
    {NULL, narrow_1x1, narrow_1x2, narrow_1x3, narrow_1x4, narrow_1x5, narrow_1x6},
    {NULL, narrow_2x1, narrow_2x2, narrow_2x3, narrow_2x4, narrow_2x5, narrow_2x6},
    {NULL, narrow_4x1, narrow_4x2, narrow_4x3, NULL, NULL, NULL}};

/** x [rows, k] times narrow outputs packed transposed, into y [rows, n]: rows four, two or one at a time, each time
 * every column in groups of at most NARROW_GROUP. */
static void multiply_narrow(const float *x, int64_t rows, int64_t k, const float *packed, int64_t n,
                            const float *bias, sbif_kernel_activation activation, float *y) {
    int64_t r = 0, c, group;
    while (r < rows) {
        int64_t widest = n < NARROW_GROUP ? n : NARROW_GROUP;
        int tier = rows - r >= 4 && widest <= 3 ? 2 : rows - r >= 2 ? 1 : 0, taken = tier == 2 ? 4 : tier + 1;
        for (c = 0; c < n; c += group) {
            group = n - c < NARROW_GROUP ? n - c : NARROW_GROUP;
            NARROW_TILES[tier][group](x + r * k, k, packed + c * k, bias != NULL ? bias + c : NULL, activation,
                                      y + r * n + c, n);
        }
        r += taken;
    }
}

/** Rows [0, rows) of a source times the panels, into y [rows, n]: rows in blocks of `block` (that stay in cache while
 * every panel passes over them), each block in tiles of ROWS rows, and the rows left over in smaller tiles. */
static void multiply(const row_source *source, int64_t rows, int64_t block, const float *packed, int64_t n,
                     const float *bias, sbif_kernel_activation activation, float *y) {
    int64_t k = source->k, start, p, r;
    for (start = 0; start < rows; start += block) {
        int64_t end = rows - start < block ? rows : start + block, left = (end - start) % ROWS;
        for (p = 0; p < panels_of(n); p++) {
            for (r = start; r + ROWS <= end; r += ROWS) {
                TILES[ROWS](source, r, packed + p * k * PANEL, bias != NULL ? bias + p * PANEL : NULL, activation,
                            y + r * n + p * PANEL, n, n - p * PANEL);
            }
        }
        for (r = end - left, p = 0; left > 0 && p < panels_of(n);) {
            int wide = left < 4 && panels_of(n) - p >= WIDE_PANELS[left];
            (wide ? WIDE_TILES[left] : TILES[left])(source, r, packed + p * k * PANEL,
                                                    bias != NULL ? bias + p * PANEL : NULL, activation,
                                                    y + r * n + p * PANEL, n, n - p * PANEL);
            p += wide ? WIDE_PANELS[left] : 1;
        }
    }
}

void sbif_kernel_gemm(const float *x, int64_t rows, int64_t k, const float *packed, int64_t n, const float *bias,
                      sbif_kernel_activation activation, float *y) {
    row_source source;
    if (transposed(n)) {
        multiply_narrow(x, rows, k, packed, n, bias, activation, y);
        return;
    }
    source.x = x;
    source.k = k;
    source.g = NULL;
    source.streams_weights = streams_weights(k, n);
    multiply(&source, rows, block_rows(k), packed, n, bias, activation, y);
}

/** Output pixels whose windows fill a quarter of the L2, in whole tiles, and no more than the convolution has. */
static int64_t conv_block_pixels(const sbif_conv_geometry *g, int64_t depth) {
    int64_t pixels = g->batch * g->out_h * g->out_w, block = block_rows(depth) / 2;
    block = block > ROWS ? block - block % ROWS : ROWS;
    return pixels < block ? pixels : block;
}

/** Whether some window reaches past the image (into padding), where im2col's copy supplies its zeros. */
static int overhangs(const sbif_conv_geometry *g) {
    return g->pad_top > 0 || g->pad_left > 0 || (g->out_h - 1) * g->stride_h + g->kernel_h > g->height ||
           (g->out_w - 1) * g->stride_w + g->kernel_w > g->width;
}

/** Whether every window is read where it lies in x (no padding to supply, and weights in panels), so that no
 * window is copied into scratch. */
static int reads_windows_in_place(const sbif_conv_geometry *g) { return !overhangs(g) && !transposed(g->filters); }

size_t sbif_kernel_conv2d_scratch_floats(const sbif_conv_geometry *g) {
    int64_t depth = g->kernel_h * g->kernel_w * g->channels, floats = conv_block_pixels(g, depth) * depth;
    return floats > 0 && !reads_windows_in_place(g) ? (size_t)floats : 1;
}

/** The window of output pixel (image, i, j) as one row of kh * kw * C values, zeros where it overhangs x. */
static void copy_window(const float *x, const sbif_conv_geometry *g, int64_t image, int64_t i, int64_t j,
                        float *row) {
    int64_t p, run = g->kernel_w * g->channels;
    int64_t left = j * g->stride_w - g->pad_left; /* the window's first column, maybe negative */
    int64_t first = left < 0 ? -left : 0, last = g->width - left < g->kernel_w ? g->width - left : g->kernel_w;
    for (p = 0; p < g->kernel_h; p++, row += run) {
        int64_t line = i * g->stride_h + p - g->pad_top;
        if (line < 0 || line >= g->height || first >= last) {
            memset(row, 0, (size_t)run * sizeof *row);
            continue;
        }
        memset(row, 0, (size_t)(first * g->channels) * sizeof *row);
        memcpy(row + first * g->channels, x + ((image * g->height + line) * g->width + left + first) * g->channels,
               (size_t)((last - first) * g->channels) * sizeof *row);
        memset(row + last * g->channels, 0, (size_t)((g->kernel_w - last) * g->channels) * sizeof *row);
    }
}

void sbif_kernel_conv2d(const float *x, const float *packed, const float *bias, sbif_kernel_activation activation,
                        float *y, const sbif_conv_geometry *g, float *scratch) {
    int64_t depth = g->kernel_h * g->kernel_w * g->channels, pixels = g->batch * g->out_h * g->out_w;
    int64_t block = conv_block_pixels(g, depth), start, t;
    if (depth == 0) { /* empty sums: the bias alone (and no spinning over a kernel of no channels) */
        sbif_kernel_gemm(scratch, pixels, 0, packed, g->filters, bias, activation, y);
        return;
    }
    if (reads_windows_in_place(g)) {
        row_source source;
        source.x = x;
        source.k = depth;
        source.g = g;
        source.streams_weights = streams_weights(depth, g->filters);
        multiply(&source, pixels, block, packed, g->filters, bias, activation, y);
        return;
    }
    for (start = 0; start < pixels; start += block) {
        int64_t count = pixels - start < block ? pixels - start : block;
        for (t = 0; t < count; t++) {
            int64_t pixel = start + t, image = pixel / (g->out_h * g->out_w), within = pixel % (g->out_h * g->out_w);
            copy_window(x, g, image, within / g->out_w, within % g->out_w, scratch + t * depth);
        }
        sbif_kernel_gemm(scratch, count, depth, packed, g->filters, bias, activation, y + start * g->filters);
    }
}
