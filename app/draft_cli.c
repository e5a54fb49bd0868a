/* --draft-skip / --draft-k / --draft-calib for run (and bench). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "draft_cli.h"

void app_draft_opts_init(app_draft_opts *o) {
    memset(o, 0, sizeof *o);
    o->k = APP_DRAFT_K_DEFAULT;
}

int app_draft_check(const cmd_spec *cmd, const app_draft_opts *o) {
    if (!o->skip) {
        if (o->calib) return args_error(cmd, "--draft-calib needs --draft-skip auto");
        if (o->k_seen) return args_error(cmd, "--draft-k needs --draft-skip");
        if (o->n_calib_seen) return args_error(cmd, "--draft-calib-tokens needs --draft-skip auto");
        return -1;
    }
    if (!strcmp(o->skip, "auto")) {
        if (!o->calib)
            return args_error(cmd, "--draft-skip auto chooses the layers on calibration text: give --draft-calib FILE "
                                   "(any text of 64+ tokens, e.g. a page of wikitext)");
        if (!app_readable(cmd, "calibration text", o->calib)) return APP_EXIT_USAGE;
    } else if (o->calib || o->n_calib_seen) {
        return args_error(cmd, "--draft-calib and --draft-calib-tokens are only used by --draft-skip auto");
    }
    return -1;
}

typedef struct {
    app_progress bar;
    int n_layer;
} auto_ui;

static void on_candidate(const bool *skip, int n_layer, double acceptance, double speedup, void *user) {
    const auto_ui *ui = user;
    char list[1024];
    sf_draft_format_skip(skip, n_layer, list, sizeof list);
    fprintf(stderr, "%sdraft: skip %-40s acceptance %5.1f %%, modeled speedup %.2fx\n", ui->bar.tty ? "\r" : "",
            list, 100.0 * acceptance,
            speedup);
}

static void on_progress(const char *what, int64_t done, int64_t total, void *user) {
    auto_ui *ui = user;
    /* growth prints a line per set (on_candidate); only the ranking needs a bar */
    if (!strcmp(what, "draft: ranking layers")) app_progress_bar(what, done, total, &ui->bar);
}

int app_draft_layers(const cmd_spec *cmd, const app_draft_opts *o, sf_model *m, int n_threads, bool *skip) {
    if (strcmp(o->skip, "auto")) {
        if (sf_draft_parse_skip(m, o->skip, skip) == SF_OK) return -1;
        fprintf(stderr, "sparsefuse %s: --draft-skip: %s\n", cmd->name, sf_last_error());
        return APP_EXIT_USAGE;
    }
    size_t len = 0;
    char *text = app_read_file(cmd, o->calib, &len, false);
    if (!text) return APP_EXIT_RUNTIME;
    int n = 0;
    int32_t *tok = app_tokenize(cmd, m, text, len, true, false, &n);
    free(text);
    if (!tok) return APP_EXIT_RUNTIME;
    sf_model_info info;
    sf_model_get_info(m, &info);
    auto_ui ui = {.n_layer = info.n_layer};
    app_progress_init(&ui.bar, cmd->name, "layers");
    sf_draft_auto_params ap = {.k = o->k, .n_threads = n_threads, .n_calib = o->n_calib};
    ap.progress = on_progress;
    ap.on_candidate = on_candidate;
    ap.user = &ui;
    sf_draft_auto_result r;
    const double t0 = app_now();
    int rc = sf_draft_auto(m, tok, n, &ap, skip, &r);
    free(tok);
    if (rc != SF_OK) {
        fprintf(stderr, "\nsparsefuse %s: --draft-skip auto: %s\n", cmd->name, sf_last_error());
        return rc == SF_ERR_ARG ? APP_EXIT_USAGE : APP_EXIT_RUNTIME;
    }
    char list[1024];
    sf_draft_format_skip(skip, info.n_layer, list, sizeof list);
    fprintf(stderr, "draft: verify pass cost (x one-token decode):");
    for (int v = 2; v <= o->k + 1; v++) fprintf(stderr, " %d tokens %.2f", v, r.verify_cost[v]);
    fprintf(stderr, "\ndraft: auto chose --draft-skip %s (k %d: acceptance %.1f %%, cost %.2f of a dense pass, "
                    "modeled speedup %.2fx; %d passes, %.1f s)\n",
            list, o->k, 100.0 * r.acceptance, r.cost_fraction, r.speedup, r.passes, app_now() - t0);
    if (r.speedup < 1.0)
        fprintf(stderr, "draft: the modeled speedup is below 1: drafting is expected to be slower than dense "
                        "decoding here\n");
    return -1;
}

void app_draft_report(const sf_model *m, const bool *skip, int k, const sf_draft_stats *st) {
    sf_model_info info;
    sf_model_get_info(m, &info);
    char list[1024];
    sf_draft_format_skip(skip, info.n_layer, list, sizeof list);
    const int64_t passes = st->verify_passes + st->dense_passes;
    fprintf(stderr,
            "draft: k %d, skip %s (%.2f of the weights): acceptance %.1f %% (%lld of %lld drafts), %.2f tokens per "
            "verify pass, %lld draft passes\n",
            k, list, sf_draft_cost_fraction(m, skip), 100.0 * sf_draft_acceptance(st), (long long)st->accepted,
            (long long)st->drafted, passes ? (double)st->n_gen / (double)passes : 0.0, (long long)st->draft_passes);
}

typedef struct {
    const sf_model *m;
    utf8_stream *out;
} printer;

static bool put_token(int32_t tok, void *user) {
    printer *p = user;
    char small[256];
    int len = sf_token_to_piece(p->m, tok, small, (int)sizeof small, false);
    if (len < 0) { /* a very long piece */
        char *big = malloc((size_t)-len);
        if (big) {
            len = sf_token_to_piece(p->m, tok, big, -len, false);
            if (len > 0) utf8_put(p->out, big, (size_t)len);
            free(big);
        }
    } else {
        utf8_put(p->out, small, (size_t)len);
    }
    fflush(p->out->f);
    return true;
}

int app_draft_generate(sf_context *c, const sf_model *m, const bool *skip, int k, int n_max, utf8_stream *out,
                       gen_stats *st, sf_draft_stats *ds) {
    printer pr = {m, out};
    const sf_draft_params dp = {.k = k, .skip = skip};
    int rc = sf_draft_generate(c, &dp, n_max, put_token, &pr, ds);
    memset(st, 0, sizeof *st);
    st->n_gen = ds->n_gen;
    st->n_decoded = ds->n_decoded;
    st->seconds = ds->seconds;
    st->eog = ds->eog;
    st->ctx_full = ds->ctx_full;
    return rc;
}
