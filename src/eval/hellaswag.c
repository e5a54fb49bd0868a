/* HellaSwag scoring as llama.cpp's hellaswag_score (tools/perplexity):
 * the same task selection, tokenization and per-ending mean log-prob, with
 * the shared prefix evaluated once and its KV cache reused by the endings. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "eval/eval_internal.h"

sf_hellaswag_params sf_hellaswag_default_params(void) {
    sf_hellaswag_params p = {0};
    return p;
}

/* ------------------------------------------------ llama.cpp's task order */

/* std::mt19937 (32-bit Mersenne Twister). */
typedef struct {
    uint32_t s[624];
    int i;
} mt19937;

static void mt_seed(mt19937 *m, uint32_t seed) {
    m->s[0] = seed;
    for (int i = 1; i < 624; i++)
        m->s[i] = 1812433253u * (m->s[i - 1] ^ (m->s[i - 1] >> 30)) + (uint32_t)i;
    m->i = 624;
}

static uint32_t mt_next(mt19937 *m) {
    if (m->i >= 624) {
        for (int k = 0; k < 624; k++) {
            uint32_t y = (m->s[k] & 0x80000000u) | (m->s[(k + 1) % 624] & 0x7fffffffu);
            m->s[k] = m->s[(k + 397) % 624] ^ (y >> 1) ^ ((y & 1u) ? 0x9908b0dfu : 0u);
        }
        m->i = 0;
    }
    uint32_t y = m->s[m->i++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    return y ^ (y >> 18);
}

/* libstdc++'s uniform_int_distribution<size_t>(0, n-1) driven by a 32-bit
 * engine (GCC >= 11: Lemire's nearly divisionless method). */
static uint32_t uniform_below(mt19937 *m, uint32_t n) {
    uint64_t prod = (uint64_t)mt_next(m) * n;
    uint32_t low = (uint32_t)prod;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            prod = (uint64_t)mt_next(m) * n;
            low = (uint32_t)prod;
        }
    }
    return (uint32_t)(prod >> 32);
}

/* ------------------------------------------------------------ the tasks */

typedef struct {
    const char *p;
    size_t n;
} line_ref;

/* Splits text into lines as std::getline does (a final '\n' ends the last
 * line; it does not start an empty one). *out is malloc'd. */
static int split_lines(const char *text, size_t len, line_ref **out, int64_t *n_out) {
    int64_t n = 0;
    for (size_t i = 0; i < len; i++) n += text[i] == '\n';
    if (len > 0 && text[len - 1] != '\n') n++;
    line_ref *l = malloc((size_t)(n > 0 ? n : 1) * sizeof *l);
    if (!l) return sf_fail(SF_ERR_NOMEM, "hellaswag: out of memory");
    int64_t k = 0;
    size_t start = 0;
    for (size_t i = 0; i <= len && k < n; i++) {
        if (i == len || text[i] == '\n') {
            l[k].p = text + start;
            l[k].n = i - start;
            k++;
            start = i + 1;
        }
    }
    *out = l;
    *n_out = n;
    return SF_OK;
}

typedef struct {
    sf_model *m;
    sf_context *c;
    int n_vocab, n_batch;
    char *str;          /* [str_cap] context + " " + ending */
    size_t str_cap;
    int32_t *seq[4];    /* [seq_cap] tokens of each ending's full text */
    int seq_len[4];
    int seq_cap;
} hs_job;

static int tokenize_into(hs_job *j, int s, const line_ref *ctx, const line_ref *end) {
    size_t n = ctx->n + 1 + end->n;
    if (n + 1 > j->str_cap) {
        char *b = realloc(j->str, n + 1);
        if (!b) return sf_fail(SF_ERR_NOMEM, "hellaswag: out of memory");
        j->str = b;
        j->str_cap = n + 1;
    }
    memcpy(j->str, ctx->p, ctx->n);
    j->str[ctx->n] = ' ';
    memcpy(j->str + ctx->n + 1, end->p, end->n);
    j->str[n] = '\0';
    for (;;) {
        int r = sf_tokenize(j->m, j->str, n, j->seq[s], j->seq_cap, true, false);
        if (r >= 0) {
            j->seq_len[s] = r;
            return SF_OK;
        }
        int need = -r;
        for (int k = 0; k < 4; k++) {
            int32_t *b = realloc(j->seq[k], (size_t)need * sizeof *b);
            if (!b) return sf_fail(SF_ERR_NOMEM, "hellaswag: out of memory");
            j->seq[k] = b;
        }
        j->seq_cap = need;
    }
}

