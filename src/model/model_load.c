/* Loading a model: architecture, hyperparameters, the layer plan and tensor
 * views, each checked (presence, shape, type) with errors that name them. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/log.h"
#include "model/model.h"
#include "tensor/types.h"

static int key_u32(const sf_model *m, const sf_gguf *g, const char *suffix, uint32_t *out, bool required) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    int rc = sf_gguf_get_u32(g, key, out);
    if (rc == SF_ERR_RANGE && !required) return SF_OK;
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "missing hyperparameter '%s'", key);
    return rc;
}

static int key_f32(const sf_model *m, const sf_gguf *g, const char *suffix, float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", m->arch_name, suffix);
    int rc = sf_gguf_get_f32(g, key, out);
    return rc == SF_ERR_RANGE ? SF_OK : rc; /* optional: keep the default */
}

/* Finds a tensor and checks its shape ({ne0, ne1}; ne1 = 0 for 1-D, ne1 < 0
 * for 2-D with any ne1) and that
 * sparsefuse can compute with its type. NULL + error if absent and required. */
static int get_tensor(const sf_model *m, const char *name, int64_t ne0, int64_t ne1, bool required,
                      bool matrix, const sf_gguf_tensor **out) {
    const sf_gguf_tensor *t = sf_gguf_find_tensor(m->gguf, name);
    *out = t;
    if (!t) return required ? sf_fail(SF_ERR_FORMAT, "missing tensor '%s'", name) : SF_OK;
    int want_dims = ne1 != 0 ? 2 : 1;
    bool ok = t->ne[0] == ne0 && (want_dims == 1 ? (t->n_dims == 1 || (t->ne[1] == 1 && t->ne[2] == 1 && t->ne[3] == 1))
                                                 : ((ne1 < 0 || t->ne[1] == ne1) && t->ne[2] == 1 && t->ne[3] == 1));
    if (!ok) {
        if (want_dims == 1)
            return sf_fail(SF_ERR_FORMAT, "tensor '%s' has shape {%lld, %lld}, expected {%lld}", name,
                           (long long)t->ne[0], (long long)t->ne[1], (long long)ne0);
        return sf_fail(SF_ERR_FORMAT, "tensor '%s' has shape {%lld, %lld, %lld}, expected {%lld, %lld}", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)t->ne[2], (long long)ne0,
                       (long long)ne1);
    }
    const sf_type_traits *tr = sf_type_ref(t->type);
    if (matrix) {
        if (!tr || !tr->vec_dot)
            return sf_fail(SF_ERR_UNSUPPORTED, "tensor '%s' has type %s, which sparsefuse cannot multiply with",
                           name, sf_type_name(t->type));
    } else if (t->type != SF_TYPE_F32) {
        return sf_fail(SF_ERR_UNSUPPORTED, "tensor '%s' has type %s; norm weights must be F32", name,
                       sf_type_name(t->type));
    }
    return SF_OK;
}

static int layer_tensor(const sf_model *m, int il, const char *what, int64_t ne0, int64_t ne1, bool required,
                        bool matrix, const sf_gguf_tensor **out) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.weight", il, what);
    return get_tensor(m, name, ne0, ne1, required, matrix, out);
}

static int load_arch(sf_model *m) {
    sf_gguf_str s;
    int rc = sf_gguf_get_str(m->gguf, "general.architecture", &s);
    if (rc == SF_ERR_RANGE) return sf_fail(SF_ERR_FORMAT, "missing key 'general.architecture'");
    if (rc) return rc;
    if (s.len >= sizeof m->arch_name) return sf_fail(SF_ERR_UNSUPPORTED, "unsupported architecture (name too long)");
    memcpy(m->arch_name, s.ptr, s.len);
    m->arch_name[s.len] = '\0';
    m->arch = sf_arch_find(m->arch_name);
    if (!m->arch)
        return sf_fail(SF_ERR_UNSUPPORTED, "unsupported architecture '%s' (supported: %s)", m->arch_name,
                       sf_arch_names());
    return SF_OK;
}

static char *dup_str(const sf_gguf *g, const char *key) {
    sf_gguf_str s;
    if (sf_gguf_get_str(g, key, &s) != SF_OK) return NULL;
    char *r = malloc(s.len + 1);
    if (!r) return NULL;
    memcpy(r, s.ptr, s.len);
    r[s.len] = '\0';
    return r;
}

