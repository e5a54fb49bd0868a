/* The AVX2 attention kernels against the portable ones: every path (VEC,
 * SPLIT, TILED; causal and sliding-window; head dims 64 and 256, GQA) must
 * give bit-identical outputs, since both reproduce ggml's arithmetic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/attention.h"
#include "tensor/types.h"
#include "testutil.h"

typedef struct {
    int hk, hv, n_head, n_kv, n_cells;
} shape;

typedef struct {
    sf_fp16 *k, *v; /* [n_cells][n_kv][hk|hv] */
    float *q;       /* [n_cells][n_head][hk] one query row per cell */
    float scale;
} data;

static data make_data(const shape *s, uint64_t *rng) {
    data d;
    d.k = malloc(sizeof(sf_fp16) * (size_t)s->n_cells * s->n_kv * s->hk);
    d.v = malloc(sizeof(sf_fp16) * (size_t)s->n_cells * s->n_kv * s->hv);
    d.q = malloc(sizeof(float) * (size_t)s->n_cells * s->n_head * s->hk);
    for (size_t i = 0; i < (size_t)s->n_cells * s->n_kv * s->hk; i++) d.k[i] = sf_fp32_to_fp16(2.0f * sf_test_rand_f32(rng));
    for (size_t i = 0; i < (size_t)s->n_cells * s->n_kv * s->hv; i++) d.v[i] = sf_fp32_to_fp16(sf_test_rand_f32(rng));
    for (size_t i = 0; i < (size_t)s->n_cells * s->n_head * s->hk; i++) d.q[i] = 2.0f * sf_test_rand_f32(rng);
    d.scale = 1.0f / sqrtf((float)s->hk);
    return d;
}

static void free_data(data *d) {
    free(d->k);
    free(d->v);
    free(d->q);
}

static sf_attn_args args_of(const shape *s, const data *d) {
    sf_attn_args a = {.k = d->k, .v = d->v, .kv_stride = s->n_kv, .head_dim_k = s->hk, .head_dim_v = s->hv,
                      .scale = d->scale};
    return a;
}

static void check_equal(const float *x, const float *y, int n, const char *what) {
    for (int i = 0; i < n; i++)
        if (memcmp(&x[i], &y[i], sizeof(float)) != 0) fail_msg("%s: element %d differs: %.9g vs %.9g", what, i, x[i], y[i]);
}

static void run_vec(const shape *s, int split_threads) {
    uint64_t rng = 42 + (uint64_t)s->hk + (uint64_t)split_threads;
    data d = make_data(s, &rng);
    float *work = malloc(sizeof(float) * SF_ATTN_WORK_FLOATS(s->hk, s->hv, s->n_head / s->n_kv));
    float *o1 = malloc(sizeof(float) * s->hv), *o2 = malloc(sizeof(float) * s->hv);
    const int ps[] = {0, 1, 5, 63, 64, 200, 255, 256, 300, s->n_cells - 1};
    for (size_t ip = 0; ip < sizeof ps / sizeof ps[0]; ip++) {
        const int p = ps[ip];
        if (p >= s->n_cells) continue;
        for (int swa = 0; swa < 2; swa++) {
            const int lo = swa && p > 40 ? p - 40 : 0;
            sf_attn_args a = args_of(s, &d);
            sf_attn_plan(&a, split_threads ? 1 : 3, p, split_threads ? split_threads : 1);
            assert_int_equal(a.path, SF_ATTN_VEC);
            if (split_threads && p + 1 > 256) assert_true(a.split_chunk > 0);
            for (int h = 0; h < s->n_head; h++) {
                const float *q = d.q + ((size_t)p * s->n_head + h) * s->hk;
                const int kh = h / (s->n_head / s->n_kv);
                sf_attention_head_generic(&a, q, kh, lo, p, work, o1);
                sf_attention_head(&a, q, kh, lo, p, work, o2);
                check_equal(o1, o2, s->hv, "vec");
            }
        }
    }
    free(o1);
    free(o2);
    free(work);
    free_data(&d);
}

