/* Parity checks against llama.cpp's reference fixtures (see parity.h). */
#include "parity.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sparsefuse.h"
#include "testutil.h"

int sf_parity_parse_ids(const char *s, int32_t *out, int max) {
    int n = 0;
    while (*s && n < max) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) break;
        out[n++] = (int32_t)v;
        s = end;
    }
    return n;
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static sf_context *new_ctx(sf_model *m, int n_ctx) {
    sf_context_params p = sf_context_default_params();
    p.n_ctx = n_ctx;
    p.n_batch = n_ctx;
    p.n_threads = 2;
    sf_context *c = sf_context_new(m, &p);
    assert_non_null(c);
    return c;
}

/* The fixture KIND-NAME.txt (skips the test if it is missing); free() it. */
static char *read_fixture(const char *kind, const char *name) {
    char fx[256];
    snprintf(fx, sizeof fx, "%s-%s.txt", kind, name);
    char *text = sf_test_read_file(sf_test_fixture(fx), NULL);
    if (!text) {
        printf("fixture %s missing\n", fx);
        skip();
    }
    return text;
}

static sf_model *load(const char *path, sf_model_info *info) {
    sf_model *m = sf_model_load(path);
    if (!m) fail_msg("%s", sf_last_error());
    sf_model_get_info(m, info);
    return m;
}

/* ---- logits ---- */

void sf_parity_logits(const char *model_path, const char *name, const sf_parity_tol *tol) {
    char *text = read_fixture("logits", name);
    sf_model_info info;
    sf_model *m = load(model_path, &info);
    sf_context *c = new_ctx(m, 256);

    int stride = 0, n_vocab = 0, n_pos = 0, same_top = 0, n_prompts = 0;
    int32_t *tokens = calloc(4096, sizeof *tokens);
    int n_tokens = 0, pos = -1;
    double worst_nmse = 0, sum_nmse = 0;
    int n_over = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        if (!strncmp(line, "stride ", 7)) stride = atoi(line + 7);
        else if (!strncmp(line, "n_vocab ", 8)) n_vocab = atoi(line + 8);
        else if (!strncmp(line, "tokens ", 7)) {
            n_tokens = sf_parity_parse_ids(line + 7, tokens, 4096);
            assert_true(n_tokens > 0);
            assert_int_equal(sf_kv_truncate(c, 0), SF_OK);
            assert_int_equal(sf_decode(c, tokens, n_tokens, true), SF_OK);
            n_prompts++;
        } else if (!strncmp(line, "pos ", 4)) {
            int a = -1;
            assert_int_equal(sscanf(line, "pos %d argmax %d", &pos, &a), 2);
            const float *lg = sf_get_logits(c, pos);
            assert_non_null(lg);
            n_pos++;
            if (argmax(lg, info.n_vocab) == a) same_top++;
            else printf("  %s prompt %d pos %d: top %d, llama.cpp %d\n", name, n_prompts, pos, argmax(lg, info.n_vocab), a);
        } else if (!strncmp(line, "strided ", 8)) {
            assert_true(stride > 0 && n_vocab == info.n_vocab);
            const float *lg = sf_get_logits(c, pos);
            /* NMSE = mean((ours - ref)^2) / var(ref) over the stored ids */
            double se = 0, sum = 0, sum2 = 0;
            int n = 0;
            char *s = line + 8;
            for (int id = 0; id < n_vocab; id += stride) {
                char *end;
                double ref = strtod(s, &end);
                assert_true(end != s);
                s = end;
                se += (lg[id] - ref) * (lg[id] - ref);
                sum += ref;
                sum2 += ref * ref;
                n++;
            }
            double var = sum2 / n - (sum / n) * (sum / n);
            double nmse = (se / n) / var;
            if (nmse > worst_nmse) worst_nmse = nmse;
            sum_nmse += nmse;
            if (nmse > tol->nmse) printf("  %s prompt %d pos %d: NMSE %.3g\n", name, n_prompts, pos, nmse);
            n_over += nmse > tol->nmse;
        }
    }
    printf("%s logits: %d prompts, %d positions, same top token %d/%d (%.2f%%), NMSE mean %.3g worst %.3g, "
           "positions with NMSE > %.0e: %d (%s kernels)\n",
           name, n_prompts, n_pos, same_top, n_pos, 100.0 * same_top / n_pos, sum_nmse / n_pos, worst_nmse,
           tol->nmse, n_over, sf_kernels_mode());
    assert_true(n_pos >= 50);
    assert_int_equal(n_over, 0);
    assert_true(same_top >= tol->top * n_pos);
    free(tokens);
    free(text);
    sf_context_free(c);
    sf_model_free(m);
}

/* ---- greedy continuations ---- */

