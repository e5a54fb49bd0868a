#include "tensor/ggml_batch.h"

#include <math.h>

#include "tensor/blocks.h"
#include "tensor/kq_unpack.h"
#include "tensor/quant_ref.h"

/* ggml_gemv_q4_K_8x8_q8_K (single rows): per super-block, the integer sums
 * are scaled by (d_weight * d_act) and FMA-accumulated, the min terms likewise
 * in a second accumulator; the two are subtracted at the end. The gemm (rows
 * in groups of 4) does the same per 64-value half-pair of sub-blocks. */
static float q4_K_repacked(int64_t n, const void *w, const void *a, int step) {
    const uint8_t *pw = w, *pa = a;
    float acc = 0.0f, acc_min = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++) {
        for (int part = 0; part < 4; part += step) {
            sf_kquant_ints k;
            sf_kquant_block_ints_range(SF_TYPE_Q4_K, pw + i * sizeof(sf_block_q4_K),
                                       pa + i * sizeof(sf_block_q8_K), 2 * part, 2 * (part + step), &k);
            acc = fmaf((float)k.s1, k.d0 * k.d1, acc);
            acc_min = fmaf((float)k.s2, k.dmin0 * k.d1, acc_min);
        }
    }
    return acc - acc_min;
}

float sf_ggml_dot_q4_K_repacked_gemv(int64_t n, const void *w, const void *a) { return q4_K_repacked(n, w, a, 4); }
float sf_ggml_dot_q4_K_repacked_gemm(int64_t n, const void *w, const void *a) { return q4_K_repacked(n, w, a, 1); }

/* tiled_run_microtile_avx2 (the kernel an AVX2/AVX-512 build runs): per
 * super-block r = s1 * d (then - dmin * s2, fused), output = fma(r, d_act, output). */
static float tiled_dot(sf_type type, size_t block_bytes, int64_t n, const void *w, const void *a) {
    const uint8_t *pw = w, *pa = a;
    float out = 0.0f;
    for (int64_t i = 0; i < n / SF_QK_K; i++) {
        sf_kquant_ints k;
        sf_kquant_block_ints_range(type, pw + i * block_bytes, pa + i * sizeof(sf_block_q8_K), 0, 8, &k);
        float r = (float)k.s1 * k.d0;
        if (type == SF_TYPE_Q4_K || type == SF_TYPE_Q5_K) r = fmaf(-k.dmin0, (float)k.s2, r);
        out = fmaf(r, k.d1, out);
    }
    return out;
}

float sf_ggml_dot_kquant_tiled_q3_K(int64_t n, const void *w, const void *a) {
    return tiled_dot(SF_TYPE_Q3_K, sizeof(sf_block_q3_K), n, w, a);
}
float sf_ggml_dot_kquant_tiled_q4_K(int64_t n, const void *w, const void *a) {
    return tiled_dot(SF_TYPE_Q4_K, sizeof(sf_block_q4_K), n, w, a);
}
float sf_ggml_dot_kquant_tiled_q5_K(int64_t n, const void *w, const void *a) {
    return tiled_dot(SF_TYPE_Q5_K, sizeof(sf_block_q5_K), n, w, a);
}
float sf_ggml_dot_kquant_tiled_q6_K(int64_t n, const void *w, const void *a) {
    return tiled_dot(SF_TYPE_Q6_K, sizeof(sf_block_q6_K), n, w, a);
}

int sf_ggml_batch_order(sf_type type, int64_t n_out, int n_tokens, int t) {
    /* ggml_repack_get_optimal_repack_type on an AVX2 CPU: Q4_K repacked when
     * the row count allows; rows of the batch in whole groups of 4 go through
     * the gemm, the rest through the gemv */
    if (type == SF_TYPE_Q4_K && n_out % 8 == 0)
        return t < n_tokens - n_tokens % 4 ? SF_KQ_REPACK_GEMM : SF_KQ_REPACK_GEMV;
    /* ggml_compute_forward_mul_mat_tiled: K-quants, batches of 8 or more */
    if (n_tokens < 8) return SF_GGML_VEC_DOT;
    switch (type) {
    case SF_TYPE_Q3_K:
    case SF_TYPE_Q6_K: return SF_KQ_TILED_OFFSET;
    case SF_TYPE_Q4_K:
    case SF_TYPE_Q5_K: return SF_KQ_TILED;
    default: return SF_GGML_VEC_DOT;
    }
}

sf_vec_dot_fn sf_ggml_batch_dot(sf_type type, int64_t n_out, int n_tokens, int t) {
    switch (sf_ggml_batch_order(type, n_out, n_tokens, t)) {
    case SF_KQ_REPACK_GEMM: return sf_ggml_dot_q4_K_repacked_gemm;
    case SF_KQ_REPACK_GEMV: return sf_ggml_dot_q4_K_repacked_gemv;
    case SF_KQ_TILED:
    case SF_KQ_TILED_OFFSET:
        switch (type) {
        case SF_TYPE_Q3_K: return sf_ggml_dot_kquant_tiled_q3_K;
        case SF_TYPE_Q4_K: return sf_ggml_dot_kquant_tiled_q4_K;
        case SF_TYPE_Q5_K: return sf_ggml_dot_kquant_tiled_q5_K;
        case SF_TYPE_Q6_K: return sf_ggml_dot_kquant_tiled_q6_K;
        default: return NULL;
        }
    default: return NULL;
    }
}
