/* sparsefuse tokenize: print the token ids (and pieces) of a text. */
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "common.h"

/* Prints one token's piece between single quotes (special tokens as text). */
static void print_piece(const sf_model *m, int32_t id) {
    char small[256];
    char *buf = small;
    int n = sf_token_to_piece(m, id, small, (int)sizeof small, true);
    if (n < 0) {
        buf = malloc((size_t)-n);
        n = buf ? sf_token_to_piece(m, id, buf, -n, true) : 0;
    }
    printf("%d '", id);
    if (n > 0) fwrite(buf, 1, (size_t)n, stdout);
    printf("'\n");
    if (buf != small) free(buf);
}

int cmd_tokenize(int argc, char **argv) {
    app_model_opts mo = {0};
    const char *prompt = NULL, *file = NULL;
    bool no_bos = false, pieces = false, parse_special = false;
    const arg_spec args[] = {
        APP_ARG_MODEL(&mo),
        {"-p", "--prompt", ARG_STR, &prompt, "TEXT", "the text to tokenize", 0, 0, NULL},
        {"-f", "--file", ARG_STR, &file, "FILE", "tokenize FILE's bytes exactly (no newline is stripped)", 0, 0,
         NULL},
        {NULL, "--no-bos", ARG_FLAG, &no_bos, NULL, "do not add the BOS/EOS tokens the model's metadata asks for",
         0, 0, NULL},
        {NULL, "--pieces", ARG_FLAG, &pieces, NULL, "print one \"id 'piece'\" line per token", 0, 0, NULL},
        {NULL, "--parse-special", ARG_FLAG, &parse_special, NULL,
         "turn special-token text (e.g. <|im_start|>) into its token id", 0, 0, NULL},
        APP_ARG_VERBOSE(&mo),
    };
    const cmd_spec cmd = {
        "tokenize", "[options] (-p TEXT | -f FILE)",
        "Prints the token ids of the text on one line, separated by spaces (with\n"
        "--pieces: one \"id 'piece'\" line per token). BOS/EOS are added as the model's\n"
        "metadata says unless --no-bos.",
        args, (int)(sizeof args / sizeof args[0]), NULL, NULL};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (!prompt == !file) return args_error(&cmd, "give exactly one of -p TEXT or -f FILE");
    if (file && !app_readable(&cmd, "file", file)) return APP_EXIT_USAGE;
    const char *path = app_model_path(&cmd, mo.model);
    if (!path) return APP_EXIT_USAGE;

    size_t len = prompt ? strlen(prompt) : 0;
    char *text = file ? app_read_file(&cmd, file, &len, false) : NULL;
    if (file && !text) return APP_EXIT_RUNTIME;
    sf_model *m = app_load_model(&cmd, &mo, path);
    int n = 0;
    int32_t *ids = m ? app_tokenize(&cmd, m, file ? text : prompt, len, !no_bos, parse_special, &n) : NULL;
    if (ids) {
        for (int i = 0; i < n; i++) {
            if (pieces) print_piece(m, ids[i]);
            else printf("%s%d", i ? " " : "", ids[i]);
        }
        if (!pieces) putchar('\n');
        rc = fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_RUNTIME;
    } else {
        rc = APP_EXIT_RUNTIME;
    }
    free(ids);
    free(text);
    sf_model_free(m);
    return rc;
}
