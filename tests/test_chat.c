/* Chat templates: detection heuristics and exact formatting (expected strings
 * are those of llama.cpp's llm_chat_apply_template for the same conversation,
 * as in its tests/test-chat-template.cpp). */
#include <stdlib.h>
#include <string.h>

#include "sparsefuse.h"
#include "testutil.h"
#include "text/chat.h"

static const sf_chat_message g_conv[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};
enum { N_CONV = sizeof g_conv / sizeof g_conv[0] };

static void expect_format(const char *name, const sf_chat_message *m, int n, bool add_ass,
                          const char *want) {
    char *out = NULL;
    int rc = sf_chat_apply(NULL, name, m, n, add_ass, &out);
    if (rc != SF_OK) fail_msg("%s: %s", name, sf_last_error());
    assert_non_null(out);
    if (strcmp(out, want) != 0) fail_msg("%s:\n got: [%s]\nwant: [%s]", name, out, want);
    free(out);
}

static void test_chatml(void **state) {
    (void)state;
    expect_format("chatml", g_conv, N_CONV, true,
                  "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
                  "<|im_start|>user\nHello<|im_end|>\n"
                  "<|im_start|>assistant\nHi there<|im_end|>\n"
                  "<|im_start|>user\nWho are you<|im_end|>\n"
                  "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
                  "<|im_start|>user\nAnother question<|im_end|>\n"
                  "<|im_start|>assistant\n");
    /* no system prompt is invented (llama.cpp's chatml adds none) */
    expect_format("chatml", &g_conv[1], 1, false, "<|im_start|>user\nHello<|im_end|>\n");
    expect_format("chatml", g_conv, 0, true, "<|im_start|>assistant\n");
    expect_format("chatml", g_conv, 0, false, "");
}

static void test_llama2_family(void **state) {
    (void)state;
    expect_format("llama2", g_conv, N_CONV, true,
                  "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>"
                  "[INST] Who are you [/INST]   I am an assistant   </s>"
                  "[INST] Another question [/INST]");
    expect_format("llama2-sys", g_conv, N_CONV, true,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
                  "[INST] Who are you [/INST]   I am an assistant   </s>"
                  "[INST] Another question [/INST]");
    expect_format("llama2-sys-bos", g_conv, N_CONV, true,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
                  "<s>[INST] Who are you [/INST]   I am an assistant   </s>"
                  "<s>[INST] Another question [/INST]");
    expect_format("llama2-sys-strip", g_conv, N_CONV, true,
                  "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
                  "[INST] Who are you [/INST]I am an assistant</s>"
                  "[INST] Another question [/INST]");
}

