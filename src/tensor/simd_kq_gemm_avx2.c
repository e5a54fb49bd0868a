/* The K-quant prompt kernel with AVX2 integer ops (kq_gemm_impl.h). */
#include "tensor/simd.h"
#define KQ_NAME(x) sf_avx2_kq_##x
#define KQ_DPWSSD(acc, a, b) _mm256_add_epi32((acc), _mm256_madd_epi16((a), (b)))
#include "tensor/kq_gemm_impl.h"

void sf_vnni_kq_gemm_2x4(int64_t nsb, const sf_kq_unpacked *w0, const sf_kq_unpacked *w1, const uint8_t *const a[4],
                         int order, float out[8]); /* simd_kq_gemm_avx512.c */

void sf_avx512_kq16_gemm(int64_t nsb, const sf_kq_tile16 *w, const uint8_t *const a[4], int order,
                         float out[4][16]); /* simd_kq16_avx512.c */

void sf_kq_gemm_install(sf_type_traits fast[SF_TYPE_COUNT], bool vnni) {
    static const int k_types[] = {SF_TYPE_Q2_K, SF_TYPE_Q3_K, SF_TYPE_Q4_K, SF_TYPE_Q5_K, SF_TYPE_Q6_K};
    for (size_t i = 0; i < sizeof k_types / sizeof k_types[0]; i++)
    {
        fast[k_types[i]].kq_gemm_2x4 = vnni ? sf_vnni_kq_gemm_2x4 : sf_avx2_kq_gemm_2x4;
        fast[k_types[i]].kq16_gemm = vnni ? sf_avx512_kq16_gemm : NULL;
    }
}