void sf_parity_greedy(const char *model_path, const char *name, const sf_parity_tol *tol) {
    char *text = read_fixture("greedy", name);
    sf_model_info info;
    sf_model *m = load(model_path, &info);
    sf_context *c = new_ctx(m, 256); /* prompt + 64 tokens fit; as small as llama.cpp's (LongRoPE picks by size) */
    int32_t prompt[1024], expect[256];
    int n_cases = 0, n_same = 0, n_prefix = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char *f[4] = {0};
        char *p = line;
        for (int i = 0; i < 4; i++) {
            f[i] = p;
            p = strchr(p, '\t');
            if (!p) break;
            *p++ = '\0';
        }
        assert_non_null(f[2]);
        int np = sf_parity_parse_ids(f[1], prompt, 1024), ne = sf_parity_parse_ids(f[2], expect, 256);
        assert_true(np > 0 && ne > 0);
        assert_int_equal(sf_kv_truncate(c, 0), SF_OK);
        assert_int_equal(sf_decode(c, prompt, np, false), SF_OK);
        int same = 1, first_diff = -1;
        for (int i = 0; i < ne; i++) {
            int32_t tok = argmax(sf_get_logits(c, -1), info.n_vocab);
            if (tok != expect[i]) { same = 0; first_diff = i; break; }
            if (i + 1 < ne) assert_int_equal(sf_decode(c, &tok, 1, false), SF_OK);
        }
        n_cases++;
        n_same += same;
        n_prefix += same || first_diff >= 4;
        if (!same) printf("  %s greedy case %d differs from llama.cpp at generated token %d\n", name, n_cases, first_diff);
    }
    printf("%s greedy: %d/%d continuations identical to llama.cpp, %d/%d agree on the first 4 tokens\n", name,
           n_same, n_cases, n_prefix, n_cases);
    assert_true(n_cases >= 5);
    assert_true(n_same >= n_cases - tol->greedy_misses);
    free(text);
    sf_context_free(c);
    sf_model_free(m);
}

/* ---- perplexity on the first chunks ---- */

void sf_parity_perplexity(const char *model_path, const char *name, int n_chunks, const sf_parity_tol *tol) {
    char *text = read_fixture("perplexity", name);
    double ref_running = 0;
    int n_ctx = 512;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        int i;
        double ppl;
        if (!strncmp(line, "n_ctx ", 6)) n_ctx = atoi(line + 6);
        /* fixture chunks are numbered from 0: chunk n_chunks-1 holds the running PPL after n_chunks */
        if (sscanf(line, "chunk %d %lf", &i, &ppl) == 2 && i == n_chunks - 1) ref_running = ppl;
    }
    free(text);
    assert_true(ref_running > 0);

    size_t len;
    /* the first 32 KiB of WikiText-2's test split, carried with the fixtures
     * (enough for the chunks checked here; CC BY-SA 3.0, Merity et al.) */
    char *wiki = sf_test_read_file(sf_test_fixture("wikitext-2-test-head.txt"), &len);
    assert_non_null(wiki);
    sf_model_info info;
    sf_model *m = load(model_path, &info);
    /* tokenize only the start of the file: enough tokens for n_chunks */
    size_t take = len < (size_t)n_chunks * n_ctx * 8 ? len : (size_t)n_chunks * n_ctx * 8;
    assert_true(take == (size_t)n_chunks * n_ctx * 8); /* the carried text is long enough */
    int32_t *toks = malloc(sizeof(int32_t) * (take + 16));
    int nt = sf_tokenize(m, wiki, take, toks, (int)take + 16, true, false);
    assert_true(nt >= n_chunks * n_ctx);
    sf_context *c = new_ctx(m, n_ctx);
    double nll = 0;
    int count = 0;
    for (int ch = 0; ch < n_chunks; ch++) {
        int32_t *chunk = toks + (size_t)ch * n_ctx;
        int32_t first = chunk[0];
        if (sf_model_add_bos(m)) chunk[0] = sf_token_bos(m);
        assert_int_equal(sf_kv_truncate(c, 0), SF_OK);
        assert_int_equal(sf_decode(c, chunk, n_ctx, true), SF_OK);
        chunk[0] = first;
        for (int i = n_ctx / 2; i < n_ctx - 1; i++) {
            const float *lg = sf_get_logits(c, i);
            double mx = lg[0];
            for (int v = 1; v < info.n_vocab; v++) mx = lg[v] > mx ? lg[v] : mx;
            double se = 0;
            for (int v = 0; v < info.n_vocab; v++) se += exp(lg[v] - mx);
            nll += -(lg[chunk[i + 1]] - mx - log(se));
            count++;
        }
    }
    double ppl = exp(nll / count);
    printf("%s perplexity over %d chunks of %d: %.4f, llama.cpp %.4f (%.3f%%)\n", name, n_chunks, n_ctx, ppl,
           ref_running, 100.0 * (ppl / ref_running - 1));
    assert_true(fabs(ppl / ref_running - 1) <= tol->ppl_rel);
    free(toks);
    free(wiki);
    sf_context_free(c);
    sf_model_free(m);
}

