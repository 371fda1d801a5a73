// The tool fields of a chat request: accepted shapes become a ToolSpec; every mistake is a 400
// naming the field (the tool's index, the schema keyword the grammar cannot enforce, the unknown
// function of tool_choice); tools and other output constraints or logprobs are refused together.
#include "server/openai_tools.h"

#include <gtest/gtest.h>

namespace gannet::server {
namespace {

const RequestLimits kLimits{.n_vocab = 1000};
const std::string kWeather =
    R"({"type":"function","function":{"name":"get_weather","description":"d","parameters":)"
    R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}})";

std::optional<ApiError> ParseChat(const std::string& extra, CompletionRequest* out) {
  const std::string body =
      R"({"model":"m","messages":[{"role":"user","content":"hi"}],)" + extra + "}";
  return ParseCompletionRequest(body, Endpoint::kChat, kLimits, out);
}

void ExpectError(const std::string& extra, const std::string& param,
                 const std::string& in_message = "") {
  CompletionRequest req;
  std::optional<ApiError> err = ParseChat(extra, &req);
  ASSERT_TRUE(err.has_value()) << extra;
  EXPECT_EQ(err->http_status, 400);
  EXPECT_EQ(err->param, param) << extra << ": " << err->message;
  EXPECT_NE(err->message.find(in_message), std::string::npos) << err->message;
}

TEST(OpenAiToolsTest, AcceptedShapes) {
  CompletionRequest req;
  ASSERT_FALSE(ParseChat(R"("tools":[)" + kWeather + "]", &req));
  ASSERT_TRUE(req.tools.has_value());
  EXPECT_EQ(req.tools->tools.size(), 1u);
  EXPECT_EQ(req.tools->tools[0].name, "get_weather");
  EXPECT_EQ(req.tools->tools[0].description, "d");
  EXPECT_EQ(req.tools->choice, ToolChoiceMode::kAuto);
  EXPECT_TRUE(req.tools->parallel);
  EXPECT_EQ(req.tools->tools[0].raw["function"]["name"], "get_weather");
  EXPECT_EQ(req.grammar, nullptr);  // the service builds it for the model's format

  ASSERT_FALSE(ParseChat(R"("tools":[)" + kWeather +
                             R"(],"tool_choice":{"type":"function","function":{"name":)"
                             R"("get_weather"}},"parallel_tool_calls":false)",
                         &req));
  EXPECT_EQ(req.tools->choice, ToolChoiceMode::kNamed);
  EXPECT_EQ(req.tools->named, "get_weather");
  EXPECT_FALSE(req.tools->parallel);
  for (const auto& [word, mode] : {std::pair{"none", ToolChoiceMode::kNone},
                                   std::pair{"required", ToolChoiceMode::kRequired}}) {
    ASSERT_FALSE(ParseChat(R"("tools":[)" + kWeather + R"(],"tool_choice":")" + word + "\"", &req));
    EXPECT_EQ(req.tools->choice, mode);
  }
  // No parameters: a function without arguments.
  ASSERT_FALSE(ParseChat(R"("tools":[{"type":"function","function":{"name":"now"}}])", &req));
  EXPECT_EQ(req.tools->tools[0].parameters["properties"], nlohmann::ordered_json::object());
  // An empty list is no tools.
  ASSERT_FALSE(ParseChat(R"("tools":[])", &req));
  EXPECT_FALSE(req.tools.has_value());
  // tool_choice none with logprobs: plain text, allowed.
  EXPECT_FALSE(
      ParseChat(R"("tools":[)" + kWeather + R"(],"tool_choice":"none","logprobs":true)", &req));
}

TEST(OpenAiToolsTest, MistakesNameTheField) {
  ExpectError(R"("tools":{})", "tools");
  ExpectError(R"("tools":[1])", "tools[0]");
  ExpectError(R"("tools":[{"type":"code_interpreter"}])", "tools[0].type");
  ExpectError(R"("tools":[{"type":"function"}])", "tools[0].function");
  ExpectError(R"("tools":[{"type":"function","function":{"name":7}}])", "tools[0].function.name");
  ExpectError(R"("tools":[{"type":"function","function":{"name":"a b"}}])",
              "tools[0].function.name");
  ExpectError(R"("tools":[{"type":"function","function":{"name":"f","description":1}}])",
              "tools[0].function.description");
  ExpectError(R"("tools":[{"type":"function","function":{"name":"f","parameters":[]}}])",
              "tools[0].function.parameters");
  ExpectError(R"("tools":[)" + kWeather + "," + kWeather + "]", "tools[1].function.name",
              "used by two tools");
  ExpectError(R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":)"
              R"("object","properties":{"s":{"type":"string","not":{}}}}}}])",
              "tools[0].function.parameters", "'not'");
  ExpectError(R"("tools":[{"type":"function","function":{"name":"f","parameters":{"type":)"
              R"("string"}}}])",
              "tools[0].function.parameters", "object");
  ExpectError(R"("tools":[)" + kWeather + R"(],"tool_choice":"maybe")", "tool_choice");
  ExpectError(R"("tools":[)" + kWeather +
                  R"(],"tool_choice":{"type":"function","function":{"name":"other"}})",
              "tool_choice", "'other'");
  ExpectError(R"("tool_choice":"auto")", "tool_choice", "only allowed when 'tools'");
  ExpectError(R"("tools":[)" + kWeather + R"(],"parallel_tool_calls":1)", "parallel_tool_calls");
  ExpectError(R"("tools":[)" + kWeather + R"(],"logprobs":true)", "logprobs");
  ExpectError(R"("tools":[)" + kWeather + R"(],"response_format":{"type":"json_object"})",
              "response_format");
  ExpectError(R"("tools":[)" + kWeather + R"(],"grammar":"root ::= \"a\"")", "grammar");
}

TEST(OpenAiToolsTest, HistoryToolCallsAreChecked) {
  CompletionRequest req;
  const std::string ok =
      R"({"model":"m","messages":[{"role":"user","content":"hi"},{"role":"assistant",)"
      R"("content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"f",)"
      R"("arguments":"{\"a\":1}"}}]},{"role":"tool","tool_call_id":"call_1","content":"2"}]})";
  ASSERT_FALSE(ParseCompletionRequest(ok, Endpoint::kChat, kLimits, &req));
  ASSERT_EQ(req.messages.size(), 3u);
  EXPECT_EQ(*req.messages[2].tool_call_id, "call_1");
  const std::string no_name =
      R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":)"
      R"([{"id":"c","type":"function","function":{"arguments":"{}"}}]}]})";
  std::optional<ApiError> err = ParseCompletionRequest(no_name, Endpoint::kChat, kLimits, &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].tool_calls[0].function.name");
  const std::string bad_args =
      R"({"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":)"
      R"([{"id":"c","type":"function","function":{"name":"f","arguments":3}}]}]})";
  err = ParseCompletionRequest(bad_args, Endpoint::kChat, kLimits, &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].tool_calls[0].function.arguments");
}

}  // namespace
}  // namespace gannet::server
