/* sparsefuse synth: write a GGUF in the shape of a real model with random
 * weights, for speed measurements (speed does not depend on the values).
 * The generator is library code (sf_synth_write in sparsefuse_eval.h). */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "commands.h"
#include "common.h"
#include "generate.h"
#include "sparsefuse_eval.h"

typedef struct {
    bool tty;      /* stderr is a terminal: one line updated in place */
    int last_pct;  /* last percentage printed, -1 = none */
    const char *path;
} synth_ui;

static void on_progress(const char *what, int64_t done, int64_t total, void *user) {
    synth_ui *ui = user;
    const double mib = 1048576.0;
    if (strcmp(what, "generating") == 0) {
        int pct = total > 0 ? (int)(100 * done / total) : 100;
        if (pct < 100 && pct < ui->last_pct + 10) return; /* every 10% */
        if (pct == ui->last_pct) return;
        ui->last_pct = pct;
        fprintf(stderr, "%ssparsefuse synth: generating weights %3d%% (%.1f of %.1f MiB)%s", ui->tty ? "\r" : "", pct,
                (double)done / mib, (double)total / mib, ui->tty && pct < 100 ? "" : "\n");
    } else if (strcmp(what, "writing") == 0 && done == 0) {
        fprintf(stderr, "sparsefuse synth: writing %.1f MiB to %s ...\n", (double)total / mib, ui->path);
    }
}

int cmd_synth(int argc, char **argv) {
    sf_synth_params p = sf_synth_default_params();
    const char *output = NULL;
    const arg_spec args[] = {
        {"-o", "--output", ARG_STR, &output, "FILE", "the GGUF file to write (required; replaced if it exists)", 0, 0,
         NULL},
        {NULL, "--type", ARG_STR, &p.type, "T", "weight type: f32 f16 bf16 q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k, or the mixes q4_k_m q5_k_m (default: q4_0)", 0, 0, NULL},
        {NULL, "--shape", ARG_STR, &p.shape, "S", "llama-3.2-1b or tiny (default: llama-3.2-1b)", 0, 0, NULL},
        {NULL, "--seed", ARG_U64, &p.seed, "N", "random seed; the same seed gives the same file (default: 0)", 0, 0,
         NULL},
    };
    const cmd_spec cmd = {
        "synth", "-o FILE [options]",
        "Writes a synthetic 'llama' GGUF with random weights in the shape of a real model,\n"
        "to measure speed on sizes no small real file has (speed does not depend on the\n"
        "values; the text it generates is meaningless).\n"
        "\n"
        "  llama-3.2-1b  n_embd 2048, 16 layers, 32 heads, 8 KV heads, head dim 64,\n"
        "                n_ff 8192, vocab 128256, context_length 131072, rope base\n"
        "                500000 with Llama 3 rope_freqs, rms eps 1e-5, tied embeddings;\n"
        "                1.24 B parameters: ~0.7 GB in q4_0, ~1.3 GB in q8_0\n"
        "  tiny          n_embd 256, 2 layers, 4 heads, 2 KV heads, n_ff 768, vocab 1000\n"
        "\n"
        "Every 2-D weight (token_embd too; there is no output.weight) is in the chosen\n"
        "type with random quants and scales giving each weight a standard deviation of\n"
        "about 1/sqrt(fan_in); norms are F32 ones. q4_0 and q8_0 blocks are drawn\n"
        "directly; other types quantize random floats with the scalar reference\n"
        "quantizers (slower: a minute or more for the 1B shape). q4_k_m / q5_k_m mix\n"
        "types as llama.cpp's llama-quantize does for this shape: Q4_K / Q5_K, with\n"
        "token_embd (the tied output) and attn_v / ffn_down of the layers llama.cpp's\n"
        "use_more_bits picks in Q6_K. The vocabulary is SentencePiece style\n"
        "(<unk> <s> </s>, the byte tokens <0x00>..<0xFF>, then made-up words), which both\n"
        "sparsefuse and llama.cpp load. The weights are held in memory until the file is\n"
        "written atomically (temporary file, fsync, rename). Progress goes to stderr.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!output || !*output) return args_error(&cmd, "no output file (-o FILE)");
    bool type_known = false;
    for (const char *const *s = sf_synth_type_names(); *s; s++) type_known |= strcasecmp(*s, p.type) == 0;
    if (!type_known) return args_error(&cmd, "--type: unsupported weight type '%s' (see --help)", p.type);
    bool known = false;
    for (const char *const *s = sf_synth_shape_names(); *s; s++) known |= strcmp(*s, p.shape) == 0;
    if (!known) return args_error(&cmd, "--shape: unknown shape '%s' (llama-3.2-1b or tiny)", p.shape);

    synth_ui ui = {.tty = isatty(STDERR_FILENO) == 1, .last_pct = -1, .path = output};
    p.progress = on_progress;
    p.user = &ui;
    double t0 = app_now();
    sf_synth_result r;
    if (sf_synth_write(output, &p, &r) != SF_OK) {
        if (ui.tty && ui.last_pct >= 0 && ui.last_pct < 100) fputc('\n', stderr);
        fprintf(stderr, "sparsefuse synth: %s\n", sf_last_error());
        return APP_EXIT_RUNTIME;
    }
    fprintf(stderr, "sparsefuse synth: wrote %s: %s %s, %d tensors, %.2f M parameters, %.1f MiB of weights in %.1f s\n",
            output, p.shape, p.type, r.n_tensors, (double)r.n_params / 1e6, (double)r.data_bytes / 1048576.0,
            app_now() - t0);
    return APP_EXIT_OK;
}
