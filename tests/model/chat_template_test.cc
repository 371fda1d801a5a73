// gannet's chat-template rendering against Python jinja2 configured as Hugging Face renders
// templates (tests/fixtures/chat_templates/golden.json, written by tools/chat_template_golden.py):
// every template x conversation must give the same text, or fail where Python fails (with the
// template's own message when it calls raise_exception).
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>

#include "chat/template.h"
#include "chat/tool_calls.h"

namespace gannet {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

TEST(ChatTemplateGolden, EveryTemplateAndConversationMatchesJinja2) {
  const std::string root = GANNET_SOURCE_DIR;
  const nlohmann::ordered_json golden =
      nlohmann::ordered_json::parse(ReadFile(root + "/tests/fixtures/chat_templates/golden.json"));
  const nlohmann::ordered_json conversations = nlohmann::ordered_json::parse(
      ReadFile(root + "/tests/fixtures/chat_templates/conversations.json"));
  std::map<std::string, nlohmann::ordered_json> by_name;
  for (const auto& c : conversations) by_name[c["name"].get<std::string>()] = c;

  int cases = 0, matched = 0, expected_errors = 0;
  for (const auto& t : golden["templates"]) {
    const std::string name = t["name"];
    const std::string source = ReadFile(root + "/" + t["file"].get<std::string>());
    ASSERT_FALSE(source.empty()) << t["file"] << " missing (tools/fetch_templates.py)";
    Result<ChatTemplate> tmpl = ChatTemplate::Parse(source, name);
    ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
    for (const auto& r : t["results"]) {
      ++cases;
      const nlohmann::ordered_json& conv = by_name.at(r["conversation"].get<std::string>());
      ChatRenderInput in;
      for (const auto& m : conv["messages"]) {
        Result<ChatMessage> msg = ChatMessageFromJson(m);
        ASSERT_TRUE(msg.ok()) << msg.status().ToString();
        in.messages.push_back(std::move(msg).value());
      }
      in.add_generation_prompt = conv["add_generation_prompt"];
      in.bos_token = t["bos_token"];
      in.eos_token = t["eos_token"];
      if (conv.contains("tools")) in.tools = conv["tools"];
      if (conv.contains("extra_variables")) in.extra_variables = conv["extra_variables"];
      in.now = golden["now"].get<std::time_t>();
      const Result<std::string> out = tmpl->Render(in);
      const std::string label = name + " x " + r["conversation"].get<std::string>();
      if (r.contains("output")) {
        if (!out.ok()) {
          ADD_FAILURE() << label << ": " << out.status().ToString();
          continue;
        }
        EXPECT_EQ(*out, r["output"].get<std::string>()) << label;
        matched += *out == r["output"].get<std::string>();
      } else {
        ++expected_errors;
        if (out.ok()) {
          ADD_FAILURE() << label << ": expected " << r["error"].dump() << ", rendered:\n" << *out;
          continue;
        }
        if (r["error"]["raised_by_template"].get<bool>()) {
          const std::string want = r["error"]["message"];
          EXPECT_NE(out.status().message().find(want), std::string::npos)
              << label << ": " << out.status().ToString() << " lacks '" << want << "'";
          matched += out.status().message().find(want) != std::string::npos;
        } else {
          ++matched;
        }
      }
    }
  }
  std::printf("chat templates: %d of %d cases match jinja2 (%d expected errors)\n", matched, cases,
              expected_errors);
  EXPECT_EQ(matched, cases);
  EXPECT_GE(cases, 200);
}

// Random edits of every real template: each must parse and render, or fail with a Status.
// What the server does with a client's tool conversation: arguments arrive as JSON text (OpenAI's
// shape) and are made objects again (NormalizeToolCallHistory); the tools reach the template as
// the request sent them (PrepareToolPrompt). The text must be jinja2's for the same conversation
// written with objects.
TEST(ChatTemplateGolden, ClientToolConversationsMatchJinja2) {
  const std::string root = GANNET_SOURCE_DIR;
  const nlohmann::ordered_json golden =
      nlohmann::ordered_json::parse(ReadFile(root + "/tests/fixtures/chat_templates/golden.json"));
  const nlohmann::ordered_json conversations = nlohmann::ordered_json::parse(
      ReadFile(root + "/tests/fixtures/chat_templates/conversations.json"));
  std::map<std::string, nlohmann::ordered_json> by_name;
  for (const auto& c : conversations) by_name[c["name"].get<std::string>()] = c;
  int checked = 0;
  for (const auto& t : golden["templates"]) {
    Result<ChatTemplate> tmpl =
        ChatTemplate::Parse(ReadFile(root + "/" + t["file"].get<std::string>()));
    ASSERT_TRUE(tmpl.ok()) << tmpl.status().ToString();
    const ToolCallFormat format = DetectToolCallFormat(*tmpl);
    for (const auto& r : t["results"]) {
      const std::string conv_name = r["conversation"];
      if ((conv_name != "tool_call" && conv_name != "tools_offered") || !r.contains("output"))
        continue;
      if (format == ToolCallFormat::kGeneric) continue;  // the generic format rewrites history
      nlohmann::ordered_json conv = by_name.at(conv_name);
      ChatRenderInput in;
      for (auto m : conv["messages"]) {
        if (m.contains("tool_calls")) {
          nlohmann::ordered_json calls = m["tool_calls"];
          for (auto& call : calls)
            call["function"]["arguments"] = call["function"]["arguments"].dump();
          m["tool_calls"] = calls;
        }
        Result<ChatMessage> msg = ChatMessageFromJson(m);
        ASSERT_TRUE(msg.ok()) << msg.status().ToString();
        in.messages.push_back(std::move(msg).value());
      }
      in.add_generation_prompt = conv["add_generation_prompt"];
      in.bos_token = t["bos_token"];
      in.eos_token = t["eos_token"];
      in.now = golden["now"].get<std::time_t>();
      ToolSpec spec;
      for (const auto& tool : conv.value("tools", nlohmann::ordered_json::array())) {
        spec.tools.push_back({.name = tool["function"]["name"],
                              .parameters = tool["function"]["parameters"],
                              .raw = tool});
      }
      PrepareToolPrompt(format, spec.tools.empty() ? nullptr : &spec, &in);
      const Result<std::string> out = tmpl->Render(in);
      const std::string label = t["name"].get<std::string>() + " x " + conv_name;
      ASSERT_TRUE(out.ok()) << label << ": " << out.status().ToString();
      EXPECT_EQ(*out, r["output"].get<std::string>()) << label;
      ++checked;
    }
  }
  std::printf("client tool conversations: %d checked\n", checked);
  EXPECT_GE(checked, 8);  // Qwen 2.5 / 3 / QwQ, Llama 3.1 / 3.2 / 3.3, Mistral Nemo / Small
}

TEST(ChatTemplateGolden, MutatedRealTemplatesNeverCrash) {
  const std::string root = GANNET_SOURCE_DIR;
  const nlohmann::ordered_json golden =
      nlohmann::ordered_json::parse(ReadFile(root + "/tests/fixtures/chat_templates/golden.json"));
  const std::string alphabet = "{}%#-+()[]'\".,:|~*/ \n=<>!abcfinoterls0129_";
  std::mt19937 rng(99);
  ChatRenderInput in;
  in.messages = {ChatMessage{.role = "system", .content = "s"},
                 ChatMessage{.role = "user", .content = "u"},
                 ChatMessage{.role = "assistant", .content = "a"},
                 ChatMessage{.role = "user", .content = "v"}};
  in.limits.max_output_bytes = 1 << 16;
  in.limits.max_loop_iterations = 10000;
  int parsed = 0, rendered = 0, total = 0;
  for (const auto& t : golden["templates"]) {
    const std::string seed = ReadFile(root + "/" + t["file"].get<std::string>());
    ASSERT_FALSE(seed.empty());
    for (int iter = 0; iter < 400; ++iter, ++total) {
      std::string src = seed;
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
      Result<ChatTemplate> tmpl = ChatTemplate::Parse(src);
      if (!tmpl.ok()) continue;
      ++parsed;
      rendered += tmpl->Render(in).ok();
    }
  }
  std::printf("mutated templates: %d, parsed %d, rendered %d\n", total, parsed, rendered);
  EXPECT_GT(parsed, total / 10);
}

}  // namespace
}  // namespace gannet
