/* 2x4 legacy-quant dot kernels, AVX2 integer dots (see gemm_legacy_impl.h). */
#include "tensor/simd.h"
#define SF_GEMM_NAME(x) sf_avx2_gemm_2x4_##x
#define SF_DOT_U8I8 sf_x86_dot_u8i8
#define SF_DOT_I8I8 sf_x86_dot_i8i8
#include "tensor/gemm_legacy_impl.h"
