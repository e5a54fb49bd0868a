/* FFN Fusion transform (src/fusion): plan parsing and every validation
 * error; on the default model: a fused deci file reloads and decodes, the
 * deci rewrite of an empty plan computes the same logits as the source,
 * fused tensors are the members' bytes (shared-last), and the folded-norm
 * fused FFN reproduces the sum of the member FFNs on a shared input
 * (Theorem 3.1) to NMSE <= 1e-6 in f32; the command's arguments. */
#include "testutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fusion/fuse.h"
#include "fusion/fuse_impl.h"
#include "gguf/gguf.h"
#include "model/context.h"
#include "model/model.h"
#include "sparsefuse.h"
#include "tensor/types.h"

#define N_LAYER 30 /* SmolLM2-135M */

static void expect_msg(int rc, int want_rc, const char *want) {
    if (rc != want_rc || !strstr(sf_last_error(), want))
        fail_msg("got %d '%s', expected %d with '%s'", rc, sf_last_error(), want_rc, want);
}

/* ---- parsing -------------------------------------------------------------- */

static void test_parse(void **state) {
    (void)state;
    sf_layer_range *r;
    int n;
    assert_int_equal(sf_fuse_parse_ranges("3,5,7-12", "--drop-attn", &r, &n), SF_OK);
    assert_int_equal(n, 3);
    assert_int_equal(r[0].first, 3); assert_int_equal(r[0].last, 3);
    assert_int_equal(r[1].first, 5); assert_int_equal(r[1].last, 5);
    assert_int_equal(r[2].first, 7); assert_int_equal(r[2].last, 12);
    free(r);
    assert_int_equal(sf_fuse_parse_ranges("8-12,14-17", "--fuse", &r, &n), SF_OK);
    assert_int_equal(n, 2);
    assert_int_equal(r[1].first, 14); assert_int_equal(r[1].last, 17);
    free(r);
    assert_int_equal(sf_fuse_parse_ranges("12-7", "--fuse", &r, &n), SF_OK); /* reversed: the validation says so */
    free(r);
    static const char *const bad[] = {"", "3,,5", "3,", ",3", "7-", "-3", "a", "3-b", "3 5", "3-5-7", "1.5", NULL};
    for (int i = 0; bad[i]; i++) {
        r = (sf_layer_range *)1;
        int rc = sf_fuse_parse_ranges(bad[i], "--fuse", &r, &n);
        if (rc != SF_ERR_ARG || !strstr(sf_last_error(), "--fuse")) fail_msg("'%s': %d %s", bad[i], rc, sf_last_error());
        assert_null(r);
    }
    expect_msg(sf_fuse_parse_ranges("3-b", "--fuse", &r, &n), SF_ERR_ARG, "'3-b' is not a layer number or range");
    expect_msg(sf_fuse_parse_ranges("auto", "--fuse", &r, &n), SF_ERR_UNSUPPORTED, "an automatic plan");
    expect_msg(sf_fuse_parse_ranges("auto:8", "--drop-attn", &r, &n), SF_ERR_UNSUPPORTED, "--drop-attn auto:8");

    sf_fuse_norm norm;
    assert_int_equal(sf_fuse_parse_norm("shared-last", &norm), SF_OK);
    assert_int_equal(norm, SF_FUSE_NORM_SHARED_LAST);
    assert_int_equal(sf_fuse_parse_norm("folded", &norm), SF_OK);
    assert_int_equal(norm, SF_FUSE_NORM_FOLDED);
    expect_msg(sf_fuse_parse_norm("virtual", &norm), SF_ERR_ARG, "unknown norm variant 'virtual'");
    assert_string_equal(sf_fuse_norm_name(SF_FUSE_NORM_FOLDED), "folded");

    bool mask[N_LAYER];
    sf_layer_range lr[2] = {{3, 3}, {7, 9}};
    assert_int_equal(sf_fuse_ranges_to_mask(lr, 2, N_LAYER, "--drop-attn", mask), SF_OK);
    for (int l = 0; l < N_LAYER; l++) assert_int_equal(mask[l], l == 3 || (l >= 7 && l <= 9));
    lr[1] = (sf_layer_range){28, 30};
    expect_msg(sf_fuse_ranges_to_mask(lr, 2, N_LAYER, "--drop-attn", mask), SF_ERR_ARG,
               "--drop-attn 28-30: layer 30 is out of range (the model has 30 layers, 0-29)");
    lr[1] = (sf_layer_range){9, 7};
    expect_msg(sf_fuse_ranges_to_mask(lr, 2, N_LAYER, "--drop-attn", mask), SF_ERR_ARG, "9-7: the range is reversed");
}

/* ---- validation ----------------------------------------------------------- */

typedef struct {
    bool drop[N_LAYER];
    sf_layer_range fuse[4], par[4];
    sf_fuse_plan p;
} plan_buf;

/* A plan over N_LAYER layers dropping the attention of the layers in drop
 * ("" = none), with the given fusion and parallel ranges. */
static sf_fuse_plan *make_plan(plan_buf *b, const char *drop, const char *fuse, const char *par) {
    memset(b, 0, sizeof *b);
    sf_layer_range *r;
    int n;
    if (*drop) {
        assert_int_equal(sf_fuse_parse_ranges(drop, "drop", &r, &n), SF_OK);
        for (int i = 0; i < n; i++)
            for (int l = r[i].first; l <= r[i].last; l++) b->drop[l] = true;
        free(r);
    }
    b->p.n_layer = N_LAYER;
    b->p.drop_attn = b->drop;
    b->p.fuse = b->fuse;
    b->p.parallel = b->par;
    if (*fuse) {
        assert_int_equal(sf_fuse_parse_ranges(fuse, "fuse", &r, &n), SF_OK);
        memcpy(b->fuse, r, (size_t)n * sizeof *r);
        b->p.n_fuse = n;
        free(r);
    }
    if (*par) {
        assert_int_equal(sf_fuse_parse_ranges(par, "parallel", &r, &n), SF_OK);
        memcpy(b->par, r, (size_t)n * sizeof *r);
        b->p.n_parallel = n;
        free(r);
    }
    return &b->p;
}

