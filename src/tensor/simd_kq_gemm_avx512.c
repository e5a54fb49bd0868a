/* The K-quant prompt kernel with vpdpwssd (AVX512-VNNI on 256-bit registers;
 * the 32 vector registers of AVX-512 hold the whole 2x4 tile), kq_gemm_impl.h. */
#include "tensor/simd.h"
#define KQ_NAME(x) sf_vnni_kq_##x
#define KQ_DPWSSD(acc, a, b) _mm256_dpwssd_epi32((acc), (a), (b))
#include "tensor/kq_gemm_impl.h"