/* Whether layer il uses the sliding window: every layer (period 1), or all
 * but the last of each period (gemma3: 5 local, then 1 global). */
static bool window_layer(const sf_arch_desc *A, int il) {
    return A->swa_period == 1 || (A->swa_period > 1 && il % A->swa_period != A->swa_period - 1);
}

static int load_hparams(sf_model *m) {
    const sf_gguf *g = m->gguf;
    uint32_t u;
    int rc;
    if ((rc = key_u32(m, g, "embedding_length", &u, true))) return rc;
    m->n_embd = (int)u;
    if ((rc = key_u32(m, g, "block_count", &u, true))) return rc;
    m->n_layer = (int)u;
    if (m->n_embd <= 0 || m->n_embd > (1 << 20)) return sf_fail(SF_ERR_FORMAT, "embedding_length %d is out of range", m->n_embd);
    if (m->n_layer <= 0 || m->n_layer > 1024) return sf_fail(SF_ERR_FORMAT, "block_count %d is out of range", m->n_layer);
    u = 2048;
    if ((rc = key_u32(m, g, "context_length", &u, false))) return rc;
    m->n_ctx_train = (int)(u > 0 && u < (1u << 24) ? u : 2048);

    m->layers = calloc((size_t)m->n_layer, sizeof *m->layers);
    uint32_t *arr = calloc((size_t)m->n_layer * 3, sizeof *arr);
    if (!m->layers || !arr) { free(arr); return sf_fail(SF_ERR_NOMEM, "out of memory"); }
    uint32_t *n_head = arr, *n_head_kv = arr + m->n_layer, *n_ff = arr + 2 * m->n_layer;
    char key[128];
    snprintf(key, sizeof key, "%s.attention.head_count", m->arch_name);
    rc = sf_gguf_get_u32_per_layer(g, key, m->n_layer, n_head);
    if (rc == SF_ERR_RANGE) rc = sf_fail(SF_ERR_FORMAT, "missing hyperparameter '%s'", key);
    if (!rc) {
        snprintf(key, sizeof key, "%s.attention.head_count_kv", m->arch_name);
        rc = sf_gguf_get_u32_per_layer(g, key, m->n_layer, n_head_kv);
        if (rc == SF_ERR_RANGE) { memcpy(n_head_kv, n_head, sizeof(uint32_t) * m->n_layer); rc = SF_OK; }
    }
    if (!rc) {
        snprintf(key, sizeof key, "%s.feed_forward_length", m->arch_name);
        rc = sf_gguf_get_u32_per_layer(g, key, m->n_layer, n_ff);
        if (rc == SF_ERR_RANGE) rc = sf_fail(SF_ERR_FORMAT, "missing hyperparameter '%s'", key);
    }
    /* gemma3 files written by `sparsefuse fuse` may drop attention (fuse.h) */
    sf_gguf_str only = {0};
    const bool sparsefuse_only = sf_gguf_get_str(g, "sparsefuse.only", &only) == SF_OK;
    int first_heads = 0;
    for (int il = 0; !rc && il < m->n_layer; il++) {
        if (n_head[il] > 4096 || n_head_kv[il] > n_head[il] || n_ff[il] > (1u << 22)) {
            rc = sf_fail(SF_ERR_FORMAT, "layer %d: head_count %u, head_count_kv %u, feed_forward_length %u are inconsistent",
                         il, n_head[il], n_head_kv[il], n_ff[il]);
            break;
        }
        if (n_head_kv[il] > 0 && n_head[il] % n_head_kv[il] != 0) {
            rc = sf_fail(SF_ERR_FORMAT, "layer %d: head_count %u is not a multiple of head_count_kv %u", il,
                         n_head[il], n_head_kv[il]);
            break;
        }
        if (!m->arch->zero_blocks && (n_head[il] == 0 || n_head_kv[il] == 0 || n_ff[il] == 0) &&
            !(sparsefuse_only && n_head[il] == 0 && n_head_kv[il] == 0 && n_ff[il])) {
            rc = sf_fail(SF_ERR_FORMAT,
                         "layer %d: zero head or FFN count is only valid in deci models (and attention-free layers "
                         "in gemma3 files `sparsefuse fuse` wrote)", il);
            break;
        }
        m->layers[il].n_head = (int)n_head[il];
        m->layers[il].n_head_kv = (int)n_head_kv[il];
        m->layers[il].n_ff = (int)n_ff[il];
        m->layers[il].attn = !n_head[il] ? SF_ATTN_NONE : n_head_kv[il] ? SF_ATTN_DENSE : SF_ATTN_LINEAR;
        m->layers[il].ffn = n_ff[il] ? SF_FFN_DENSE : SF_FFN_NONE;
        if (!first_heads && n_head[il]) first_heads = (int)n_head[il];
        if ((int)n_head[il] > m->n_head_max) m->n_head_max = (int)n_head[il];
        if ((int)n_head_kv[il] > m->n_head_kv_max) m->n_head_kv_max = (int)n_head_kv[il];
        if ((int)n_ff[il] > m->n_ff_max) m->n_ff_max = (int)n_ff[il];
    }
    free(arr);
    if (rc) return rc;
    if (first_heads == 0) first_heads = 1;

    uint32_t hd = (uint32_t)(m->n_embd / first_heads);
    if ((rc = key_u32(m, g, "attention.key_length", &hd, false))) return rc;
    m->head_dim_k = (int)hd;
    if ((rc = key_u32(m, g, "attention.value_length", &hd, false))) return rc;
    m->head_dim_v = (int)hd;
    uint32_t n_rot = (uint32_t)m->head_dim_k;
    if ((rc = key_u32(m, g, "rope.dimension_count", &n_rot, false))) return rc;
    m->n_rot = (int)n_rot;
    if (m->head_dim_k <= 0 || m->head_dim_k > 1024 || m->head_dim_v <= 0 || m->head_dim_v > 1024 ||
        m->n_rot <= 0 || m->n_rot > m->head_dim_k || m->n_rot % 2)
        return sf_fail(SF_ERR_FORMAT, "head dimensions (k %d, v %d, rope %d) are invalid", m->head_dim_k,
                       m->head_dim_v, m->n_rot);

    m->norm_eps = 1e-5f;
    if ((rc = key_f32(m, g, "attention.layer_norm_rms_epsilon", &m->norm_eps))) return rc;
    m->rope_base = 10000.0f;
    if ((rc = key_f32(m, g, "rope.freq_base", &m->rope_base))) return rc;
    m->rope_freq_scale = 1.0f;
    {
        sf_gguf_str st = {0};
        snprintf(key, sizeof key, "%s.rope.scaling.type", m->arch_name);
        rc = sf_gguf_get_str(g, key, &st);
        if (rc && rc != SF_ERR_RANGE) return rc;
        float factor = 0.0f;
        if ((rc = key_f32(m, g, "rope.scaling.factor", &factor))) return rc;
        if (st.len && !(st.len == 4 && !memcmp(st.ptr, "none", 4))) {
            if (st.len == 6 && !memcmp(st.ptr, "linear", 6)) {
                if (factor > 0) m->rope_freq_scale = 1.0f / factor;
            } else {
                return sf_fail(SF_ERR_UNSUPPORTED, "rope scaling type '%.*s' is not supported (linear and llama3 rope_freqs are)",
                               (int)st.len, st.ptr);
            }
        } else if (factor > 0 && factor != 1.0f && !st.len) {
            m->rope_freq_scale = 1.0f / factor; /* older files: factor without a type means linear */
        }
    }
    const sf_arch_desc *A = m->arch;
    m->rope_attn_factor = 1.0f;
    if ((rc = key_f32(m, g, "rope.scaling.attn_factor", &m->rope_attn_factor))) return rc;
    if (A->longrope) {
        uint32_t orig = (uint32_t)m->n_ctx_train;
        if ((rc = key_u32(m, g, "rope.scaling.original_context_length", &orig, false))) return rc;
        m->n_ctx_orig = (int)orig;
    }
    m->embd_scale = A->embd_scale ? sqrtf((float)m->n_embd) : 1.0f;
    m->attn_scale = 1.0f / sqrtf((float)m->head_dim_k);
    m->attn_q_prescale = A->q_prescale;
    m->rope_type = A->rope;
    m->ffn_act = A->act;
    if (A->swa_period > 0) {
        uint32_t swa = 0;
        if ((rc = key_u32(m, g, "attention.sliding_window", &swa, false))) return rc;
        m->n_swa = (int)swa;
    }
    if ((rc = key_f32(m, g, "final_logit_softcapping", &m->final_logit_softcap))) return rc;
    if (A->softcap_without_swa && m->n_swa > 0) m->final_logit_softcap = 0.0f; /* as llama.cpp */
    int slot = 0;
    for (int il = 0; il < m->n_layer; il++) {
        sf_layer *L = &m->layers[il];
        L->rope_base = m->rope_base;
        /* window layers: all, or all but the last of each period (gemma3: 5 local, 1 global) */
        if (m->n_swa > 0 && window_layer(A, il)) {
            L->swa = true;
            if (A->swa_rope_base > 0) L->rope_base = A->swa_rope_base;
        }
        L->kv_slot = L->attn == SF_ATTN_DENSE ? slot++ : -1;
    }
    m->n_kv_layers = slot;
    return SF_OK;
}

