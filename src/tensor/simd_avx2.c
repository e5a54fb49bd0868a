/* AVX2 + FMA + F16C kernels (compiled with -mavx2 -mfma -mf16c). */
#include "tensor/simd.h"

void sf_simd_avx2_install(sf_type_traits fast[SF_TYPE_COUNT]) { (void)fast; }
