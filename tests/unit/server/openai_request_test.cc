// Request parsing and validation of the OpenAI endpoints: every field's wrong type or range gives
// a 400 naming that field, defaults are OpenAI's, and the accepted shapes parse to the right
// values.
#include "server/openai_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace gannet::server {
namespace {

const RequestLimits kLimits{.n_vocab = 1000};

std::optional<ApiError> ParseChat(const std::string& extra, CompletionRequest* out) {
  std::string body = R"({"model":"m","messages":[{"role":"user","content":"hi"}])";
  if (!extra.empty()) body += "," + extra;
  body += "}";
  return ParseCompletionRequest(body, Endpoint::kChat, kLimits, out);
}

std::optional<ApiError> ParseText(const std::string& extra, CompletionRequest* out) {
  std::string body = R"({"model":"m","prompt":"hello")";
  if (!extra.empty()) body += "," + extra;
  body += "}";
  return ParseCompletionRequest(body, Endpoint::kCompletion, kLimits, out);
}

// Expects a 400 for `field: value` whose error names `param`.
void ExpectChatError(const std::string& field_json, const std::string& param) {
  CompletionRequest req;
  std::optional<ApiError> err = ParseChat(field_json, &req);
  ASSERT_TRUE(err.has_value()) << field_json;
  EXPECT_EQ(err->http_status, 400) << field_json;
  EXPECT_EQ(err->param, param) << field_json << ": " << err->message;
  EXPECT_EQ(err->type, "invalid_request_error");
  EXPECT_FALSE(err->message.empty());
}

TEST(OpenAiRequestTest, ChatDefaultsAreOpenAis) {
  CompletionRequest req;
  ASSERT_FALSE(ParseChat("", &req).has_value());
  EXPECT_EQ(req.model, "m");
  ASSERT_EQ(req.messages.size(), 1u);
  EXPECT_EQ(req.messages[0].role, "user");
  EXPECT_EQ(req.messages[0].content, "hi");
  EXPECT_FLOAT_EQ(req.sampling.temperature, 1.0f);
  EXPECT_FLOAT_EQ(req.sampling.top_p, 1.0f);
  EXPECT_EQ(req.sampling.top_k, 0);
  EXPECT_FLOAT_EQ(req.sampling.min_p, 0.0f);
  EXPECT_FALSE(req.max_tokens.has_value());
  EXPECT_EQ(req.n, 1);
  EXPECT_FALSE(req.stream);
  EXPECT_FALSE(req.logprobs);
  EXPECT_FALSE(req.sampling.seed.has_value());
}

TEST(OpenAiRequestTest, ChatFieldsParse) {
  CompletionRequest req;
  auto err = ParseChat(
      R"("max_tokens":5,"temperature":0,"top_p":0.5,"top_k":7,"min_p":0.1,)"
      R"("presence_penalty":-1.5,"frequency_penalty":2,"repetition_penalty":1.1,"seed":42,)"
      R"("stop":["a","","bc"],"n":3,"logprobs":true,"top_logprobs":4,)"
      R"("logit_bias":{"17":-100,"3":2.5},"stream":true,"stream_options":{"include_usage":true},)"
      R"("user":"u1","ignore_eos":true,"unknown_field":{"x":1})",
      &req);
  ASSERT_FALSE(err.has_value()) << err->message;
  EXPECT_EQ(*req.max_tokens, 5);
  EXPECT_FLOAT_EQ(req.sampling.temperature, 0.0f);
  EXPECT_FLOAT_EQ(req.sampling.top_p, 0.5f);
  EXPECT_EQ(req.sampling.top_k, 7);
  EXPECT_FLOAT_EQ(req.sampling.min_p, 0.1f);
  EXPECT_FLOAT_EQ(req.sampling.presence_penalty, -1.5f);
  EXPECT_FLOAT_EQ(req.sampling.frequency_penalty, 2.0f);
  EXPECT_FLOAT_EQ(req.sampling.repeat_penalty, 1.1f);
  EXPECT_EQ(*req.sampling.seed, 42u);
  EXPECT_EQ(req.stop, (std::vector<std::string>{"a", "bc"}));  // empty stops are dropped
  EXPECT_EQ(req.n, 3);
  EXPECT_TRUE(req.logprobs);
  EXPECT_EQ(req.top_logprobs, 4);
  ASSERT_EQ(req.sampling.logit_bias.size(), 2u);
  EXPECT_EQ(req.sampling.logit_bias[0].first, 17);
  EXPECT_FLOAT_EQ(req.sampling.logit_bias[0].second, -100.0f);
  EXPECT_TRUE(req.stream);
  EXPECT_TRUE(req.include_usage);
  EXPECT_EQ(req.user, "u1");
  EXPECT_TRUE(req.ignore_eos);
  CompletionRequest plain;
  ASSERT_FALSE(ParseChat("", &plain));
  EXPECT_FALSE(plain.ignore_eos);
}

TEST(OpenAiRequestTest, MaxCompletionTokensWinsAndNullsAreAbsent) {
  CompletionRequest req;
  ASSERT_FALSE(ParseChat(
      R"("max_tokens":5,"max_completion_tokens":9,"temperature":null,"stop":null)", &req));
  EXPECT_EQ(*req.max_tokens, 9);
  EXPECT_FLOAT_EQ(req.sampling.temperature, 1.0f);
  EXPECT_TRUE(req.stop.empty());
}

TEST(OpenAiRequestTest, StopAsString) {
  CompletionRequest req;
  ASSERT_FALSE(ParseChat(R"("stop":"\n\n")", &req));
  EXPECT_EQ(req.stop, (std::vector<std::string>{"\n\n"}));
}

TEST(OpenAiRequestTest, TopPZeroIsGreedyTopK) {
  CompletionRequest req;
  ASSERT_FALSE(ParseChat(R"("top_p":0)", &req));
  EXPECT_EQ(req.sampling.top_k, 1);
}

TEST(OpenAiRequestTest, WrongTypesNameTheField) {
  ExpectChatError(R"("max_tokens":"5")", "max_tokens");
  ExpectChatError(R"("max_tokens":1.5)", "max_tokens");
  ExpectChatError(R"("max_completion_tokens":true)", "max_completion_tokens");
  ExpectChatError(R"("temperature":"hot")", "temperature");
  ExpectChatError(R"("top_p":[1])", "top_p");
  ExpectChatError(R"("top_k":0.5)", "top_k");
  ExpectChatError(R"("min_p":"0")", "min_p");
  ExpectChatError(R"("presence_penalty":{})", "presence_penalty");
  ExpectChatError(R"("frequency_penalty":"1")", "frequency_penalty");
  ExpectChatError(R"("repetition_penalty":"1")", "repetition_penalty");
  ExpectChatError(R"("seed":"42")", "seed");
  ExpectChatError(R"("seed":1.5)", "seed");
  ExpectChatError(R"("stop":5)", "stop");
  ExpectChatError(R"("stop":["a",5])", "stop");
  ExpectChatError(R"("n":"2")", "n");
  ExpectChatError(R"("logprobs":1)", "logprobs");
  ExpectChatError(R"("logprobs":true,"top_logprobs":"2")", "top_logprobs");
  ExpectChatError(R"("logit_bias":[1])", "logit_bias");
  ExpectChatError(R"("logit_bias":{"1":"x"})", "logit_bias");
  ExpectChatError(R"("stream":"yes")", "stream");
  ExpectChatError(R"("stream":true,"stream_options":1)", "stream_options");
  ExpectChatError(R"("stream":true,"stream_options":{"include_usage":"y"})",
                  "stream_options.include_usage");
  ExpectChatError(R"("user":5)", "user");
  ExpectChatError(R"("ignore_eos":"yes")", "ignore_eos");
  ExpectChatError(R"("model":5)", "model");
}

TEST(OpenAiRequestTest, OutOfRangeNamesTheField) {
  ExpectChatError(R"("max_tokens":0)", "max_tokens");
  ExpectChatError(R"("max_tokens":-3)", "max_tokens");
  ExpectChatError(R"("max_tokens":99999999999)", "max_tokens");
  ExpectChatError(R"("temperature":-0.1)", "temperature");
  ExpectChatError(R"("temperature":2.01)", "temperature");
  ExpectChatError(R"("top_p":1.5)", "top_p");
  ExpectChatError(R"("top_p":-0.1)", "top_p");
  ExpectChatError(R"("top_k":-2)", "top_k");
  ExpectChatError(R"("min_p":1.1)", "min_p");
  ExpectChatError(R"("presence_penalty":2.5)", "presence_penalty");
  ExpectChatError(R"("frequency_penalty":-2.5)", "frequency_penalty");
  ExpectChatError(R"("repetition_penalty":0)", "repetition_penalty");
  ExpectChatError(R"("n":0)", "n");
  ExpectChatError(R"("n":17)", "n");
  ExpectChatError(R"("logprobs":true,"top_logprobs":21)", "top_logprobs");
  ExpectChatError(R"("top_logprobs":2)", "top_logprobs");       // needs logprobs: true
  ExpectChatError(R"("logit_bias":{"1000":1})", "logit_bias");  // n_vocab is 1000
  ExpectChatError(R"("logit_bias":{"-1":1})", "logit_bias");
  ExpectChatError(R"("logit_bias":{"abc":1})", "logit_bias");
  ExpectChatError(R"("logit_bias":{"1":101})", "logit_bias");
  ExpectChatError(
      R"("stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"])",
      "stop");
  ExpectChatError(R"("stream_options":{"include_usage":true})", "stream_options");  // needs stream
}

TEST(OpenAiRequestTest, UnsupportedFieldsAreRefusedNotIgnored) {
  ExpectChatError(R"("functions":[{"name":"f"}])", "functions");
  ExpectChatError(R"("function_call":"auto")", "function_call");
  CompletionRequest req;
  auto text_tools = ParseText(R"("tools":[{"type":"function","function":{"name":"f"}}])", &req);
  ASSERT_TRUE(text_tools);
  EXPECT_EQ(text_tools->param, "tools");
  EXPECT_FALSE(ParseChat(R"("tools":[],"response_format":{"type":"text"})", &req).has_value());
  auto err = ParseText(R"("echo":true)", &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "echo");
  err = ParseText(R"("suffix":"x")", &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "suffix");
}

TEST(OpenAiRequestTest, ResponseFormatJsonCompilesToAGrammar) {
  CompletionRequest req;
  ASSERT_FALSE(ParseChat(R"("response_format":{"type":"text"})", &req).has_value());
  EXPECT_EQ(req.grammar, nullptr);
  ASSERT_FALSE(ParseChat(R"("response_format":{"type":"json_object"})", &req).has_value());
  EXPECT_NE(req.grammar, nullptr);
  req = {};
  ASSERT_FALSE(ParseChat(R"("response_format":{"type":"json_schema","json_schema":{"name":"p",
      "strict":true,"schema":{"type":"object","properties":{"a":{"type":"integer"}},
      "required":["a"],"additionalProperties":false}}})",
                         &req)
                   .has_value());
  EXPECT_NE(req.grammar, nullptr);
  ExpectChatError(R"("response_format":{"type":"json"})", "response_format");
  ExpectChatError(R"("response_format":"json_object")", "response_format");
  ExpectChatError(R"("response_format":{"type":"json_schema"})", "response_format");
  ExpectChatError(R"("response_format":{"type":"json_schema","json_schema":{"name":"x"}})",
                  "response_format");
  ExpectChatError(R"("grammar":"root ::= \"a\"","response_format":{"type":"json_object"})",
                  "response_format");
  auto err = ParseChat(
      R"("response_format":{"type":"json_schema","json_schema":{"name":"x","schema":
      {"type":"object","properties":{"n":{"type":"number","multipleOf":3}}}}})",
      &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "response_format");
  EXPECT_NE(err->message.find("'multipleOf'"), std::string::npos) << err->message;
  EXPECT_NE(err->message.find("#/properties/n"), std::string::npos) << err->message;
}

