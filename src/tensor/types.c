/* Type trait tables (scalar reference and run-time dispatched fast), type
 * names and sizes for every ggml type id, and the ISA selection. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "tensor/blocks.h"
#include "tensor/quant_ref.h"
#include "tensor/simd.h"
#include "tensor/types.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* ------------------------------------------------------- names and sizes */

/* Every id ggml has defined (retired ones included, under their old names);
 * sizes from ggml-common.h. Ids beyond the table are "unknown". */
static const sf_type_info g_info[] = {
    [0] = {"F32", 1, 4},         [1] = {"F16", 1, 2},
    [2] = {"Q4_0", 32, 18},      [3] = {"Q4_1", 32, 20},
    [4] = {"Q4_2", 0, 0},        [5] = {"Q4_3", 0, 0},
    [6] = {"Q5_0", 32, 22},      [7] = {"Q5_1", 32, 24},
    [8] = {"Q8_0", 32, 34},      [9] = {"Q8_1", 32, 36},
    [10] = {"Q2_K", 256, 84},    [11] = {"Q3_K", 256, 110},
    [12] = {"Q4_K", 256, 144},   [13] = {"Q5_K", 256, 176},
    [14] = {"Q6_K", 256, 210},   [15] = {"Q8_K", 256, 292},
    [16] = {"IQ2_XXS", 256, 66}, [17] = {"IQ2_XS", 256, 74},
    [18] = {"IQ3_XXS", 256, 98}, [19] = {"IQ1_S", 256, 50},
    [20] = {"IQ4_NL", 32, 18},   [21] = {"IQ3_S", 256, 110},
    [22] = {"IQ2_S", 256, 82},   [23] = {"IQ4_XS", 256, 136},
    [24] = {"I8", 1, 1},         [25] = {"I16", 1, 2},
    [26] = {"I32", 1, 4},        [27] = {"I64", 1, 8},
    [28] = {"F64", 1, 8},        [29] = {"IQ1_M", 256, 56},
    [30] = {"BF16", 1, 2},       [31] = {"Q4_0_4_4", 0, 0},
    [32] = {"Q4_0_4_8", 0, 0},   [33] = {"Q4_0_8_8", 0, 0},
    [34] = {"TQ1_0", 256, 54},   [35] = {"TQ2_0", 256, 66},
    [36] = {"IQ4_NL_4_4", 0, 0}, [37] = {"IQ4_NL_4_8", 0, 0},
    [38] = {"IQ4_NL_8_8", 0, 0}, [39] = {"MXFP4", 32, 17},
    [40] = {"NVFP4", 64, 36},    [41] = {"Q1_0", 128, 18},
    [42] = {"Q2_0", 64, 18},
};
#define N_INFO ((int)(sizeof g_info / sizeof g_info[0]))

const sf_type_info *sf_type_info_of(int type) {
    if (type < 0 || type >= N_INFO || g_info[type].block_size == 0) return NULL;
    return &g_info[type];
}

const char *sf_type_name(int type) {
    if (type < 0 || type >= N_INFO || !g_info[type].name) return "unknown";
    return g_info[type].name;
}

size_t sf_type_row_bytes(sf_type type, int64_t n) {
    const int t = (int)type;
    if (t < 0 || t >= N_INFO || g_info[t].block_size == 0 || n < 0) return 0;
    const int64_t bs = g_info[t].block_size;
    if (n % bs != 0) return 0;
    return (size_t)(n / bs) * (size_t)g_info[t].type_size;
}

/* ------------------------------------------------------ reference traits */

/* axpy.c: the scalar axpy_rows of each weight type with a dequantizer */
#define REF_AXPY(name) void sf_ref_axpy_rows_##name(int64_t n, const void *const *rows, const float *s, int k, float *y)
REF_AXPY(f32);
REF_AXPY(f16);
REF_AXPY(bf16);
REF_AXPY(q4_0);
REF_AXPY(q4_1);
REF_AXPY(q5_0);
REF_AXPY(q5_1);
REF_AXPY(q8_0);
REF_AXPY(q2_K);
REF_AXPY(q3_K);
REF_AXPY(q4_K);
REF_AXPY(q5_K);
REF_AXPY(q6_K);
REF_AXPY(iq4_nl);
#undef REF_AXPY

