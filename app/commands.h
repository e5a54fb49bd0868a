/* The subcommands: each parses its own arguments (argv[0] is its name) and
 * returns the process exit code (0 ok, 1 runtime failure, 2 bad usage). */
#ifndef SF_APP_COMMANDS_H
#define SF_APP_COMMANDS_H

int cmd_run(int argc, char **argv);
int cmd_chat(int argc, char **argv);
int cmd_perplexity(int argc, char **argv);
int cmd_hellaswag(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_synth(int argc, char **argv);
int cmd_fuse(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_analyze(int argc, char **argv);
int cmd_sparsify(int argc, char **argv);
int cmd_route(int argc, char **argv);

#endif