static void test_llama3(void **state) {
    (void)state;
    expect_format("llama3", g_conv, N_CONV, true,
                  "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

static void test_gemma(void **state) {
    (void)state;
    expect_format("gemma", g_conv, N_CONV, true,
                  "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
                  "<start_of_turn>model\nHi there<end_of_turn>\n"
                  "<start_of_turn>user\nWho are you<end_of_turn>\n"
                  "<start_of_turn>model\nI am an assistant<end_of_turn>\n"
                  "<start_of_turn>user\nAnother question<end_of_turn>\n"
                  "<start_of_turn>model\n");
    /* two system messages are concatenated (trimmed, no separator) */
    const sf_chat_message m[] = {{"system", " A "}, {"system", "B\n"}, {"user", " hi "}};
    expect_format("gemma", m, 3, false, "<start_of_turn>user\nAB\n\nhi<end_of_turn>\n");
}

static void test_zephyr(void **state) {
    (void)state;
    expect_format("zephyr", g_conv, N_CONV, true,
                  "<|system|>\nYou are a helpful assistant<|endoftext|>\n"
                  "<|user|>\nHello<|endoftext|>\n"
                  "<|assistant|>\nHi there<|endoftext|>\n"
                  "<|user|>\nWho are you<|endoftext|>\n"
                  "<|assistant|>\n   I am an assistant   <|endoftext|>\n"
                  "<|user|>\nAnother question<|endoftext|>\n"
                  "<|assistant|>\n");
}

static void test_detect(void **state) {
    (void)state;
    assert_string_equal(sf_chat_detect_str(NULL), "chatml");
    assert_string_equal(sf_chat_detect_str(""), "chatml");
    assert_string_equal(sf_chat_detect_str("gemma"), "gemma");
    assert_string_equal(
        sf_chat_detect_str("{% for message in messages %}{{'<|im_start|>' + message['role'] + "
                           "'\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"),
        "chatml");
    assert_string_equal(sf_chat_detect_str("{{ '<|start_header_id|>' + message['role'] + "
                                           "'<|end_header_id|>\\n\\n' }}"),
                        "llama3");
    assert_string_equal(sf_chat_detect_str("{{ '<start_of_turn>' + role + '\\n' }}"), "gemma");
    assert_string_equal(sf_chat_detect_str("{{ '[INST] ' + message['content'] + ' [/INST]' }}"),
                        "llama2");
    assert_string_equal(sf_chat_detect_str("{{ '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>' }}"),
                        "llama2-sys");
    assert_string_equal(sf_chat_detect_str("{{ bos_token + '[INST] <<SYS>>' }}"), "llama2-sys-bos");
    assert_string_equal(sf_chat_detect_str("<<SYS>> [INST] {{ content.strip() }}"),
                        "llama2-sys-strip");
    assert_string_equal(sf_chat_detect_str("{{'<|user|>\\n' + message['content'] + '<|endoftext|>'}}"),
                        "zephyr");
    assert_string_equal(sf_chat_detect_str("{{'<|user|>\\n' + message['content'] + '</s>'}}"),
                        "zephyr");
    assert_string_equal(sf_chat_detect_str("{{ something unknown }}"), "chatml");
    /* every listed name detects as itself and formats */
    const char *const *names = sf_chat_template_names();
    int n = 0;
    for (; names[n]; n++) {
        assert_string_equal(sf_chat_detect_str(names[n]), names[n]);
        char *out = NULL;
        assert_int_equal(sf_chat_apply(NULL, names[n], g_conv, N_CONV, true, &out), SF_OK);
        free(out);
    }
    assert_true(n >= 5);
}

static void test_errors(void **state) {
    (void)state;
    char *out = (char *)1;
    assert_int_equal(sf_chat_apply(NULL, "nope", g_conv, N_CONV, true, &out), SF_ERR_ARG);
    assert_null(out);
    assert_non_null(strstr(sf_last_error(), "nope"));
    const sf_chat_message bad[] = {{NULL, "x"}};
    assert_int_equal(sf_chat_apply(NULL, "chatml", bad, 1, true, &out), SF_ERR_ARG);
    assert_int_equal(sf_chat_apply(NULL, "chatml", NULL, 2, true, &out), SF_ERR_ARG);
    assert_int_equal(sf_chat_apply(NULL, "chatml", g_conv, -1, true, &out), SF_ERR_ARG);
    assert_int_equal(sf_chat_apply(NULL, "chatml", g_conv, 1, true, NULL), SF_ERR_ARG);
    /* NULL content is an empty message */
    const sf_chat_message empty[] = {{"user", NULL}};
    expect_format("chatml", empty, 1, false, "<|im_start|>user\n<|im_end|>\n");
}

/* The real models' templates map to the expected families. */
static void test_model_templates(void **state) {
    (void)state;
    const char *path = sf_test_model_path(SF_TEST_SMOLLM);
    if (!path) skip();
    sf_model *m = sf_model_load(path);
    assert_non_null(m);
    assert_string_equal(sf_chat_template_detect(m), "chatml");
    char *out = NULL;
    assert_int_equal(sf_chat_apply(m, NULL, &g_conv[1], 1, true, &out), SF_OK);
    assert_string_equal(out, "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n");
    free(out);
    sf_model_free(m);

    path = sf_test_model_path(SF_TEST_GEMMA);
    if (!path) return;
    m = sf_model_load(path);
    if (!m) fail_msg("gemma: %s", sf_last_error());
    assert_string_equal(sf_chat_template_detect(m), "gemma");
    sf_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chatml),       cmocka_unit_test(test_llama2_family),
        cmocka_unit_test(test_llama3),       cmocka_unit_test(test_gemma),
        cmocka_unit_test(test_zephyr),       cmocka_unit_test(test_detect),
        cmocka_unit_test(test_errors),       cmocka_unit_test(test_model_templates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
