/* Block structs, byte-exact with ggml-common.h (sizes asserted below). */
#ifndef SF_TENSOR_BLOCKS_H
#define SF_TENSOR_BLOCKS_H

#include <assert.h>
#include <stdint.h>

#include "tensor/fp16.h"
#include "tensor/types.h"

typedef struct { sf_fp16 d; uint8_t qs[SF_QK / 2]; } sf_block_q4_0;
typedef struct { sf_fp16 d, m; uint8_t qs[SF_QK / 2]; } sf_block_q4_1;
typedef struct { sf_fp16 d; uint8_t qh[4]; uint8_t qs[SF_QK / 2]; } sf_block_q5_0;
typedef struct { sf_fp16 d, m; uint8_t qh[4]; uint8_t qs[SF_QK / 2]; } sf_block_q5_1;
typedef struct { sf_fp16 d; int8_t qs[SF_QK]; } sf_block_q8_0;
typedef struct { sf_fp16 d, s; int8_t qs[SF_QK]; } sf_block_q8_1; /* s = d * sum(qs) */
/* IQ4_NL: 4-bit indices into a fixed non-linear table (sf_iq4nl_values) */
typedef struct { sf_fp16 d; uint8_t qs[SF_QK / 2]; } sf_block_iq4_nl;

typedef struct { uint8_t scales[SF_QK_K / 16]; uint8_t qs[SF_QK_K / 4]; sf_fp16 d, dmin; } sf_block_q2_K;
typedef struct { uint8_t hmask[SF_QK_K / 8]; uint8_t qs[SF_QK_K / 4]; uint8_t scales[12]; sf_fp16 d; } sf_block_q3_K;
typedef struct { sf_fp16 d, dmin; uint8_t scales[12]; uint8_t qs[SF_QK_K / 2]; } sf_block_q4_K;
typedef struct { sf_fp16 d, dmin; uint8_t scales[12]; uint8_t qh[SF_QK_K / 8]; uint8_t qs[SF_QK_K / 2]; } sf_block_q5_K;
typedef struct { uint8_t ql[SF_QK_K / 2]; uint8_t qh[SF_QK_K / 4]; int8_t scales[SF_QK_K / 16]; sf_fp16 d; } sf_block_q6_K;
typedef struct { float d; int8_t qs[SF_QK_K]; int16_t bsums[SF_QK_K / 16]; } sf_block_q8_K;

static_assert(sizeof(sf_block_q4_0) == 18, "q4_0 size");
static_assert(sizeof(sf_block_q4_1) == 20, "q4_1 size");
static_assert(sizeof(sf_block_q5_0) == 22, "q5_0 size");
static_assert(sizeof(sf_block_q5_1) == 24, "q5_1 size");
static_assert(sizeof(sf_block_q8_0) == 34, "q8_0 size");
static_assert(sizeof(sf_block_q8_1) == 36, "q8_1 size");
static_assert(sizeof(sf_block_iq4_nl) == 18, "iq4_nl size");
static_assert(sizeof(sf_block_q2_K) == 84, "q2_K size");
static_assert(sizeof(sf_block_q3_K) == 110, "q3_K size");
static_assert(sizeof(sf_block_q4_K) == 144, "q4_K size");
static_assert(sizeof(sf_block_q5_K) == 176, "q5_K size");
static_assert(sizeof(sf_block_q6_K) == 210, "q6_K size");
static_assert(sizeof(sf_block_q8_K) == 292, "q8_K size");

#endif
