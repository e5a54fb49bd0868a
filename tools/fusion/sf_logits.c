/* sf_logits: sparsefuse's next-token logits for given token ids, for
 * check_llamacpp.py (which builds this file against the project's static
 * library; it is not part of the engine or its CLI).
 *
 *   sf_logits MODEL.gguf IDS.txt OUT.f32 [THREADS]
 *
 * IDS.txt holds one prompt per line as space-separated token ids. Each
 * prompt is decoded from an empty cache in one batch; the logits of every
 * position of every prompt are appended to OUT.f32 as raw little-endian f32,
 * [sum of prompt lengths][n_vocab]. n_vocab and n_layer go to stdout. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sparsefuse.h"

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: sf_logits MODEL.gguf IDS.txt OUT.f32 [THREADS]\n");
        return 2;
    }
    sf_model *m = sf_model_load(argv[1]);
    if (!m) { fprintf(stderr, "sf_logits: %s\n", sf_last_error()); return 1; }
    sf_model_info info;
    sf_model_get_info(m, &info);
    FILE *in = fopen(argv[2], "r"), *out = fopen(argv[3], "wb");
    if (!in || !out) { fprintf(stderr, "sf_logits: cannot open %s or %s\n", argv[2], argv[3]); return 1; }
    sf_context_params cp = sf_context_default_params();
    cp.n_ctx = 512;
    cp.n_threads = argc > 4 ? atoi(argv[4]) : 2;
    sf_context *c = sf_context_new(m, &cp);
    if (!c) { fprintf(stderr, "sf_logits: %s\n", sf_last_error()); return 1; }
    char line[65536];
    int32_t ids[512];
    int n_prompts = 0;
    while (fgets(line, sizeof line, in)) {
        int n = 0;
        for (char *tok = strtok(line, " \t\r\n"); tok && n < 512; tok = strtok(NULL, " \t\r\n")) ids[n++] = atoi(tok);
        if (!n) continue;
        sf_kv_truncate(c, 0);
        if (sf_decode(c, ids, n, true) != SF_OK) { fprintf(stderr, "sf_logits: %s\n", sf_last_error()); return 1; }
        for (int i = 0; i < n; i++)
            if (fwrite(sf_get_logits(c, i), sizeof(float), (size_t)info.n_vocab, out) != (size_t)info.n_vocab) {
                fprintf(stderr, "sf_logits: write failed\n");
                return 1;
            }
        n_prompts++;
    }
    if (fclose(out) != 0) { fprintf(stderr, "sf_logits: write failed\n"); return 1; }
    fclose(in);
    printf("n_vocab %d n_layer %d arch %s prompts %d\n", info.n_vocab, info.n_layer, info.arch, n_prompts);
    sf_context_free(c);
    sf_model_free(m);
    return 0;
}