static void test_validate(void **state) {
    (void)state;
    plan_buf b;
    assert_int_equal(sf_fuse_plan_validate(make_plan(&b, "8-12,20", "8-11", "22-23"), NULL, NULL), SF_OK);
    assert_int_equal(sf_fuse_plan_validate(make_plan(&b, "", "", ""), NULL, NULL), SF_OK);
    assert_int_equal(sf_fuse_plan_validate(make_plan(&b, "3-9", "3-5,6-9", ""), NULL, NULL), SF_OK); /* adjacent */

    expect_msg(sf_fuse_plan_validate(make_plan(&b, "26-29", "28-31", ""), NULL, NULL), SF_ERR_ARG,
               "fuse 28-31: layer 31 is out of range (the model has 30 layers, 0-29)");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "3-6", "6-3", ""), NULL, NULL), SF_ERR_ARG,
               "fuse 6-3: the range is reversed");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "5", "5", ""), NULL, NULL), SF_ERR_ARG,
               "fuse 5-5: a group needs at least 2 layers");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "3-8", "3-6,5-8", ""), NULL, NULL), SF_ERR_ARG,
               "fuse 3-6 and fuse 5-8 overlap (layer 5)");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "3,4,6", "3-6", ""), NULL, NULL), SF_ERR_ARG,
               "fuse 3-6: layer 5 keeps its attention; drop it with --drop-attn");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "", "3-4", ""), NULL, NULL), SF_ERR_ARG,
               "fuse 3-4: layer 3 keeps its attention");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "0-3", "", ""), NULL, NULL), SF_ERR_ARG,
               "layer 0's attention cannot be dropped");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "0-3", "0-3", ""), NULL, NULL), SF_ERR_ARG,
               "layer 0's attention cannot be dropped");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "3-6", "3-6", "5-7"), NULL, NULL), SF_ERR_ARG,
               "parallel 5-7 overlaps fuse 3-6 (layer 5)");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "3-6", "3-6", "1-3"), NULL, NULL), SF_ERR_ARG,
               "parallel 1-3 overlaps fuse 3-6 (layer 3)");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "", "", "10-13,12-15"), NULL, NULL), SF_ERR_ARG,
               "parallel 10-13 and parallel 12-15 overlap (layer 12)");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "", "", "29-30"), NULL, NULL), SF_ERR_ARG,
               "parallel 29-30: layer 30 is out of range");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "", "", "9-7"), NULL, NULL), SF_ERR_ARG,
               "parallel 9-7: the range is reversed");
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "", "", "9"), NULL, NULL), SF_ERR_ARG,
               "parallel 9-9: a group needs at least 2 layers");
    sf_fuse_plan *p = make_plan(&b, "", "", "");
    p->n_layer = 0;
    expect_msg(sf_fuse_plan_validate(p, NULL, NULL), SF_ERR_ARG, "n_layer");
    expect_msg(sf_fuse_plan_validate(NULL, NULL, NULL), SF_ERR_ARG, "no fusion plan");

    /* the source's own layout: attention-free layers need no drop, FFN-less ones cannot be fused */
    int n_head[N_LAYER], n_ff[N_LAYER];
    for (int l = 0; l < N_LAYER; l++) { n_head[l] = 9; n_ff[l] = 1536; }
    n_head[4] = n_head[5] = 0;
    assert_int_equal(sf_fuse_plan_validate(make_plan(&b, "", "4-5", ""), n_head, n_ff), SF_OK);
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "", "4-6", ""), n_head, n_ff), SF_ERR_ARG,
               "fuse 4-6: layer 6 keeps its attention");
    n_ff[5] = 0;
    expect_msg(sf_fuse_plan_validate(make_plan(&b, "", "4-5", ""), n_head, n_ff), SF_ERR_ARG,
               "fuse 4-5: layer 5 has no FFN to fuse");

    /* renumbering: 30 layers, groups 8-11 and 14-15 -> 30 - 3 - 1 = 26 */
    int ni[N_LAYER], go[N_LAYER];
    p = make_plan(&b, "8-11,14-15", "8-11,14-15", "");
    assert_int_equal(sf_fuse_plan_validate(p, NULL, NULL), SF_OK);
    assert_int_equal(sf_fuse_plan_map(p, ni, go), 26);
    assert_int_equal(ni[7], 7);
    for (int l = 8; l <= 11; l++) { assert_int_equal(ni[l], 8); assert_int_equal(go[l], 0); }
    assert_int_equal(ni[12], 9);
    assert_int_equal(ni[14], 11); assert_int_equal(ni[15], 11); assert_int_equal(go[15], 1);
    assert_int_equal(ni[16], 12);
    assert_int_equal(ni[29], 25);
    assert_int_equal(go[29], -1);
}

/* ---- on the real model ---------------------------------------------------- */

static const char *model_or_skip(void) {
    const char *m = sf_test_model_path(SF_TEST_SMOLLM);
    if (!m) skip();
    static char path[4096];
    snprintf(path, sizeof path, "%s", m);
    return path;
}

static int64_t get_i32_at(const sf_gguf *g, const char *key, uint64_t i, uint64_t *n_out) {
    sf_gguf_vtype et;
    uint64_t n;
    const void *data;
    assert_int_equal(sf_gguf_get_arr_data(g, key, &et, &n, &data), SF_OK);
    if (n_out) *n_out = n;
    assert_true(i < n);
    return sf_gguf_arr_get_i64(et, data, i);
}