static int layer_bias(const sf_model *m, int il, const char *what, int64_t n, const sf_gguf_tensor **out) {
    char name[96];
    snprintf(name, sizeof name, "blk.%d.%s.bias", il, what);
    return get_tensor(m, name, n, 0, true, false, out);
}

/* Rows [r0, r0 + n) of matrix t, as a tensor of their own in *part (a row
 * range of a row-major matrix is contiguous, also in quantized blocks). */
static const sf_gguf_tensor *row_part(sf_gguf_tensor *part, const sf_gguf_tensor *t, int64_t r0, int64_t n) {
    const size_t rb = sf_type_row_bytes(t->type, t->ne[0]);
    *part = *t;
    part->ne[1] = n;
    part->nbytes = rb * (size_t)n;
    part->offset = t->offset + rb * (size_t)r0;
    part->data = (const uint8_t *)t->data + rb * (size_t)r0;
    return part;
}

/* RoPE frequency divisors: llama 3's rope_freqs.weight, or phi3's LongRoPE
 * pair (the short factors for contexts up to n_ctx_orig, the long ones beyond). */
static int rope_factors(sf_model *m) {
    const int64_t n = m->n_rot / 2;
    const char *names[3] = {"rope_freqs.weight", "rope_factors_short.weight", "rope_factors_long.weight"};
    const float **dst[3] = {&m->rope_freq_factors, &m->rope_freq_factors, &m->rope_factors_long};
    for (int i = 0; i < 3; i++) {
        if (i == 0 ? !m->arch->rope_freqs : !m->arch->longrope) continue;
        const sf_gguf_tensor *t = sf_gguf_find_tensor(m->gguf, names[i]);
        if (!t) continue;
        if (t->type != SF_TYPE_F32 || t->ne[0] != n || t->ne[1] != 1)
            return sf_fail(SF_ERR_FORMAT, "tensor '%s' must be F32 {%lld}", names[i], (long long)n);
        *dst[i] = t->data;
    }
    return SF_OK;
}

