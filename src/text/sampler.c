/* Token sampler: llama.cpp's default chain
 *   repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw
 * (temperature <= 0: penalties, then argmax). Top-p and min-p look at the
 * distribution at temperature 1, as in llama.cpp. Every buffer is allocated
 * in sf_sampler_new; sampling a token allocates nothing. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"

typedef struct {
    int32_t id;
    float logit;
} sf_cand;

struct sf_sampler {
    sf_sampler_params p;
    int n_vocab;
    sf_cand *cand;     /* [n_vocab] working candidate list */
    float *prob;       /* [n_vocab] probabilities of cand[] */
    int32_t *history;  /* [repeat_last_n] ring buffer of accepted tokens */
    int n_hist;        /* valid entries in history (<= repeat_last_n) */
    int hist_pos;      /* next write position in history */
    uint32_t *stamp;   /* [n_vocab] penalty already applied this call if == stamp_now */
    uint32_t stamp_now;
    uint64_t rng[4];   /* xoshiro256** state */
};

sf_sampler_params sf_sampler_default_params(void) {
    sf_sampler_params p = {
        .temperature = 0.8f,
        .top_k = 40,
        .top_p = 0.95f,
        .min_p = 0.05f,
        .repeat_penalty = 1.0f,
        .repeat_last_n = 64,
        .seed = 0,
    };
    return p;
}

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(uint64_t s[4]) {
    uint64_t r = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

/* ------------------------------------------------------------ lifetime */

sf_sampler *sf_sampler_new(const sf_sampler_params *p, int n_vocab) {
    sf_sampler_params d = sf_sampler_default_params();
    if (!p) p = &d;
    if (n_vocab <= 0) {
        sf_fail(SF_ERR_ARG, "sampler: n_vocab must be positive (got %d)", n_vocab);
        return NULL;
    }
    if (isnan(p->temperature) || isnan(p->top_p) || isnan(p->min_p)) {
        sf_fail(SF_ERR_ARG, "sampler: temperature, top_p and min_p must be numbers");
        return NULL;
    }
    if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty)) {
        sf_fail(SF_ERR_ARG, "sampler: repeat_penalty must be a positive number (got %g)",
                (double)p->repeat_penalty);
        return NULL;
    }
    if (p->repeat_last_n < 0) {
        sf_fail(SF_ERR_ARG, "sampler: repeat_last_n must be >= 0 (got %d)", p->repeat_last_n);
        return NULL;
    }
    if (p->top_p <= 0.0f) {
        sf_fail(SF_ERR_ARG, "sampler: top_p must be > 0 (got %g; use 1 to turn it off)",
                (double)p->top_p);
        return NULL;
    }
    sf_sampler *s = calloc(1, sizeof *s);
    if (!s) goto nomem;
    s->p = *p;
    s->n_vocab = n_vocab;
    s->cand = malloc((size_t)n_vocab * sizeof *s->cand);
    s->prob = malloc((size_t)n_vocab * sizeof *s->prob);
    s->stamp = calloc((size_t)n_vocab, sizeof *s->stamp);
    s->history = malloc((size_t)(p->repeat_last_n > 0 ? p->repeat_last_n : 1) * sizeof *s->history);
    if (!s->cand || !s->prob || !s->stamp || !s->history) {
        sf_sampler_free(s);
        goto nomem;
    }
    uint64_t seed = p->seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&seed);
    return s;
nomem:
    sf_fail(SF_ERR_NOMEM, "sampler: out of memory for %d vocab entries", n_vocab);
    return NULL;
}

void sf_sampler_free(sf_sampler *s) {
    if (!s) return;
    free(s->cand);
    free(s->prob);
    free(s->stamp);
    free(s->history);
    free(s);
}

void sf_sampler_accept(sf_sampler *s, int32_t token) {
    if (!s || s->p.repeat_last_n <= 0 || token < 0 || token >= s->n_vocab) return;
    s->history[s->hist_pos] = token;
    s->hist_pos = (s->hist_pos + 1) % s->p.repeat_last_n;
    if (s->n_hist < s->p.repeat_last_n) s->n_hist++;
}

/* ------------------------------------------------------------ the chain */

