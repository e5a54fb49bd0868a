/* The public kernel-mode switch (sparsefuse.h) over the dispatch tables. */
#include "base/error.h"
#include "tensor/types.h"

const char *sf_kernels_mode(void) { return sf_kernels_exact() ? "exact" : "fast"; }

int sf_set_kernels_mode(const char *mode) {
    if (!sf_kernels_force(mode))
        return sf_fail(SF_ERR_ARG, "kernel mode '%s' is not one of fast, exact", mode ? mode : "(null)");
    return SF_OK;
}