/* Mean log-prob of each ending after the shared prefix (llama.cpp's way). */
static int score_task(hs_job *j, int task, double score[4]) {
    int cp = 0, min_len = j->seq_len[0], max_len = j->seq_len[0];
    for (int s = 1; s < 4; s++) {
        if (j->seq_len[s] < min_len) min_len = j->seq_len[s];
        if (j->seq_len[s] > max_len) max_len = j->seq_len[s];
    }
    while (cp < min_len - 1 && j->seq[0][cp] == j->seq[1][cp] && j->seq[0][cp] == j->seq[2][cp] &&
           j->seq[0][cp] == j->seq[3][cp])
        cp++;
    if (cp == 0)
        return sf_fail(SF_ERR_FORMAT, "hellaswag task %d: the endings share no leading token", task);
    if (max_len > sf_context_n_ctx(j->c))
        return sf_fail(SF_ERR_RANGE, "hellaswag task %d needs %d tokens, the context holds %d", task,
                       max_len, sf_context_n_ctx(j->c));

    int rc = sf_kv_truncate(j->c, 0);
    if (rc == SF_OK) rc = sf_decode(j->c, j->seq[0], cp, false);
    if (rc != SF_OK) return sf_fail_context(rc, "hellaswag task %d", task);
    const float *lg = sf_get_logits(j->c, -1);
    if (!lg) return sf_fail(SF_ERR_RANGE, "hellaswag: no logits after the prefix");
    int cnt[4];
    for (int s = 0; s < 4; s++) { /* first ending token, predicted by the prefix */
        score[s] = -sf_eval_nll(lg, j->n_vocab, j->seq[s][cp]);
        cnt[s] = 1;
    }
    for (int s = 0; s < 4; s++) {
        int n_rest = j->seq_len[s] - 1 - cp; /* the last token needs no evaluation */
        if (n_rest <= 0) continue;
        rc = sf_kv_truncate(j->c, cp);
        for (int off = 0; rc == SF_OK && off < n_rest; off += j->n_batch) {
            int n = n_rest - off < j->n_batch ? n_rest - off : j->n_batch;
            rc = sf_decode(j->c, j->seq[s] + cp + off, n, true);
            for (int k = 0; rc == SF_OK && k < n; k++) {
                lg = sf_get_logits(j->c, k);
                if (!lg) return sf_fail(SF_ERR_RANGE, "hellaswag: missing logits");
                score[s] -= sf_eval_nll(lg, j->n_vocab, j->seq[s][cp + off + k + 1]);
                cnt[s]++;
            }
        }
        if (rc != SF_OK) return sf_fail_context(rc, "hellaswag task %d", task);
    }
    for (int s = 0; s < 4; s++) score[s] /= cnt[s];
    return SF_OK;
}

/* Running accuracy with the 95% Wilson score interval (llama.cpp). */
static void hs_update(sf_hellaswag_result *r, int done, int correct, int total) {
    double n = done, f = (double)correct / n, za = 1.95996398454;
    double z = za * za / n;
    double cnf = z * sqrt(n * (4.0 * f * (1 - f) + z)) / (za + za);
    r->task = done;
    r->n_tasks = total;
    r->n_correct = correct;
    r->acc_norm = f;
    r->ci_lo = (f + z * 0.5 - cnf) / (1.0 + z);
    r->ci_hi = (f + z * 0.5 + cnf) / (1.0 + z);
}