/* Decodes a short prompt; returns malloc'd logits of its last token. */
static float *decode_last(const char *path, int *n_vocab, int *n_layer, const char **arch_out) {
    sf_model *m = sf_model_load(path);
    if (!m) fail_msg("load %s: %s", path, sf_last_error());
    sf_model_info info;
    sf_model_get_info(m, &info);
    *n_vocab = info.n_vocab;
    *n_layer = info.n_layer;
    static char arch[16];
    snprintf(arch, sizeof arch, "%s", info.arch);
    if (arch_out) *arch_out = arch;
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    sf_context *c = sf_context_new(m, &cp);
    assert_non_null(c);
    int32_t toks[32];
    const char *text = "The lighthouse keeper climbed the 147 iron steps every evening.";
    int n = sf_tokenize(m, text, strlen(text), toks, 32, true, false);
    assert_true(n > 4);
    assert_int_equal(sf_decode(c, toks, n, false), SF_OK);
    float *out = malloc((size_t)info.n_vocab * sizeof *out);
    memcpy(out, sf_get_logits(c, -1), (size_t)info.n_vocab * sizeof *out);
    /* and one more token through the KV cache */
    assert_int_equal(sf_decode(c, toks, 1, false), SF_OK);
    const float *l2 = sf_get_logits(c, -1);
    for (int i = 0; i < info.n_vocab; i++) assert_true(isfinite(l2[i]));
    sf_context_free(c);
    sf_model_free(m);
    return out;
}

static void test_write_and_run(void **state) {
    (void)state;
    const char *src = model_or_skip();
    const char *out = sf_test_scratch_path("fused.gguf");
    plan_buf b;
    sf_fuse_report r;
    assert_int_equal(sf_fuse_write(src, make_plan(&b, "8-12,20", "8-11", "22-23"), out, NULL, &r), SF_OK);
    assert_int_equal(r.n_layer_in, 30);
    assert_int_equal(r.n_layer_out, 27);
    assert_int_equal(r.n_attn_dropped, 6);
    assert_int_equal(r.n_groups, 1);
    assert_int_equal(r.n_fused_layers, 4);
    assert_int_equal(r.n_requantized, 0);
    assert_int_equal(sf_test_scratch_entries(), 1);

    sf_gguf *g;
    assert_int_equal(sf_gguf_open(out, &g), SF_OK);
    sf_gguf_str s;
    assert_int_equal(sf_gguf_get_str(g, "general.architecture", &s), SF_OK);
    assert_int_equal(s.len, 4);
    assert_memory_equal(s.ptr, "deci", 4);
    uint32_t u;
    assert_int_equal(sf_gguf_get_u32(g, "deci.block_count", &u), SF_OK);
    assert_int_equal(u, 27);
    assert_int_equal(sf_gguf_get_u32(g, "deci.attention.key_length", &u), SF_OK);
    assert_int_equal(u, 64);
    assert_int_equal(sf_gguf_find_key(g, "llama.block_count"), -1);
    assert_int_equal(get_i32_at(g, "deci.attention.head_count", 0, NULL), 9);
    assert_int_equal(get_i32_at(g, "deci.attention.head_count", 8, NULL), 0);   /* fused 8-11 */
    assert_int_equal(get_i32_at(g, "deci.attention.head_count_kv", 9, NULL), 0); /* old 12 */
    assert_int_equal(get_i32_at(g, "deci.attention.head_count", 10, NULL), 9);  /* old 13 */
    assert_int_equal(get_i32_at(g, "deci.attention.head_count", 17, NULL), 0);  /* old 20 */
    assert_int_equal(get_i32_at(g, "deci.feed_forward_length", 8, NULL), 4 * 1536);
    assert_int_equal(get_i32_at(g, "deci.feed_forward_length", 9, NULL), 1536);
    uint64_t n;
    assert_int_equal(get_i32_at(g, "sparsefuse.parallel_blocks", 0, &n), 19); /* 22-23 renumbered */
    assert_int_equal(n, 2);
    assert_int_equal(get_i32_at(g, "sparsefuse.parallel_blocks", 1, NULL), 20);
    assert_int_equal(get_i32_at(g, "sparsefuse.fusion.groups", 0, &n), 8);
    assert_int_equal(n, 2);
    assert_int_equal(get_i32_at(g, "sparsefuse.fusion.groups", 1, NULL), 11);
    assert_int_equal(get_i32_at(g, "sparsefuse.fusion.source_layer", 9, &n), 12);
    assert_int_equal(n, 27);
    assert_int_equal(get_i32_at(g, "sparsefuse.fusion.attn_dropped", 5, &n), 20);
    assert_int_equal(n, 6);
    assert_int_equal(sf_gguf_get_str(g, "sparsefuse.fusion.norm", &s), SF_OK);
    assert_int_equal(s.len, strlen("shared-last"));
    assert_null(sf_gguf_find_tensor(g, "blk.8.attn_q.weight"));
    assert_null(sf_gguf_find_tensor(g, "blk.9.attn_norm.weight"));
    assert_null(sf_gguf_find_tensor(g, "blk.27.ffn_up.weight"));
    assert_non_null(sf_gguf_find_tensor(g, "blk.10.attn_q.weight"));
    assert_int_equal(sf_gguf_find_tensor(g, "blk.8.ffn_down.weight")->ne[0], 4 * 1536);
    assert_int_equal(sf_gguf_n_tensors(g), 272 - 4 * 5 - 2 * 5 - 3 * 4);
    sf_gguf_close(g);

    int nv, nl;
    const char *arch;
    float *l = decode_last(out, &nv, &nl, &arch);
    assert_int_equal(nl, 27);
    assert_string_equal(arch, "deci");
    for (int i = 0; i < nv; i++) assert_true(isfinite(l[i]));
    free(l);

    /* a deci source: fuse again (layers 8 (fused) and 9 (old 12) have no
     * attention already, so need no drop); its sparsefuse.* keys are not copied */
    const char *out2 = sf_test_scratch_path("fused2.gguf");
    sf_fuse_plan *p = make_plan(&b, "", "8-9", "");
    p->n_layer = 27;
    assert_int_equal(sf_fuse_write(out, p, out2, NULL, &r), SF_OK);
    assert_int_equal(r.n_layer_out, 26);
    assert_int_equal(sf_gguf_open(out2, &g), SF_OK);
    assert_int_equal(get_i32_at(g, "deci.feed_forward_length", 8, NULL), 5 * 1536);
    assert_int_equal(get_i32_at(g, "deci.attention.head_count", 9, NULL), 9);
    assert_int_equal(sf_gguf_find_key(g, "sparsefuse.parallel_blocks"), -1);
    sf_gguf_close(g);
    l = decode_last(out2, &nv, &nl, NULL);
    assert_int_equal(nl, 26);
    free(l);
}

