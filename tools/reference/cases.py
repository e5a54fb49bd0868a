"""Test strings and prompts for make_fixtures.py.

The tokenizer strings are shared by every model: special-token text of one
model is ordinary text for the other, which is a useful case too.
"""

_PARAGRAPH = (
    "The lighthouse keeper had kept the same routine for thirty-one years. Every evening at 18:45 he climbed "
    "the 147 iron steps, wiped the salt from the lens with a soft cloth, and wrote the weather into a ledger "
    "whose first pages were already brittle and yellow. On 3 March 1998 the entry read: \"Wind NW 6, sea rough, "
    "visibility poor; two trawlers sheltering in the bay.\" Visitors sometimes asked whether he was lonely. He "
    "would shrug, point at the gulls, the radio, and the shelf of paperbacks (mostly detective novels, a few "
    "field guides, one dictionary with half its cover missing) and say that a man with that much company "
    "could hardly complain. In winter the storms came in long trains, one after another, and the tower hummed "
    "like a struck bell. He liked those nights best. The keeper's daughter, who lived in the city and worked "
    "on software for container ports, tried to explain her job to him: queues, schedules, cranes that move "
    "boxes weighing 30,000 kg with millimetre precision. \"So you keep ships from bumping into each other,\" "
    "he said. \"Same as me, only with more arithmetic.\" She laughed and did not correct him. When the "
    "automation contract was finally signed in 2009, a technician installed a rotating LED beacon, a solar "
    "panel, and a small grey box that reported its own health every 15 minutes over a satellite link. The "
    "keeper stayed on for one more season to show the technician where the roof leaked and which window "
    "latch had to be lifted before it would turn. Then he packed the ledgers into three crates, labelled them "
    "in careful capitals, and took the ferry to the mainland. People say the light is brighter now, and more "
    "reliable; it has not missed a night since. But the fishermen still call it by his name, and on rough "
    "evenings some of them swear they can see a figure on the gallery, wiping the glass. Ask them about it and "
    "they'll tell you it's only the mist—or they'll buy you a drink, which (as everyone knows) isn't the same "
    "as saying no. The ledgers, by the way, are in the town museum, room 4.   "
)

_CODE_PY = '''def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a
'''

_CODE_C = '''#include <stdio.h>
int main(void) {
\tfor (int i = 0; i < 10; ++i) { printf("%d\\n", i * i); }
\treturn 0;
}
'''

_CODE_JSON = '{"name": "sparsefuse", "version": [0, 1, 0], "tags": ["llm", "gguf"], "ok": true, "x": null}'

_CODE_HTML = '<div class="note"><p>Hello &amp; welcome!</p><br/><a href="https://example.com/?q=1&r=2">link</a></div>'