TEST(OpenAiRequestTest, MessagesAreValidated) {
  CompletionRequest req;
  auto parse = [&](const std::string& messages) {
    return ParseCompletionRequest(R"({"model":"m","messages":)" + messages + "}", Endpoint::kChat,
                                  kLimits, &req);
  };
  auto err = ParseCompletionRequest(R"({"model":"m"})", Endpoint::kChat, kLimits, &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages");
  err = parse("[]");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages");
  err = parse(R"("hi")");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages");
  err = parse(R"([{"content":"x"}])");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].role");
  err = parse(R"([{"role":"user","content":"a"},{"role":"wizard","content":"x"}])");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[1].role");
  err = parse(R"([{"role":"user"}])");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].content");
  err = parse(R"([{"role":"user","content":5}])");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].content");
  err = parse(R"([{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}])");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].content[0].type");
  err = parse(R"([{"role":"user","content":[{"type":"text"}]}])");
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "messages[0].content[0].text");

  err = parse(
      R"([{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"a"},)"
      R"({"type":"text","text":"b"}]},{"role":"assistant","content":null},{"role":"tool","content":"r",)"
      R"("tool_call_id":"c1"}])");
  ASSERT_FALSE(err) << err->message;
  ASSERT_EQ(req.messages.size(), 4u);
  EXPECT_EQ(req.messages[1].parts.size(), 2u);
  EXPECT_EQ(req.messages[1].parts[1].text, "b");
  EXPECT_TRUE(req.messages[2].content_is_null);
  EXPECT_EQ(*req.messages[3].tool_call_id, "c1");
}