/* Static depth pruning: removed blocks leave a deci file of fewer layers
 * whose logits are the source's with those blocks dropped for every token,
 * bit for bit (the same tensors in the same order); what cannot be removed. */
static void test_drop_blocks(void **state) {
    (void)state;
    const char *src = model_or_skip();
    const char *out = sf_test_scratch_path("pruned.gguf");
    plan_buf b;
    sf_fuse_plan *p = make_plan(&b, "", "", "");
    bool removed[N_LAYER] = {0};
    removed[3] = removed[5] = removed[17] = true;
    p->drop_block = removed;
    sf_fuse_report r;
    assert_int_equal(sf_fuse_write(src, p, out, NULL, &r), SF_OK);
    assert_int_equal(r.n_layer_out, N_LAYER - 3);
    sf_gguf *g;
    assert_int_equal(sf_gguf_open(out, &g), SF_OK);
    uint64_t n;
    assert_int_equal(get_i32_at(g, "sparsefuse.fusion.blocks_removed", 2, &n), 17);
    assert_int_equal(n, 3);
    assert_int_equal(get_i32_at(g, "sparsefuse.fusion.source_layer", 3, NULL), 4);
    assert_null(sf_gguf_find_tensor(g, "blk.27.ffn_up.weight"));
    sf_gguf_close(g);
    int nv, nl;
    float *pruned = decode_last(out, &nv, &nl, NULL);
    assert_int_equal(nl, N_LAYER - 3);

    /* the source with the same blocks dropped by a run plan */
    sf_model *m = sf_model_load(src);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 64;
    cp.n_threads = 2;
    sf_context *c = sf_context_new(m, &cp);
    int32_t toks[32];
    const char *text = "The lighthouse keeper climbed the 147 iron steps every evening.";
    const int nt = sf_tokenize(m, text, strlen(text), toks, 32, true, false);
    sf_run_plan rp = {.drop_attn = removed, .drop_ffn = removed};
    assert_int_equal(sf_decode_plan(c, toks, nt, false, &rp), SF_OK);
    assert_memory_equal(sf_get_logits(c, -1), pruned, sizeof(float) * (size_t)nv);
    sf_context_free(c);
    sf_model_free(m);
    free(pruned);

    removed[0] = true;
    expect_msg(sf_fuse_write(src, p, out, NULL, NULL), SF_ERR_ARG, "block 0 cannot be removed");
    removed[0] = false;
    p = make_plan(&b, "8-11", "8-11", "");
    p->drop_block = removed;
    removed[9] = true;
    expect_msg(sf_fuse_write(src, p, out, NULL, NULL), SF_ERR_ARG, "includes block 9, which is removed");
    bool all[N_LAYER];
    for (int l = 0; l < N_LAYER; l++) all[l] = l > 0;
    p = make_plan(&b, "", "", "");
    p->drop_block = all;
    assert_int_equal(sf_fuse_write(src, p, out, NULL, &r), SF_OK); /* block 0 alone is a model */
    assert_int_equal(r.n_layer_out, 1);
    const char *gemma = sf_test_model_path(SF_TEST_GEMMA);
    if (gemma) {
        p->n_layer = 18;
        expect_msg(sf_fuse_write(gemma, p, out, NULL, NULL), SF_ERR_UNSUPPORTED, "sliding-window pattern");
    }
}

/* The deci rewrite of an empty plan runs exactly like the llama source. */
static void test_identity(void **state) {
    (void)state;
    const char *src = model_or_skip();
    const char *out = sf_test_scratch_path("same.gguf");
    plan_buf b;
    assert_int_equal(sf_fuse_write(src, make_plan(&b, "", "", ""), out, NULL, NULL), SF_OK);
    int nv, nl, nv2, nl2;
    const char *arch;
    float *a = decode_last(src, &nv, &nl, NULL);
    float *d = decode_last(out, &nv2, &nl2, &arch);
    assert_string_equal(arch, "deci");
    assert_int_equal(nv, nv2);
    assert_int_equal(nl, nl2);
    assert_memory_equal(a, d, (size_t)nv * sizeof *a);
    free(a);
    free(d);
}

/* shared-last with equal types: the fused tensors are the members' bytes. */
static void test_bytes(void **state) {
    (void)state;
    const char *src = model_or_skip();
    const char *out = sf_test_scratch_path("bytes.gguf");
    plan_buf b;
    assert_int_equal(sf_fuse_write(src, make_plan(&b, "5-8", "5-7", ""), out, NULL, NULL), SF_OK);
    sf_gguf *gs, *go;
    assert_int_equal(sf_gguf_open(src, &gs), SF_OK);
    assert_int_equal(sf_gguf_open(out, &go), SF_OK);
    char name[64];
    for (int q = 0; q < 2; q++) { /* gate, up: members appended */
        snprintf(name, sizeof name, "blk.5.%s.weight", q ? "ffn_up" : "ffn_gate");
        const sf_gguf_tensor *f = sf_gguf_find_tensor(go, name);
        assert_non_null(f);
        size_t off = 0;
        for (int l = 5; l <= 7; l++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, q ? "ffn_up" : "ffn_gate");
            const sf_gguf_tensor *m = sf_gguf_find_tensor(gs, name);
            assert_int_equal(f->type, m->type);
            assert_memory_equal((const uint8_t *)f->data + off, m->data, m->nbytes);
            off += m->nbytes;
        }
        assert_int_equal(off, f->nbytes);
    }
    const sf_gguf_tensor *fd = sf_gguf_find_tensor(go, "blk.5.ffn_down.weight");
    size_t frow = fd->nbytes / 576;
    for (int r = 0; r < 576; r++) { /* down: each row the member rows side by side */
        size_t off = 0;
        for (int l = 5; l <= 7; l++) {
            snprintf(name, sizeof name, "blk.%d.ffn_down.weight", l);
            const sf_gguf_tensor *m = sf_gguf_find_tensor(gs, name);
            size_t mrow = m->nbytes / 576;
            assert_memory_equal((const uint8_t *)fd->data + r * frow + off, (const uint8_t *)m->data + r * mrow, mrow);
            off += mrow;
        }
        assert_int_equal(off, frow);
    }
    const sf_gguf_tensor *fn = sf_gguf_find_tensor(go, "blk.5.ffn_norm.weight");
    const sf_gguf_tensor *ln = sf_gguf_find_tensor(gs, "blk.7.ffn_norm.weight");
    assert_memory_equal(fn->data, ln->data, 576 * sizeof(float));
    /* the layer after the group: old 8 (attention dropped) is new 6 */
    const sf_gguf_tensor *a = sf_gguf_find_tensor(go, "blk.6.ffn_up.weight");
    const sf_gguf_tensor *o = sf_gguf_find_tensor(gs, "blk.8.ffn_up.weight");
    assert_memory_equal(a->data, o->data, o->nbytes);
    assert_null(sf_gguf_find_tensor(go, "blk.6.attn_k.weight"));
    assert_non_null(sf_gguf_find_tensor(go, "blk.7.attn_k.weight"));
    sf_gguf_close(gs);
    sf_gguf_close(go);
}

