// The JSON objects of OpenAI's API as gannet writes them: chat.completion, chunks, text
// completions, usage, logprobs, /v1/models.
#include "server/openai_format.h"

#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

namespace gannet::server {
namespace {

using nlohmann::json;

ResponseMeta Meta(Endpoint e) {
  return {.endpoint = e,
          .id = "chatcmpl-x",
          .created = 123,
          .model = "gemma",
          .system_fingerprint = "fp"};
}

TEST(OpenAiFormatTest, ChatCompletion) {
  std::vector<ChoiceResult> choices = {{.index = 0, .text = "Hi!", .finish_reason = "stop"},
                                       {.index = 1, .text = "Yo", .finish_reason = "length"}};
  json j = json::parse(
      CompletionResponseJson(Meta(Endpoint::kChat), choices,
                             {.prompt_tokens = 7, .completion_tokens = 5, .cached_tokens = 4}));
  EXPECT_EQ(j["id"], "chatcmpl-x");
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["created"], 123);
  EXPECT_EQ(j["model"], "gemma");
  EXPECT_EQ(j["system_fingerprint"], "fp");
  ASSERT_EQ(j["choices"].size(), 2u);
  EXPECT_EQ(j["choices"][0]["index"], 0);
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], "Hi!");
  EXPECT_TRUE(j["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(j["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(j["choices"][1]["finish_reason"], "length");
  EXPECT_EQ(j["usage"]["prompt_tokens"], 7);
  EXPECT_EQ(j["usage"]["completion_tokens"], 5);
  EXPECT_EQ(j["usage"]["total_tokens"], 12);
  EXPECT_EQ(j["usage"]["prompt_tokens_details"]["cached_tokens"], 4);
}

TEST(OpenAiFormatTest, TextCompletionWithLogprobs) {
  ChoiceResult c{.index = 0, .text = "ab", .finish_reason = "length", .has_logprobs = true};
  c.logprobs.push_back(
      {.token = "a", .logprob = -0.5f, .top = {{"a", -0.5f}, {"b", -1.0f}}, .text_offset = 0});
  c.logprobs.push_back({.token = "b", .logprob = -INFINITY, .top = {}, .text_offset = 1});
  ResponseMeta meta = Meta(Endpoint::kCompletion);
  json j =
      json::parse(CompletionResponseJson(meta, {c}, {.prompt_tokens = 1, .completion_tokens = 2}));
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], "ab");
  const json& lp = j["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json({"a", "b"}));
  EXPECT_DOUBLE_EQ(lp["token_logprobs"][0].get<double>(), -0.5);
  EXPECT_DOUBLE_EQ(lp["token_logprobs"][1].get<double>(), -9999.0);  // -inf is not JSON
  EXPECT_DOUBLE_EQ(lp["top_logprobs"][0]["b"].get<double>(), -1.0);
  EXPECT_TRUE(lp["top_logprobs"][1].is_object());
  EXPECT_EQ(lp["text_offset"], json({0, 1}));
}

TEST(OpenAiFormatTest, ChatLogprobsShape) {
  ChoiceResult c{.index = 0, .text = "h", .finish_reason = "stop", .has_logprobs = true};
  c.logprobs.push_back({.token = "h", .logprob = -0.25f, .top = {{"h", -0.25f}}});
  json j = json::parse(CompletionResponseJson(Meta(Endpoint::kChat), {c}, {}));
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 1u);
  EXPECT_EQ(content[0]["token"], "h");
  EXPECT_DOUBLE_EQ(content[0]["logprob"].get<double>(), -0.25);
  EXPECT_EQ(content[0]["bytes"], json({104}));
  EXPECT_EQ(content[0]["top_logprobs"][0]["token"], "h");
  EXPECT_EQ(content[0]["top_logprobs"][0]["bytes"], json({104}));
}

TEST(OpenAiFormatTest, InvalidUtf8TokenIsReplacedButBytesKept) {
  ChoiceResult c{.index = 0, .text = "", .finish_reason = "stop", .has_logprobs = true};
  c.logprobs.push_back({.token = "\xE2\x82", .logprob = -1.0f});  // first two bytes of "€"
  json j = json::parse(CompletionResponseJson(Meta(Endpoint::kChat), {c}, {}));
  EXPECT_EQ(j["choices"][0]["logprobs"]["content"][0]["bytes"], json({0xE2, 0x82}));
}

TEST(OpenAiFormatTest, ChatChunks) {
  ResponseMeta meta = Meta(Endpoint::kChat);
  json first = json::parse(ChunkJson(meta, {.index = 1, .role = true, .text = std::string()}));
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["index"], 1);
  EXPECT_EQ(first["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(first["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(first.contains("usage"));

  json mid = json::parse(ChunkJson(meta, {.index = 0, .text = std::string("Hel")}));
  EXPECT_EQ(mid["choices"][0]["delta"], json({{"content", "Hel"}}));

  json last = json::parse(ChunkJson(meta, {.index = 0, .finish_reason = std::string("stop")}));
  EXPECT_EQ(last["choices"][0]["delta"], json::object());
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");

  json usage = json::parse(UsageChunkJson(meta, {.prompt_tokens = 3, .completion_tokens = 4}));
  EXPECT_EQ(usage["choices"], json::array());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);
  EXPECT_EQ(usage["object"], "chat.completion.chunk");
}

TEST(OpenAiFormatTest, TextChunks) {
  ResponseMeta meta = Meta(Endpoint::kCompletion);
  json mid = json::parse(ChunkJson(meta, {.index = 0, .text = std::string("x")}));
  EXPECT_EQ(mid["object"], "text_completion");
  EXPECT_EQ(mid["choices"][0]["text"], "x");
  EXPECT_TRUE(mid["choices"][0]["logprobs"].is_null());
  json last = json::parse(ChunkJson(meta, {.index = 0, .finish_reason = std::string("length")}));
  EXPECT_EQ(last["choices"][0]["text"], "");
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
}

TEST(OpenAiFormatTest, ModelsAndIds) {
  json j = json::parse(ModelListJson("gemma-3", 5));
  EXPECT_EQ(j["object"], "list");
  ASSERT_EQ(j["data"].size(), 1u);
  EXPECT_EQ(j["data"][0]["id"], "gemma-3");
  EXPECT_EQ(j["data"][0]["object"], "model");
  EXPECT_EQ(j["data"][0]["owned_by"], "gannet");
  std::string a = NewResponseId(Endpoint::kChat), b = NewResponseId(Endpoint::kChat);
  EXPECT_EQ(a.rfind("chatcmpl-", 0), 0u);
  EXPECT_NE(a, b);
  EXPECT_EQ(NewResponseId(Endpoint::kCompletion).rfind("cmpl-", 0), 0u);
}

}  // namespace
}  // namespace gannet::server
