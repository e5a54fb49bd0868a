#include "model/debug_dump.h"

#include <stdio.h>
#include <stdlib.h>

void sf_debug_dump(const char *name, int layer, const float *data, int rows, int width, size_t stride) {
    static const char *dir;
    static int checked;
    if (!checked) {
        dir = getenv("SF_DUMP_DIR");
        checked = 1;
    }
    if (!dir || !*dir) return;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%d.f32", dir, name, layer);
    FILE *f = fopen(path, "wb");
    if (!f) return;
    for (int r = 0; r < rows; r++) fwrite(data + (size_t)r * stride, sizeof(float), (size_t)width, f);
    fclose(f);
}