/* ---- exactness (Theorem 3.1 with per-member gamma folded) ---------------- */

static float *dequant(const sf_gguf_tensor *t) {
    int64_t n = t->ne[0] * t->ne[1];
    float *w = malloc((size_t)n * sizeof *w);
    assert_non_null(w);
    sf_type_ref(t->type)->dequantize(t->data, w, n);
    return w;
}

/* y[E] += FFN(xn) with gate/up {E, F} and down {F, E} in f32. */
static void ffn(const float *wg, const float *wu, const float *wd, int64_t E, int64_t F, const float *xn, double *y) {
    float *h = malloc((size_t)F * sizeof *h);
    for (int64_t f = 0; f < F; f++) {
        double g = 0, u = 0;
        for (int64_t c = 0; c < E; c++) { g += (double)wg[f * E + c] * xn[c]; u += (double)wu[f * E + c] * xn[c]; }
        h[f] = (float)(g / (1.0 + exp(-g)) * u);
    }
    for (int64_t r = 0; r < E; r++) {
        double s = 0;
        for (int64_t f = 0; f < F; f++) s += (double)wd[r * F + f] * h[f];
        y[r] += s;
    }
    free(h);
}

static void rmsnorm(const float *x, int64_t E, const float *gamma, float *out) {
    double ss = 0;
    for (int64_t c = 0; c < E; c++) ss += (double)x[c] * x[c];
    float s = (float)(1.0 / sqrt(ss / E + 1e-5));
    for (int64_t c = 0; c < E; c++) out[c] = x[c] * s * (gamma ? gamma[c] : 1.0f);
}

/* NMSE = mean((fused - sum)^2) / var(sum) over n_x random inputs of group
 * [a..b] written to file out (layer ni). With gamma_last, the reference uses
 * the last member's gamma for every member (shared-last); else each its own. */
static double group_nmse(const char *src, const char *out, int a, int b, int ni, bool shared_last) {
    sf_gguf *gs, *go;
    assert_int_equal(sf_gguf_open(src, &gs), SF_OK);
    assert_int_equal(sf_gguf_open(out, &go), SF_OK);
    const int64_t E = 576;
    char name[64];
    uint64_t seed = 7;
    enum { N_X = 3 };
    float x[N_X][576], xn[576];
    for (int i = 0; i < N_X; i++)
        for (int c = 0; c < E; c++) x[i][c] = sf_test_rand_f32(&seed) * (c % 17 == 0 ? 8.0f : 1.0f);
    double ref[N_X][576] = {{0}}, got[N_X][576] = {{0}};
    snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", b);
    const float *gamma_last = sf_gguf_find_tensor(gs, name)->data;
    for (int l = a; l <= b; l++) {
        const sf_gguf_tensor *t[4];
        static const char *const what[4] = {"ffn_gate", "ffn_up", "ffn_down", "ffn_norm"};
        for (int q = 0; q < 4; q++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, what[q]);
            t[q] = sf_gguf_find_tensor(gs, name);
            assert_non_null(t[q]);
        }
        float *wg = dequant(t[0]), *wu = dequant(t[1]), *wd = dequant(t[2]);
        for (int i = 0; i < N_X; i++) {
            rmsnorm(x[i], E, shared_last ? gamma_last : t[3]->data, xn);
            ffn(wg, wu, wd, E, t[0]->ne[1], xn, ref[i]);
        }
        free(wg); free(wu); free(wd);
    }
    const sf_gguf_tensor *t[4];
    static const char *const what[4] = {"ffn_gate", "ffn_up", "ffn_down", "ffn_norm"};
    for (int q = 0; q < 4; q++) {
        snprintf(name, sizeof name, "blk.%d.%s.weight", ni, what[q]);
        t[q] = sf_gguf_find_tensor(go, name);
        assert_non_null(t[q]);
    }
    assert_int_equal(t[0]->ne[1], (b - a + 1) * 1536);
    float *wg = dequant(t[0]), *wu = dequant(t[1]), *wd = dequant(t[2]);
    for (int i = 0; i < N_X; i++) {
        rmsnorm(x[i], E, t[3]->data, xn);
        ffn(wg, wu, wd, E, t[0]->ne[1], xn, got[i]);
    }
    free(wg); free(wu); free(wd);
    double se = 0, s = 0, s2 = 0;
    for (int i = 0; i < N_X; i++)
        for (int c = 0; c < E; c++) {
            se += (got[i][c] - ref[i][c]) * (got[i][c] - ref[i][c]);
            s += ref[i][c];
            s2 += ref[i][c] * ref[i][c];
        }
    double n = N_X * E, var = s2 / n - (s / n) * (s / n);
    sf_gguf_close(gs);
    sf_gguf_close(go);
    return se / n / var;
}