static int parse_label(const line_ref *l, int task) {
    /* std::stoi: leading spaces, then a number */
    size_t i = 0;
    while (i < l->n && (l->p[i] == ' ' || l->p[i] == '\t')) i++;
    if (i < l->n && l->p[i] >= '0' && l->p[i] <= '3' && (i + 1 == l->n || l->p[i + 1] < '0' ||
                                                         l->p[i + 1] > '9'))
        return l->p[i] - '0';
    return sf_fail(SF_ERR_FORMAT, "hellaswag task %d: gold label line '%.*s' is not 0-3", task,
                   (int)(l->n < 40 ? l->n : 40), l->p);
}

int sf_eval_hellaswag(sf_model *m, sf_context *c, const char *text, size_t len,
                      const sf_hellaswag_params *params, sf_hellaswag_result *out) {
    sf_hellaswag_params defaults = sf_hellaswag_default_params();
    const sf_hellaswag_params *p = params ? params : &defaults;
    if (!m || !c || !out || (!text && len > 0))
        return sf_fail(SF_ERR_ARG, "hellaswag: NULL model, context, text or result");
    memset(out, 0, sizeof *out);
    line_ref *lines = NULL;
    int64_t n_lines = 0;
    int rc = split_lines(text, len, &lines, &n_lines);
    if (rc != SF_OK) return rc;
    if (n_lines == 0 || n_lines % 6 != 0) {
        free(lines);
        return sf_fail(SF_ERR_FORMAT, "hellaswag: %lld lines, expected a non-zero multiple of 6",
                       (long long)n_lines);
    }
    int64_t n_avail = n_lines / 6;
    if (n_avail > INT32_MAX) n_avail = INT32_MAX;
    int n_tasks = p->n_tasks > 0 && p->n_tasks < n_avail ? p->n_tasks : (int)n_avail;

    /* pool[i]: index of a not-yet-chosen task; picks are removed in place */
    int32_t *pool = malloc((size_t)n_avail * sizeof *pool);
    sf_model_info info;
    sf_model_get_info(m, &info);
    hs_job j = {.m = m, .c = c, .n_vocab = info.n_vocab, .n_batch = p->n_batch > 0 ? p->n_batch : 512};
    j.seq_cap = 256;
    for (int s = 0; s < 4; s++) j.seq[s] = malloc((size_t)j.seq_cap * sizeof *j.seq[s]);
    if (!pool || !j.seq[0] || !j.seq[1] || !j.seq[2] || !j.seq[3])
        rc = sf_fail(SF_ERR_NOMEM, "hellaswag: out of memory");
    for (int64_t i = 0; pool && i < n_avail; i++) pool[i] = (int32_t)i;
    mt19937 rng;
    mt_seed(&rng, 1);
    int64_t n_pool = n_avail;
    int correct = 0;
    for (int t = 0; rc == SF_OK && t < n_tasks; t++) {
        int64_t pick = p->in_order ? 0 : uniform_below(&rng, (uint32_t)n_pool);
        int32_t idx = pool[pick];
        memmove(pool + pick, pool + pick + 1, (size_t)(n_pool - pick - 1) * sizeof *pool);
        n_pool--;
        const line_ref *l = lines + (size_t)idx * 6;
        int gold = parse_label(&l[1], idx + 1);
        if (gold < 0) { rc = gold; break; }
        for (int s = 0; rc == SF_OK && s < 4; s++) rc = tokenize_into(&j, s, &l[0], &l[2 + s]);
        double score[4];
        if (rc == SF_OK) rc = score_task(&j, idx + 1, score);
        if (rc != SF_OK) break;
        int best = 0;
        for (int s = 1; s < 4; s++) if (score[s] > score[best]) best = s;
        correct += best == gold;
        hs_update(out, t + 1, correct, n_tasks);
        if (p->on_task) p->on_task(out, p->user);
    }
    free(pool);
    free(lines);
    free(j.str);
    for (int s = 0; s < 4; s++) free(j.seq[s]);
    return rc;
}
