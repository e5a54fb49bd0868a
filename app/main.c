/* sparsefuse: one binary, one subcommand per job. */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "common.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} g_cmds[] = {
    {"run", cmd_run, "complete a prompt, streaming the text to stdout"},
    {"chat", cmd_chat, "chat with the model's chat template (stdin lines or -p)"},
    {"perplexity", cmd_perplexity, "perplexity and KL divergence over a text file"},
    {"hellaswag", cmd_hellaswag, "HellaSwag acc_norm over a task file"},
    {"bench", cmd_bench, "prompt and generation speed (llama-bench pp/tg)"},
    {"tokenize", cmd_tokenize, "print the token ids of a text"},
    {"inspect", cmd_inspect, "validate a GGUF file and summarize it"},
    {"analyze", cmd_analyze, "FFN Fusion: block-dependency matrix and importances, as a report"},
    {"compare", cmd_compare, "a base model against variants: PPL, KLD, same top, HellaSwag, speed"},
    {"synth", cmd_synth, "write a random-weight model in a real model's shape (speed tests)"},
    {"fuse", cmd_fuse, "FFN Fusion: drop attention, fuse FFN runs, write a deci GGUF"},
    {"sparsify", cmd_sparsify, "contextual sparsity: calibrate FFN thresholds, write a side-car for --sparse"},
    {"route", cmd_route, "depth routing: fit Mixture-of-Depths routers (or a static block removal), write a side-car for --routes"},
};
enum { N_CMDS = sizeof g_cmds / sizeof g_cmds[0] };

static void usage(FILE *out) {
    fprintf(out,
            "usage: sparsefuse COMMAND [options]\n\n"
            "Runs Llama-family GGUF models on the CPU.\n\ncommands:\n");
    for (int i = 0; i < N_CMDS; i++) fprintf(out, "  %-12s %s\n", g_cmds[i].name, g_cmds[i].summary);
    fprintf(out,
            "\nRun 'sparsefuse COMMAND --help' for a command's options. Without -m, the model is\n"
            "%s (relative to the current directory), else $SF_MODEL.\n"
            "Kernels: SF_KERNELS=fast (default; bit-identical to llama.cpp on x86 except Q4_0)\n"
            "or exact (ggml's order through the slow scalar references, for parity work);\n"
            "SF_ISA=scalar|avx2|avx512 forces an instruction set.\n"
            "Exit status: 0 success, 1 failure while running, 2 bad arguments.\n"
            "\n  -h, --help     show this help\n  --version      print the version\n",
            APP_DEFAULT_MODEL);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return APP_EXIT_USAGE;
    }
    const char *c = argv[1];
    if (strcmp(c, "-h") == 0 || strcmp(c, "--help") == 0 || strcmp(c, "help") == 0) {
        usage(stdout);
        return APP_EXIT_OK;
    }
    if (strcmp(c, "--version") == 0 || strcmp(c, "version") == 0) {
        printf("sparsefuse %s\n", APP_VERSION);
        return APP_EXIT_OK;
    }
    for (int i = 0; i < N_CMDS; i++)
        if (strcmp(c, g_cmds[i].name) == 0) return g_cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "sparsefuse: unknown command '%s' (see 'sparsefuse --help')\n", c);
    return APP_EXIT_USAGE;
}