static void test_exact_folded(void **state) {
    (void)state;
    const char *src = model_or_skip();
    plan_buf b;
    sf_fuse_options o = sf_fuse_default_options();
    sf_fuse_report r;
    /* folded, fused tensors written as F32: exact up to f32 rounding */
    make_plan(&b, "10-14", "11-14", "")->norm = SF_FUSE_NORM_FOLDED;
    o.fused_type = SF_TYPE_F32;
    const char *f32 = sf_test_scratch_path("folded_f32.gguf");
    assert_int_equal(sf_fuse_write(src, &b.p, f32, &o, &r), SF_OK);
    assert_int_equal(r.n_requantized, 3);
    double e = group_nmse(src, f32, 11, 14, 11, false);
    printf("folded, fused F32: NMSE %.3g\n", e);
    assert_true(e <= 1e-6);
    sf_gguf *g;
    assert_int_equal(sf_gguf_open(f32, &g), SF_OK);
    const float *ones = sf_gguf_find_tensor(g, "blk.11.ffn_norm.weight")->data;
    for (int c = 0; c < 576; c++) assert_true(ones[c] == 1.0f);
    assert_int_equal(sf_gguf_find_tensor(g, "blk.11.ffn_down.weight")->type, SF_TYPE_F32);
    sf_gguf_close(g);

    /* shared-last in F32: the fused FFN is the sum with gamma_last for all */
    b.p.norm = SF_FUSE_NORM_SHARED_LAST;
    const char *sl = sf_test_scratch_path("shared_f32.gguf");
    assert_int_equal(sf_fuse_write(src, &b.p, sl, &o, NULL), SF_OK);
    e = group_nmse(src, sl, 11, 14, 11, true);
    printf("shared-last, fused F32 vs sum with gamma_last: NMSE %.3g\n", e);
    assert_true(e <= 1e-6);

    /* folded at the model's own type (Q4_1): gate/up re-quantized, so only
     * approximately the sum; recorded, and bounded loosely */
    b.p.norm = SF_FUSE_NORM_FOLDED;
    const char *q = sf_test_scratch_path("folded_q41.gguf");
    assert_int_equal(sf_fuse_write(src, &b.p, q, NULL, &r), SF_OK);
    assert_int_equal(r.n_requantized, 2); /* gate, up; down is byte-concatenated */
    e = group_nmse(src, q, 11, 14, 11, false);
    printf("folded, re-quantized to Q4_1: NMSE %.3g\n", e);
    assert_true(e <= 0.05);
}

/* ---- members of different types (synthetic tensors) ---------------------- */

typedef struct {
    sf_gguf_tensor t;
    float *f;   /* [ne0 * ne1] the values the tensor holds (dequantized) */
    void *q;
} synth_tensor;

/* A {ne0, ne1} tensor of type with random values. */
static void synth(synth_tensor *s, const char *name, sf_type type, int64_t ne0, int64_t ne1, uint64_t seed) {
    int64_t n = ne0 * ne1;
    float *x = malloc((size_t)n * sizeof *x);
    for (int64_t i = 0; i < n; i++) x[i] = sf_test_rand_f32(&seed);
    size_t nb = sf_type_row_bytes(type, ne0) * (size_t)ne1;
    s->q = malloc(nb);
    sf_type_ref(type)->quantize(x, s->q, n);
    sf_type_ref(type)->dequantize(s->q, x, n);
    s->f = x;
    memset(&s->t, 0, sizeof s->t);
    s->t.name = name;
    s->t.type = type;
    s->t.n_dims = 2;
    s->t.ne[0] = ne0; s->t.ne[1] = ne1; s->t.ne[2] = s->t.ne[3] = 1;
    s->t.nbytes = nb;
    s->t.data = s->q;
}

static void synth_free(synth_tensor *s) { free(s->f); free(s->q); }

static double nmse(const float *got, const float *ref, int64_t n) {
    double se = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) { se += (got[i] - ref[i]) * (double)(got[i] - ref[i]); s2 += (double)ref[i] * ref[i]; }
    return se / s2;
}

/* ffn_down members {n_ff_j, E} of types types[]: the fused type, and each
 * fused row holding the member rows. */
static void check_down(const sf_type *types, const int64_t *nff, int k, sf_type want, double tol) {
    enum { E = 8 };
    synth_tensor m[3];
    const sf_gguf_tensor *mp[3];
    int64_t width = 0;
    for (int j = 0; j < k; j++) {
        synth(&m[j], "blk.x.ffn_down.weight", types[j], nff[j], E, 100 + (uint64_t)j);
        mp[j] = &m[j].t;
        width += nff[j];
    }
    sf_fused_tensor f;
    assert_int_equal(sf_fuse_concat_rows(mp, k, -1, &f), SF_OK);
    if (f.type != want) fail_msg("fused type %s, expected %s", sf_type_name(f.type), sf_type_name(want));
    assert_true(f.requantized);
    assert_true(f.mixed);
    assert_non_null(strstr(f.why, "member types differ"));
    assert_int_equal(f.ne[0], width);
    assert_int_equal(f.ne[1], E);
    float *row = malloc((size_t)width * sizeof *row);
    size_t rb = sf_type_row_bytes(f.type, width);
    for (int r = 0; r < E; r++) {
        sf_type_ref(f.type)->dequantize((const uint8_t *)f.data + r * rb, row, width);
        int64_t off = 0;
        for (int j = 0; j < k; j++) {
            double e = nmse(row + off, m[j].f + r * nff[j], nff[j]);
            if (e > tol) fail_msg("row %d member %d: NMSE %g > %g", r, j, e, tol);
            off += nff[j];
        }
    }
    free(row);
    sf_fused_tensor_free(&f);
    for (int j = 0; j < k; j++) synth_free(&m[j]);
}