/* Orders by logit descending, then id ascending, so ties are deterministic. */
static int cand_before(const sf_cand *a, const sf_cand *b) {
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void cand_swap(sf_cand *a, sf_cand *b) { sf_cand t = *a; *a = *b; *b = t; }

/* In-place heapsort into "best first" order; unlike qsort it never
 * allocates, keeping sampling allocation-free. The heap keeps the worst
 * candidate on top, so repeatedly moving it to the back sorts best-first. */
static void sift_down(sf_cand *c, int i, int n) {
    for (;;) {
        int w = i, l = 2 * i + 1, r = l + 1;
        if (l < n && cand_before(&c[w], &c[l])) w = l;
        if (r < n && cand_before(&c[w], &c[r])) w = r;
        if (w == i) return;
        cand_swap(&c[i], &c[w]);
        i = w;
    }
}

static void sort_best_first(sf_cand *c, int n) {
    for (int i = n / 2 - 1; i >= 0; i--) sift_down(c, i, n);
    for (int end = n - 1; end > 0; end--) {
        cand_swap(&c[0], &c[end]);
        sift_down(c, 0, end);
    }
}

/* Moves the k best candidates of c[0..n) to the front (any order). O(n). */
static void select_top_k(sf_cand *c, int n, int k) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        /* median-of-three pivot, moved to hi */
        int mid = lo + (hi - lo) / 2;
        if (cand_before(&c[mid], &c[lo])) cand_swap(&c[mid], &c[lo]);
        if (cand_before(&c[hi], &c[lo])) cand_swap(&c[hi], &c[lo]);
        if (cand_before(&c[mid], &c[hi])) cand_swap(&c[mid], &c[hi]);
        sf_cand pivot = c[hi];
        int store = lo;
        for (int i = lo; i < hi; i++)
            if (cand_before(&c[i], &pivot)) cand_swap(&c[i], &c[store++]);
        cand_swap(&c[store], &c[hi]);
        if (store == k - 1 || store == k) return;
        if (store < k) lo = store + 1;
        else hi = store - 1;
    }
}

static void apply_penalty(sf_sampler *s) {
    float pen = s->p.repeat_penalty;
    if (pen == 1.0f || s->n_hist == 0) return;
    if (++s->stamp_now == 0) { /* wrapped: reset stamps */
        memset(s->stamp, 0, (size_t)s->n_vocab * sizeof *s->stamp);
        s->stamp_now = 1;
    }
    /* cand[i].id == i at this point, so index by token id; each distinct
     * token is penalized once, however often it occurs (llama.cpp). */
    for (int i = 0; i < s->n_hist; i++) {
        int32_t t = s->history[i];
        if (s->stamp[t] == s->stamp_now) continue;
        s->stamp[t] = s->stamp_now;
        float *l = &s->cand[t].logit;
        *l = *l <= 0.0f ? *l * pen : *l / pen;
    }
}

/* prob[i] = softmax(cand[i].logit / temp) over the first n (uniform if every
 * logit is -inf). */
static void softmax(sf_sampler *s, int n, float temp) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) if (s->cand[i].logit > mx) mx = s->cand[i].logit;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        float e = s->cand[i].logit == -INFINITY ? 0.0f : expf((s->cand[i].logit - mx) / temp);
        s->prob[i] = e;
        sum += e;
    }
    for (int i = 0; i < n; i++) s->prob[i] = sum > 0.0 ? (float)(s->prob[i] / sum) : 1.0f / (float)n;
}

int32_t sf_sampler_sample(sf_sampler *s, const float *logits) {
    if (!s || !logits) {
        sf_fail(SF_ERR_ARG, "sampler: NULL %s", s ? "logits" : "sampler");
        return -1;
    }
    int n = s->n_vocab;
    for (int i = 0; i < n; i++) {
        s->cand[i].id = i;
        s->cand[i].logit = isnan(logits[i]) ? -INFINITY : logits[i];
    }
    apply_penalty(s);

    if (!(s->p.temperature > 0.0f)) { /* greedy */
        int best = 0;
        for (int i = 1; i < n; i++)
            if (cand_before(&s->cand[i], &s->cand[best])) best = i;
        int32_t tok = s->cand[best].id;
        sf_sampler_accept(s, tok);
        return tok;
    }

    if (s->p.top_k > 0 && s->p.top_k < n) {
        select_top_k(s->cand, n, s->p.top_k);
        n = s->p.top_k;
    }
    sort_best_first(s->cand, n);

    if (s->p.top_p < 1.0f) {
        softmax(s, n, 1.0f);
        double cum = 0.0;
        for (int i = 0; i < n; i++) {
            cum += s->prob[i];
            if (cum >= s->p.top_p) { n = i + 1; break; }
        }
    }
    if (s->p.min_p > 0.0f && n > 1) {
        /* p_i >= min_p * p_max  <=>  logit_i >= logit_max + ln(min_p) */
        float cut = s->cand[0].logit + logf(s->p.min_p);
        int keep = 1;
        while (keep < n && s->cand[keep].logit >= cut) keep++;
        n = keep;
    }

    softmax(s, n, s->p.temperature);
    double r = rng_uniform(s->rng), cum = 0.0;
    int pick = n - 1; /* rounding: fall back to the last kept token */
    for (int i = 0; i < n; i++) {
        cum += s->prob[i];
        if (r < cum) { pick = i; break; }
    }
    int32_t tok = s->cand[pick].id;
    sf_sampler_accept(s, tok);
    return tok;
}
