/* Log-softmax, quantized log-probability rows and the KL-divergence sums.
 * Formulas follow llama.cpp's tools/perplexity so numbers are comparable. */
#include <math.h>
#include <string.h>
#include <time.h>

#include "eval/eval_internal.h"

double sf_eval_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float max_of(const float *x, int n) {
    float m = x[0];
    for (int i = 1; i < n; i++) if (x[i] > m) m = x[i];
    return m;
}

/* log(sum_i exp(x_i - mx)), exponentials in float, the sum in double. */
static double log_sum_exp(const float *x, int n, float mx) {
    double s = 0.0;
    for (int i = 0; i < n; i++) s += expf(x[i] - mx);
    return log(s);
}

double sf_eval_nll(const float *logits, int n_vocab, int32_t tok) {
    float mx = max_of(logits, n_vocab);
    return (double)mx + log_sum_exp(logits, n_vocab, mx) - (double)logits[tok];
}

double sf_kld_quantize(const float *logits, int n_vocab, int32_t tok, uint16_t *row) {
    float mx = logits[0], mn = logits[0];
    for (int i = 1; i < n_vocab; i++) {
        if (logits[i] > mx) mx = logits[i];
        if (logits[i] < mn) mn = logits[i];
    }
    /* log-probs more than 16 below the top are clamped (they carry no mass) */
    if (mn < mx - 16.0f) mn = mx - 16.0f;
    float lse = (float)log_sum_exp(logits, n_vocab, mx);
    float head[2] = {(mx - mn) / 65535.0f, mn - mx - lse}; /* scale, min log-prob */
    memcpy(row, head, sizeof head);
    uint16_t *q = row + 4;
    if (head[0] > 0.0f) {
        float inv = 1.0f / head[0];
        for (int i = 0; i < n_vocab; i++) {
            long v = logits[i] > mn ? lrintf(inv * (logits[i] - mn)) : 0;
            q[i] = (uint16_t)(v > 65535 ? 65535 : v);
        }
    } else {
        memset(q, 0, (size_t)n_vocab * sizeof *q);
    }
    if (n_vocab & 1) q[n_vocab] = 0; /* padding */
    return (double)(mx + lse - logits[tok]);
}

double sf_kld_accumulate(sf_kld_acc *a, const float *logits, int n_vocab, const uint16_t *row,
                         int32_t tok) {
    int imax = 0;
    for (int i = 1; i < n_vocab; i++) if (logits[i] > logits[imax]) imax = i;
    float mx = logits[imax];
    float lse = (float)log_sum_exp(logits, n_vocab, mx);
    float head[2];
    memcpy(head, row, sizeof head);
    const float scale = head[0], min_lp = head[1];
    const uint16_t *q = row + 4;

    float nll = mx + lse - logits[tok];
    float nll_base = -(scale * q[tok] + min_lp);
    a->sum_nll += nll;
    a->sum_nll2 += (double)nll * nll;
    a->sum_nll_base += nll_base;
    a->sum_nll_base2 += (double)nll_base * nll_base;
    a->sum_nll_nll_base += (double)nll * nll_base;

    /* KL(base || Q) = sum p_base (ln p_base - ln p_Q) */
    float norm = mx + lse; /* ln p_Q(i) = logits[i] - norm */
    double kld = 0.0;
    int imax_base = 0;
    float lp_base_max = 0.0f;
    for (int i = 0; i < n_vocab; i++) {
        float lp_base = scale * q[i] + min_lp;
        if (i == 0 || lp_base > lp_base_max) { lp_base_max = lp_base; imax_base = i; }
        if (lp_base > -16.0f) kld += expf(lp_base) * (lp_base - logits[i] + norm);
    }
    a->sum_kld += kld;
    a->sum_kld2 += kld * kld;
    a->count++;
    if (imax == imax_base) a->n_same_top++;

    double dp = (double)expf(-nll) - (double)expf(-nll_base);
    a->sum_dp += dp;
    a->sum_dp2 += dp * dp;
    a->sum_dp4 += dp * dp * dp * dp;
    return kld;
}

/* Mean and its standard error (0 with 10 or fewer samples, like llama.cpp). */
static void mean_err(double sum, double sum2, int64_t n, double *mean, double *err) {
    *mean = *err = 0.0;
    if (n < 1) return;
    double f = sum / (double)n, v = sum2 / (double)n - f * f;
    *mean = f;
    *err = v > 0.0 && n > 10 ? sqrt(v / (double)(n - 1)) : 0.0;
}

static double covariance(double sa, double sb, double sab, int64_t n) {
    if (n < 10) return 0.0;
    double c = sab / (double)n - (sa / (double)n) * (sb / (double)n);
    return c / (double)(n - 1);
}

void sf_kld_finish(const sf_kld_acc *a, sf_ppl_result *r) {
    double ln_q, ln_q_err, ln_b, ln_b_err;
    mean_err(a->sum_nll, a->sum_nll2, a->count, &ln_q, &ln_q_err);
    mean_err(a->sum_nll_base, a->sum_nll_base2, a->count, &ln_b, &ln_b_err);
    double cov = covariance(a->sum_nll, a->sum_nll_base, a->sum_nll_nll_base, a->count);
    r->has_kld = true;
    r->ppl = exp(ln_q);
    r->ppl_err = r->ppl * ln_q_err;
    r->ppl_base = exp(ln_b);
    r->ppl_base_err = r->ppl_base * ln_b_err;
    r->ppl_cor = ln_q_err > 0 && ln_b_err > 0 ? cov / (ln_q_err * ln_b_err) : 0.0;
    r->ln_ppl_ratio = ln_q - ln_b;
    double v = ln_q_err * ln_q_err + ln_b_err * ln_b_err - 2.0 * cov;
    r->ln_ppl_ratio_err = v > 0 ? sqrt(v) : 0.0;
    r->ppl_ratio = exp(r->ln_ppl_ratio);
    r->ppl_ratio_err = r->ppl_ratio * r->ln_ppl_ratio_err;
    r->ppl_diff = r->ppl - r->ppl_base;
    v = r->ppl_err * r->ppl_err + r->ppl_base_err * r->ppl_base_err -
        2.0 * r->ppl * r->ppl_base * cov;
    r->ppl_diff_err = v > 0 ? sqrt(v) : 0.0;
    mean_err(a->sum_kld, a->sum_kld2, a->count, &r->kld, &r->kld_err);
    double mse, mse_err;
    mean_err(a->sum_dp2, a->sum_dp4, a->count, &mse, &mse_err);
    r->dp_rms = sqrt(mse);
    r->dp_rms_err = r->dp_rms > 0 ? 0.5 / r->dp_rms * mse_err : 0.0;
    double p = a->count > 0 ? (double)a->n_same_top / (double)a->count : 0.0;
    r->same_top = p;
    r->same_top_err = a->count > 1 ? sqrt(p * (1.0 - p) / (double)(a->count - 1)) : 0.0;
}
