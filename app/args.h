/* Table-driven command-line parsing shared by every subcommand. A command
 * describes its options once; the same table parses argv and prints --help,
 * so the help can not drift from what is accepted. */
#ifndef SF_APP_ARGS_H
#define SF_APP_ARGS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum { APP_EXIT_OK = 0, APP_EXIT_RUNTIME = 1, APP_EXIT_USAGE = 2 };

typedef enum { ARG_FLAG, ARG_INT, ARG_FLOAT, ARG_STR, ARG_U64 } arg_kind;

typedef struct {
    const char *shrt;    /* "-m", or NULL */
    const char *lng;     /* "--model" */
    arg_kind kind;
    void *dest;          /* bool*, int*, float*, const char**, uint64_t* */
    const char *metavar; /* "N", "FILE"; NULL for flags */
    const char *help;
    double lo, hi;       /* accepted range of ARG_INT / ARG_FLOAT (lo == hi: any) */
    bool *seen;          /* optional: set to true when the option is given */
} arg_spec;

typedef struct {
    const char *name;        /* "run" */
    const char *synopsis;    /* "[options] (-p TEXT | -f FILE)" */
    const char *description; /* a paragraph shown by --help */
    const arg_spec *args;
    int n_args;
    const char *positional_name; /* "FILE" if one positional argument is accepted */
    const char **positional;     /* where it goes */
} cmd_spec;

/* Parses argv[1..argc) (argv[0] is the subcommand name). Returns -1 when
 * parsing succeeded, otherwise the exit code to return: APP_EXIT_OK after
 * printing --help, APP_EXIT_USAGE after printing an error to stderr. */
int args_parse(const cmd_spec *cmd, int argc, char **argv);
void args_usage(const cmd_spec *cmd, FILE *out);

/* Prints "sparsefuse NAME: message" to stderr and returns APP_EXIT_USAGE. */
int args_error(const cmd_spec *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
