/* IEEE binary16 and bfloat16 <-> f32 conversions (portable, exact, round-to-nearest-even),
 * matching ggml's GGML_FP32_TO_FP16 / GGML_FP32_TO_BF16 results bit for bit. */
#ifndef SF_TENSOR_FP16_H
#define SF_TENSOR_FP16_H

#include <stdint.h>
#include <string.h>

typedef uint16_t sf_fp16;
typedef uint16_t sf_bf16;

static inline uint32_t sf_f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float sf_bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

static inline float sf_fp16_to_fp32(sf_fp16 h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return sf_bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan */
    if (exp == 0) {
        if (man == 0) return sf_bits_f32(sign);
        /* subnormal: value = man * 2^-24 */
        float v = (float)man * 5.9604644775390625e-08f;
        return sign ? -v : v;
    }
    return sf_bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

static inline sf_fp16 sf_fp32_to_fp16(float f) {
    uint32_t x = sf_f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) /* inf or nan */
        return (sf_fp16)(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
    if (absx >= 0x477ff000u) return (sf_fp16)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (absx < 0x38800000u) { /* result is subnormal or zero */
        /* value / 2^-24, rounded to nearest even */
        float v = sf_bits_f32(absx) * 16777216.0f;          /* exact: scales by 2^24 */
        uint32_t m = (uint32_t)v;
        float frac = v - (float)m;
        if (frac > 0.5f || (frac == 0.5f && (m & 1))) m++;
        return (sf_fp16)(sign | m);
    }
    uint32_t mant = absx & 0x7fffff;
    uint32_t exp = (absx >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* carry into exponent is correct */
    return (sf_fp16)(sign | h);
}

static inline float sf_bf16_to_fp32(sf_bf16 h) { return sf_bits_f32((uint32_t)h << 16); }

static inline sf_bf16 sf_fp32_to_bf16(float f) {
    uint32_t u = sf_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (sf_bf16)((u >> 16) | 64); /* quiet nan */
    return (sf_bf16)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
}

#endif
