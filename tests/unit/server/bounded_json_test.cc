// ParseBoundedJson: the same values as nlohmann's parse for well-formed text within the limits
// (order, duplicates, numbers, escapes), each limit refused by name at parse time, and a build
// cost linear in the text whatever its shape (100k keys in one object, a million-deep nesting).
#include "server/bounded_json.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <string_view>

namespace gannet::server {
namespace {

using Json = nlohmann::ordered_json;

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

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

std::string Nested(int depth, char open, char close) {
  return std::string(depth, open) + std::string(depth, close);
}

std::string ManyKeys(int n) {
  std::string s = "{";
  for (int i = 0; i < n; ++i) {
    s += i ? ",\"k" : "\"k";
    s += std::to_string(i);
    s += "\":1";
  }
  return s + "}";
}

TEST(BoundedJsonTest, SameValuesAsNlohmann) {
  const char* docs[] = {
      R"({"b":1,"a":[true,false,null,-3,18446744073709551615,1.5e-3,"x\u00e9\n"],"c":{}})",
      R"({"a":1,"b":2,"a":3})",  // duplicate: last value wins, first place kept
      R"([[],{},[[{"k":[1,{"z":0,"y":1}]}]]])",
      R"("just a string")",
      R"(  12  )",
  };
  for (const char* d : docs) {
    Result<Json> got = ParseBoundedJson(d, JsonLimits{});
    ASSERT_TRUE(got.ok()) << d << ": " << got.status().message();
    EXPECT_EQ(got->dump(), Json::parse(d).dump()) << d;
  }
  // Many duplicates through the hashed path keep nlohmann's order and last-wins too.
  std::string dup = "{";
  for (int i = 0; i < 100; ++i) {
    dup += "\"k" + std::to_string(i % 30);
    dup += "\":" + std::to_string(i) + ",";
  }
  dup += "\"end\":0}";
  EXPECT_EQ(ParseBoundedJson(dup, JsonLimits{})->dump(), Json::parse(dup).dump());
}

TEST(BoundedJsonTest, SyntaxErrorsAreInvalidArgument) {
  for (const char* bad : {"{not json", "[1,2", "{\"a\":}", "", "[1] x", "\"\\ud800\"", "01"}) {
    Result<Json> r = ParseBoundedJson(bad, JsonLimits{});
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find("not valid JSON"), std::string::npos);
  }
  // An unterminated 1 MiB string: the message quotes only the start of it.
  Result<Json> r = ParseBoundedJson("\"" + std::string(1 << 20, 'a'), JsonLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 400u);
}

// Expects `text` to be refused for a limit, the message containing `what`.
void ExpectLimit(const std::string& text, const JsonLimits& limits, const std::string& what) {
  const auto t0 = std::chrono::steady_clock::now();
  Result<Json> r = ParseBoundedJson(text, limits);
  const double ms = MsSince(t0);
  ASSERT_FALSE(r.ok()) << what;
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted) << r.status().message();
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
  EXPECT_LT(ms, LinearBudgetMs(text)) << what << " took " << ms << " ms";
}

TEST(BoundedJsonTest, EachLimitIsNamed) {
  const JsonLimits l{.max_depth = 8,
                     .max_object_keys = 10,
                     .max_array_elements = 10,
                     .max_string_bytes = 16,
                     .max_values = 50,
                     .max_number_chars = 20};
  ExpectLimit(Nested(9, '[', ']'), l, "deeper than 8 levels");
  ExpectLimit("{\"a\":" + Nested(8, '[', ']') + "}", l, "deeper than 8 levels");
  ExpectLimit(ManyKeys(11), l, "more than 10 keys");
  ExpectLimit("[0,1,2,3,4,5,6,7,8,9,10]", l, "more than 10 elements");
  ExpectLimit("\"" + std::string(17, 'x') + "\"", l, "string is longer than 16 bytes");
  ExpectLimit("{\"" + std::string(17, 'x') + "\":1}", l, "key is longer than 16 bytes");
  std::string many = "[";
  for (int i = 0; i < 9; ++i) many += std::string(i ? "," : "") + "[1,2,3,4,5]";
  ExpectLimit(many + "]", l, "more than 50 values");
  ExpectLimit("[" + std::string(21, '1') + "]", l, "number literal is longer than 20");
  // Exactly at each limit is fine; digits inside strings are not numbers.
  EXPECT_TRUE(ParseBoundedJson(Nested(8, '[', ']'), l).ok());
  EXPECT_TRUE(ParseBoundedJson(ManyKeys(10), l).ok());
  EXPECT_TRUE(ParseBoundedJson("\"" + std::string(16, '7') + "\"", l).ok());
  EXPECT_TRUE(ParseBoundedJson("\"\\\"" + std::string(14, '7') + "\"", l).ok());
}