static int load_tensors(sf_model *m) {
    int rc;
    const int64_t E = m->n_embd;
    if ((rc = get_tensor(m, "token_embd.weight", E, -1, true, true, &m->token_embd))) return rc;
    m->n_vocab = (int)m->token_embd->ne[1];
    if (m->token_embd->n_dims != 2 || m->n_vocab <= 0)
        return sf_fail(SF_ERR_FORMAT, "tensor 'token_embd.weight' must be 2-D {n_embd, n_vocab}");
    if (!sf_type_ref(m->token_embd->type)->dequantize)
        return sf_fail(SF_ERR_UNSUPPORTED, "token_embd type %s cannot be dequantized", sf_type_name(m->token_embd->type));
    if ((rc = get_tensor(m, "output_norm.weight", E, 0, true, false, &m->output_norm))) return rc;
    if ((rc = get_tensor(m, "output.weight", E, m->n_vocab, false, true, &m->output))) return rc;
    if (!m->output) m->output = m->token_embd; /* tied embeddings */
    if ((rc = rope_factors(m))) return rc;
    const sf_arch_desc *A = m->arch;
    const int64_t hk = m->head_dim_k, hv = m->head_dim_v;
    for (int il = 0; il < m->n_layer; il++) {
        sf_layer *L = &m->layers[il];
        const int64_t nq = L->n_head * hk, nk = L->n_head_kv * hk, nv = L->n_head_kv * hv;
        if (L->attn != SF_ATTN_NONE) {
            if ((rc = layer_tensor(m, il, "attn_norm", E, 0, true, false, &L->attn_norm))) return rc;
            if (L->attn == SF_ATTN_DENSE && A->fused_qkv) {
                const sf_gguf_tensor *qkv;
                if ((rc = layer_tensor(m, il, "attn_qkv", E, nq + nk + nv, true, true, &qkv))) return rc;
                L->wq = row_part(&L->part[0], qkv, 0, nq);
                L->wk = row_part(&L->part[1], qkv, nq, nk);
                L->wv = row_part(&L->part[2], qkv, nq + nk, nv);
            } else if (L->attn == SF_ATTN_DENSE) {
                if ((rc = layer_tensor(m, il, "attn_q", E, nq, true, true, &L->wq))) return rc;
                if ((rc = layer_tensor(m, il, "attn_k", E, nk, true, true, &L->wk))) return rc;
                if ((rc = layer_tensor(m, il, "attn_v", E, nv, true, true, &L->wv))) return rc;
            }
            if (L->attn == SF_ATTN_DENSE) {
                if ((rc = layer_tensor(m, il, "attn_output", L->n_head * hv, E, true, true, &L->wo))) return rc;
            } else { /* deci "linear attention": h = x + Wo·norm(x) */
                if ((rc = layer_tensor(m, il, "attn_output", E, E, true, true, &L->wo))) return rc;
            }
            if (L->attn == SF_ATTN_DENSE && A->qkv_bias) {
                if ((rc = layer_bias(m, il, "attn_q", nq, &L->bq))) return rc;
                if ((rc = layer_bias(m, il, "attn_k", nk, &L->bk))) return rc;
                if ((rc = layer_bias(m, il, "attn_v", nv, &L->bv))) return rc;
            }
            if (L->attn == SF_ATTN_DENSE && A->qk_norm) {
                if ((rc = layer_tensor(m, il, "attn_q_norm", hk, 0, true, false, &L->q_norm))) return rc;
                if ((rc = layer_tensor(m, il, "attn_k_norm", hk, 0, true, false, &L->k_norm))) return rc;
            }
            if (A->post_norms &&
                (rc = layer_tensor(m, il, "post_attention_norm", E, 0, true, false, &L->attn_post_norm)))
                return rc;
        }
        if (L->ffn == SF_FFN_DENSE) {
            if ((rc = layer_tensor(m, il, "ffn_norm", E, 0, true, false, &L->ffn_norm))) return rc;
            if (A->fused_gate_up) {
                const sf_gguf_tensor *gu;
                if ((rc = layer_tensor(m, il, "ffn_up", E, 2 * (int64_t)L->n_ff, true, true, &gu))) return rc;
                L->ffn_gate = row_part(&L->part[3], gu, 0, L->n_ff);
                L->ffn_up = row_part(&L->part[4], gu, L->n_ff, L->n_ff);
            } else {
                if ((rc = layer_tensor(m, il, "ffn_gate", E, L->n_ff, true, true, &L->ffn_gate))) return rc;
                if ((rc = layer_tensor(m, il, "ffn_up", E, L->n_ff, true, true, &L->ffn_up))) return rc;
            }
            if ((rc = layer_tensor(m, il, "ffn_down", L->n_ff, E, true, true, &L->ffn_down))) return rc;
            if (A->post_norms && (rc = layer_tensor(m, il, "post_ffw_norm", E, 0, true, false, &L->ffn_post_norm)))
                return rc;
        }
        if (A->zero_blocks && L->attn != SF_ATTN_NONE && L->ffn == SF_FFN_NONE)
            return sf_fail(SF_ERR_FORMAT, "layer %d has attention but no FFN, which llama.cpp skips entirely; not supported", il);
    }
    return SF_OK;
}

