/* Unicode helpers for the tokenizers: UTF-8 decoding with llama.cpp's
 * error rules, general-category flags (generated table), and the GPT-2
 * byte <-> code point map used by byte-level BPE. */
#ifndef SF_TEXT_UNICODE_H
#define SF_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
    SF_UF_UNDEFINED = 0x0001,  /* unassigned (Cn) */
    SF_UF_NUMBER = 0x0002,     /* \p{N} */
    SF_UF_LETTER = 0x0004,     /* \p{L} */
    SF_UF_SEPARATOR = 0x0008,  /* \p{Z} */
    SF_UF_MARK = 0x0010,       /* \p{M} */
    SF_UF_PUNCT = 0x0020,      /* \p{P} */
    SF_UF_SYMBOL = 0x0040,     /* \p{S} */
    SF_UF_CONTROL = 0x0080,    /* \p{C} except Cn */
    SF_UF_WHITESPACE = 0x0100, /* White_Space property */
    SF_UF_CATEGORY_MASK = 0x00FF
};

typedef struct { uint32_t start; uint16_t flags; } sf_unicode_range;
extern const sf_unicode_range sf_unicode_ranges[];
extern const int sf_unicode_n_ranges;
extern const char sf_unicode_version[];

#define SF_UNICODE_REPLACEMENT 0xFFFDu

/* Flags of a code point; code points past U+10FFFF are "undefined". */
uint16_t sf_unicode_flags(uint32_t cp);

/* Byte length of the UTF-8 sequence a lead byte announces (1 for stray
 * continuation bytes), as llama.cpp's unicode_len_utf8. */
size_t sf_utf8_len(uint8_t lead);

/* Decodes one code point at s[*off] (len bytes in all) like llama.cpp:
 * continuation bits are checked, overlongs are not; an invalid sequence
 * yields U+FFFD and consumes one byte. */
uint32_t sf_utf8_decode(const char *s, size_t len, size_t *off);

/* Encodes cp as UTF-8 into out[4]; returns the byte count. Code points past
 * U+10FFFF are encoded as U+FFFD. */
int sf_utf8_encode(uint32_t cp, char *out);

/* GPT-2 bytes_to_unicode: the code point byte b is written as. */
uint32_t sf_byte_to_cp(uint8_t b);
/* Inverse: the byte a mapped code point stands for, or -1. */
int sf_cp_to_byte(uint32_t cp);

#endif
