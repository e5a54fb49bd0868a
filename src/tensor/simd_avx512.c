/* AVX-512 (F, BW, VL, VNNI, BF16) kernels. */
#include "tensor/simd.h"

void sf_simd_avx512_install(sf_type_traits fast[SF_TYPE_COUNT]) { (void)fast; }
