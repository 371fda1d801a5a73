// ToolCallParser per format: whole texts, the same texts fed byte by byte (the stream must put
// together to the whole answer and never show markup), malformed calls given back as text,
// parallel calls, braces and quotes inside strings, truncated calls.
#include "chat/tool_call_parser.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

namespace gannet {
namespace {

using Kind = ToolCallDelta::Kind;

ParsedToolOutput ByteByByte(ToolCallFormat f, std::string_view text, ToolCallParserOptions o,
                            std::vector<ToolCallDelta>* all = nullptr) {
  ToolCallParser p(f, o);
  std::vector<ToolCallDelta> deltas;
  for (char c : text) p.Feed(std::string_view(&c, 1), &deltas);
  p.Finish(&deltas);
  ParsedToolOutput out;
  ApplyToolCallDeltas(deltas, &out);
  if (all != nullptr) *all = deltas;
  return out;
}

// The whole text, byte by byte and in chunks of 3 give the same answer, with and without
// streamed arguments.
ParsedToolOutput Parse(ToolCallFormat f, std::string_view text, bool stream_arguments = false) {
  const ToolCallParserOptions o{.stream_arguments = stream_arguments};
  ParsedToolOutput whole = ParseToolOutput(f, text, o);
  ParsedToolOutput bytes = ByteByByte(f, text, o);
  EXPECT_EQ(bytes.content, whole.content) << text;
  EXPECT_EQ(bytes.calls.size(), whole.calls.size()) << text;
  for (size_t i = 0; i < whole.calls.size() && i < bytes.calls.size(); ++i) {
    EXPECT_EQ(bytes.calls[i].name, whole.calls[i].name);
    EXPECT_EQ(bytes.calls[i].arguments, whole.calls[i].arguments);
  }
  ToolCallParser p(f, o);
  std::vector<ToolCallDelta> deltas;
  for (size_t i = 0; i < text.size(); i += 3) p.Feed(text.substr(i, 3), &deltas);
  p.Finish(&deltas);
  ParsedToolOutput chunks;
  ApplyToolCallDeltas(deltas, &chunks);
  EXPECT_EQ(chunks.content, whole.content) << text;
  EXPECT_EQ(chunks.calls.size(), whole.calls.size()) << text;
  return whole;
}

void ExpectCall(const ParsedToolCall& c, const std::string& name, const std::string& args) {
  EXPECT_EQ(c.name, name);
  EXPECT_EQ(c.arguments, args);
  EXPECT_TRUE(nlohmann::json::parse(c.arguments, nullptr, false).is_object()) << c.arguments;
}

TEST(ToolCallParser, HermesCallAfterText) {
  ParsedToolOutput out = Parse(ToolCallFormat::kHermes,
                               "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", "
                               "\"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n");
  EXPECT_EQ(out.content, "Let me check.");
  ASSERT_EQ(out.calls.size(), 1u);
  ExpectCall(out.calls[0], "get_weather", "{\"city\": \"Paris\"}");
}

TEST(ToolCallParser, HermesParallelAndNestedBraces) {
  const std::string text =
      "<tool_call>\n{\"name\": \"run\", \"arguments\": {\"code\": \"if (a) { b(\\\"}\\\"); }\", "
      "\"n\": [1, {\"x\": -2.5e3}]}}\n</tool_call>\n<tool_call>\n{\"name\": \"f\", "
      "\"arguments\": {}}\n</tool_call>";
  for (bool stream : {false, true}) {
    ParsedToolOutput out = Parse(ToolCallFormat::kHermes, text, stream);
    EXPECT_EQ(out.content, "");
    ASSERT_EQ(out.calls.size(), 2u);
    ExpectCall(out.calls[0], "run",
               "{\"code\": \"if (a) { b(\\\"}\\\"); }\", \"n\": [1, {\"x\": -2.5e3}]}");
    ExpectCall(out.calls[1], "f", "{}");
  }
}

TEST(ToolCallParser, MalformedCallsAreText) {
  for (const std::string& text : {
           std::string("<tool_call>\nnot json\n</tool_call>"),
           std::string("<tool_call>\n{\"name\": 3, \"arguments\": {}}\n</tool_call>"),
           std::string("<tool_call>\n{\"arguments\": {}}</tool_call>"),
           std::string("<tool_call>\n{\"name\": \"f\", \"arguments\": [1]}\n</tool_call>"),
           std::string("<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": tru}}"),
           std::string("a <tool_c b"),
       }) {
    ParsedToolOutput out = Parse(ToolCallFormat::kHermes, text);
    EXPECT_TRUE(out.calls.empty()) << text;
    EXPECT_EQ(out.content, text);
  }
}

TEST(ToolCallParser, TruncatedCall) {
  const std::string text = "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": \"xy";
  ParsedToolOutput free_text = Parse(ToolCallFormat::kHermes, text);
  EXPECT_TRUE(free_text.calls.empty());
  EXPECT_EQ(free_text.content, text);
  // Constrained output streams the arguments; what came stays a call.
  ParsedToolOutput streamed = Parse(ToolCallFormat::kHermes, text, /*stream_arguments=*/true);
  EXPECT_EQ(streamed.content, "");
  ASSERT_EQ(streamed.calls.size(), 1u);
  EXPECT_EQ(streamed.calls[0].arguments, "{\"a\": \"xy");
}

TEST(ToolCallParser, StreamedDeltasNeverShowMarkup) {
  const std::string text =
      "Sure.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
      "</tool_call>";
  for (bool stream : {false, true}) {
    std::vector<ToolCallDelta> deltas;
    ByteByByte(ToolCallFormat::kHermes, text, {.stream_arguments = stream}, &deltas);
    int arg_pieces = 0;
    for (const ToolCallDelta& d : deltas) {
      if (d.kind == Kind::kContent) {
        EXPECT_EQ(d.text.find('<'), std::string::npos) << d.text;
      }
      if (d.kind == Kind::kArguments) ++arg_pieces;
    }
    // Streamed arguments come byte by byte; otherwise the call comes whole.
    if (stream) {
      EXPECT_GT(arg_pieces, 5);
    } else {
      EXPECT_EQ(arg_pieces, 1);
    }
  }
}

TEST(ToolCallParser, Llama3) {
  ParsedToolOutput out = Parse(ToolCallFormat::kLlama3,
                               "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}");
  ASSERT_EQ(out.calls.size(), 1u);
  ExpectCall(out.calls[0], "get_weather", "{\"city\": \"Oslo\"}");
  EXPECT_EQ(out.content, "");
  out = Parse(ToolCallFormat::kLlama3,
              "<|python_tag|>{\"type\": \"function\", \"name\": \"a\", \"parameters\": {}}; "
              "{\"name\": \"b\", \"parameters\": {\"x\": 1}}");
  ASSERT_EQ(out.calls.size(), 2u);
  ExpectCall(out.calls[0], "a", "{}");
  ExpectCall(out.calls[1], "b", "{\"x\": 1}");
  // JSON that is not a call, and JSON after text, are content.
  for (const std::string& text :
       {std::string("{\"a\": 1}"), std::string("Use {\"name\": \"f\"}.")}) {
    out = Parse(ToolCallFormat::kLlama3, text);
    EXPECT_TRUE(out.calls.empty());
    EXPECT_EQ(out.content, text);
  }
}

TEST(ToolCallParser, Mistral) {
  ParsedToolOutput out = Parse(ToolCallFormat::kMistral,
                               "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"q\": \"]\"}, "
                               "\"id\": \"abc123def\"}, {\"name\": \"b\", \"arguments\": {}}]");
  ASSERT_EQ(out.calls.size(), 2u);
  ExpectCall(out.calls[0], "a", "{\"q\": \"]\"}");
  ExpectCall(out.calls[1], "b", "{}");
  // [TOOL_CALLS] is a control token the detokenizer drops: the bare array at the start.
  out = Parse(ToolCallFormat::kMistral, "[{\"name\": \"a\", \"arguments\": {\"k\": 1}}]");
  ASSERT_EQ(out.calls.size(), 1u);
  ExpectCall(out.calls[0], "a", "{\"k\": 1}");
  // Mistral Small 3.2: [TOOL_CALLS]name[ARGS]{...}.
  out = Parse(ToolCallFormat::kMistral, "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Rome\"}");
  ASSERT_EQ(out.calls.size(), 1u);
  ExpectCall(out.calls[0], "get_weather", "{\"city\": \"Rome\"}");
  out = Parse(ToolCallFormat::kMistral, "A list: [1, 2]");
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, "A list: [1, 2]");
  out = Parse(ToolCallFormat::kMistral, "[1, 2]");
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, "[1, 2]");
}