static void test_mixed_types(void **state) {
    (void)state;
    /* gate/up: rows re-quantized to the first member's type */
    synth_tensor a, b;
    synth(&a, "blk.1.ffn_gate.weight", SF_TYPE_Q8_0, 64, 32, 1);
    synth(&b, "blk.2.ffn_gate.weight", SF_TYPE_Q4_1, 64, 16, 2);
    const sf_gguf_tensor *mp[2] = {&a.t, &b.t};
    sf_fused_tensor f;
    assert_int_equal(sf_fuse_stack_rows(mp, 2, NULL, -1, &f), SF_OK);
    assert_int_equal(f.type, SF_TYPE_Q8_0);
    assert_true(f.requantized && f.mixed);
    assert_non_null(strstr(f.why, "member types differ (Q8_0, Q4_1)"));
    assert_int_equal(f.ne[1], 48);
    float *all = malloc(64 * 48 * sizeof *all), *ref = malloc(64 * 48 * sizeof *ref);
    sf_type_ref(f.type)->dequantize(f.data, all, 64 * 48);
    memcpy(ref, a.f, 64 * 32 * sizeof *ref);
    memcpy(ref + 64 * 32, b.f, 64 * 16 * sizeof *ref);
    assert_true(nmse(all, ref, 64 * 48) < 1e-4); /* Q8_0 of Q4_1 values */
    sf_fused_tensor_free(&f);
    /* equal types: bytes, not re-quantized; with a fused type asked for: F32 exactly */
    mp[1] = &a.t;
    assert_int_equal(sf_fuse_stack_rows(mp, 2, NULL, -1, &f), SF_OK);
    assert_false(f.requantized);
    assert_memory_equal(f.data, a.q, a.t.nbytes);
    sf_fused_tensor_free(&f);
    assert_int_equal(sf_fuse_stack_rows(mp, 2, NULL, SF_TYPE_F32, &f), SF_OK);
    assert_true(f.requantized && !f.mixed);
    assert_memory_equal(f.data, a.f, 64 * 32 * sizeof(float));
    sf_fused_tensor_free(&f);
    free(all);
    free(ref);
    synth_free(&a);
    synth_free(&b);

    /* down: the first member's type when the fused width fits its blocks,
     * else Q8_0, else F16 */
    check_down((const sf_type[]){SF_TYPE_Q4_1, SF_TYPE_Q8_0}, (const int64_t[]){64, 32}, 2, SF_TYPE_Q4_1, 1e-2);
    check_down((const sf_type[]){SF_TYPE_Q4_K, SF_TYPE_Q8_0}, (const int64_t[]){256, 32}, 2, SF_TYPE_Q8_0, 1e-4);
    check_down((const sf_type[]){SF_TYPE_Q4_K, SF_TYPE_F16, SF_TYPE_Q6_K}, (const int64_t[]){256, 48, 256}, 3,
               SF_TYPE_F16, 1e-6);
    check_down((const sf_type[]){SF_TYPE_Q6_K, SF_TYPE_Q4_K}, (const int64_t[]){256, 512}, 2, SF_TYPE_Q6_K, 1e-3);
}

/* ---- errors on files --------------------------------------------------------- */

static void test_file_errors(void **state) {
    (void)state;
    const char *src = model_or_skip();
    const char *out = sf_test_scratch_path("err.gguf");
    plan_buf b;
    expect_msg(sf_fuse_write(src, make_plan(&b, "3,4,6", "3-6", ""), out, NULL, NULL), SF_ERR_ARG,
               "fuse 3-6: layer 5 keeps its attention");
    sf_fuse_plan *p = make_plan(&b, "", "", "");
    p->n_layer = 24;
    expect_msg(sf_fuse_write(src, p, out, NULL, NULL), SF_ERR_ARG, "the plan is for 24 layers, but the model has 30");
    expect_msg(sf_fuse_write(src, make_plan(&b, "", "", ""), src, NULL, NULL), SF_ERR_ARG, "is the source model");
    sf_fuse_options o = sf_fuse_default_options();
    o.fused_type = SF_TYPE_Q8_1; /* activation-only type */
    int rc = sf_fuse_write(src, make_plan(&b, "3-4", "3-4", ""), out, &o, NULL);
    assert_int_equal(rc, SF_ERR_ARG);
    expect_msg(sf_fuse_write(src, make_plan(&b, "", "", ""), sf_test_scratch_path("no/such/dir.gguf"), NULL, NULL), SF_ERR_IO,
               "No such file or directory");
    expect_msg(sf_fuse_write(sf_test_scratch_path("missing.gguf"), make_plan(&b, "", "", ""), out, NULL, NULL), SF_ERR_IO,
               "missing.gguf");
    int n = 0;
    assert_int_equal(sf_fuse_source_layers(src, &n), SF_OK);
    assert_int_equal(n, 30);
    assert_int_equal(sf_test_scratch_entries(), 0); /* nothing written, nothing left behind */
}

/* ---- gemma3 (post-norms) ------------------------------------------------------ */

enum { G_T = 8 };

/* The source model's pass with attention dropped in `drop`, stopped before
 * layer `end` (end = n_layer: the logits), from x_start at layer `start`. */
static void gemma_slice(sf_context *c, const int32_t *toks, const bool *drop, int start, const float *x_start,
                        int end) {
    sf_run_plan p = {.start_layer = start, .x_start = x_start, .end_layer = end, .drop_attn = drop};
    assert_int_equal(sf_forward(c, toks, G_T, 0, &p), SF_OK);
}

/* Dropped attention and a fusion group run as parallel FFN-only blocks: the
 * file keeps gemma3 and its numbering, is marked sparsefuse-only, and runs
 * exactly as the source model does under the same plan, the group's members
 * each from the group's input, their contributions summed. */
