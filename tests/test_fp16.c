/* f16 / bf16 conversions (tensor/fp16.h): exhaustive round trips, rounding
 * ties, overflow, subnormals and NaN; and, where the CPU has F16C, agreement
 * with the hardware conversion on many random f32 bit patterns. */
#include "testutil.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "tensor/fp16.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_X86 1
#endif

static bool f16_is_nan(sf_fp16 h) { return (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0; }

/* Independent decoding: value = (1024 + man) * 2^(exp - 25), or man * 2^-24. */
static float f16_value(sf_fp16 h) {
    const int exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v = exp == 0 ? ldexpf((float)man, -24) : ldexpf((float)(1024 + man), exp - 25);
    if (exp == 0x1f) v = man ? NAN : INFINITY;
    return (h & 0x8000) ? -v : v;
}

/* Every f16 value converts to f32 exactly and back to the same bits. */
static void test_f16_exhaustive_round_trip(void **state) {
    (void)state;
    for (uint32_t u = 0; u <= 0xffff; u++) {
        const sf_fp16 h = (sf_fp16)u;
        const float f = sf_fp16_to_fp32(h);
        if (f16_is_nan(h)) {
            assert_true(isnan(f));
            const sf_fp16 back = sf_fp32_to_fp16(f);
            assert_true(f16_is_nan(back));
            assert_int_equal(back & 0x8000, h & 0x8000);
            continue;
        }
        const float want = f16_value(h);
        assert_int_equal(sf_f32_bits(f), sf_f32_bits(want)); /* also tells -0 from +0 */
        assert_int_equal(sf_fp32_to_fp16(f), h);
    }
}

/* Between two neighbouring f16 values the exact midpoint rounds to the even
 * one, and anything off the midpoint rounds to the nearer one. */
static void test_f16_rounding_ties(void **state) {
    (void)state;
    for (uint32_t u = 0; u < 0x7bff; u++) { /* positive finite, with a finite successor */
        const sf_fp16 lo = (sf_fp16)u, hi = (sf_fp16)(u + 1);
        const float a = sf_fp16_to_fp32(lo), b = sf_fp16_to_fp32(hi);
        const float mid = (a + b) * 0.5f; /* exact: needs 12 mantissa bits */
        const sf_fp16 even = (lo & 1) ? hi : lo;
        assert_int_equal(sf_fp32_to_fp16(mid), even);
        assert_int_equal(sf_fp32_to_fp16(-mid), even | 0x8000);
        assert_int_equal(sf_fp32_to_fp16(nextafterf(mid, 0.0f)), lo);
        assert_int_equal(sf_fp32_to_fp16(nextafterf(mid, INFINITY)), hi);
    }
}

static void test_f16_special_values(void **state) {
    (void)state;
    assert_int_equal(sf_fp32_to_fp16(0.0f), 0x0000);
    assert_int_equal(sf_fp32_to_fp16(-0.0f), 0x8000);
    assert_int_equal(sf_fp32_to_fp16(1.0f), 0x3c00);
    assert_int_equal(sf_fp32_to_fp16(-2.0f), 0xc000);
    assert_int_equal(sf_fp32_to_fp16(65504.0f), 0x7bff);     /* largest finite */
    assert_int_equal(sf_fp32_to_fp16(65519.99f), 0x7bff);    /* below the tie */
    assert_int_equal(sf_fp32_to_fp16(65520.0f), 0x7c00);     /* tie rounds to even: inf */
    assert_int_equal(sf_fp32_to_fp16(1e10f), 0x7c00);
    assert_int_equal(sf_fp32_to_fp16(-1e10f), 0xfc00);
    assert_int_equal(sf_fp32_to_fp16(INFINITY), 0x7c00);
    assert_int_equal(sf_fp32_to_fp16(-INFINITY), 0xfc00);
    assert_true(f16_is_nan(sf_fp32_to_fp16(NAN)));
    assert_true(f16_is_nan(sf_fp32_to_fp16(sf_bits_f32(0x7f800001u)))); /* signalling NaN */
    assert_true(f16_is_nan(sf_fp32_to_fp16(sf_bits_f32(0xffc00000u))));
    /* subnormals: 2^-24 is the smallest; half of it ties to even (0) */
    assert_int_equal(sf_fp32_to_fp16(ldexpf(1.0f, -24)), 0x0001);
    assert_int_equal(sf_fp32_to_fp16(ldexpf(1.0f, -25)), 0x0000);
    assert_int_equal(sf_fp32_to_fp16(nextafterf(ldexpf(1.0f, -25), 1.0f)), 0x0001);
    assert_int_equal(sf_fp32_to_fp16(ldexpf(3.0f, -25)), 0x0002); /* 1.5 ulp ties to 2 */
    assert_int_equal(sf_fp32_to_fp16(ldexpf(1.0f, -30)), 0x0000);
    assert_int_equal(sf_fp32_to_fp16(-ldexpf(1.0f, -30)), 0x8000);
    assert_int_equal(sf_fp32_to_fp16(ldexpf(1023.0f, -24)), 0x03ff); /* largest subnormal */
    assert_int_equal(sf_fp32_to_fp16(ldexpf(1.0f, -14)), 0x0400);    /* smallest normal */
    /* f32 subnormals become 0 */
    assert_int_equal(sf_fp32_to_fp16(sf_bits_f32(0x00000001u)), 0x0000);
}

#ifdef HAVE_X86
static bool cpu_has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29)) && (c & (1u << 27));
}