static const sf_type_traits g_ref[SF_TYPE_COUNT] = {
    [SF_TYPE_F32] = {"F32", 1, 4, false, SF_TYPE_F32, sf_ref_dequantize_f32, sf_ref_quantize_f32,
                     sf_ref_vec_dot_f32, .axpy_rows = sf_ref_axpy_rows_f32},
    [SF_TYPE_F16] = {"F16", 1, 2, false, SF_TYPE_F16, sf_ref_dequantize_f16, sf_ref_quantize_f16,
                     sf_ref_vec_dot_f16, .axpy_rows = sf_ref_axpy_rows_f16},
    [SF_TYPE_BF16] = {"BF16", 1, 2, false, SF_TYPE_BF16, sf_ref_dequantize_bf16,
                      sf_ref_quantize_bf16, sf_ref_vec_dot_bf16, .axpy_rows = sf_ref_axpy_rows_bf16},
    [SF_TYPE_Q4_0] = {"Q4_0", SF_QK, sizeof(sf_block_q4_0), true, SF_TYPE_Q8_0,
                      sf_ref_dequantize_q4_0, sf_ref_quantize_q4_0, sf_ref_vec_dot_q4_0,
                      .axpy_rows = sf_ref_axpy_rows_q4_0},
    [SF_TYPE_Q4_1] = {"Q4_1", SF_QK, sizeof(sf_block_q4_1), true, SF_TYPE_Q8_1,
                      sf_ref_dequantize_q4_1, sf_ref_quantize_q4_1, sf_ref_vec_dot_q4_1,
                      .axpy_rows = sf_ref_axpy_rows_q4_1},
    [SF_TYPE_Q5_0] = {"Q5_0", SF_QK, sizeof(sf_block_q5_0), true, SF_TYPE_Q8_0,
                      sf_ref_dequantize_q5_0, sf_ref_quantize_q5_0, sf_ref_vec_dot_q5_0,
                      .axpy_rows = sf_ref_axpy_rows_q5_0},
    [SF_TYPE_Q5_1] = {"Q5_1", SF_QK, sizeof(sf_block_q5_1), true, SF_TYPE_Q8_1,
                      sf_ref_dequantize_q5_1, sf_ref_quantize_q5_1, sf_ref_vec_dot_q5_1,
                      .axpy_rows = sf_ref_axpy_rows_q5_1},
    [SF_TYPE_Q8_0] = {"Q8_0", SF_QK, sizeof(sf_block_q8_0), true, SF_TYPE_Q8_0,
                      sf_ref_dequantize_q8_0, sf_ref_quantize_q8_0, sf_ref_vec_dot_q8_0,
                      .axpy_rows = sf_ref_axpy_rows_q8_0},
    [SF_TYPE_Q8_1] = {"Q8_1", SF_QK, sizeof(sf_block_q8_1), true, SF_TYPE_Q8_1,
                      sf_ref_dequantize_q8_1, sf_ref_quantize_q8_1, NULL},
    [SF_TYPE_Q2_K] = {"Q2_K", SF_QK_K, sizeof(sf_block_q2_K), true, SF_TYPE_Q8_K,
                      sf_ref_dequantize_q2_K, sf_ref_quantize_q2_K, sf_ref_vec_dot_q2_K,
                      .axpy_rows = sf_ref_axpy_rows_q2_K},
    [SF_TYPE_Q3_K] = {"Q3_K", SF_QK_K, sizeof(sf_block_q3_K), true, SF_TYPE_Q8_K,
                      sf_ref_dequantize_q3_K, sf_ref_quantize_q3_K, sf_ref_vec_dot_q3_K,
                      .axpy_rows = sf_ref_axpy_rows_q3_K},
    [SF_TYPE_Q4_K] = {"Q4_K", SF_QK_K, sizeof(sf_block_q4_K), true, SF_TYPE_Q8_K,
                      sf_ref_dequantize_q4_K, sf_ref_quantize_q4_K, sf_ref_vec_dot_q4_K,
                      .axpy_rows = sf_ref_axpy_rows_q4_K},
    [SF_TYPE_Q5_K] = {"Q5_K", SF_QK_K, sizeof(sf_block_q5_K), true, SF_TYPE_Q8_K,
                      sf_ref_dequantize_q5_K, sf_ref_quantize_q5_K, sf_ref_vec_dot_q5_K,
                      .axpy_rows = sf_ref_axpy_rows_q5_K},
    [SF_TYPE_Q6_K] = {"Q6_K", SF_QK_K, sizeof(sf_block_q6_K), true, SF_TYPE_Q8_K,
                      sf_ref_dequantize_q6_K, sf_ref_quantize_q6_K, sf_ref_vec_dot_q6_K,
                      .axpy_rows = sf_ref_axpy_rows_q6_K},
    [SF_TYPE_Q8_K] = {"Q8_K", SF_QK_K, sizeof(sf_block_q8_K), true, SF_TYPE_Q8_K,
                      sf_ref_dequantize_q8_K, sf_ref_quantize_q8_K, NULL},
    [SF_TYPE_IQ4_NL] = {"IQ4_NL", SF_QK, sizeof(sf_block_iq4_nl), true, SF_TYPE_Q8_0,
                        sf_ref_dequantize_iq4_nl, sf_ref_quantize_iq4_nl, sf_ref_vec_dot_iq4_nl,
                        .axpy_rows = sf_ref_axpy_rows_iq4_nl},
};

