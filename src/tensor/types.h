/* Tensor element types (ggml ids), their block layouts, and per-type kernels.
 *
 * Layout convention (ggml): ne[0] is the contiguous, quantized input dimension.
 * A weight {n_in, n_out} is n_out rows of n_in values; row r starts at
 * r * sf_type_row_bytes(type, n_in).
 *
 * Every type has a portable scalar reference (sf_type_ref) and a run-time
 * dispatched fast variant (sf_type_fast) that a test holds to the reference. */
#ifndef SF_TENSOR_TYPES_H
#define SF_TENSOR_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    SF_TYPE_F32 = 0,
    SF_TYPE_F16 = 1,
    SF_TYPE_Q4_0 = 2,
    SF_TYPE_Q4_1 = 3,
    SF_TYPE_Q5_0 = 6,
    SF_TYPE_Q5_1 = 7,
    SF_TYPE_Q8_0 = 8,
    SF_TYPE_Q8_1 = 9,
    SF_TYPE_Q2_K = 10,
    SF_TYPE_Q3_K = 11,
    SF_TYPE_Q4_K = 12,
    SF_TYPE_Q5_K = 13,
    SF_TYPE_Q6_K = 14,
    SF_TYPE_Q8_K = 15,
    SF_TYPE_IQ4_NL = 20,
    SF_TYPE_BF16 = 30,
    SF_TYPE_COUNT = 40 /* ids are < SF_TYPE_COUNT */
} sf_type;

#define SF_QK 32   /* legacy block size */
#define SF_QK_K 256 /* K-quant super-block size */

/* Dequantize n values (n a multiple of the block size) from src into dst[n]. */
typedef void (*sf_dequantize_fn)(const void *src, float *dst, int64_t n);
/* Quantize n floats into blocks (n a multiple of the block size). */
typedef void (*sf_quantize_fn)(const float *src, void *dst, int64_t n);
/* Dot product of n values: w is a row of this type, a is a row already
 * quantized to this type's vec_dot_type. */
typedef float (*sf_vec_dot_fn)(int64_t n, const void *w, const void *a);
/* vec_dot of 2 weight rows (w_stride bytes apart) against 4 activation rows
 * (a_stride bytes apart), bit for bit, faster (each weight block decoded once
 * for the 4 rows, 8 FMA chains interleaved):
 * out[4 * row + k] = vec_dot(n, w + row * w_stride, a + k * a_stride). */
typedef void (*sf_vec_dot_2x4_fn)(int64_t n, const void *w, size_t w_stride, const void *a, size_t a_stride,
                                  float out[8]);
/* The K-quant prompt kernel (tensor/kq_unpack.h): 2 weight rows of nsb
 * unpacked super-blocks (w0, w1) against 4 Q8_K rows a[0..3], in the float
 * order `order` (SF_KQ_*) of one of ggml's paths: out[4 * row + k]. */
struct sf_kq_unpacked;
typedef void (*sf_kq_gemm_fn)(int64_t nsb, const struct sf_kq_unpacked *w0, const struct sf_kq_unpacked *w1,
                              const uint8_t *const a[4], int order, float out[8]);
/* The same on 16 interleaved rows (one sf_kq_tile16 per super-block):
 * out[k][row]. */
struct sf_kq_tile16;
struct sf_lg_tile16;
struct sf_lg_acts;
typedef void (*sf_kq16_gemm_fn)(int64_t nsb, const struct sf_kq_tile16 *w, const uint8_t *const a[4], int order,
                                float out[4][16]);
/* y[0..n) += sum over r < k of s[r] * dequantize(rows[r])[0..n): the scaled
 * accumulation of k rows of this type (sparse FFN: active neuron-major rows);
 * n a multiple of the block size, rows[r] pointing at the first block. */
typedef void (*sf_axpy_rows_fn)(int64_t n, const void *const *rows, const float *s, int k, float *y);

