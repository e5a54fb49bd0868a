/* sparsefuse inspect: validate a GGUF file and summarize it. */
#include "commands.h"
#include "common.h"

int cmd_inspect(int argc, char **argv) {
    const char *model = NULL, *positional = NULL;
    bool all = false;
    const arg_spec args[] = {
        {"-m", "--model", ARG_STR, &model, "FILE",
         "the GGUF file (or give it as FILE; default: " APP_DEFAULT_MODEL " if present, else $SF_MODEL)", 0, 0,
         NULL},
        {"-a", "--all", ARG_FLAG, &all, NULL, "also print every metadata key", 0, 0, NULL},
    };
    const cmd_spec cmd = {
        "inspect", "[options] [FILE]",
        "Validates a GGUF file and prints its architecture, hyperparameters, tokenizer\n"
        "summary and tensor table. Exits 1 if the file is malformed.",
        args, (int)(sizeof args / sizeof args[0]), "FILE", &positional};
    int rc = args_parse(&cmd, argc, argv);
    if (rc >= 0) return rc;
    if (model && positional) return args_error(&cmd, "give the file either as -m FILE or as FILE, not both");
    const char *path = app_model_path(&cmd, model ? model : positional);
    if (!path) return APP_EXIT_USAGE;
    if (sf_inspect_file(path, stdout, all) != SF_OK) {
        fflush(stdout);
        return app_fail(&cmd, path);
    }
    return fflush(stdout) == 0 ? APP_EXIT_OK : APP_EXIT_RUNTIME;
}