const sf_type_traits *sf_type_ref(int type) {
    if (type < 0 || type >= SF_TYPE_COUNT || !g_ref[type].name) return NULL;
    return &g_ref[type];
}

/* ------------------------------------------------------------- dispatch */

enum { ISA_SCALAR, ISA_AVX2, ISA_AVX512 };
static const char *const g_isa_names[] = {"scalar", "avx2", "avx512"};

static sf_type_traits g_fast[SF_TYPE_COUNT];
static int g_isa = ISA_SCALAR;
static bool g_exact = false;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

/* Highest level this CPU and OS support, from CPUID and XGETBV (clang's
 * __builtin_cpu_supports lacks "f16c", so the bits are read directly). */
static int isa_detect(void) {
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return ISA_SCALAR;
    const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28),
               f16c = c & (1u << 29);
    if (!(osxsave && avx && fma && f16c)) return ISA_SCALAR;
    unsigned xcr0_lo, xcr0_hi;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    (void)xcr0_hi;
    if ((xcr0_lo & 0x06) != 0x06) return ISA_SCALAR; /* OS saves no YMM state */
    if (__get_cpuid_max(0, NULL) < 7) return ISA_SCALAR;
    __cpuid_count(7, 0, a, b, c, d);
    if (!(b & (1u << 5))) return ISA_SCALAR; /* AVX2 */
    const bool f = b & (1u << 16), bw = b & (1u << 30), vl = b & (1u << 31),
               vnni = c & (1u << 11);
    if (f && bw && vl && vnni && (xcr0_lo & 0xe6) == 0xe6) return ISA_AVX512;
    return ISA_AVX2;
#else
    return ISA_SCALAR;
#endif
}

static int isa_parse(const char *s) {
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, g_isa_names[i]) == 0) return i;
    return -1;
}

/* The default level: the AVX2-shaped kernels even on AVX-512 CPUs, because
 * they sum in the order of ggml's x86 kernels, which keeps logits
 * bit-identical to llama.cpp's (the 512-bit vec_dots do not, and at batch 1
 * they are no faster: decode is bound by memory). Where the CPU has
 * AVX512-VNNI, the AVX2-level tiles use vpdpbusd/vpdpwssd on 256-bit
 * registers, which keeps the order. */
static int default_level(bool exact) {
    (void)exact;
    const int best = isa_detect();
    return best > ISA_AVX2 ? ISA_AVX2 : best;
}