__attribute__((target("f16c"))) static uint16_t hw_f32_to_f16(float f) {
    return (uint16_t)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
}
#endif

/* Random f32 bit patterns (all exponents) against the F16C instruction. */
static void test_f16_matches_hardware(void **state) {
    (void)state;
#ifdef HAVE_X86
    if (!cpu_has_f16c()) skip();
    uint64_t rng = 42;
    for (int i = 0; i < 4000000; i++) {
        const uint32_t bits = (uint32_t)sf_test_rand_u64(&rng);
        const float f = sf_bits_f32(bits);
        const sf_fp16 ours = sf_fp32_to_fp16(f), hw = hw_f32_to_f16(f);
        if (f16_is_nan(hw)) {
            assert_true(f16_is_nan(ours));
            continue;
        }
        if (ours != hw) fprintf(stderr, "f32 0x%08x: ours 0x%04x, F16C 0x%04x\n", bits, ours, hw);
        assert_int_equal(ours, hw);
    }
#else
    skip();
#endif
}

/* bf16 -> f32 is a shift; every bf16 goes to f32 and back unchanged. */
static void test_bf16_exhaustive_round_trip(void **state) {
    (void)state;
    for (uint32_t u = 0; u <= 0xffff; u++) {
        const sf_bf16 h = (sf_bf16)u;
        const float f = sf_bf16_to_fp32(h);
        assert_int_equal(sf_f32_bits(f), u << 16);
        const sf_bf16 back = sf_fp32_to_bf16(f);
        if ((u & 0x7f80) == 0x7f80 && (u & 0x7f)) { /* NaN stays NaN, made quiet */
            assert_true(isnan(sf_bf16_to_fp32(back)));
            assert_int_equal(back, u | 0x40);
        } else {
            assert_int_equal(back, h);
        }
    }
}

static void test_bf16_rounding(void **state) {
    (void)state;
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x3f808000u)), 0x3f80); /* tie -> even */
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x3f818000u)), 0x3f82); /* tie -> even */
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x3f808001u)), 0x3f81); /* above tie */
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x3f807fffu)), 0x3f80); /* below tie */
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0xbf808001u)), 0xbf81);
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x3f80ffffu)), 0x3f81);
    /* carry into the exponent */
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x3fffffffu)), 0x4000);
    /* largest f32 overflows to inf; infinities stay */
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x7f7fffffu)), 0x7f80);
    assert_int_equal(sf_fp32_to_bf16(INFINITY), 0x7f80);
    assert_int_equal(sf_fp32_to_bf16(-INFINITY), 0xff80);
    /* subnormals are rounded, not flushed */
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x00010000u)), 0x0001);
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x00018000u)), 0x0002);
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x00008000u)), 0x0000);
    assert_int_equal(sf_fp32_to_bf16(-0.0f), 0x8000);
    /* NaNs: quiet bit forced, never rounded into an infinity */
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x7f800001u)), 0x7fc0);
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0x7fffffffu)), 0x7fff);
    assert_int_equal(sf_fp32_to_bf16(sf_bits_f32(0xff800001u)), 0xffc0);
    assert_true(isnan(sf_bf16_to_fp32(sf_fp32_to_bf16(NAN))));
}

/* Random finite f32: bf16 is the nearest value, ties to even. */
static void test_bf16_nearest(void **state) {
    (void)state;
    uint64_t rng = 7;
    for (int i = 0; i < 1000000; i++) {
        const uint32_t bits = (uint32_t)sf_test_rand_u64(&rng);
        if ((bits & 0x7f800000u) == 0x7f800000u) continue;
        const float f = sf_bits_f32(bits);
        const sf_bf16 h = sf_fp32_to_bf16(f);
        const uint32_t down = bits & 0xffff0000u, rem = bits & 0xffffu;
        uint32_t want = down >> 16;
        if (rem > 0x8000u || (rem == 0x8000u && (want & 1))) want++;
        assert_int_equal(h, want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_exhaustive_round_trip),
        cmocka_unit_test(test_f16_rounding_ties),
        cmocka_unit_test(test_f16_special_values),
        cmocka_unit_test(test_f16_matches_hardware),
        cmocka_unit_test(test_bf16_exhaustive_round_trip),
        cmocka_unit_test(test_bf16_rounding),
        cmocka_unit_test(test_bf16_nearest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