TEST(BoundedJsonTest, MillionDeepIsRefusedQuickly) {
  // 2 MB of brackets: nlohmann's SAX parser is iterative and the builder stops at level 65.
  ExpectLimit(Nested(1000000, '[', ']'), JsonLimits{}, "deeper than 64 levels");
  std::string objects;
  for (int i = 0; i < 1000000; ++i) objects += "{\"a\":";
  ExpectLimit(objects, JsonLimits{}, "deeper than 64 levels");
}

TEST(BoundedJsonTest, DeepButAllowedValuesCopyAndDestroy) {
  std::string text;
  for (int i = 0; i < 63; ++i) text += "{\"a\":[";
  text += "1";
  for (int i = 0; i < 63; ++i) text += "]}";
  JsonLimits l{.max_depth = 126};
  Result<Json> r = ParseBoundedJson(text, l);
  ASSERT_TRUE(r.ok()) << r.status().message();
  Json copy = *r;  // recursive copy, bounded by max_depth
  EXPECT_EQ(copy.dump(), text);
}

TEST(BoundedJsonTest, HundredThousandKeysBuildInLinearTime) {
  // ordered_json's own parse inserts each key after a scan of those before it: 5e9 comparisons
  // here. The bounded builder de-duplicates through a hash index.
  const std::string text = ManyKeys(100000);
  const auto t0 = std::chrono::steady_clock::now();
  Result<Json> r = ParseBoundedJson(text, JsonLimits{.max_object_keys = 100000});
  const double ms = MsSince(t0);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->size(), 100000u);
  EXPECT_EQ(r->begin().key(), "k0");
  EXPECT_EQ((*r)["k99999"], 1);
  EXPECT_LT(ms, LinearBudgetMs(text)) << ms << " ms";
  ExpectLimit(text, JsonLimits{}, "more than 4096 keys");
}

// Eight MiB of each shape: refused (or parsed) well under a second.
TEST(BoundedJsonTest, EightMebibytesOfAnyShapeIsFast) {
  const size_t n = 8 << 20;
  std::string empties = "[";
  while (empties.size() < n) empties += "[],";
  empties += "[]]";
  ExpectLimit(empties, JsonLimits{}, "elements");
  std::string objects = "[";
  while (objects.size() < n) objects += "{},";
  objects += "{}]";
  ExpectLimit(objects, JsonLimits{.max_array_elements = 1 << 22}, "values");
  ExpectLimit("\"" + std::string(n, 'a') + "\"", JsonLimits{}, "string is longer");
  std::string escapes = "\"";
  while (escapes.size() < n) escapes += "\\u00e9";
  ExpectLimit(escapes + "\"", JsonLimits{.max_string_bytes = 1 << 20}, "string is longer");
  ExpectLimit(std::string(n, '7'), JsonLimits{}, "number literal");
  // Within the limits, 8 MiB of short strings parses in well under a second too.
  std::string strings = "[";
  while (strings.size() < n) strings += "\"abcdefghijklmnopqrstuvwxyz0123456789\",";
  strings += "\"\"]";
  const auto t0 = std::chrono::steady_clock::now();
  Result<Json> r = ParseBoundedJson(strings, JsonLimits{});
  const double ms = MsSince(t0);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_LT(ms, LinearBudgetMs(strings)) << ms << " ms";
}

}  // namespace
}  // namespace gannet::server