typedef struct {
    const char *name;      /* "Q4_K", as ggml prints it */
    int block_size;        /* values per block: 1, 32 or 256 */
    size_t type_size;      /* bytes per block */
    bool is_quantized;
    sf_type vec_dot_type;  /* activation type for vec_dot */
    sf_dequantize_fn dequantize;
    sf_quantize_fn quantize; /* deterministic reference quantizer; NULL if none */
    sf_vec_dot_fn vec_dot;   /* NULL for activation-only types (Q8_1, Q8_K) */
    bool ggml_order; /* fast table: sums as llama.cpp's CPU backend does (bit-identical) */
    /* matmul variants (fast table only; NULL where there is none) */
    sf_vec_dot_2x4_fn vec_dot_2x4; /* 2 rows x 4 tokens on the file's blocks */
    bool vec_dot_2x4_exact;        /* vec_dot_2x4 equals vec_dot bit for bit */
    sf_kq_gemm_fn kq_gemm_2x4;     /* K-quants: 2 unpacked rows x 4 tokens */
    sf_kq16_gemm_fn kq16_gemm;     /* K-quants: 16 interleaved rows x 4 tokens (AVX-512) */
    sf_vec_dot_fn dot_repacked_gemv; /* Q4_K: vec_dot in the order of ggml's repacked gemv */
    /* legacy types, fast mode: 16 interleaved rows x up to 8 tokens (legacy_tile.h) */
    void (*lg16_unpack)(const void *rows, size_t row_bytes, int n_rows, int64_t n, struct sf_lg_tile16 *dst);
    void (*lg16_gemm)(int64_t nb, const struct sf_lg_tile16 *w, int n_tok, const struct sf_lg_acts *a,
                      float out[][16]);
    /* sparse FFN: y += Σ s[r] · row r over k rows (tensor/axpy.c; both tables,
     * NULL for types without a dequantizer and the activation-only ones) */
    sf_axpy_rows_fn axpy_rows;
} sf_type_traits;

/* Scalar reference traits; NULL for an id that is unknown or unsupported. */
const sf_type_traits *sf_type_ref(int type);
/* Fastest traits for this CPU (same contract, same results within the
 * kernel tests' tolerance); NULL for unknown ids. */
const sf_type_traits *sf_type_fast(int type);

/* Block geometry of a ggml type id, also of the types sparsefuse cannot
 * compute on (the one table of type sizes, from ggml-common.h; the GGUF
 * reader sizes tensors with it). NULL for ids unknown or retired. */
typedef struct {
    const char *name; /* "Q4_K", as ggml prints it */
    int block_size;   /* values per block; 0 in the table: retired id */
    int type_size;    /* bytes per block */
} sf_type_info;
const sf_type_info *sf_type_info_of(int type);

/* Name of a ggml type id, also for ids sparsefuse cannot compute on
 * ("IQ2_XXS"...); "unknown" for ids ggml never defined. */
const char *sf_type_name(int type);
/* Bytes of a row of n values; n must be a multiple of the block size. */
size_t sf_type_row_bytes(sf_type type, int64_t n);

/* Kernel mode. "fast" (the default): the fastest kernels for this CPU,
 * whose results differ from llama.cpp's only in the order of float
 * additions (within the parity tolerances of docs/parity.md). "exact":
 * ggml's order of operations bit for bit: AVX2-shaped kernels and ggml's
 * batch-dependent K-quant paths (tensor/ggml_batch.h), for parity work.
 * SF_KERNELS=fast|exact in the environment selects it at start. */
bool sf_kernels_exact(void);
/* Switches the mode ("fast" or "exact"; false for anything else), also
 * resetting the ISA level to that mode's default; between runs only. */
bool sf_kernels_force(const char *mode);

/* Name of the instruction set sf_type_fast() chose: "avx512", "avx2", "scalar". */
const char *sf_cpu_isa(void);
/* Forces the dispatch level (for tests and benchmarks): "scalar", "avx2",
 * "avx512"; returns false if the CPU lacks it. */
bool sf_cpu_isa_force(const char *isa);

#endif
