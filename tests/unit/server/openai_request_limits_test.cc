// Hostile request bodies: each is a 400 in OpenAI's error shape naming what was exceeded, answered
// in time linear in the body, tens of milliseconds on a quiet machine (a million-deep nesting
// anywhere, 100k keys, huge strings, deep tool_calls, many messages, a huge logit_bias, many stop
// strings, 8 MiB of numbers); values as deep as the limit allows still parse and are copied and
// destroyed without trouble.
#include <gtest/gtest.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "server/openai_request.h"

namespace gannet::server {
namespace {

// The time a linear pass over `text` takes on this machine now: nlohmann's accept(), which lexes
// and checks the grammar without building anything. Bounding a parse by a multiple of it checks
// that the cost is linear (100k keys through ordered_json cost 3000 times more) on a loaded
// or sanitized build as on a quiet optimised one.
double LinearBudgetMs(std::string_view text) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool ok = nlohmann::json::accept(text);
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  (void)ok;
  return 30 * ms + 100;
}

const RequestLimits kLimits{.n_vocab = 300000};

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// The body's parse: the error it gives (or none) and how long it took.
struct Outcome {
  std::optional<ApiError> error;
  double ms = 0;
};

Outcome Parse(const std::string& body, Endpoint endpoint = Endpoint::kChat,
              const RequestLimits& limits = kLimits) {
  CompletionRequest req;
  const auto t0 = std::chrono::steady_clock::now();
  Outcome o;
  o.error = ParseCompletionRequest(body, endpoint, limits, &req);
  o.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return o;
}

// Expects a fast 400 whose message contains `what` (and whose param is `param`).
void ExpectRefused(const std::string& body, const std::string& what, const std::string& param = "",
                   Endpoint endpoint = Endpoint::kChat) {
  Outcome o = Parse(body, endpoint);
  ASSERT_TRUE(o.error.has_value()) << what;
  EXPECT_EQ(o.error->http_status, 400);
  EXPECT_EQ(o.error->type, "invalid_request_error");
  EXPECT_EQ(o.error->param, param) << o.error->message;
  EXPECT_NE(o.error->message.find(what), std::string::npos) << o.error->message;
  EXPECT_LT(o.ms, LinearBudgetMs(body)) << what << ": " << o.ms << " ms";
  const nlohmann::json shape = nlohmann::json::parse(ApiErrorJson(*o.error));
  EXPECT_TRUE(shape["error"].contains("message") && shape["error"].contains("code"));
}

std::string Chat(const std::string& messages, const std::string& extra = "") {
  return R"({"model":"m","messages":)" + messages + (extra.empty() ? "" : "," + extra) + "}";
}

TEST(OpenAiRequestLimitsTest, MillionDeepExtraMessageField) {
  // The body of the report: 2 MB, nested a million deep inside an extra message field.
  const std::string body = Chat(R"([{"role":"user","content":"hi","x":)" + Nested(1000000) + "}]");
  ExpectRefused(body, "deeper than 64 levels");
  Outcome o = Parse(body);
  ASSERT_TRUE(o.error.has_value());
  EXPECT_EQ(o.error->code, "json_limit_exceeded");
}

TEST(OpenAiRequestLimitsTest, MillionDeepEverywhere) {
  std::string objects;
  for (int i = 0; i < 1000000; ++i) objects += "{\"a\":";
  ExpectRefused(objects, "deeper than 64 levels");
  ExpectRefused(Chat(R"([{"role":"user","content":"hi"}])", "\"stop\":" + Nested(1000000)),
                "deeper than 64 levels");
  ExpectRefused(R"({"model":"m","prompt":)" + Nested(1000000) + "}", "deeper than 64 levels", "",
                Endpoint::kCompletion);
}

TEST(OpenAiRequestLimitsTest, DeepToolCalls) {
  const std::string deep = R"([{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":)"
                           R"("function","function":{"name":"f","arguments":)" +
                           Nested(500000) + "}}]}]";
  ExpectRefused(Chat(deep), "deeper than 64 levels");
  // As deep as the limit allows: parsed, copied into the message, destroyed.
  std::string ok = R"([{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":)"
                   R"("function","function":{"name":"f","arguments":)" +
                   Nested(64 - 6) + "}}]}]";
  Outcome o = Parse(Chat(ok));
  EXPECT_FALSE(o.error.has_value()) << o.error->message;
  ExpectRefused(Chat(R"([{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":)"
                     R"("function","function":{"name":"f","arguments":)" +
                     Nested(64 - 5) + "}}]}]"),
                "deeper than 64 levels");
}

