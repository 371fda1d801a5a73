#include "grammar/json_schema.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "grammar/json_schema_regex.h"
#include "grammar/mask_cache.h"
#include "grammar/matcher.h"
#include "grammar/token_mask.h"

namespace gannet::grammar {
namespace {

using Json = nlohmann::ordered_json;

struct Fixture {
  std::string name;
  Json schema;
  std::vector<std::string> valid, invalid;
};

// tests/fixtures/json_schema/*.json: {"schema": ..., "valid": [texts], "invalid": [texts]}.
std::vector<Fixture> LoadFixtures() {
  std::vector<std::filesystem::path> paths;
  for (const auto& e :
       std::filesystem::directory_iterator(std::string(GANNET_FIXTURES_DIR) + "/json_schema")) {
    if (e.path().extension() == ".json") paths.push_back(e.path());
  }
  std::sort(paths.begin(), paths.end());
  std::vector<Fixture> out;
  for (const auto& p : paths) {
    std::ifstream in(p);
    Json j = Json::parse(in);
    out.push_back({p.stem().string(), j["schema"], j["valid"].get<std::vector<std::string>>(),
                   j["invalid"].get<std::vector<std::string>>()});
  }
  return out;
}

std::shared_ptr<const Grammar> MustCompile(const Json& schema) {
  auto g = CompileJsonSchema(schema);
  EXPECT_TRUE(g.ok()) << schema.dump() << ": " << g.status().ToString();
  if (!g.ok()) return nullptr;
  return *g;
}

bool Accepts(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  auto m = Matcher::Create(g);
  EXPECT_TRUE(m.ok());
  return m->AcceptBytes(text) && m->IsComplete();
}

TEST(JsonSchemaTest, FixturesAcceptValidAndRejectInvalid) {
  std::vector<Fixture> fixtures = LoadFixtures();
  EXPECT_GE(fixtures.size(), 25u);
  for (const Fixture& f : fixtures) {
    SCOPED_TRACE(f.name);
    std::shared_ptr<const Grammar> g = MustCompile(f.schema);
    if (!g) continue;
    EXPECT_FALSE(f.valid.empty());
    EXPECT_FALSE(f.invalid.empty());
    for (const std::string& s : f.valid) EXPECT_TRUE(Accepts(g, s)) << s;
    for (const std::string& s : f.invalid) EXPECT_FALSE(Accepts(g, s)) << s;
  }
}

TEST(JsonSchemaTest, UnsupportedKeywordsAreErrorsNamingKeywordAndPath) {
  const std::vector<std::pair<const char*, std::vector<std::string>>> cases = {
      {R"({"type": "number", "multipleOf": 2})", {"'multipleOf'", "(at #)"}},
      {R"({"properties": {"a": {"not": {}}}})", {"'not'", "#/properties/a"}},
      {R"({"type": "array", "items": {"uniqueItems": true}, "uniqueItems": true})",
       {"'uniqueItems'"}},
      {R"({"type": "object", "patternProperties": {"^x": {}}})", {"'patternProperties'"}},
      {R"({"if": {}, "then": {}})", {"'if'"}},
      {R"({"nullable": true})", {"'nullable'"}},
      {R"({"type": "array", "items": {"type": "string", "pattern": "\\bfoo"}})",
       {"'pattern'", "\\b", "#/items"}},
      {R"({"type": "string", "pattern": "(?=a)b"})", {"'pattern'", "(?"}},
      {R"({"type": "string", "pattern": "[^\\d]"})", {"'pattern'", "negated"}},
      {R"({"type": "string", "format": "hostname"})", {"'format'", "hostname"}},
      {R"({"$ref": "http://example.com/s.json"})", {"'$ref'"}},
      {R"({"$ref": "#/$defs/missing"})", {"'$ref'", "names nothing"}},
      {R"({"type": "string", "maxLength": 100000})", {"'maxLength'", "limit"}},
      {R"({"type": "array", "minItems": 5000})", {"'minItems'"}},
      {R"({"type": "number", "exclusiveMinimum": true, "minimum": 1})", {"'exclusiveMinimum'"}},
      {R"({"type": "string", "pattern": "^a+$", "maxLength": 3})", {"'minLength'/'maxLength'"}},
      {R"({"allOf": [{"properties": {"a": {}}}, {"additionalProperties": false}]})",
       {"'additionalProperties'", "'properties'"}},
      {R"({"type": "integer", "minimum": 5, "maximum": 4})", {"'minimum'"}},
      {R"({"enum": []})", {"'enum'"}},
      {R"({"enum": ["a"], "minLength": 1})", {"'minLength'", "'enum'"}},
      {R"({"properties": {"a": {}}, "minProperties": 2})", {"'minProperties'"}},
      {R"({"type": "strin"})", {"'type'", "strin"}},
      {R"({"properties": {"a/b": {"type": "string", "minLength": -1}}})",
       {"'minLength'", "#/properties/a~1b"}},
      {R"({"$defs": {"x": {"contains": {}}}, "$ref": "#/$defs/x"})", {"'contains'", "#/$defs/x"}},
      {"false", {"false"}},
      {R"({"type": "object", "properties": {"a": false}, "required": ["a"]})", {"false"}},
      {R"({"anyOf": [{"$ref": "#"}, {"type": "null"}]})", {"recurses"}},
  };
  for (const auto& [text, needles] : cases) {
    auto g = CompileJsonSchema(Json::parse(text));
    ASSERT_FALSE(g.ok()) << text;
    EXPECT_EQ(g.status().code(), StatusCode::kInvalidArgument) << text;
    EXPECT_NE(g.status().message().find("json schema:"), std::string::npos);
    for (const std::string& n : needles) {
      EXPECT_NE(g.status().message().find(n), std::string::npos)
          << text << " -> " << g.status().message() << " (wanted " << n << ")";
    }
  }
}

TEST(JsonSchemaTest, OptionalPropertiesGrowTheGrammarLinearly) {
  auto schema_of = [](int n) {
    Json props = Json::object();
    for (int i = 0; i < n; ++i)
      props[std::string("p").append(std::to_string(i))] = {{"type", "integer"}};
    return Json{{"type", "object"}, {"properties", props}};
  };
  auto size_of = [&](int n) {
    auto text = JsonSchemaToGbnf(schema_of(n));
    EXPECT_TRUE(text.ok());
    return text.ok() ? text->size() : 0;
  };
  size_t s100 = size_of(100), s200 = size_of(200);
  EXPECT_LT(s200, s100 * 2 + 4096) << s100 << " " << s200;
  std::shared_ptr<const Grammar> g = MustCompile(schema_of(200));
  ASSERT_TRUE(g);
  EXPECT_TRUE(Accepts(g, "{}"));
  EXPECT_TRUE(Accepts(g, R"({"p3": 1, "p150": 2, "p199": 3})"));
  EXPECT_TRUE(Accepts(g, R"({"p199": 3})"));
  EXPECT_FALSE(Accepts(g, R"({"p150": 2, "p3": 1})"));  // declaration order
  EXPECT_FALSE(Accepts(g, R"({"p3": 1, "p3": 1})"));
  EXPECT_FALSE(Accepts(g, R"({"p3": 1,})"));
}

TEST(JsonSchemaTest, IntegerBoundsAreExact) {
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      {-25, 1234}, {0, 0}, {7, 7}, {-1000, -10}, {99, 101}, {1, 1000000}, {-5, 5}, {10, 99}};
  std::mt19937 rng(3);
  for (const auto& [lo, hi] : ranges) {
    std::shared_ptr<const Grammar> g =
        MustCompile(Json{{"type", "integer"}, {"minimum", lo}, {"maximum", hi}});
    ASSERT_TRUE(g);
    std::vector<int64_t> values = {lo - 1, lo, lo + 1, hi - 1, hi, hi + 1, 0, -1, 1};
    for (int i = 0; i < 200; ++i) {
      values.push_back(std::uniform_int_distribution<int64_t>(lo - 100, hi + 100)(rng));
    }
    for (int64_t v : values) {
      EXPECT_EQ(Accepts(g, std::to_string(v)), v >= lo && v <= hi) << lo << ".." << hi << ": " << v;
    }
  }
}

TEST(JsonSchemaTest, NumberBoundsAreSound) {
  std::shared_ptr<const Grammar> g =
      MustCompile(Json{{"type", "number"}, {"exclusiveMinimum", -2.5}, {"exclusiveMaximum", 3}});
  ASSERT_TRUE(g);
  // Sound, not complete: a fraction is allowed where its whole unit interval is in the bounds,
  // so -2.4 (in (-3, -2), which -2.5 cuts) is not.
  for (const char* ok : {"-2", "-1.5", "-1.99", "0", "0.5", "2.999", "2", "-0.1"}) {
    EXPECT_TRUE(Accepts(g, ok)) << ok;
  }
  for (const char* bad : {"-3", "-2.5", "3", "3.0", "3.5", "1e0", "2.50"}) {
    EXPECT_FALSE(Accepts(g, bad)) << bad;
  }
}

TEST(JsonSchemaTest, JsonObjectModeAndRecursion) {
  auto g = Grammar::Compile(JsonObjectGbnf());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(Accepts(*g, R"({"a": [1, {"b": null}], "c": "d"})"));
  EXPECT_TRUE(Accepts(*g, "{}"));
  EXPECT_FALSE(Accepts(*g, "[1]"));
  EXPECT_FALSE(Accepts(*g, "\"x\""));
  std::shared_ptr<const Grammar> list = MustCompile(Json::parse(
      R"({"type": "object", "properties": {"v": {"type": "integer"}, "next": {"$ref": "#"}},
          "required": ["v"]})"));
  ASSERT_TRUE(list);
  EXPECT_TRUE(Accepts(list, R"({"v": 1, "next": {"v": 2, "next": {"v": 3}}})"));
  EXPECT_FALSE(Accepts(list, R"({"v": 1, "next": {"next": {"v": 3}}})"));
}

TEST(JsonSchemaTest, ExtraPropertiesNeverReuseADeclaredName) {
  std::shared_ptr<const Grammar> g = MustCompile(Json::parse(
      R"({"properties": {"a": {"type": "integer"}, "gone": false}, "additionalProperties": true})"));
  ASSERT_TRUE(g);
  EXPECT_TRUE(Accepts(g, R"({"a": 1, "b": "x", "ab": null, "": 2, "gon": 3, "goner": 4})"));
  EXPECT_FALSE(Accepts(g, R"({"a": 1, "a": "x"})"));
  EXPECT_FALSE(Accepts(g, R"({"gone": 1})"));
  EXPECT_FALSE(Accepts(g, R"({"b": 1, "a": 1})"));  // declared ones first
}

TEST(JsonSchemaTest, PatternLengthsAndEncoding) {
  auto p = PatternToGbnf("^(ab|c){2,3}$", "char");
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->min_length, 2u);
  EXPECT_EQ(p->max_length, 6u);
  p = PatternToGbnf("x+", "char");
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->min_length, 1u);
  EXPECT_EQ(p->max_length, PatternGbnf::kUnbounded);
  EXPECT_FALSE(PatternToGbnf("a{2,1}", "char").ok());
  EXPECT_FALSE(PatternToGbnf("(a", "char").ok());
  EXPECT_FALSE(PatternToGbnf("a)", "char").ok());
  EXPECT_FALSE(PatternToGbnf("a**", "char").ok());
  EXPECT_FALSE(PatternToGbnf("\\1", "char").ok());
  // Implied lengths are accepted with the pattern.
  std::shared_ptr<const Grammar> g = MustCompile(Json::parse(
      R"({"type": "string", "pattern": "^[a-z]{2,4}$", "minLength": 1, "maxLength": 4})"));
  ASSERT_TRUE(g);
  EXPECT_TRUE(Accepts(g, "\"abcd\""));
  EXPECT_FALSE(Accepts(g, "\"abcde\""));
}

TEST(JsonSchemaTest, WhitespaceIsBounded) {
  std::shared_ptr<const Grammar> g = MustCompile(Json::parse(R"({"type": "array"})"));
  ASSERT_TRUE(g);
  EXPECT_TRUE(Accepts(g, "[ 1 ]"));
  EXPECT_TRUE(Accepts(g, std::string("[\n").append(20, ' ').append("1\n]")));
  EXPECT_TRUE(Accepts(g, "[\n\t\t1,\n\t\t2\n]"));
  EXPECT_FALSE(Accepts(g, std::string("[\n").append(21, ' ').append("1]")));
  EXPECT_FALSE(Accepts(g, "[  1]"));
  EXPECT_FALSE(Accepts(g, "[\n\n1]"));
  EXPECT_FALSE(Accepts(g, " [1]"));
  EXPECT_FALSE(Accepts(g, "[1] "));
}

TEST(JsonSchemaTest, LimitsAreErrors) {
  Json deep = {{"type", "string"}};
  for (int i = 0; i < 100; ++i) deep = Json{{"type", "array"}, {"items", deep}};
  auto r = JsonSchemaToGbnf(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("deeper"), std::string::npos) << r.status().message();
  Json props = Json::object();
  for (int i = 0; i < 40; ++i) {
    props[std::string("p").append(std::to_string(i))] = {{"type", "string"},
                                                         {"maxLength", 900 + i}};
  }
  r = JsonSchemaToGbnf(Json{{"properties", props}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("add up"), std::string::npos) << r.status().message();
  // Shared keywords merged into many branches: refused or done quickly, never slow.
  Json big = Json::object();
  for (int i = 0; i < 200; ++i) {
    big[std::string("k").append(std::to_string(i))] = {{"enum", Json::array({"a", "b", "c"})}};
  }
  Json branches = Json::array();
  for (int i = 0; i < 256; ++i) branches.push_back({{"required", {"k1"}}});
  auto start = std::chrono::steady_clock::now();
  r = JsonSchemaToGbnf(Json{{"type", "object"}, {"properties", big}, {"anyOf", branches}});
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("subschemas"), std::string::npos) << r.status().message();
  EXPECT_LT(ms, 2000.0);
  branches.push_back({{"required", {"k2"}}});
  r = JsonSchemaToGbnf(Json{{"anyOf", branches}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("branches"), std::string::npos) << r.status().message();
}

// Word-like tokens, punctuation runs and digits, as a BPE vocabulary has.
std::vector<std::string> SyntheticVocabulary(size_t n) {
  std::mt19937 rng(7);
  const std::string letters = "etaoinshrdlucmfwypvbgkqjxz";
  const std::string punct = "{}[]\":,.-+0123456789 \n\\";
  std::vector<std::string> v;
  for (int b = 0; b < 256; ++b) v.push_back(std::string(1, static_cast<char>(b)));
  while (v.size() < n - 1) {
    std::string t = (rng() % 2) ? " " : "";
    size_t len = 1 + rng() % 10;
    const std::string& from = (rng() % 4) ? letters : punct;
    for (size_t i = 0; i < len; ++i) t += from[rng() % from.size()];
    v.push_back(t);
  }
  v.push_back("</s>");
  return v;
}

// Five nested objects of ten properties each: strings, bounded integers, enums, arrays.
Json FiftyPropertySchema() {
  Json inner = Json::object();
  for (int level = 4; level >= 0; --level) {
    Json props = Json::object();
    Json required = Json::array();
    for (int i = 0; i < (level == 4 ? 10 : 9); ++i) {
      std::string name = "field_" + std::to_string(level) + "_" + std::to_string(i);
      Json p;
      switch (i % 4) {
        case 0:
          p = {{"type", "string"}, {"maxLength", 40}};
          break;
        case 1:
          p = {{"type", "integer"}, {"minimum", 0}, {"maximum", 5000}};
          break;
        case 2:
          p = {{"enum", {"alpha", "beta", "gamma"}}};
          break;
        default:
          p = {{"type", "array"}, {"items", {{"type", "number"}}}, {"maxItems", 8}};
          break;
      }
      props[name] = p;
      if (i % 2 == 0) required.push_back(name);
    }
    if (level < 4) props["child"] = inner;
    inner = {{"type", "object"},
             {"properties", props},
             {"required", required},
             {"additionalProperties", false}};
  }
  return inner;
}

// Compile + the first mask, at 32k tokens and at the default model's 262k (synthetic tokens; the
// vocabulary is built once per model, not per request, so it is not timed).
TEST(JsonSchemaTest, FiftyPropertySchemaCompilesAndMasksFast) {
  for (size_t n_vocab : {size_t{32000}, size_t{262144}}) {
    std::vector<std::string> tokens = SyntheticVocabulary(n_vocab);
    std::vector<int32_t> eog = {static_cast<int32_t>(n_vocab - 1)};
    auto vocab = TokenVocabulary::Create(tokens, eog);
    ASSERT_TRUE(vocab.ok());
    Json schema = FiftyPropertySchema();
    auto start = std::chrono::steady_clock::now();
    auto g = CompileJsonSchema(schema);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    auto compiled = std::chrono::steady_clock::now();
    MaskCache cache(*vocab, *g);
    auto m = Matcher::Create(*g);
    ASSERT_TRUE(m.ok());
    std::vector<uint32_t> mask((*vocab)->mask_words());
    ASSERT_TRUE(cache.FillNextTokenMask(*m, mask));
    auto masked = std::chrono::steady_clock::now();
    double compile_ms = std::chrono::duration<double, std::milli>(compiled - start).count();
    double mask_ms = std::chrono::duration<double, std::milli>(masked - compiled).count();
    std::printf(
        "50-property nested schema: %zu rules; compile %.2f ms + first mask (%zu tokens) "
        "%.3f ms\n",
        (*g)->num_rules(), compile_ms, n_vocab, mask_ms);
    EXPECT_TRUE((mask['{' / 32] >> ('{' % 32)) & 1);  // the single-byte token "{"
    EXPECT_FALSE((mask['[' / 32] >> ('[' % 32)) & 1);
    // The target is 50 ms; the bound leaves room for sanitizer builds and a loaded machine.
    EXPECT_LT(compile_ms + mask_ms, 250.0);
  }
}

std::string Utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Which of `candidates` the matcher accepts next; `progress` gets those that change its state
// (the others step it back to itself, as the characters of a string do).
void Allowed(Matcher* m, const std::vector<std::string>& candidates,
             std::vector<const std::string*>* allowed, std::vector<const std::string*>* progress) {
  for (const std::string& c : candidates) {
    size_t mark = m->Mark();
    Matcher::State a = m->state(), b;
    bool ok = true;
    for (char byte : c) {
      ok = m->StepByte(a, static_cast<uint8_t>(byte), &b);
      if (!ok) break;
      std::swap(a, b);
    }
    bool loops = ok && a.tops == m->state().tops;
    m->Rollback(mark);
    if (!ok) continue;
    allowed->push_back(&c);
    if (!loops) progress->push_back(&c);
  }
}

// The shortest text (over `alphabet`) that lets the grammar end from the matcher's state, by
// breadth-first search over states (stacks are hash-consed: equal states have equal tops), up
// to `max_states` states.
std::optional<std::string> ShortestEnding(Matcher m, const std::vector<std::string>& alphabet,
                                          size_t max_states) {
  struct Item {
    Matcher::State state;
    std::string path;
  };
  std::deque<Item> queue = {{m.state(), ""}};
  std::set<std::vector<int32_t>> seen = {m.state().tops};
  while (!queue.empty() && seen.size() < max_states) {
    Item item = std::move(queue.front());
    queue.pop_front();
    const auto& tops = item.state.tops;
    if (std::find(tops.begin(), tops.end(), Matcher::kEmptyStack) != tops.end()) return item.path;
    for (const std::string& c : alphabet) {
      Matcher::State a = item.state, b;
      bool ok = true;
      for (char byte : c) {
        ok = m.StepByte(a, static_cast<uint8_t>(byte), &b);
        if (!ok) break;
        std::swap(a, b);
      }
      if (ok && seen.insert(a.tops).second) queue.push_back({std::move(a), item.path + c});
    }
  }
  return std::nullopt;
}

// A random text of the grammar: each step picks a random allowed character among a fixed
// alphabet (ASCII, blanks, some non-ASCII including a non-ASCII digit, a control character; when
// none is allowed, any code point up to U+07FF), half the time one that changes the matcher's
// state, and it stops when the grammar may end with probability 1/6; past `soft` bytes it ends
// by the shortest way. Nullopt when it gets stuck.
std::optional<std::string> RandomText(const std::shared_ptr<const Grammar>& g, std::mt19937* rng,
                                      size_t soft) {
  static const std::vector<std::string> alphabet = [] {
    std::vector<std::string> a;
    for (int c = 0x20; c < 0x7F; ++c) a.push_back(std::string(1, static_cast<char>(c)));
    for (const char* s :
         {"\n", "\t", "\x01", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xD9\xA3"}) {
      a.push_back(s);
    }
    return a;
  }();
  static const std::vector<std::string> fallback = [] {
    std::vector<std::string> a;
    for (uint32_t cp = 0x80; cp < 0x800; ++cp) a.push_back(Utf8(cp));
    return a;
  }();
  auto m = Matcher::Create(g);
  if (!m.ok()) return std::nullopt;
  std::string out;
  while (true) {
    if (m->IsComplete() && (*rng)() % 6 == 0) return out;
    if (out.size() > soft) {
      std::optional<std::string> end = ShortestEnding(*m, alphabet, 20000);
      if (!end || !m->AcceptBytes(*end) || !m->IsComplete()) return std::nullopt;
      return out + *end;
    }
    std::vector<const std::string*> allowed, progress;
    Allowed(&*m, alphabet, &allowed, &progress);
    if (allowed.empty()) Allowed(&*m, fallback, &allowed, &progress);
    if (allowed.empty()) return m->IsComplete() ? std::optional(out) : std::nullopt;
    const auto& pool = (!progress.empty() && (*rng)() % 2 == 0) ? progress : allowed;
    const std::string& pick = *pool[(*rng)() % pool.size()];
    if (!m->AcceptBytes(pick)) return std::nullopt;
    out += pick;
  }
}

TEST(JsonSchemaTest, RandomTextsStayInTheGrammar) {
  std::shared_ptr<const Grammar> g = MustCompile(LoadFixtures()[0].schema);
  ASSERT_TRUE(g);
  std::mt19937 rng(1);
  int complete = 0;
  for (int i = 0; i < 20; ++i) {
    std::optional<std::string> t = RandomText(g, &rng, 200);
    if (!t) continue;
    ++complete;
    EXPECT_TRUE(Accepts(g, *t)) << *t;
  }
  EXPECT_GE(complete, 15);
}

// Not a check by itself: with GANNET_JSON_SCHEMA_SAMPLES=<file> it writes random texts of every
// fixture's grammar (and of json_object mode), one JSON line per fixture, for
// tests/e2e/test_json_schema.py to validate with Python's jsonschema.
TEST(JsonSchemaSamples, Write) {
  const char* path = std::getenv("GANNET_JSON_SCHEMA_SAMPLES");
  if (path == nullptr) GTEST_SKIP() << "GANNET_JSON_SCHEMA_SAMPLES is not set";
  int per_schema = 60;
  if (const char* n = std::getenv("GANNET_JSON_SCHEMA_SAMPLES_PER_SCHEMA"))
    per_schema = std::atoi(n);
  std::ofstream out(path);
  ASSERT_TRUE(out.good()) << path;
  std::vector<Fixture> fixtures = LoadFixtures();
  fixtures.push_back({"json_object", Json{{"type", "object"}}, {}, {}});
  std::mt19937 rng(12345);
  for (const Fixture& f : fixtures) {
    std::shared_ptr<const Grammar> g;
    if (f.name == "json_object") {
      auto c = Grammar::Compile(JsonObjectGbnf());
      ASSERT_TRUE(c.ok());
      g = *c;
    } else {
      g = MustCompile(f.schema);
    }
    ASSERT_TRUE(g) << f.name;
    Json line = {{"name", f.name}, {"samples", Json::array()}, {"stuck", 0}};
    for (int i = 0; i < per_schema; ++i) {
      std::optional<std::string> t = RandomText(g, &rng, 300);
      if (t) {
        line["samples"].push_back(*t);
      } else {
        line["stuck"] = line["stuck"].get<int>() + 1;
      }
    }
    out << line.dump() << "\n";
  }
}

}  // namespace
}  // namespace gannet::grammar