static void test_gemma(void **state) {
    (void)state;
    const char *src = sf_test_model_path(SF_TEST_GEMMA);
    if (!src) skip();
    int n = 0;
    assert_int_equal(sf_fuse_source_layers(src, &n), SF_OK);
    assert_int_equal(n, 18);
    const char *out = sf_test_scratch_path("gemma-fused.gguf");
    plan_buf b;
    sf_fuse_plan *p = make_plan(&b, "7,9,13-15", "13-15", "");
    p->n_layer = 18;
    sf_fuse_report r;
    assert_int_equal(sf_fuse_write(src, p, out, NULL, &r), SF_OK);
    assert_true(r.sparsefuse_only);
    assert_int_equal(r.n_layer_out, 18);
    assert_int_equal(r.n_parallel, 1);
    assert_int_equal(r.n_attn_dropped, 5);
    assert_int_equal(r.n_requantized, 0);

    sf_gguf *g;
    assert_int_equal(sf_gguf_open(out, &g), SF_OK);
    sf_gguf_str s;
    assert_int_equal(sf_gguf_get_str(g, "general.architecture", &s), SF_OK);
    assert_true(s.len == 6 && memcmp(s.ptr, "gemma3", 6) == 0);
    assert_int_equal(sf_gguf_get_str(g, "sparsefuse.only", &s), SF_OK);
    assert_int_equal(get_i32_at(g, "gemma3.attention.head_count", 7, NULL), 0);
    assert_int_equal(get_i32_at(g, "gemma3.attention.head_count", 8, NULL), 4);
    assert_int_equal(get_i32_at(g, "gemma3.attention.head_count_kv", 14, NULL), 0);
    uint64_t np;
    assert_int_equal(get_i32_at(g, "sparsefuse.parallel_blocks", 0, &np), 13);
    assert_int_equal(np, 2);
    assert_int_equal(get_i32_at(g, "sparsefuse.parallel_blocks", 1, NULL), 15);
    assert_null(sf_gguf_find_tensor(g, "blk.7.attn_q.weight"));
    assert_null(sf_gguf_find_tensor(g, "blk.7.attn_q_norm.weight"));
    assert_null(sf_gguf_find_tensor(g, "blk.7.post_attention_norm.weight"));
    assert_non_null(sf_gguf_find_tensor(g, "blk.7.post_ffw_norm.weight"));
    assert_non_null(sf_gguf_find_tensor(g, "blk.8.post_attention_norm.weight"));
    sf_gguf_close(g);

    sf_model *ms = sf_model_load(src), *mf = sf_model_load(out);
    assert_non_null(ms);
    assert_non_null(mf);
    assert_int_equal(mf->layers[14].attn, SF_ATTN_NONE);
    assert_int_equal(mf->layers[14].group_first, 13);
    assert_int_equal(mf->layers[14].group_last, 15);
    const int E = ms->n_embd, V = ms->n_vocab;
    int32_t toks[G_T];
    for (int t = 0; t < G_T; t++) toks[t] = 1000 + 37 * t;
    toks[0] = sf_token_bos(ms);
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = cp.n_batch = G_T;
    cp.n_threads = 2;
    sf_context *cs = sf_context_new(ms, &cp), *cf = sf_context_new(mf, &cp);
    assert_non_null(cs);
    assert_non_null(cf);
    assert_int_equal(sf_forward(cf, toks, G_T, 0, NULL), SF_OK);

    /* the reference: the source under the plan, the group by hand */
    const size_t nx = (size_t)G_T * E;
    float *x0 = malloc(sizeof(float) * nx), *sum = calloc(nx, sizeof(float)), *x = malloc(sizeof(float) * nx);
    gemma_slice(cs, toks, b.drop, 0, NULL, 13);
    memcpy(x0, cs->x, sizeof(float) * nx);
    for (int j = 13; j <= 15; j++) {
        gemma_slice(cs, toks, b.drop, j, x0, j + 1);
        for (size_t e = 0; e < nx; e++) sum[e] += cs->x[e] - x0[e];
    }
    for (size_t e = 0; e < nx; e++) x[e] = x0[e] + sum[e];
    gemma_slice(cs, toks, b.drop, 16, x, 18);
    assert_memory_equal(cf->logits, cs->logits, sizeof(float) * (size_t)G_T * V);

    free(x0);
    free(sum);
    free(x);
    sf_context_free(cs);
    sf_context_free(cf);
    sf_model_free(ms);
    sf_model_free(mf);
}

/* ---- the command -------------------------------------------------------------- */


#define CLI(err, ...) sf_test_run_cli("fuse", (const char *const[]){__VA_ARGS__, NULL}, err, sizeof err)

static void test_cli(void **state) {
    (void)state;
    const char *src = model_or_skip();
    char err[8192];
    const char *out = sf_test_scratch_path("cli.gguf");
    assert_int_equal(CLI(err, "--help"), 0);
    assert_int_equal(CLI(err, "-m", src), 2);
    assert_non_null(strstr(err, "no output file"));
    assert_int_equal(CLI(err, "-m", src, "-o", out, "--fuse", "auto"), 2);
    assert_non_null(strstr(err, "give -a DIR"));
    assert_int_equal(CLI(err, "-m", src, "-o", out, "-a", "/nonexistent", "--fuse", "auto"), 2);
    assert_non_null(strstr(err, "--analysis"));
    assert_int_equal(CLI(err, "-m", src, "-o", out, "--drop-attn", "auto:x"), 2);
    assert_non_null(strstr(err, "auto plans are written"));
    assert_int_equal(CLI(err, "-m", src, "-o", out, "--drop-attn", "3,x"), 2);
    assert_non_null(strstr(err, "'x' is not a layer number"));
    assert_int_equal(CLI(err, "-m", src, "-o", out, "--drop-attn", "25-31"), 2);
    assert_non_null(strstr(err, "layer 31 is out of range"));
    assert_int_equal(CLI(err, "-m", src, "-o", out, "--drop-attn", "3,4,6", "--fuse", "3-6"), 2);
    assert_non_null(strstr(err, "fuse 3-6: layer 5 keeps its attention; drop it with --drop-attn"));
    assert_int_equal(CLI(err, "-m", src, "-o", out, "--norm", "mean"), 2);
    assert_non_null(strstr(err, "unknown norm variant 'mean'"));
    assert_int_equal(CLI(err, "-m", src, "-o", out, "--fused-type", "q9"), 2);
    assert_int_equal(sf_test_scratch_entries(), 0);
    int rc = CLI(err, "-m", src, "-o", out, "--drop-attn", "8-12", "--fuse", "8-11", "--norm", "folded");
    if (rc != 0) fail_msg("exit %d: %s", rc, err);
    assert_non_null(strstr(err, "30 -> 27 layers"));
    assert_non_null(strstr(err, "gamma folded")); /* the re-quantization is logged */
    assert_int_equal(sf_test_scratch_entries(), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_validate),
        sf_test_in_scratch(test_write_and_run),
        sf_test_in_scratch(test_drop_blocks),
        sf_test_in_scratch(test_identity),
        sf_test_in_scratch(test_bytes),
        sf_test_in_scratch(test_exact_folded),
        cmocka_unit_test(test_mixed_types),
        sf_test_in_scratch(test_file_errors),
        sf_test_in_scratch(test_gemma),
        sf_test_in_scratch(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