def tokenizer_strings():
    s = [
        # empty and whitespace
        "", " ", "  ", "   ", "    ", "\t", "\n", "\n\n", "\n\n\n", "\r\n", " \n", "\n ", "\t\t", " \t \n",
        " " * 17, "\n" * 9, "\t \t \t", " \t\n\r\x0b\x0c mixed", "a  b", "a\tb", "a\n\nb", "word\n\n\n\nword",
        "    indented line", "\t\tdef f():", "line1\r\nline2\r\n", "trailing spaces   ", "   leading spaces",
        "  both  ", "\n =", "\n = Robert Boulter = \n", " = = Valkyria Chronicles III = = \n", " @-@ ", "1 @,@ 000",
        # plain words
        "Hello", "hello world", " hello world", "hello world ", "  hello  world  ", "Hello, World!",
        "HELLO WORLD", "The quick brown fox jumps over the lazy dog.", "a", "A", "I", ".", "?!", "...", "a.b.c",
        # digits
        "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678", "123456789", "1234567890",
        "12345678901234567890123456789", "3.14159265358979", "1,000,000", "2024-01-15", "0x1F600", "-42",
        "1e-10", "007", "9999999999", "1 2 3 4 5", "a1b2c3", "v1.2.3",
        # contractions
        "I'm", "don't", "they're", "we'll", "she'd", "it's", "I've", "He'S", "I'M", "DON'T",
        "'s 't 're 've 'm 'll 'd", "can't won't shouldn't", "rock 'n' roll", "'tis", "the dog's bone",
        # accented Latin
        "café", "naïve résumé", "Ångström", "façade", "Straße", "Åland Øresund Æble", "Ça va très bien, merci",
        "mañana", "Żółć gęślą jaźń",
        # other scripts
        "Привет, мир!", "Съешь же ещё этих мягких французских булок", "مرحبا بالعالم", "नमस्ते दुनिया",
        "שלום עולם", "Γειά σου Κόσμε", "こんにちは世界", "你好，世界", "안녕하세요 세계", "ภาษาไทย", "汉字漢字",
        "中文 English 混合", "日本語のテキストです。",
        # emoji
        "😀", "👍🏽", "👨\u200d👩\u200d👧\u200d👦", "🏳️\u200d🌈", "❤️", "🇺🇸🇯🇵", "I love 🍕 and 🍣!",
        "🧑🏿\u200d💻", "😀😀😀",
        # odd characters
        "\ufffd", "a\ufffdb", "\u200b", "\u00a0", "a\u00a0b", "\u3000", "\ufeffBOM", "e\u0301", "ﬁ ligature",
        "\u2028", "€100 £50 ¥1000", "±×÷≠≤≥", "∑∫√∞", "…", "—–-", "“quoted” ‘single’", "<<>>", "&amp;",
        "\U0001d518\U0001d52b\U0001d526", "\x7f", "~`^|\\",
        # code
        _CODE_PY, _CODE_C, _CODE_JSON, _CODE_HTML, "ls -la | grep '.gguf' && echo $HOME",
        "^[a-z0-9_.+-]+@[a-z0-9-]+\\.[a-z]{2,}$", "| a | b |\n|---|---|\n| 1 | 2 |",
        "https://github.com/ggml-org/llama.cpp/blob/master/README.md", "user@example.org",
        "C:\\Program Files\\app\\bin", "x+=1;y-=2;z*=3", "if (a == b && c != d) { return; }",
        # special tokens (of either model) inside text, and look-alikes
        "<|im_start|>user\nHello<|im_end|>\n", "<|im_start|>user\n", "<|im_start|>assistant\n",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
        "<|endoftext|>", "text<|endoftext|>more", "<|im_start|>", "<|im_end|>",
        "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n", "<start_of_turn>", "<end_of_turn>",
        "<bos>", "<eos>", "<pad>", "<s>", "</s>", "<unk>", "<mask>", "<bos>Hello<eos>",
        "<|im_start |>", "<| im_start|>", "<|im_starts|>", "< start_of_turn>", "<start_of_turn",
        "start_of_turn>", "<|im_end|", "<|endoftext|>>", "<<|im_start|>>", "text<|im_end|>text",
        "<|system|>", "[INST] hi [/INST]", "<think>", "<|IM_START|>",
        # repetitions
        "a" * 100, "ab" * 50, "=" * 40, "-" * 80, "!!!???...", "1" * 60, "😀" * 12, "\u00e9" * 30,
        # long paragraph (~2 KB)
        _PARAGRAPH,
    ]
    return s


def in_special_subset(i, s):
    """Strings also tokenized with add_special=1 (and parse_special=0/1)."""
    return i % 4 == 0 or "<" in s or s in ("", " ", "\n", "Hello", _PARAGRAPH)


def prompts(is_single_token):
    """Five prompts; the chat one uses the model's own template markers.

    is_single_token(text) tells whether text is one (special) token."""
    if is_single_token("<|im_start|>"):
        chat = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"
    elif is_single_token("<start_of_turn>"):
        chat = "<start_of_turn>user\nWhat is the capital of France?<end_of_turn>\n<start_of_turn>model\n"
    else:
        chat = "User: What is the capital of France?\nAssistant:"
    return [
        "The old lighthouse keeper climbed the narrow stairs every evening, and tonight he",
        chat,
        "def fibonacci(n):\n    if n < 2:\n        return n\n    return",
        "Shopping list:\n1. 12 eggs\n2. 3 apples\n3.",
        "Bonjour le monde! Привет, мир! 你好",
    ]