/* Rebuilds the fast table at `level` (caller holds g_lock or is the once).
 * Each (type, ISA) entry is filled by the ISA's installers, a later ISA
 * overriding what it does better. Forcing a level or mode while other
 * threads use the table is not supported: it is for tests and benchmarks,
 * between runs. */
static void build_fast(int level) {
    sf_type_traits t[SF_TYPE_COUNT];
    memcpy(t, g_ref, sizeof t);
#if defined(__x86_64__) || defined(__i386__)
    const bool vnni = isa_detect() >= ISA_AVX512;
    if (level >= ISA_AVX2) {
        sf_simd_avx2_install(t);
        sf_axpy_avx2_install(t);
        /* axpy_rows has no ggml order to keep: the 512-bit kernels (faster,
         * same precision contract) wherever the CPU has them, in both modes */
        if (vnni) sf_axpy_avx512_install(t);
        if (vnni) sf_avx512_gemm_2x4_install(t);
        else sf_avx2_gemm_2x4_install(t);
        for (int i = 0; i < SF_TYPE_COUNT; i++) t[i].vec_dot_2x4_exact = t[i].vec_dot_2x4 != NULL;
        sf_kq_gemm_install(t, vnni);
        for (int i = 0; i < SF_TYPE_COUNT; i++) t[i].ggml_order = true;
        if (vnni && !g_exact) {
            sf_simd_avx512_install_unordered(t);
            sf_avx512_lg16_install(t);
        }
    }
    if (level >= ISA_AVX512) {
        sf_simd_avx512_install(t);
        /* the 2x4 kernels reproduce the AVX2 vec_dot, which AVX-512 replaced */
        for (int i = 0; i < SF_TYPE_COUNT; i++) t[i].vec_dot_2x4_exact = t[i].ggml_order = false;
    }
#endif
    memcpy(g_fast, t, sizeof t);
    g_isa = level;
}

static void init_once(void) {
    const char *mode = getenv("SF_KERNELS");
    if (mode && *mode) {
        if (strcmp(mode, "exact") == 0) g_exact = true;
        else if (strcmp(mode, "fast") != 0) sf_log_warn("SF_KERNELS=%s is not one of fast, exact; using fast", mode);
    }
    const int best = isa_detect();
    int level = default_level(g_exact);
    const char *env = getenv("SF_ISA");
    if (env && *env) {
        const int want = isa_parse(env);
        if (want < 0)
            sf_log_warn("SF_ISA=%s is not one of scalar, avx2, avx512; using %s", env, g_isa_names[level]);
        else if (want > best)
            sf_log_warn("SF_ISA=%s is not supported by this CPU; using %s", env, g_isa_names[level]);
        else
            level = want;
    }
    build_fast(level);
}

bool sf_kernels_exact(void) {
    pthread_once(&g_once, init_once);
    return g_exact;
}

bool sf_kernels_force(const char *mode) {
    pthread_once(&g_once, init_once);
    if (!mode || (strcmp(mode, "fast") != 0 && strcmp(mode, "exact") != 0)) return false;
    pthread_mutex_lock(&g_lock);
    g_exact = strcmp(mode, "exact") == 0;
    build_fast(default_level(g_exact));
    pthread_mutex_unlock(&g_lock);
    return true;
}

const sf_type_traits *sf_type_fast(int type) {
    pthread_once(&g_once, init_once);
    if (type < 0 || type >= SF_TYPE_COUNT || !g_fast[type].name) return NULL;
    return &g_fast[type];
}

const char *sf_cpu_isa(void) {
    pthread_once(&g_once, init_once);
    return g_isa_names[g_isa];
}

bool sf_cpu_isa_force(const char *isa) {
    pthread_once(&g_once, init_once);
    const int level = isa_parse(isa);
    if (level < 0 || level > isa_detect()) return false;
    pthread_mutex_lock(&g_lock);
    build_fast(level);
    pthread_mutex_unlock(&g_lock);
    return true;
}
