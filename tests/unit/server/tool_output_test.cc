// ChoiceToolOutput and the tool-call JSON of responses: a choice's text streamed in pieces gives
// chunks whose calls put together equal the whole message (ids included), the first piece of a
// call carries id, type and name, content is null for a message of calls only, and the
// finish_reason becomes tool_calls only for a choice that called and ended by itself.
#include "server/tool_output.h"

#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>

namespace gannet::server {
namespace {

using Json = nlohmann::json;

const ResponseMeta kMeta{.endpoint = Endpoint::kChat, .id = "chatcmpl-x", .model = "m"};

TEST(ToolOutputTest, StreamedChunksEqualTheWholeMessage) {
  const std::string text =
      "Checking.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
      "</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>";
  for (bool constrained : {false, true}) {
    ChoiceToolOutput streamed(ToolCallFormat::kHermes, constrained);
    std::string content;
    std::vector<Json> calls;
    for (size_t i = 0; i <= text.size(); i += 4) {
      const bool last = i + 4 > text.size();
      for (const ChunkDelta& d : streamed.Stream(0, std::string_view(text).substr(i, 4), last)) {
        const Json chunk = Json::parse(ChunkJson(kMeta, d));
        const Json& delta = chunk["choices"][0]["delta"];
        EXPECT_FALSE(delta.contains("content") && delta.contains("tool_calls"));
        if (delta.contains("content")) content += delta["content"].get<std::string>();
        for (const Json& t : delta.value("tool_calls", Json::array())) {
          const size_t index = t["index"];
          if (t.contains("id")) {
            ASSERT_EQ(index, calls.size());
            EXPECT_EQ(t["type"], "function");
            calls.push_back(Json{{"id", t["id"]},
                                 {"name", t["function"]["name"]},
                                 {"arguments", t["function"]["arguments"]}});
          } else {
            ASSERT_LT(index, calls.size());
            EXPECT_FALSE(t["function"].contains("name"));
            calls[index]["arguments"] = calls[index]["arguments"].get<std::string>() +
                                        t["function"]["arguments"].get<std::string>();
          }
        }
      }
    }
    EXPECT_TRUE(streamed.called());
    ChoiceToolOutput whole(ToolCallFormat::kHermes, constrained);
    ChoiceResult r;
    whole.Whole(text, &r);
    EXPECT_EQ(content, "Checking.");
    EXPECT_EQ(r.text, "Checking.");
    EXPECT_FALSE(r.content_null);
    ASSERT_EQ(calls.size(), 2u);
    ASSERT_EQ(r.tool_calls.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(calls[i]["name"], r.tool_calls[i].name);
      EXPECT_EQ(calls[i]["arguments"], r.tool_calls[i].arguments);
      EXPECT_EQ(calls[i]["id"].get<std::string>().rfind("call_", 0), 0u);
    }
    EXPECT_EQ(r.tool_calls[0].arguments, "{\"city\": \"Paris\"}");
  }
}

TEST(ToolOutputTest, WholeResponseJson) {
  ChoiceToolOutput out(ToolCallFormat::kGeneric, true);
  ChoiceResult r{.index = 0};
  out.Whole("{\"tool_calls\": [{\"name\": \"f\", \"arguments\": {\"a\": 1}}]}", &r);
  r.finish_reason = ToolFinishReason("stop", out.called());
  const Json j = Json::parse(CompletionResponseJson(kMeta, {r}, Usage{}));
  const Json& msg = j["choices"][0]["message"];
  EXPECT_TRUE(msg["content"].is_null());
  ASSERT_EQ(msg["tool_calls"].size(), 1u);
  EXPECT_EQ(msg["tool_calls"][0]["type"], "function");
  EXPECT_EQ(msg["tool_calls"][0]["function"]["name"], "f");
  EXPECT_EQ(msg["tool_calls"][0]["function"]["arguments"], "{\"a\": 1}");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "tool_calls");

  ChoiceToolOutput answer(ToolCallFormat::kGeneric, true);
  ChoiceResult a;
  answer.Whole("{\"response\": \"Hello\"}", &a);
  EXPECT_FALSE(answer.called());
  EXPECT_EQ(a.text, "Hello");
  EXPECT_FALSE(a.content_null);
  EXPECT_TRUE(a.tool_calls.empty());
  EXPECT_STREQ(ToolFinishReason("stop", false), "stop");
  EXPECT_STREQ(ToolFinishReason("length", true), "length");
  const Json plain = Json::parse(CompletionResponseJson(kMeta, {a}, Usage{}));
  EXPECT_FALSE(plain["choices"][0]["message"].contains("tool_calls"));
}

}  // namespace
}  // namespace gannet::server