TEST(OpenAiRequestTest, PromptShapes) {
  CompletionRequest req;
  auto parse = [&](const std::string& prompt) {
    return ParseCompletionRequest(R"({"model":"m","prompt":)" + prompt + "}", Endpoint::kCompletion,
                                  kLimits, &req);
  };
  ASSERT_FALSE(parse(R"("abc")"));
  EXPECT_FALSE(req.prompt_is_tokens);
  EXPECT_EQ(req.prompt_text, "abc");
  ASSERT_FALSE(parse(R"(["xyz"])"));
  EXPECT_EQ(req.prompt_text, "xyz");
  ASSERT_FALSE(parse("[1,2,999]"));
  EXPECT_TRUE(req.prompt_is_tokens);
  EXPECT_EQ(req.prompt_tokens, (std::vector<int32_t>{1, 2, 999}));
  ASSERT_FALSE(parse("[[5,6]]"));
  EXPECT_EQ(req.prompt_tokens, (std::vector<int32_t>{5, 6}));
  for (const char* bad : {"[1000]", "[-1]", "[1.5]", "[]", "5", R"(["a","b"])", "{}"}) {
    auto err = parse(bad);
    ASSERT_TRUE(err) << bad;
    EXPECT_EQ(err->param, "prompt") << bad;
  }
  auto err = ParseCompletionRequest(R"({"model":"m"})", Endpoint::kCompletion, kLimits, &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "prompt");
}

