// ChatTemplate on the interpreter: the ChatML fallback, raise_exception and strftime_now, message
// fields and variables, the template from a GGUF file, and random mutations of real templates
// (errors, never crashes).
#include "chat/template.h"

#include <gtest/gtest.h>

#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"

namespace gannet {
namespace {

TEST(ChatTemplate, FallbackIsChatMl) {
  Result<ChatTemplate> t = ChatTemplate::Parse(ChatTemplate::FallbackSource());
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ChatRenderInput in;
  in.messages.push_back(ChatMessage{.role = "system", .content = "S"});
  ChatMessage user{.role = "user"};
  user.parts = {{.type = "text", .text = "a"}, {.type = "image"}, {.type = "text", .text = "b"}};
  in.messages.push_back(user);
  Result<std::string> out = t->Render(in);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(
      *out,
      "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nab<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, RaiseExceptionAndStrftime) {
  Result<ChatTemplate> t = ChatTemplate::Parse(
      "{{ strftime_now('%Y-%m-%d %b') }}{% if messages|length > 1 %}{{ raise_exception('too many') "
      "}}{% endif %}");
  ASSERT_TRUE(t.ok());
  ChatRenderInput in;
  in.now = 1741964966;
  in.messages.push_back(ChatMessage{.role = "user", .content = "x"});
  EXPECT_EQ(*t->Render(in), "2025-03-14 Mar");
  in.messages.push_back(ChatMessage{.role = "user", .content = "y"});
  Result<std::string> r = t->Render(in);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rejected the conversation: too many"), std::string::npos)
      << r.status().message();
}

TEST(ChatTemplate, MessageFieldsAndVariables) {
  Result<ChatTemplate> t = ChatTemplate::Parse(
      "{% for m in messages %}{{ m.role }}:{{ 'tool_calls' in m }}:{{ m.content is none }}"
      "{% if m.tool_calls %}{{ m.tool_calls[0].function.arguments|tojson }}{% endif %};{% endfor %}"
      "{{ tools is defined }}{{ flag }}{{ bos_token }}{{ eos_token }}");
  ASSERT_TRUE(t.ok());
  Result<ChatMessage> m = ChatMessageFromJson(nlohmann::ordered_json::parse(
      R"({"role": "assistant", "content": null, "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": 2}}}]})"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ChatRenderInput in;
  in.messages = {ChatMessage{.role = "user", .content = "q"}, *m};
  in.extra_variables = {{"flag", 7}};
  in.bos_token = "<s>";
  in.eos_token = "</s>";
  EXPECT_EQ(*t->Render(in),
            "user:False:False;assistant:True:True{\"b\": 1, \"a\": 2};False7<s></s>");
  EXPECT_FALSE(
      ChatMessageFromJson(nlohmann::ordered_json::parse(R"({"content": "no role"})")).ok());
  EXPECT_FALSE(
      ChatMessageFromJson(nlohmann::ordered_json::parse(R"({"role": "user", "content": 5})")).ok());
}

TEST(ChatTemplate, FromGgufPicksTheModelsTemplateOrTheFallback) {
  GgufWriter with;
  with.SetString("general.architecture", "llama");
  with.SetString("tokenizer.chat_template",
                 "{{ bos_token }}{% for m in messages %}[{{ m.content }}]{% endfor %}");
  const std::vector<uint8_t> bytes = with.Serialize();
  auto file = GgufFile::FromBytes(bytes, "with.gguf");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  Result<ChatTemplate> t = ChatTemplate::FromGguf(**file);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_FALSE(t->is_fallback());
  ChatRenderInput in{.messages = {ChatMessage{.role = "user", .content = "x"}}, .bos_token = "<s>"};
  EXPECT_EQ(*t->Render(in), "<s>[x]");

  GgufWriter without;
  without.SetString("general.architecture", "llama");
  const std::vector<uint8_t> bytes2 = without.Serialize();
  auto file2 = GgufFile::FromBytes(bytes2, "without.gguf");
  ASSERT_TRUE(file2.ok());
  Result<ChatTemplate> fb = ChatTemplate::FromGguf(**file2);
  ASSERT_TRUE(fb.ok()) << fb.status().ToString();
  EXPECT_TRUE(fb->is_fallback());
  EXPECT_EQ(*fb->Render(in), "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");

  GgufWriter wrong;
  wrong.SetUint32("tokenizer.chat_template", 7);
  const std::vector<uint8_t> bytes3 = wrong.Serialize();
  auto file3 = GgufFile::FromBytes(bytes3, "wrong.gguf");
  ASSERT_TRUE(file3.ok());
  EXPECT_FALSE(ChatTemplate::FromGguf(**file3).ok());

  GgufWriter broken;
  broken.SetString("tokenizer.chat_template", "{% for x in %}");
  const std::vector<uint8_t> bytes4 = broken.Serialize();
  auto file4 = GgufFile::FromBytes(bytes4, "broken.gguf");
  ASSERT_TRUE(file4.ok());
  Result<ChatTemplate> b = ChatTemplate::FromGguf(**file4);
  ASSERT_FALSE(b.ok());
  EXPECT_NE(b.status().message().find("line 1, column"), std::string::npos) << b.status().message();
}

std::string ReadFixture(const std::string& name) {
  std::ifstream f(
      std::string(GANNET_SOURCE_DIR) + "/tests/fixtures/chat_templates/templates/" + name,
      std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Random byte edits of real templates: each must parse and render, or fail with a Status.
TEST(ChatTemplate, MutatedTemplatesNeverCrash) {
  std::vector<std::string> seeds = {ReadFixture("google-gemma-3-it.jinja"),
                                    ReadFixture("HuggingFaceTB-SmolLM2-Instruct.jinja"),
                                    ChatTemplate::FallbackSource()};
  ASSERT_FALSE(seeds[0].empty());
  const std::string alphabet = "{}%#-+()[]'\".,:|~*/ \n=<>!abcfinoterls0129_";
  std::mt19937 rng(1234);
  ChatRenderInput in;
  in.messages = {ChatMessage{.role = "system", .content = "s"},
                 ChatMessage{.role = "user", .content = "u"},
                 ChatMessage{.role = "assistant", .content = "a"}};
  in.limits.max_output_bytes = 1 << 16;
  in.limits.max_loop_iterations = 10000;
  int parsed = 0, rendered = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string src = seeds[iter % seeds.size()];
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !src.empty(); ++e) {
      const size_t pos = rng() % src.size();
      switch (rng() % 3) {
        case 0:
          src.erase(pos, 1 + rng() % 8);
          break;
        case 1:
          src.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
        default:
          src[pos] = alphabet[rng() % alphabet.size()];
      }
    }
    Result<ChatTemplate> t = ChatTemplate::Parse(src);
    if (!t.ok()) continue;
    ++parsed;
    rendered += t->Render(in).ok();
  }
  EXPECT_GT(parsed, 100);
  EXPECT_GT(rendered, 50);
}

}  // namespace
}  // namespace gannet