static void run_tiled(const shape *s, int n_swa) {
    uint64_t rng = 7 + (uint64_t)s->hk + (uint64_t)n_swa;
    data d = make_data(s, &rng);
    const int group = s->n_head / s->n_kv;
    float *work = malloc(sizeof(float) * SF_ATTN_WORK_FLOATS(s->hk, s->hv, group));
    const size_t on = (size_t)s->n_cells * s->n_head * s->hv;
    float *o1 = calloc(on, sizeof(float)), *o2 = calloc(on, sizeof(float));
    int *pos = malloc(sizeof(int) * s->n_cells), *lo = malloc(sizeof(int) * s->n_cells);
    for (int t = 0; t < s->n_cells; t++) {
        pos[t] = t;
        lo[t] = n_swa > 0 && t - n_swa + 1 > 0 ? t - n_swa + 1 : 0;
    }
    sf_attn_args a = args_of(s, &d);
    sf_attn_plan(&a, s->n_cells, s->n_cells - 1, 2);
    assert_int_equal(a.path, SF_ATTN_TILED);
    for (int t0 = 0; t0 < s->n_cells; t0 += SF_ATTN_ITEM_TOKENS)
        for (int kh = 0; kh < s->n_kv; kh++) {
            sf_attn_item it = {.q = d.q, .q_stride = s->n_head * s->hk, .cell = pos, .lo = lo, .t0 = t0,
                               .t1 = t0 + SF_ATTN_ITEM_TOKENS < s->n_cells ? t0 + SF_ATTN_ITEM_TOKENS : s->n_cells,
                               .h0 = kh * group, .n_h = group, .kh = kh, .out_stride = s->n_head * s->hv};
            it.out = o1;
            sf_attention_tiled_generic(&a, &it, work);
            it.out = o2;
            sf_attention_tiled(&a, &it, work);
        }
    check_equal(o1, o2, (int)on, "tiled");
    free(pos);
    free(lo);
    free(o1);
    free(o2);
    free(work);
    free_data(&d);
}

static const shape k_small = {64, 64, 9, 3, 330};  /* SmolLM2's attention */
static const shape k_wide = {256, 256, 4, 1, 140}; /* Gemma 3 270M's */

static void test_vec(void **st) { (void)st; run_vec(&k_small, 0); run_vec(&k_wide, 0); }
static void test_split(void **st) { (void)st; run_vec(&k_small, 2); run_vec(&k_small, 3); }
static void test_tiled(void **st) { (void)st; run_tiled(&k_small, 0); run_tiled(&k_wide, 0); }
static void test_tiled_swa(void **st) { (void)st; run_tiled(&k_small, 70); }

static void test_plan(void **st) {
    (void)st;
    sf_attn_args a = {0};
    sf_attn_plan(&a, 63, 100, 2);
    assert_int_equal(a.path, SF_ATTN_VEC);
    sf_attn_plan(&a, 64, 100, 2);
    assert_int_equal(a.path, SF_ATTN_TILED);
    sf_attn_plan(&a, 1, 255, 2); /* 256 cells: no split */
    assert_int_equal(a.split_chunk, 0);
    sf_attn_plan(&a, 1, 256, 2); /* 257 cells -> padded 512, two chunks */
    assert_int_equal(a.split_chunk, 256);
    sf_attn_plan(&a, 1, 600, 3); /* 768 / 3 */
    assert_int_equal(a.split_chunk, 256);
}

int main(void) {
    if (strcmp(sf_cpu_isa(), "scalar") == 0) {
        printf("SKIPPED: no AVX2 kernels on this CPU\n");
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan), cmocka_unit_test(test_vec), cmocka_unit_test(test_split),
        cmocka_unit_test(test_tiled), cmocka_unit_test(test_tiled_swa),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