TEST(OpenAiRequestTest, CompletionLogprobsIsAnInteger) {
  CompletionRequest req;
  ASSERT_FALSE(ParseText(R"("logprobs":3)", &req));
  EXPECT_TRUE(req.logprobs);
  EXPECT_EQ(req.top_logprobs, 3);
  ASSERT_FALSE(ParseText(R"("logprobs":0)", &req));
  EXPECT_TRUE(req.logprobs);
  EXPECT_EQ(req.top_logprobs, 0);
  auto err = ParseText(R"("logprobs":true)", &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "logprobs");
  err = ParseText(R"("logprobs":21)", &req);
  ASSERT_TRUE(err);
  EXPECT_EQ(err->param, "logprobs");
}

TEST(OpenAiRequestTest, BadJsonIsA400) {
  CompletionRequest req;
  for (const char* body : {"", "{", "[1]", "null", "\"x\"", "{\"model\":}"}) {
    auto err = ParseCompletionRequest(body, Endpoint::kChat, kLimits, &req);
    ASSERT_TRUE(err) << body;
    EXPECT_EQ(err->http_status, 400);
  }
}

TEST(OpenAiRequestTest, ErrorJsonHasOpenAisShape) {
  auto j = nlohmann::json::parse(ApiErrorJson({.message = "bad", .param = "n", .code = "c"}));
  EXPECT_EQ(j["error"]["message"], "bad");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["param"], "n");
  EXPECT_EQ(j["error"]["code"], "c");
  j = nlohmann::json::parse(ApiErrorJson({.message = "x"}));
  EXPECT_TRUE(j["error"]["param"].is_null());
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_EQ(j["error"].size(), 4u);
}

TEST(OpenAiRequestTest, ContextLengthErrorNamesTheLimit) {
  ApiError e = ContextLengthError(Endpoint::kChat, 4096, 4000, 200, true);
  EXPECT_EQ(e.http_status, 400);
  EXPECT_EQ(e.code, "context_length_exceeded");
  EXPECT_EQ(e.param, "max_tokens");
  EXPECT_NE(e.message.find("4096"), std::string::npos);
  EXPECT_NE(e.message.find("4200"), std::string::npos);
  e = ContextLengthError(Endpoint::kCompletion, 128, 130, 0, false);
  EXPECT_EQ(e.param, "prompt");
  EXPECT_NE(e.message.find("128"), std::string::npos);
  EXPECT_NE(e.message.find("130"), std::string::npos);
}

}  // namespace
}  // namespace gannet::server
