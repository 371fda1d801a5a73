// Tool-call formats: detection from template text, the grammars of required / named / auto calls
// (texts they accept parse back into calls whose arguments follow the schema; what breaks the
// schema, names another function or calls twice when parallel calls are off is refused), schema
// errors, and the prompt set-up (tools for native templates, the generic system message, history).
#include "chat/tool_calls.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "chat/tool_call_parser.h"
#include "grammar/grammar.h"
#include "grammar/matcher.h"

namespace gannet {
namespace {

using Json = nlohmann::ordered_json;

ToolDefinition Tool(const std::string& name, Json parameters) {
  Json fn = Json{{"name", name}, {"parameters", parameters}};
  return ToolDefinition{.name = name,
                        .parameters = std::move(parameters),
                        .raw = Json{{"type", "function"}, {"function", fn}}};
}

ToolSpec WeatherAndTime(ToolChoiceMode mode, bool parallel = true) {
  ToolSpec spec;
  spec.tools.push_back(Tool("get_weather", Json::parse(R"({"type": "object",
      "properties": {"city": {"type": "string", "maxLength": 20},
                     "unit": {"enum": ["celsius", "fahrenheit"]}},
      "required": ["city"]})")));
  spec.tools.push_back(Tool("get_time", Json::parse(R"({"type": "object",
      "properties": {"zone": {"$ref": "#/$defs/zone"}}, "required": ["zone"],
      "$defs": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}})")));
  spec.choice = mode;
  spec.parallel = parallel;
  return spec;
}

std::shared_ptr<const grammar::Grammar> GrammarOf(ToolCallFormat f, const ToolSpec& spec) {
  Result<std::string> gbnf = ToolCallGbnf(f, spec);
  EXPECT_TRUE(gbnf.ok()) << gbnf.status().ToString();
  if (!gbnf.ok()) return nullptr;
  auto g = grammar::Grammar::Compile(*gbnf);
  EXPECT_TRUE(g.ok()) << g.status().ToString() << "\n" << *gbnf;
  return g.ok() ? *g : nullptr;
}

bool Accepts(const std::shared_ptr<const grammar::Grammar>& g, std::string_view text) {
  auto m = grammar::Matcher::Create(g);
  EXPECT_TRUE(m.ok());
  return m->AcceptBytes(text) && m->IsComplete();
}

TEST(ToolCalls, DetectsFormatsFromTemplateText) {
  EXPECT_EQ(DetectToolCallFormat("{{- '<tool_call>\\n' }}"), ToolCallFormat::kHermes);
  EXPECT_EQ(DetectToolCallFormat("{{- '[TOOL_CALLS][' }}"), ToolCallFormat::kMistral);
  EXPECT_EQ(DetectToolCallFormat("<|start_header_id|> {\"name\": ..., \"parameters\": ...}"),
            ToolCallFormat::kLlama3);
  EXPECT_EQ(DetectToolCallFormat("<start_of_turn>user"), ToolCallFormat::kGeneric);
  Result<ChatTemplate> fallback = ChatTemplate::Parse(ChatTemplate::FallbackSource());
  ASSERT_TRUE(fallback.ok());
  EXPECT_EQ(DetectToolCallFormat(*fallback), ToolCallFormat::kGeneric);
}

// The model files' templates, where the checkout has them (they are fetched, not committed).
TEST(ToolCalls, DetectsFormatsOfRealTemplates) {
  const std::filesystem::path dir = std::filesystem::path(GANNET_SOURCE_DIR) / "models/templates";
  if (!std::filesystem::is_directory(dir)) GTEST_SKIP() << "no models/templates";
  const std::vector<std::pair<std::string, ToolCallFormat>> expected = {
      {"Qwen-Qwen2.5-7B-Instruct", ToolCallFormat::kHermes},
      {"Qwen-Qwen3-0.6B", ToolCallFormat::kHermes},
      {"Qwen-QwQ-32B", ToolCallFormat::kHermes},
      {"meta-llama-Llama-3.1-8B-Instruct", ToolCallFormat::kLlama3},
      {"meta-llama-Llama-3.2-3B-Instruct", ToolCallFormat::kLlama3},
      {"meta-llama-Llama-3.3-70B-Instruct", ToolCallFormat::kLlama3},
      {"mistralai-Mistral-Nemo-Instruct-2407", ToolCallFormat::kMistral},
      {"Mistral-Small-3.2-24B-Instruct-2506", ToolCallFormat::kMistral},
      {"google-gemma-2-2b-it", ToolCallFormat::kGeneric},
      {"microsoft-Phi-3.5-mini-instruct", ToolCallFormat::kGeneric},
  };
  for (const auto& [name, format] : expected) {
    std::ifstream in(dir / (name + ".jinja"));
    if (!in) continue;
    std::stringstream ss;
    ss << in.rdbuf();
    EXPECT_EQ(DetectToolCallFormat(ss.str()), format) << name;
  }
}

TEST(ToolCalls, HermesRequiredGrammar) {
  auto g = GrammarOf(ToolCallFormat::kHermes, WeatherAndTime(ToolChoiceMode::kRequired));
  ASSERT_NE(g, nullptr);
  const std::string one =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"unit\": "
      "\"celsius\"}}\n</tool_call>";
  const std::string two = one +
                          "\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": "
                          "{\"zone\": \"CET\"}}\n</tool_call>";
  EXPECT_TRUE(Accepts(g, one));
  EXPECT_TRUE(Accepts(g, two));
  ParsedToolOutput parsed = ParseToolOutput(ToolCallFormat::kHermes, two);
  ASSERT_EQ(parsed.calls.size(), 2u);
  EXPECT_EQ(Json::parse(parsed.calls[1].arguments), Json::parse(R"({"zone": "CET"})"));
  // Against the schema: a missing required argument, a value outside the enum, an unknown tool,
  // text instead of a call.
  EXPECT_FALSE(
      Accepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(Accepts(g,
                       "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": "
                       "\"PST\"}}\n</tool_call>"));
  EXPECT_FALSE(Accepts(g, "<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>"));
  EXPECT_FALSE(Accepts(g, "Sure!"));
  // parallel_tool_calls false: one call only.
  auto single =
      GrammarOf(ToolCallFormat::kHermes, WeatherAndTime(ToolChoiceMode::kRequired, false));
  EXPECT_TRUE(Accepts(single, one));
  EXPECT_FALSE(Accepts(single, two));
}

TEST(ToolCalls, NamedFunctionGrammarPerFormat) {
  ToolSpec spec = WeatherAndTime(ToolChoiceMode::kNamed);
  spec.named = "get_time";
  const std::string args = "{\"zone\": \"UTC\"}";
  auto hermes = GrammarOf(ToolCallFormat::kHermes, spec);
  EXPECT_TRUE(Accepts(
      hermes, "<tool_call>\n{\"name\": \"get_time\", \"arguments\": " + args + "}\n</tool_call>"));
  EXPECT_FALSE(Accepts(hermes,
                       "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                       "{\"city\": \"x\"}}\n</tool_call>"));
  auto llama = GrammarOf(ToolCallFormat::kLlama3, spec);
  const std::string llama_call = "{\"name\": \"get_time\", \"parameters\": " + args + "}";
  EXPECT_TRUE(Accepts(llama, llama_call));
  EXPECT_FALSE(Accepts(llama, "{\"name\": \"get_time\", \"arguments\": " + args + "}"));
  EXPECT_EQ(ParseToolOutput(ToolCallFormat::kLlama3, llama_call).calls.at(0).arguments, args);
  auto mistral = GrammarOf(ToolCallFormat::kMistral, spec);
  // Without a vocabulary whose [TOOL_CALLS] is a control token, the marker is text.
  EXPECT_TRUE(
      Accepts(mistral, "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": " + args + "}]"));
  EXPECT_FALSE(Accepts(mistral, "[{\"name\": \"get_time\", \"arguments\": " + args + "}]"));
  EXPECT_FALSE(Accepts(mistral, "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": " + args +
                                    "}, {\"name\": \"get_time\", \"arguments\": " + args + "}]"));
  auto generic = GrammarOf(ToolCallFormat::kGeneric, spec);
  EXPECT_TRUE(Accepts(generic,
                      "{\"tool_calls\": [{\"name\": \"get_time\", \"arguments\": " + args + "}]}"));
  EXPECT_FALSE(Accepts(generic, "{\"response\": \"hi\"}"));
}

TEST(ToolCalls, GenericAutoIsCallOrResponse) {
  const ToolSpec spec = WeatherAndTime(ToolChoiceMode::kAuto);
  EXPECT_TRUE(ToolOutputConstrained(ToolCallFormat::kGeneric, spec));
  EXPECT_FALSE(ToolOutputConstrained(ToolCallFormat::kHermes, spec));
  Result<std::string> free_native = ToolCallGbnf(ToolCallFormat::kHermes, spec);
  ASSERT_TRUE(free_native.ok());
  EXPECT_EQ(*free_native, "");
  auto g = GrammarOf(ToolCallFormat::kGeneric, spec);
  EXPECT_TRUE(Accepts(g, "{\"response\": \"It is sunny.\"}"));
  EXPECT_TRUE(Accepts(g,
                      "{\"tool_calls\": [{\"name\": \"get_weather\", \"arguments\": "
                      "{\"city\": \"Oslo\"}}, {\"name\": \"get_time\", \"arguments\": "
                      "{\"zone\": \"UTC\"}}]}"));
  EXPECT_FALSE(Accepts(g, "{\"tool_calls\": []}"));
  EXPECT_FALSE(Accepts(g, "{\"response\": 3}"));
}

// A Mistral-like vocabulary: <unk> <s> </s>, the markers as control tokens, <tool_call> as a
// user-defined token (Qwen's kind: text already), then a few text pieces.
std::unique_ptr<Tokenizer> MarkerVocabulary() {
  VocabSpec s;
  auto add = [&](const std::string& text, TokenType type) {
    s.tokens.push_back(text);
    s.types.push_back(type);
  };
  add("<unk>", TokenType::kUnknown);            // 0
  add("<s>", TokenType::kControl);              // 1
  add("</s>", TokenType::kControl);             // 2
  add("[TOOL_CALLS]", TokenType::kControl);     // 3
  add("[ARGS]", TokenType::kControl);           // 4
  add("<|python_tag|>", TokenType::kControl);   // 5
  add("<tool_call>", TokenType::kUserDefined);  // 6
  for (const char* t : {"[", "]", "{", "}", "\"", ":", " ", ",", "TOOL", "_", "CALLS", "name",
                        "arguments", "get_time", "zone", "UTC", "a", "b", "c"})
    add(t, TokenType::kNormal);
  s.bos = 1;
  s.eos = 2;
  s.unk = 0;
  s.add_space_prefix = false;
  Result<std::unique_ptr<Tokenizer>> t = Tokenizer::FromVocab(std::move(s));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

// The grammar module's view of a vocabulary, as the engine builds it: control tokens have no
// bytes (they are symbols a grammar names as <[id]>).
std::shared_ptr<const grammar::TokenVocabulary> GrammarVocabulary(const Tokenizer& tok) {
  std::vector<std::string> pieces;
  for (int32_t id = 0; id < tok.n_vocab(); ++id) pieces.push_back(tok.TokenToPiece(id, false));
  auto v = grammar::TokenVocabulary::Create(std::move(pieces), tok.end_of_generation_ids());
  EXPECT_TRUE(v.ok());
  return *v;
}

TEST(ToolCalls, MarkerTokensOfAVocabulary) {
  auto tok = MarkerVocabulary();
  ToolMarkerTokens m = FindToolMarkerTokens(ToolCallFormat::kMistral, *tok);
  EXPECT_EQ(m.Find("[TOOL_CALLS]"), 3);
  EXPECT_EQ(m.Find("[ARGS]"), 4);
  EXPECT_EQ(m.Find("[CALL_ID]"), -1);  // not in this vocabulary
  EXPECT_EQ(m.ids(), (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(FindToolMarkerTokens(ToolCallFormat::kLlama3, *tok).ids(), std::vector<int32_t>{5});
  // A user-defined <tool_call> is text already; the generic format has no markers.
  EXPECT_TRUE(FindToolMarkerTokens(ToolCallFormat::kHermes, *tok).ids().empty());
  EXPECT_TRUE(FindToolMarkerTokens(ToolCallFormat::kGeneric, *tok).ids().empty());
}

// A constrained Mistral call starts with the [TOOL_CALLS] token itself: the first mask allows it
// and nothing else (no byte-by-byte "[TOOL_CALLS]").
TEST(ToolCalls, ConstrainedCallStartsWithTheMarkerToken) {
  auto tok = MarkerVocabulary();
  const ToolMarkerTokens markers = FindToolMarkerTokens(ToolCallFormat::kMistral, *tok);
  ToolSpec spec = WeatherAndTime(ToolChoiceMode::kNamed);
  spec.named = "get_time";
  Result<std::string> gbnf = ToolCallGbnf(ToolCallFormat::kMistral, spec, markers);
  ASSERT_TRUE(gbnf.ok()) << gbnf.status().ToString();
  EXPECT_NE(gbnf->find("root ::= <[3]> \"[\""), std::string::npos) << *gbnf;
  auto g = grammar::Grammar::Compile(*gbnf);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto vocab = GrammarVocabulary(*tok);
  auto m = grammar::Matcher::Create(*g);
  ASSERT_TRUE(m.ok());
  std::vector<uint32_t> mask(vocab->mask_words());
  ASSERT_TRUE(vocab->FillNextTokenMask(*m, mask));
  EXPECT_EQ(mask[0], 1u << 3);
  for (size_t w = 1; w < mask.size(); ++w) EXPECT_EQ(mask[w], 0u);
  ASSERT_TRUE(vocab->AcceptToken(&*m, 3));
  EXPECT_TRUE(m->AcceptBytes("[{\"name\": \"get_time\", \"arguments\": {\"zone\": \"UTC\"}}]"));
  EXPECT_TRUE(m->IsComplete());
  // Llama 3: an optional <|python_tag|> token before the JSON.
  const ToolMarkerTokens llama = FindToolMarkerTokens(ToolCallFormat::kLlama3, *tok);
  Result<std::string> lg = ToolCallGbnf(ToolCallFormat::kLlama3, spec, llama);
  ASSERT_TRUE(lg.ok());
  auto g3 = grammar::Grammar::Compile(*lg);
  ASSERT_TRUE(g3.ok()) << g3.status().ToString();
  auto m3 = grammar::Matcher::Create(*g3);
  ASSERT_TRUE(vocab->FillNextTokenMask(*m3, mask));
  EXPECT_EQ(mask[0] & ((1u << 7) - 1), 1u << 5);  // of the first seven, only <|python_tag|>
  EXPECT_TRUE((mask[0] >> 9) & 1u);               // and "{"
}

// auto in a native format: a lazy grammar (the calls' grammar) with the format's triggers.
TEST(ToolCalls, AutoInANativeFormatIsLazy) {
  const ToolSpec spec = WeatherAndTime(ToolChoiceMode::kAuto);
  EXPECT_TRUE(ToolOutputLazy(ToolCallFormat::kHermes, spec));
  EXPECT_FALSE(ToolOutputLazy(ToolCallFormat::kGeneric, spec));
  EXPECT_FALSE(ToolOutputLazy(ToolCallFormat::kHermes, WeatherAndTime(ToolChoiceMode::kRequired)));
  auto tok = MarkerVocabulary();
  // Hermes with a text marker: a word trigger; the grammar reads from "<tool_call>" on.
  grammar::GrammarTriggers t = ToolCallTriggers(ToolCallFormat::kHermes, {});
  EXPECT_EQ(t.words, std::vector<std::string>{"<tool_call>"});
  EXPECT_TRUE(t.tokens.empty());
  Result<std::string> hermes = ToolCallLazyGbnf(ToolCallFormat::kHermes, spec, {});
  ASSERT_TRUE(hermes.ok());
  auto gh = grammar::Grammar::Compile(*hermes);
  ASSERT_TRUE(gh.ok());
  EXPECT_TRUE(Accepts(*gh,
                      "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": "
                      "\"UTC\"}}\n</tool_call>"));
  EXPECT_FALSE(Accepts(*gh,
                       "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"zone\": "
                       "\"PST\"}}\n</tool_call>"));
  // Mistral with a control-token marker: a token trigger.
  const ToolMarkerTokens mistral = FindToolMarkerTokens(ToolCallFormat::kMistral, *tok);
  t = ToolCallTriggers(ToolCallFormat::kMistral, mistral);
  EXPECT_EQ(t.tokens, std::vector<int32_t>{3});
  EXPECT_TRUE(t.words.empty());
  // Llama 3: the <|python_tag|> token, and {"name" at the start, which the grammar reads.
  const ToolMarkerTokens llama = FindToolMarkerTokens(ToolCallFormat::kLlama3, *tok);
  t = ToolCallTriggers(ToolCallFormat::kLlama3, llama);
  EXPECT_EQ(t.tokens, std::vector<int32_t>{5});
  EXPECT_EQ(t.start_words, std::vector<std::string>{"{\"name\""});
  Result<std::string> lg = ToolCallLazyGbnf(ToolCallFormat::kLlama3, spec, llama);
  ASSERT_TRUE(lg.ok());
  auto gl = grammar::Grammar::Compile(*lg);
  ASSERT_TRUE(gl.ok());
  auto m = grammar::Matcher::Create(*gl);
  ASSERT_TRUE(m->AcceptBytes("{\"name\""));
  EXPECT_TRUE(m->AcceptBytes(": \"get_time\", \"parameters\": {\"zone\": \"CET\"}}"));
  EXPECT_TRUE(m->IsComplete());
  // tool_choice none or a generic format: nothing lazy.
  Result<std::string> none = ToolCallLazyGbnf(ToolCallFormat::kGeneric, spec, {});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, "");
}

TEST(ToolCalls, UntypedParametersAreAnyObject) {
  ToolSpec spec;
  spec.tools.push_back(Tool("f", Json::object()));
  spec.choice = ToolChoiceMode::kRequired;
  auto g = GrammarOf(ToolCallFormat::kHermes, spec);
  EXPECT_TRUE(
      Accepts(g, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"x\": [1]}}\n</tool_call>"));
  EXPECT_FALSE(Accepts(g, "<tool_call>\n{\"name\": \"f\", \"arguments\": 3}\n</tool_call>"));
}

TEST(ToolCalls, BadSchemaNamesTheKeyword) {
  ToolSpec spec;
  spec.tools.push_back(Tool("f", Json::parse(R"({"type": "object",
      "properties": {"n": {"type": "number", "multipleOf": 3}}})")));
  spec.choice = ToolChoiceMode::kRequired;
  Result<std::string> gbnf = ToolCallGbnf(ToolCallFormat::kGeneric, spec);
  ASSERT_FALSE(gbnf.ok());
  EXPECT_NE(gbnf.status().message().find("multipleOf"), std::string::npos)
      << gbnf.status().message();
}

TEST(ToolCalls, PromptForNativeAndGenericFormats) {
  ToolSpec spec = WeatherAndTime(ToolChoiceMode::kAuto);
  ChatMessage call{.role = "assistant", .content_is_null = true};
  call.tool_calls = Json::parse(R"([{"id": "call_1", "type": "function", "function":
      {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}])");
  ChatMessage result{.role = "tool", .content = "18 C", .tool_call_id = "call_1"};
  const std::vector<ChatMessage> history = {{.role = "user", .content = "Weather?"}, call, result};

  ChatRenderInput native{.messages = history};
  PrepareToolPrompt(ToolCallFormat::kHermes, &spec, &native);
  ASSERT_TRUE(native.tools.has_value());
  EXPECT_EQ(native.tools->size(), 2u);
  EXPECT_EQ((*native.tools)[0]["function"]["name"], "get_weather");
  // The arguments text became an object for the template.
  EXPECT_EQ(native.messages[1].tool_calls->at(0)["function"]["arguments"]["city"], "Paris");

  ToolSpec none = spec;
  none.choice = ToolChoiceMode::kNone;
  ChatRenderInput native_none{.messages = history};
  PrepareToolPrompt(ToolCallFormat::kHermes, &none, &native_none);
  EXPECT_FALSE(native_none.tools.has_value());

  ChatRenderInput generic{.messages = history};
  PrepareToolPrompt(ToolCallFormat::kGeneric, &spec, &generic);
  EXPECT_FALSE(generic.tools.has_value());
  ASSERT_EQ(generic.messages.size(), 4u);
  EXPECT_EQ(generic.messages[0].role, "system");
  EXPECT_NE(generic.messages[0].content.find("get_time"), std::string::npos);
  EXPECT_NE(generic.messages[0].content.find("\"response\""), std::string::npos);
  EXPECT_EQ(generic.messages[2].content,
            "{\"tool_calls\":[{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}]}");
  EXPECT_FALSE(generic.messages[2].tool_calls.has_value());
  EXPECT_EQ(generic.messages[3].role, "user");
  EXPECT_EQ(generic.messages[3].content,
            "Result of the tool call to 'get_weather' (id call_1):\n18 C");
  // The ChatML fallback renders it.
  Result<ChatTemplate> t = ChatTemplate::Parse(ChatTemplate::FallbackSource());
  ASSERT_TRUE(t.ok());
  EXPECT_TRUE(t->Render(generic).ok());
}

TEST(ToolCalls, GenericDescriptionInTheFirstUserMessage) {
  // A template that refuses a system role, as Gemma 2's does.
  Result<ChatTemplate> t = ChatTemplate::Parse(
      "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not "
      "supported') }}{% endif %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}");
  ASSERT_TRUE(t.ok());
  const ToolSpec spec = WeatherAndTime(ToolChoiceMode::kRequired);
  ChatRenderInput system{.messages = {{.role = "user", .content = "Weather?"}}};
  ChatRenderInput user = system;
  PrepareToolPrompt(ToolCallFormat::kGeneric, &spec, &system);
  EXPECT_FALSE(t->Render(system).ok());
  PrepareToolPrompt(ToolCallFormat::kGeneric, &spec, &user, ToolPromptPlacement::kFirstUserMessage);
  ASSERT_EQ(user.messages.size(), 1u);
  Result<std::string> out = t->Render(user);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(out->rfind("<user>You can call the following tools.", 0), 0u) << *out;
  EXPECT_NE(out->find("at least one tool"), std::string::npos);
  EXPECT_NE(out->find("\n\nWeather?"), std::string::npos);
}

TEST(ToolCalls, CallIds) {
  const std::string id = NewToolCallId(ToolCallFormat::kHermes);
  EXPECT_EQ(id.rfind("call_", 0), 0u);
  EXPECT_EQ(id.size(), 29u);
  EXPECT_NE(id, NewToolCallId(ToolCallFormat::kHermes));
  EXPECT_EQ(NewToolCallId(ToolCallFormat::kMistral).size(), 9u);
}

}  // namespace
}  // namespace gannet