TEST(OpenAiRequestLimitsTest, HundredThousandKeys) {
  std::string keys;
  for (int i = 0; i < 100000; ++i) keys += ",\"k" + std::to_string(i) + "\":1";
  ExpectRefused(Chat(R"([{"role":"user","content":"hi"}])", keys.substr(1)), "more than 4096 keys");
  ExpectRefused(Chat(R"([{"role":"user","content":"hi")" + keys + "}]"), "more than 4096 keys");
  // Within the JSON limits a message's own fields are bounded separately (each is looked up and
  // copied by key).
  std::string fields;
  for (int i = 0; i < 65; ++i) fields += ",\"f" + std::to_string(i) + "\":1";
  ExpectRefused(Chat(R"([{"role":"user","content":"hi")" + fields + "}]"), "more than 64 fields",
                "messages[0]");
}

TEST(OpenAiRequestLimitsTest, HugeStrings) {
  const std::string big(5 << 20, 'a');
  ExpectRefused(Chat(R"([{"role":"user","content":")" + big + "\"}]"), "string is longer");
  ExpectRefused(Chat(R"([{"role":"user","content":"hi",")" + big + "\":1}]"), "key is longer");
  // A long prompt within the limit is accepted.
  const std::string body =
      Chat(R"([{"role":"user","content":")" + std::string(3 << 20, 'b') + "\"}]");
  Outcome o = Parse(body);
  EXPECT_FALSE(o.error.has_value());
  EXPECT_LT(o.ms, LinearBudgetMs(body));
}

TEST(OpenAiRequestLimitsTest, ManyMessages) {
  std::string msgs = "[";
  for (int i = 0; i < 200000; ++i)
    msgs += std::string(i ? "," : "") + R"({"role":"user","content":""})";
  ExpectRefused(Chat(msgs + "]"), "maximum length 2048", "messages");
  std::string ok = "[";
  for (int i = 0; i < 2048; ++i)
    ok += std::string(i ? "," : "") + R"({"role":"user","content":"x"})";
  Outcome o = Parse(Chat(ok + "]"));
  EXPECT_FALSE(o.error.has_value());
}

TEST(OpenAiRequestLimitsTest, HugeLogitBias) {
  std::string bias;
  for (int i = 0; i < 500000; ++i)
    bias += std::string(i ? "," : "") + "\"" + std::to_string(i) + "\":1";
  ExpectRefused(Chat(R"([{"role":"user","content":"hi"}])", "\"logit_bias\":{" + bias + "}"),
                "more than 4096 keys");
  // 4096 distinct tokens are accepted, in linear time.
  std::string ok;
  for (int i = 0; i < 4096; ++i)
    ok += std::string(i ? "," : "") + "\"" + std::to_string(i) + "\":-1";
  const std::string body =
      Chat(R"([{"role":"user","content":"hi"}])", "\"logit_bias\":{" + ok + "}");
  Outcome o = Parse(body);
  EXPECT_FALSE(o.error.has_value()) << o.error->message;
  EXPECT_LT(o.ms, LinearBudgetMs(body));
}

TEST(OpenAiRequestLimitsTest, ManyStopStrings) {
  std::string stops;
  for (int i = 0; i < 1000000; ++i) stops += std::string(i ? "," : "") + "\"s\"";
  ExpectRefused(Chat(R"([{"role":"user","content":"hi"}])", "\"stop\":[" + stops + "]"),
                "more than 262144 elements");
  std::string some;
  for (int i = 0; i < 100000; ++i) some += std::string(i ? "," : "") + "\"s\"";
  ExpectRefused(Chat(R"([{"role":"user","content":"hi"}])", "\"stop\":[" + some + "]"),
                "at most 16 stop sequences", "stop");
}

TEST(OpenAiRequestLimitsTest, EightMebibytesOfNumbers) {
  std::string ids = "[";
  while (ids.size() < (8u << 20)) ids += "1,";
  ExpectRefused(R"({"model":"m","prompt":)" + ids + "1]}", "elements", "", Endpoint::kCompletion);
  ExpectRefused(R"({"model":"m","prompt":)" + std::string(8 << 20, '9') + "}", "number literal", "",
                Endpoint::kCompletion);
}

TEST(OpenAiRequestLimitsTest, LimitsComeFromRequestLimits) {
  RequestLimits tight = kLimits;
  tight.json.max_depth = 4;
  Outcome o = Parse(Chat(R"([{"role":"user","content":[{"type":"text","text":"x"}]}])"),
                    Endpoint::kChat, tight);
  ASSERT_TRUE(o.error.has_value());
  EXPECT_NE(o.error->message.find("deeper than 4 levels"), std::string::npos);
  tight.json.max_depth = 5;  // body, messages, message, content, part
  EXPECT_FALSE(Parse(Chat(R"([{"role":"user","content":[{"type":"text","text":"x"}]}])"),
                     Endpoint::kChat, tight)
                   .error.has_value());
}

}  // namespace
}  // namespace gannet::server