/* sparsefuse.parallel_blocks: [first0, last0, first1, last1, ...] groups of
 * consecutive blocks that run on the same input, their contributions summed
 * (FFN Fusion's block parallelization; written by `sparsefuse fuse`). */
static int load_parallel_groups(sf_model *m) {
    for (int il = 0; il < m->n_layer; il++) m->layers[il].group_first = m->layers[il].group_last = il;
    sf_gguf_vtype et;
    uint64_t n = 0;
    const void *data = NULL;
    int rc = sf_gguf_get_arr_data(m->gguf, "sparsefuse.parallel_blocks", &et, &n, &data);
    if (rc == SF_ERR_RANGE) return SF_OK; /* absent */
    if (rc) return rc;
    if (n % 2) return sf_fail(SF_ERR_FORMAT, "sparsefuse.parallel_blocks has %llu entries, not pairs", (unsigned long long)n);
    int prev_last = -1;
    for (uint64_t k = 0; k < n; k += 2) {
        const int64_t a = sf_gguf_arr_get_i64(et, data, k), b = sf_gguf_arr_get_i64(et, data, k + 1);
        if (a <= prev_last || b <= a || b >= m->n_layer)
            return sf_fail(SF_ERR_FORMAT,
                           "sparsefuse.parallel_blocks: group %lld-%lld is not an ascending, disjoint range of at "
                           "least 2 of the %d layers",
                           (long long)a, (long long)b, m->n_layer);
        for (int64_t il = a; il <= b; il++) {
            m->layers[il].group_first = (int)a;
            m->layers[il].group_last = (int)b;
        }
        prev_last = (int)b;
    }
    return SF_OK;
}

