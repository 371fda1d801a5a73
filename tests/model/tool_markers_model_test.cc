// Tool-call markers through a real vocabulary (llama.cpp's llama-bpe file, Llama 3's 128256
// tokens, in the layout of Llama 3.1, whose reserved tokens 128008 and 128010 became <|eom_id|>
// and <|python_tag|>): the marker is found as a control token, the output renders it and nothing
// else of the control tokens, the parser reads a call after text by it, and the call grammar
// allows the marker token itself but no text spelling of it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/tool_call_parser.h"
#include "chat/tool_calls.h"
#include "engine/output_processor.h"
#include "formats/gguf.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"
#include "tokenizer/tokenizer.h"

namespace gannet {
namespace {

constexpr int32_t kEomId = 128008, kPythonTag = 128010;

std::unique_ptr<Tokenizer> Llama31Vocabulary() {
  const char* dir = std::getenv("GANNET_VOCAB_DIR");
  EXPECT_NE(dir, nullptr) << "set GANNET_VOCAB_DIR (ctest does)";
  if (dir == nullptr) return nullptr;
  Result<std::unique_ptr<GgufFile>> file =
      GgufFile::Open(std::string(dir) + "/ggml-vocab-llama-bpe.gguf");
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  if (!file.ok()) return nullptr;
  Result<VocabSpec> spec = ReadVocabSpec(**file);
  EXPECT_TRUE(spec.ok()) << spec.status().ToString();
  if (!spec.ok()) return nullptr;
  EXPECT_EQ(spec->tokens[kPythonTag], "<|reserved_special_token_5|>");
  spec->tokens[kEomId] = "<|eom_id|>";
  spec->tokens[kPythonTag] = "<|python_tag|>";
  Result<std::unique_ptr<Tokenizer>> tok = Tokenizer::FromVocab(std::move(spec).value());
  EXPECT_TRUE(tok.ok()) << tok.status().ToString();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

TEST(ToolMarkersModel, PythonTagIsRenderedAndParsed) {
  std::unique_ptr<Tokenizer> tok = Llama31Vocabulary();
  ASSERT_NE(tok, nullptr);
  const ToolMarkerTokens markers = FindToolMarkerTokens(ToolCallFormat::kLlama3, *tok);
  ASSERT_EQ(markers.ids(), std::vector<int32_t>{kPythonTag});
  EXPECT_TRUE(tok->IsEndOfGeneration(kEomId));

  const std::string call = R"({"name": "get_weather", "parameters": {"city": "Oslo"}})";
  const std::vector<int32_t> ids = tok->Encode(
      "Let me look.<|start_header_id|><|python_tag|>" + call + "<|eom_id|>", false, true);
  ASSERT_NE(std::find(ids.begin(), ids.end(), kPythonTag), ids.end());
  auto run = [&](std::vector<int32_t> render) {
    engine::OutputProcessor out(*tok, /*stop_at_eog=*/true, nullptr, std::move(render));
    std::string text;
    for (int32_t id : ids) {
      if (out.finished()) break;
      text += out.Process(id).text;
    }
    return text + out.Finish();
  };
  // Rendered: the marker only (not <|start_header_id|>, not the ending <|eom_id|>).
  const std::string text = run(markers.ids());
  EXPECT_EQ(text, "Let me look.<|python_tag|>" + call);
  ParsedToolOutput parsed = ParseToolOutput(ToolCallFormat::kLlama3, text);
  ASSERT_EQ(parsed.calls.size(), 1u);
  EXPECT_EQ(parsed.calls[0].name, "get_weather");
  EXPECT_EQ(nlohmann::json::parse(parsed.calls[0].arguments),
            nlohmann::json::parse(R"({"city": "Oslo"})"));
  EXPECT_EQ(parsed.content, "Let me look.");
  // Without rendering the call after text is lost in the content.
  const std::string plain = run({});
  EXPECT_EQ(plain, "Let me look." + call);
  EXPECT_TRUE(ParseToolOutput(ToolCallFormat::kLlama3, plain).calls.empty());
}

TEST(ToolMarkersModel, CallGrammarAllowsTheMarkerTokenNotItsText) {
  std::unique_ptr<Tokenizer> tok = Llama31Vocabulary();
  ASSERT_NE(tok, nullptr);
  const ToolMarkerTokens markers = FindToolMarkerTokens(ToolCallFormat::kLlama3, *tok);
  ToolSpec spec;
  nlohmann::ordered_json params = nlohmann::ordered_json::parse(
      R"({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})");
  spec.tools.push_back({.name = "get_weather", .parameters = params});
  spec.choice = ToolChoiceMode::kRequired;
  Result<std::string> gbnf = ToolCallGbnf(ToolCallFormat::kLlama3, spec, markers);
  ASSERT_TRUE(gbnf.ok()) << gbnf.status().ToString();
  Result<std::shared_ptr<const grammar::Grammar>> g = grammar::Grammar::Compile(*gbnf);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  // The engine's view of the vocabulary: control tokens have no bytes.
  std::vector<std::string> pieces;
  for (int32_t id = 0; id < tok->n_vocab(); ++id) pieces.push_back(tok->TokenToPiece(id, false));
  auto vocab = grammar::TokenVocabulary::Create(std::move(pieces), tok->end_of_generation_ids());
  ASSERT_TRUE(vocab.ok());
  auto m = grammar::Matcher::Create(*g);
  ASSERT_TRUE(m.ok());
  std::vector<uint32_t> mask((*vocab)->mask_words());
  ASSERT_TRUE((*vocab)->FillNextTokenMask(*m, mask));
  auto allowed = [&](int32_t id) { return ((mask[id >> 5] >> (id & 31)) & 1u) != 0; };
  EXPECT_TRUE(allowed(kPythonTag));
  int32_t n_allowed = 0;
  for (int32_t id = 0; id < tok->n_vocab(); ++id) {
    if (!allowed(id) || id == kPythonTag) continue;
    ++n_allowed;
    // Every other allowed token is text that opens the JSON object: no control token (end of
    // turn, headers) and no "<|..." spelling of the marker.
    EXPECT_FALSE(tok->IsControl(id)) << id;
    EXPECT_EQ(tok->TokenToPiece(id, false).find_first_not_of(" \t\n"),
              tok->TokenToPiece(id, false).find('{'))
        << tok->TokenToPiece(id, false);
  }
  EXPECT_GT(n_allowed, 0);
  ASSERT_TRUE((*vocab)->AcceptToken(&*m, kPythonTag));
  for (int32_t id :
       tok->Encode(R"({"name": "get_weather", "parameters": {"city": "Oslo"}})", false, false)) {
    ASSERT_TRUE((*vocab)->AcceptToken(&*m, id)) << tok->TokenToPiece(id, false);
  }
  EXPECT_TRUE(m->IsComplete());
}

}  // namespace
}  // namespace gannet
