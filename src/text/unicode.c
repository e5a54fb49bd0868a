/* Unicode helpers; see unicode.h. */
#include "text/unicode.h"

uint16_t sf_unicode_flags(uint32_t cp) {
    if (cp >= 0x110000u) return SF_UF_UNDEFINED;
    /* binary search for the last range starting at or before cp */
    int lo = 0, hi = sf_unicode_n_ranges - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (sf_unicode_ranges[mid].start <= cp) lo = mid;
        else hi = mid - 1;
    }
    return sf_unicode_ranges[lo].flags;
}

size_t sf_utf8_len(uint8_t lead) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[lead >> 4];
}

static int is_cont(const char *s, size_t i) { return ((uint8_t)s[i] & 0xC0) == 0x80; }

uint32_t sf_utf8_decode(const char *s, size_t len, size_t *off) {
    size_t o = *off;
    uint8_t b0 = (uint8_t)s[o];
    if (!(b0 & 0x80)) {
        *off = o + 1;
        return b0;
    }
    if ((b0 & 0x40) && !(b0 & 0x20)) {
        if (o + 1 < len && is_cont(s, o + 1)) {
            *off = o + 2;
            return ((uint32_t)(b0 & 0x1F) << 6) | ((uint8_t)s[o + 1] & 0x3F);
        }
    } else if ((b0 & 0x40) && !(b0 & 0x10)) {
        if (o + 2 < len && is_cont(s, o + 1) && is_cont(s, o + 2)) {
            *off = o + 3;
            return ((uint32_t)(b0 & 0x0F) << 12) | ((uint32_t)((uint8_t)s[o + 1] & 0x3F) << 6) |
                   ((uint8_t)s[o + 2] & 0x3F);
        }
    } else if ((b0 & 0x40) && !(b0 & 0x08)) {
        if (o + 3 < len && is_cont(s, o + 1) && is_cont(s, o + 2) && is_cont(s, o + 3)) {
            *off = o + 4;
            return ((uint32_t)(b0 & 0x07) << 18) | ((uint32_t)((uint8_t)s[o + 1] & 0x3F) << 12) |
                   ((uint32_t)((uint8_t)s[o + 2] & 0x3F) << 6) | ((uint8_t)s[o + 3] & 0x3F);
        }
    }
    *off = o + 1;
    return SF_UNICODE_REPLACEMENT;
}

int sf_utf8_encode(uint32_t cp, char *out) {
    if (cp <= 0x7F) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp <= 0x7FF) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp > 0x10FFFF) cp = SF_UNICODE_REPLACEMENT;
    if (cp <= 0xFFFF) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for themselves; the other
 * 68 map, in byte order, to U+0100 + n. */
static int byte_is_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

uint32_t sf_byte_to_cp(uint8_t b) {
    if (byte_is_printable(b)) return b;
    unsigned n = 0;
    for (unsigned c = 0; c < b; c++) n += !byte_is_printable(c);
    return 0x100 + n;
}

int sf_cp_to_byte(uint32_t cp) {
    if (cp < 0x100) return byte_is_printable(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    unsigned n = cp - 0x100;
    for (unsigned c = 0; c < 256; c++) {
        if (!byte_is_printable(c)) {
            if (n == 0) return (int)c;
            n--;
        }
    }
    return -1;
}