// The engine renders the marker tokens (GenerationRequest::render_tokens), so a call after text
// is found by its marker; without the marker the same call would be content.
TEST(ToolCallParser, MarkersAfterText) {
  ParsedToolOutput out = Parse(ToolCallFormat::kMistral,
                               "Let me check.[TOOL_CALLS][{\"name\": \"get_weather\", "
                               "\"arguments\": {\"city\": \"Rome\"}}]");
  ASSERT_EQ(out.calls.size(), 1u);
  ExpectCall(out.calls[0], "get_weather", "{\"city\": \"Rome\"}");
  EXPECT_EQ(out.content, "Let me check.");
  out = Parse(ToolCallFormat::kMistral,
              "Let me check.[{\"name\": \"get_weather\", \"arguments\": {}}]");
  EXPECT_TRUE(out.calls.empty());
  out = Parse(ToolCallFormat::kLlama3,
              "Searching.\n<|python_tag|>{\"name\": \"search\", \"parameters\": {\"q\": \"x\"}}",
              /*stream_arguments=*/true);
  ASSERT_EQ(out.calls.size(), 1u);
  ExpectCall(out.calls[0], "search", "{\"q\": \"x\"}");
  EXPECT_EQ(out.content, "Searching.");
  // Mistral Small 3.2 writes one [TOOL_CALLS] per call and a call id, which is not kept.
  out = Parse(ToolCallFormat::kMistral,
              "On it.[TOOL_CALLS]get_weather[CALL_ID]abc123def[ARGS]{\"city\": \"Rome\"}"
              "[TOOL_CALLS]get_time[ARGS]{\"zone\": \"CET\"}");
  ASSERT_EQ(out.calls.size(), 2u);
  ExpectCall(out.calls[0], "get_weather", "{\"city\": \"Rome\"}");
  ExpectCall(out.calls[1], "get_time", "{\"zone\": \"CET\"}");
  EXPECT_EQ(out.content, "On it.");
  // A marker not followed by a call is text.
  out = Parse(ToolCallFormat::kMistral, "[TOOL_CALLS]get weather");
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, "[TOOL_CALLS]get weather");
  out = Parse(ToolCallFormat::kMistral, "[TOOL_CALLS]f[CALL_ID]x y");
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, "[TOOL_CALLS]f[CALL_ID]x y");
}

