/* Bytes of weight matrices one decode step reads: every 2-D weight of every
 * layer of the plan and the output matrix (token_embd when tied). The
 * embedding lookup reads one row per token and is not counted; neither are
 * 1-D tensors (norms, rope factors), which are small and stay in cache. */
#include "model/model.h"
#include "sparsefuse_eval.h"

static uint64_t matrix_bytes(const sf_gguf_tensor *t) {
    return t && t->n_dims >= 2 ? (uint64_t)t->nbytes : 0;
}

uint64_t sf_model_decode_weight_bytes(const sf_model *m) {
    if (!m) return 0;
    uint64_t sum = 0;
    for (int il = 0; il < m->n_layer; il++) {
        const sf_layer *l = &m->layers[il];
        if (l->attn != SF_ATTN_NONE)
            sum += matrix_bytes(l->wq) + matrix_bytes(l->wk) + matrix_bytes(l->wv) + matrix_bytes(l->wo);
        if (l->ffn != SF_FFN_NONE)
            sum += matrix_bytes(l->ffn_gate) + matrix_bytes(l->ffn_up) + matrix_bytes(l->ffn_down);
    }
    return sum + matrix_bytes(m->output);
}