static void count_params(sf_model *m) {
    int64_t by_type[SF_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < sf_gguf_n_tensors(m->gguf); i++) {
        const sf_gguf_tensor *t = sf_gguf_tensor_at(m->gguf, i);
        int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
        m->n_params += n;
        m->size_bytes += t->nbytes;
        if (t->n_dims >= 2 && (int)t->type < SF_TYPE_COUNT) by_type[t->type] += n;
    }
    int best = SF_TYPE_F32;
    for (int t = 0; t < SF_TYPE_COUNT; t++)
        if (by_type[t] > by_type[best]) best = t;
    m->ftype_name = sf_type_name(best);
}

sf_model *sf_model_load(const char *path) {
    if (!path) { sf_fail(SF_ERR_ARG, "no model path given"); return NULL; }
    sf_model *m = calloc(1, sizeof *m);
    if (!m) { sf_fail(SF_ERR_NOMEM, "out of memory"); return NULL; }
    int rc = sf_gguf_open(path, &m->gguf);
    if (!rc) rc = load_arch(m);
    if (!rc) rc = load_hparams(m);
    if (!rc) rc = load_tensors(m);
    if (!rc) rc = load_parallel_groups(m);
    if (!rc) {
        rc = sf_vocab_load(m->gguf, &m->vocab);
        if (!rc && sf_vocab_n_tokens(m->vocab) < m->n_vocab)
            rc = sf_fail(SF_ERR_FORMAT, "vocabulary has %d tokens but token_embd has %d rows",
                         sf_vocab_n_tokens(m->vocab), m->n_vocab);
    }
    if (rc) {
        sf_fail_context(rc, "cannot load model '%s'", path);
        sf_model_free(m);
        return NULL;
    }
    m->name = dup_str(m->gguf, "general.name");
    m->chat_template = dup_str(m->gguf, "tokenizer.chat_template");
    count_params(m);
    sf_log_info("loaded %s: %s, %d layers, n_embd %d, vocab %d", path, m->arch_name, m->n_layer, m->n_embd, m->n_vocab);
    return m;
}

void sf_model_free(sf_model *m) {
    if (!m) return;
    sf_vocab_free(m->vocab);
    sf_gguf_close(m->gguf);
    free(m->layers);
    free(m->name);
    free(m->chat_template);
    free(m);
}

const char *sf_model_chat_template(const sf_model *m) { return m->chat_template; }

void sf_model_get_info(const sf_model *m, sf_model_info *out) {
    memset(out, 0, sizeof *out);
    out->arch = m->arch_name;
    out->name = m->name ? m->name : "";
    out->n_vocab = m->n_vocab;
    out->n_ctx_train = m->n_ctx_train;
    out->n_embd = m->n_embd;
    out->n_layer = m->n_layer;
    out->n_head = m->n_head_max;
    out->n_head_kv = m->n_head_kv_max;
    out->n_ff = m->n_ff_max;
    out->head_dim = m->head_dim_k;
    out->n_params = m->n_params;
    out->size_bytes = m->size_bytes;
    out->ftype = m->ftype_name;
}