TEST(ToolCallParser, GenericCallsAndResponse) {
  for (bool stream : {false, true}) {
    ParsedToolOutput out =
        Parse(ToolCallFormat::kGeneric,
              "{\"tool_calls\": [{\"name\": \"f\", \"arguments\": {\"s\": \"{\"}}, "
              "{\"name\": \"g\", \"arguments\": {}}]}",
              stream);
    ASSERT_EQ(out.calls.size(), 2u);
    ExpectCall(out.calls[0], "f", "{\"s\": \"{\"}");
    ExpectCall(out.calls[1], "g", "{}");
    EXPECT_EQ(out.content, "");
    out = Parse(ToolCallFormat::kGeneric,
                "{\"response\": \"Hi \\\"there\\\" \\u00e9\\ud83d\\ude80\\n\"}", stream);
    EXPECT_TRUE(out.calls.empty());
    EXPECT_EQ(out.content, "Hi \"there\" \xC3\xA9\xF0\x9F\x9A\x80\n");
  }
  ParsedToolOutput out = Parse(ToolCallFormat::kGeneric, "{\"other\": 1}");
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, "{\"other\": 1}");
}

TEST(ToolCallParser, DeepNestingIsText) {
  const std::string deep =
      "<tool_call>{\"name\": \"f\", \"arguments\": {\"a\": " + std::string(100000, '[') +
      "}}</tool_call>";
  ParsedToolOutput out = ParseToolOutput(ToolCallFormat::kHermes, deep);
  EXPECT_TRUE(out.calls.empty());
  EXPECT_EQ(out.content, deep);
}

TEST(ToolCallParser, ArgumentsAsJsonText) {
  ParsedToolOutput out = Parse(ToolCallFormat::kHermes,
                               "<tool_call>{\"name\": \"f\", \"arguments\": \"{\\\"a\\\": 1}\"}"
                               "</tool_call>");
  ASSERT_EQ(out.calls.size(), 1u);
  ExpectCall(out.calls[0], "f", "{\"a\": 1}");
}

