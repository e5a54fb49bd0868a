/* 2x4 legacy-quant dot kernels with vpdpbusd on 256-bit registers (AVX512-VNNI
 * + VL): the same exact integer dots as maddubs+madd (no pair sum of these
 * operands can saturate int16), one instruction instead of two. Installed at
 * the AVX2 level when the CPU has VNNI: the results are those of the AVX2
 * vec_dot (see gemm_legacy_impl.h). */
#include "tensor/simd.h"
#include "tensor/simd_x86.h"

static inline __m256i vnni_u8i8(__m256i u, __m256i s) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s); }
static inline __m256i vnni_i8i8(__m256i x, __m256i y) { return vnni_u8i8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x)); }

#define SF_GEMM_NAME(x) sf_vnni_gemm_2x4_##x
#define SF_DOT_U8I8 vnni_u8i8
#define SF_DOT_I8I8 vnni_i8i8
#include "tensor/gemm_legacy_impl.h"