TEST(ToolCallParser, DecodeJsonStringPrefixHoldsPartialEscapes) {
  std::string out;
  EXPECT_EQ(DecodeJsonStringPrefix("ab\\u00", false, &out), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  EXPECT_EQ(DecodeJsonStringPrefix("\\ud83d", false, &out), 0u);
  EXPECT_EQ(DecodeJsonStringPrefix("\\ud83d", true, &out), 6u);
  EXPECT_EQ(out, "\xEF\xBF\xBD");
}

// Random texts made of call markup, JSON pieces and prose, split at random places: every split
// gives the whole text's answer, content never shows an opening marker of a taken call, and every
// call's arguments are a JSON object whenever the text was not cut short.
TEST(ToolCallParser, RandomSplitsGiveTheWholeAnswer) {
  const std::vector<std::string> pieces = {
      "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "[ARGS]", "[CALL_ID]",
      "abc123def", "{", "}", "[", "]", "\"name\"", "\"arguments\"", "\"parameters\"",
      "\"tool_calls\"", "\"response\"", ":", ",", " ", "\n", "\"f\"", "\"a\\\"b\"", "1", "-2.5e3",
      "true", "null", "hi", "<", "\\u00e9", "\"\\ud83d\\ude80\"", ";", "get_weather",
      // Whole and partial calls of every format.
      "{\"name\": \"f\", \"arguments\": {\"a\": [1, {\"b\": \"}\"}]}}",
      "{\"name\": \"g\", \"parameters\": {}}", "[{\"name\": \"f\", \"arguments\": {}}]",
      "{\"tool_calls\": [{\"name\": \"f\", \"arguments\": {\"x\": \"]\"}}]}",
      "{\"response\": \"ok \\\"q\\\"\\n\"}", "{\"name\": \"f\", \"arguments\": {\"a\": "};
  std::mt19937 rng(1234);
  int with_calls = 0;
  for (int iter = 0; iter < 4000; ++iter) {
    std::string text;
    const int n = 1 + static_cast<int>(rng() % 40);
    for (int i = 0; i < n; ++i) text += pieces[rng() % pieces.size()];
    for (ToolCallFormat f : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3,
                             ToolCallFormat::kMistral, ToolCallFormat::kGeneric}) {
      for (bool stream : {false, true}) {
        const ToolCallParserOptions o{.stream_arguments = stream};
        const ParsedToolOutput whole = ParseToolOutput(f, text, o);
        ToolCallParser p(f, o);
        std::vector<ToolCallDelta> deltas;
        for (size_t at = 0; at < text.size();) {
          const size_t len = 1 + rng() % 7;
          p.Feed(std::string_view(text).substr(at, len), &deltas);
          at += len;
        }
        p.Finish(&deltas);
        ParsedToolOutput split;
        ApplyToolCallDeltas(deltas, &split);
        with_calls += !whole.calls.empty();
        ASSERT_EQ(split.content, whole.content) << text;
        ASSERT_EQ(split.calls.size(), whole.calls.size()) << text;
        for (size_t i = 0; i < whole.calls.size(); ++i) {
          ASSERT_EQ(split.calls[i].name, whole.calls[i].name) << text;
          ASSERT_EQ(split.calls[i].arguments, whole.calls[i].arguments) << text;
          if (!stream) {
            ASSERT_TRUE(nlohmann::json::parse(whole.calls[i].arguments, nullptr, false).is_object())
                << text;
          }
        }
      }
    }
  }
  EXPECT_GT(with_calls, 1000);  // of 32000 parses: the texts do hold calls
}

// Found by fuzz/tool_calls_fuzz.cc: a Mistral call whose object has a key that only starts like
// "arguments" and then the name's value repeated under a key that is not "name".
TEST(ToolCallParser, MistralLookalikeKeysSplitAnyWay) {
  const std::string text =
      "fy[TOOL_CALLS][{\"name\": \"add\", \"argumentsme\": \"sub\", \"arGuments\": {}}]";
  for (bool stream : {false, true}) Parse(ToolCallFormat::kMistral, text, stream);
}

// Found by the tool_calls fuzz target: a repeated "arguments" member streamed the text between
// the two members as arguments, so the streamed answer depended on the split. The first member
// counts, whatever follows.
TEST(ToolCallParser, RepeatedArgumentsMemberKeepsTheFirst) {
  for (bool stream : {false, true}) {
    ParsedToolOutput out =
        Parse(ToolCallFormat::kLlama3, "{\"name\":\"b\",\"arguments\":{\"x\":1},\"arguments\":{}}",
              stream);
    ASSERT_EQ(out.calls.size(), 1u) << stream;
    ExpectCall(out.calls[0], "b", "{\"x\":1}");
    out = Parse(ToolCallFormat::kHermes,
                "<tool_call>{\"name\":\"b\",\"parameters\":{},\"arguments\":{\"y\":2},"
                "\"arguments\":{}}</tool_call>",
                stream);
    ASSERT_EQ(out.calls.size(), 1u) << stream;
    ExpectCall(out.calls[0], "b", "{}");
  }
}

}  // namespace
}  // namespace gannet
