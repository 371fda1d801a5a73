// GGUF reader and writer: files written by gguf-py (tools/make_gguf_fixtures.py) read back exactly,
// the writer round-trips every value type, and the typed getters and `inspect` summary behave.
#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <random>

#include "formats/gguf_writer.h"
#include "gguf_test_util.h"

namespace gannet {
namespace {

using nlohmann::json;
using testing_util::FixturePath;
using testing_util::ReadAll;
using testing_util::Sha256Hex;

json LoadJson(const std::string& path) {
  std::vector<uint8_t> bytes = ReadAll(path);
  return json::parse(bytes.begin(), bytes.end());
}

// "u8", "array<string>", "array<array<i32>>" (inner type taken from the first element, as written).
std::string Signature(const GgufValue& v) {
  if (!v.is_array()) return std::string(GgufTypeName(v.type));
  if (v.elem_type == GgufType::kArray) {
    return "array<" + (v.elems.empty() ? std::string("array<?>") : Signature(v.elems[0])) + ">";
  }
  return "array<" + std::string(GgufTypeName(v.elem_type)) + ">";
}

json ToJson(const GgufValue& v) {
  switch (v.type) {
    case GgufType::kUint8:
    case GgufType::kUint16:
    case GgufType::kUint32:
    case GgufType::kUint64:
      return v.u;
    case GgufType::kInt8:
    case GgufType::kInt16:
    case GgufType::kInt32:
    case GgufType::kInt64:
      return v.i;
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      return v.f;
    case GgufType::kBool:
      return v.u != 0;
    case GgufType::kString:
      return v.s;
    case GgufType::kArray:
      break;
  }
  json arr = json::array();
  for (uint64_t k = 0; k < v.count; ++k) arr.push_back(ToJson(v.At(k)));
  return arr;
}

void CheckAgainstExpectation(const std::string& name) {
  SCOPED_TRACE(name);
  const json expect = LoadJson(FixturePath(name + ".json"));
  auto opened = GgufFile::Open(FixturePath(name + ".gguf"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  const GgufFile& f = **opened;
  EXPECT_EQ(f.version(), expect["version"].get<uint32_t>());
  EXPECT_EQ(f.alignment(), expect["alignment"].get<uint32_t>());
  EXPECT_EQ(f.data_offset(), expect["data_offset"].get<uint64_t>());
  EXPECT_EQ(f.file_size(), expect["file_size"].get<uint64_t>());
  ASSERT_EQ(f.metadata().size(), expect["n_kv"].get<size_t>());
  ASSERT_EQ(f.tensors().size(), expect["n_tensors"].get<size_t>());

  for (size_t k = 0; k < f.metadata().size(); ++k) {
    const auto& [key, value] = f.metadata()[k];
    const json& e = expect["metadata"][k];
    SCOPED_TRACE(key);
    EXPECT_EQ(key, e["key"].get<std::string>());
    EXPECT_EQ(Signature(value), e["type"].get<std::string>());
    EXPECT_EQ(ToJson(value), e["value"]);
    EXPECT_EQ(f.Find(key), &value);
  }
  for (size_t k = 0; k < f.tensors().size(); ++k) {
    const GgufTensorInfo& t = f.tensors()[k];
    const json& e = expect["tensors"][k];
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.name, e["name"].get<std::string>());
    EXPECT_EQ(std::string(DTypeName(t.type)), e["type"].get<std::string>());
    EXPECT_EQ(t.shape, e["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.offset, e["offset"].get<uint64_t>());
    EXPECT_EQ(t.n_elements, e["n_elements"].get<int64_t>());
    EXPECT_EQ(t.n_bytes, e["n_bytes"].get<int64_t>());
    EXPECT_EQ(t.data.size(), static_cast<size_t>(t.n_bytes));
    EXPECT_EQ(Sha256Hex(t.data), e["sha256"].get<std::string>());
    EXPECT_EQ(f.FindTensor(t.name), &t);
  }
  EXPECT_EQ(f.FindTensor("no.such.tensor"), nullptr);
  EXPECT_EQ(f.Find("no.such.key"), nullptr);
}

TEST(GgufFixture, Sha256KnownAnswer) {
  const std::string abc = "abc";
  EXPECT_EQ(Sha256Hex({reinterpret_cast<const uint8_t*>(abc.data()), abc.size()}),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(GgufFixture, AllTypesMatchesExpectation) { CheckAgainstExpectation("all_types"); }
TEST(GgufFixture, Aligned64MatchesExpectation) { CheckAgainstExpectation("aligned64"); }

TEST(GgufGetters, TypedAccess) {
  auto opened = GgufFile::Open(FixturePath("all_types.gguf"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  const GgufFile& f = **opened;
  EXPECT_EQ(*f.GetString("general.architecture"), "testarch");
  EXPECT_EQ(*f.GetInt("test.u8"), 255);
  EXPECT_EQ(*f.GetInt("test.i64"), INT64_MIN);
  EXPECT_EQ(*f.GetInt("test.u32"), 4294967295);
  EXPECT_FLOAT_EQ(static_cast<float>(*f.GetFloat("test.f32")), 3.14159f);
  EXPECT_EQ(*f.GetFloat("test.i16"), -32768.0);  // any numeric type reads as a float
  EXPECT_TRUE(*f.GetBool("test.bool_true"));
  EXPECT_FALSE(*f.GetBool("test.bool_false"));
  EXPECT_EQ(*f.GetIntOr("missing", 7), 7);
  EXPECT_EQ(*f.GetFloatOr("missing", 0.5), 0.5);
  EXPECT_TRUE(*f.GetBoolOr("missing", true));
  EXPECT_EQ(*f.GetStringOr("missing", "x"), "x");
  EXPECT_EQ(*f.GetIntOr("test.i8", 7), -128);

  auto u64 = f.GetInt("test.u64");  // 2^64-1 does not fit
  EXPECT_FALSE(u64.ok());
  EXPECT_EQ(u64.status().code(), StatusCode::kOutOfRange);

  auto missing = f.GetString("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'nope'"), std::string::npos);

  auto wrong = f.GetString("test.u8");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("'test.u8'"), std::string::npos)
      << wrong.status().message();
  EXPECT_NE(wrong.status().message().find("u8"), std::string::npos);
  EXPECT_FALSE(f.GetIntOr("test.string", 1).ok());  // wrong type is an error even with a default
  EXPECT_FALSE(f.GetBool("test.u8").ok());
  EXPECT_FALSE(f.GetInt("test.f32").ok());

  auto floats = f.GetFloatArray("test.arr_f32");
  ASSERT_TRUE(floats.ok());
  ASSERT_EQ(floats->size(), 20u);
  EXPECT_EQ((*floats)[3], static_cast<float>(f.Find("test.arr_f32")->At(3).f));
  auto f64s = f.GetFloatArray("test.arr_f64");
  ASSERT_TRUE(f64s.ok());
  EXPECT_EQ((*f64s)[1], -0.5f);
  auto not_floats = f.GetFloatArray("test.arr_i32");
  ASSERT_FALSE(not_floats.ok());
  EXPECT_NE(not_floats.status().message().find("array of i32"), std::string::npos)
      << not_floats.status().message();

  EXPECT_EQ(*f.GetIntArray("test.arr_u8"), (std::vector<int64_t>{0, 1, 254, 255}));
  EXPECT_EQ(*f.GetIntArray("test.arr_i64"), (std::vector<int64_t>{INT64_MIN, INT64_MAX}));
  EXPECT_EQ(f.GetIntArray("test.arr_i32")->size(), 40u);
  EXPECT_FALSE(f.GetIntArray("test.arr_u64").ok());  // 2^64-1 does not fit
  EXPECT_FALSE(f.GetIntArray("test.arr_string").ok());
  EXPECT_FALSE(f.GetIntArray("test.u8").ok());  // a scalar is not an array
  EXPECT_EQ(*f.GetStringArray("test.arr_string"),
            (std::vector<std::string>{"", "a", "\xe2\x96\x81the", "<0x0A>", "two words"}));
  EXPECT_FALSE(f.GetStringArray("test.arr_f32").ok());
}

TEST(GgufValue, ToStringShortensArrays) {
  auto opened = GgufFile::Open(FixturePath("aligned64.gguf"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  const GgufValue* tokens = (*opened)->Find("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(tokens->ToString(3), "[\"tok0\", \"tok1\", \"tok2\", ... 300 items]");
  EXPECT_NE(tokens->ToString(1000).find("\"tok299\"]"), std::string::npos);
  EXPECT_EQ((*opened)->Find("tokenizer.ggml.scores")->ToString(3),
            "[0, -0.25, -0.5, ... 300 items]");
  GgufValue s;
  s.type = GgufType::kString;
  s.s = "a\"b\n\x01";
  EXPECT_EQ(s.ToString(), "\"a\\\"b\\n\\x01\"");
  s.s = "abcdef";
  EXPECT_EQ(s.ToString(8, 3), "\"abc\"... (6 bytes)");
}

TEST(GgufSummary, HeaderMetadataAndTable) {
  auto opened = GgufFile::Open(FixturePath("all_types.gguf"));
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  const std::string s = FormatGgufSummary(**opened, false);
  EXPECT_NE(s.find("GGUF version: 3"), std::string::npos) << s;
  EXPECT_NE(s.find("alignment:    32"), std::string::npos) << s;
  EXPECT_NE(s.find("tensors:      5"), std::string::npos) << s;
  EXPECT_NE(s.find("metadata:     32 keys"), std::string::npos) << s;
  EXPECT_NE(s.find("data offset:  2,304 (0x900)"), std::string::npos) << s;
  EXPECT_NE(s.find("file size:    4,800 bytes (4.7 KiB)"), std::string::npos) << s;
  EXPECT_NE(s.find("  test.u8 = 255\n"), std::string::npos) << s;
  EXPECT_NE(s.find("  general.architecture = \"testarch\"\n"), std::string::npos) << s;
  EXPECT_NE(s.find("  test.nested_i32 = [[1, 2, 3], [4], [5, 6]]\n"), std::string::npos) << s;
  EXPECT_NE(s.find("... 40 items]"), std::string::npos) << s;
  // The chat template is cut to one line.
  EXPECT_NE(s.find("tokenizer.chat_template = \"{{ bos_token }}"), std::string::npos) << s;
  EXPECT_NE(s.find(" bytes)\n"), std::string::npos) << s;
  EXPECT_NE(s.find("token_embd.weight"), std::string::npos) << s;
  EXPECT_NE(s.find("64 x 16"), std::string::npos) << s;  // ggml order
  EXPECT_NE(s.find("5 x 3"), std::string::npos) << s;
  EXPECT_NE(s.find("4 x 3 x 2"), std::string::npos) << s;
  EXPECT_NE(s.find("parameters: 1,639"), std::string::npos) << s;  // 1024 + 64 + 512 + 15 + 24
  EXPECT_NE(s.find("q8_0:"), std::string::npos) << s;
  const std::string all = FormatGgufSummary(**opened, true);
  EXPECT_NE(all.find("<end_of_turn>\\n' }}"), std::string::npos);
  EXPECT_EQ(all.find("... 40 items]"), std::string::npos);
}

// Writes every kind of value, reads it back, and checks the bytes survive a second write.
TEST(GgufWriter, RoundTripEveryType) {
  GgufWriter w;
  w.SetString("general.architecture", "rt");
  w.SetUint8("u8", 200);
  w.SetInt8("i8", -5);
  w.SetUint16("u16", 60000);
  w.SetInt16("i16", -30000);
  w.SetUint32("u32", 4000000000u);
  w.SetInt32("i32", -2000000000);
  w.SetUint64("u64", UINT64_MAX);
  w.SetInt64("i64", INT64_MIN);
  w.SetFloat32("f32", 1.5f);
  w.SetFloat64("f64", 1e-310);
  w.SetBool("bool", true);
  w.SetString("str", std::string("with\0nul", 8));
  w.SetString("empty", "");
  w.SetArray<uint8_t>("a.u8", {1, 2, 255});
  w.SetArray<int8_t>("a.i8", {-1, 1});
  w.SetArray<uint16_t>("a.u16", {65535});
  w.SetArray<int16_t>("a.i16", {-2, 2});
  w.SetArray<uint32_t>("a.u32", {1u, 4000000000u});
  w.SetArray<int32_t>("a.i32", {-7, 7, 0});
  w.SetArray<uint64_t>("a.u64", {UINT64_MAX});
  w.SetArray<int64_t>("a.i64", {INT64_MIN, 3});
  w.SetArray<float>("a.f32", {0.25f, -1e30f});
  w.SetArray<double>("a.f64", {1e300});
  w.SetArray<int32_t>("a.empty", std::vector<int32_t>{});
  w.SetBoolArray("a.bool", {true, false, true});
  const std::vector<std::string> strs = {"x", "", "yz"};
  w.SetStringArray("a.str", strs);
  w.SetStringArray("a.str_empty", std::vector<std::string>{});
  // [[1, 2], [], [3]] as a nested value built by hand.
  const std::vector<int32_t> a = {1, 2}, c = {3};
  GgufValue nested;
  nested.type = GgufType::kArray;
  nested.elem_type = GgufType::kArray;
  nested.count = 3;
  for (const std::vector<int32_t>* part :
       {&a, static_cast<const std::vector<int32_t>*>(nullptr), &c}) {
    GgufValue inner;
    inner.type = GgufType::kArray;
    inner.elem_type = GgufType::kInt32;
    if (part) {
      inner.count = part->size();
      inner.raw = {reinterpret_cast<const uint8_t*>(part->data()), part->size() * 4};
    }
    nested.elems.push_back(inner);
  }
  ASSERT_TRUE(w.SetValue("a.nested", nested).ok());
  w.SetUint8("u8", 201);  // replaces in place
  ASSERT_TRUE(w.SetAlignment(64).ok());
  EXPECT_FALSE(w.SetAlignment(48).ok());

  std::mt19937 rng(7);
  auto random_bytes = [&rng](size_t n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng());
    return v;
  };
  const std::vector<uint8_t> q8 = random_bytes(34 * 2 * 3);
  ASSERT_TRUE(w.AddTensor("t.q8", DType::kQ8_0, {64, 3}, q8).ok());
  ASSERT_TRUE(w.AddTensor("t.f32", DType::kF32, {5}, random_bytes(20)).ok());
  ASSERT_TRUE(w.AddTensor("t.q4k", DType::kQ4_K, {256, 1, 2}, random_bytes(288)).ok());
  ASSERT_TRUE(w.AddTensor("t.bf16", DType::kBF16, {2, 2, 2, 2}, random_bytes(32)).ok());
  ASSERT_TRUE(w.AddTensor("t.empty", DType::kF16, {0, 4}, {}).ok());
  const std::vector<uint8_t> viewed = random_bytes(8);
  ASSERT_TRUE(w.AddTensorView("t.view", DType::kF16, {4}, viewed).ok());
  EXPECT_FALSE(w.AddTensor("t.f32", DType::kF32, {1}, random_bytes(4)).ok());     // duplicate
  EXPECT_FALSE(w.AddTensor("t.bad", DType::kQ8_0, {33}, random_bytes(34)).ok());  // block size
  EXPECT_FALSE(w.AddTensor("t.bad", DType::kF32, {2}, random_bytes(7)).ok());     // byte count
  EXPECT_FALSE(w.AddTensor("t.bad", DType::kF32, {1, 1, 1, 1, 1}, random_bytes(4)).ok());
  EXPECT_FALSE(w.AddTensor(std::string(64, 'n'), DType::kF32, {1}, random_bytes(4)).ok());
  ASSERT_TRUE(w.AddTensor(std::string(63, 'n'), DType::kF32, {1}, random_bytes(4)).ok());

  const std::vector<uint8_t> bytes = w.Serialize();
  auto r = GgufFile::FromBytes(bytes, "roundtrip");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const GgufFile& f = **r;
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  EXPECT_EQ(*f.GetInt("u8"), 201);
  EXPECT_EQ(f.metadata()[1].first, "u8");
  EXPECT_EQ(*f.GetInt("i8"), -5);
  EXPECT_EQ(*f.GetInt("u16"), 60000);
  EXPECT_EQ(*f.GetInt("i16"), -30000);
  EXPECT_EQ(*f.GetInt("u32"), 4000000000);
  EXPECT_EQ(*f.GetInt("i32"), -2000000000);
  EXPECT_EQ(f.Find("u64")->u, UINT64_MAX);
  EXPECT_EQ(*f.GetInt("i64"), INT64_MIN);
  EXPECT_EQ(*f.GetFloat("f32"), 1.5);
  EXPECT_EQ(*f.GetFloat("f64"), 1e-310);
  EXPECT_TRUE(*f.GetBool("bool"));
  EXPECT_EQ(*f.GetString("str"), std::string("with\0nul", 8));
  EXPECT_EQ(*f.GetString("empty"), "");
  EXPECT_EQ(*f.GetIntArray("a.u8"), (std::vector<int64_t>{1, 2, 255}));
  EXPECT_EQ(*f.GetIntArray("a.i8"), (std::vector<int64_t>{-1, 1}));
  EXPECT_EQ(*f.GetIntArray("a.u16"), (std::vector<int64_t>{65535}));
  EXPECT_EQ(*f.GetIntArray("a.i16"), (std::vector<int64_t>{-2, 2}));
  EXPECT_EQ(*f.GetIntArray("a.u32"), (std::vector<int64_t>{1, 4000000000}));
  EXPECT_EQ(*f.GetIntArray("a.i32"), (std::vector<int64_t>{-7, 7, 0}));
  EXPECT_EQ(f.Find("a.u64")->At(0).u, UINT64_MAX);
  EXPECT_EQ(*f.GetIntArray("a.i64"), (std::vector<int64_t>{INT64_MIN, 3}));
  EXPECT_EQ(*f.GetFloatArray("a.f32"), (std::vector<float>{0.25f, -1e30f}));
  EXPECT_EQ(f.Find("a.f64")->At(0).f, 1e300);
  EXPECT_TRUE(f.GetIntArray("a.empty")->empty());
  EXPECT_EQ(f.Find("a.bool")->ToString(), "[true, false, true]");
  EXPECT_EQ(*f.GetStringArray("a.str"), strs);
  EXPECT_TRUE(f.GetStringArray("a.str_empty")->empty());
  EXPECT_EQ(f.Find("a.nested")->ToString(), "[[1, 2], [], [3]]");

  ASSERT_EQ(f.tensors().size(), 7u);
  const GgufTensorInfo* q8t = f.FindTensor("t.q8");
  ASSERT_NE(q8t, nullptr);
  EXPECT_EQ(q8t->type, DType::kQ8_0);
  EXPECT_EQ(q8t->shape, (std::vector<int64_t>{64, 3}));
  EXPECT_EQ(q8t->n_elements, 192);
  EXPECT_TRUE(std::equal(q8t->data.begin(), q8t->data.end(), q8.begin(), q8.end()));
  EXPECT_EQ(f.FindTensor("t.q4k")->n_bytes, 288);
  EXPECT_EQ(f.FindTensor("t.bf16")->shape.size(), 4u);
  EXPECT_EQ(f.FindTensor("t.empty")->n_bytes, 0);
  const GgufTensorInfo* view = f.FindTensor("t.view");
  EXPECT_TRUE(std::equal(view->data.begin(), view->data.end(), viewed.begin(), viewed.end()));
  for (const GgufTensorInfo& t : f.tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;

  // Copy everything through a second writer: identical bytes.
  // general.alignment arrives with the metadata and sets the data alignment.
  GgufWriter copy;
  for (const auto& [key, value] : f.metadata()) ASSERT_TRUE(copy.SetValue(key, value).ok()) << key;
  EXPECT_EQ(copy.alignment(), 64u);
  for (const GgufTensorInfo& t : f.tensors()) {
    ASSERT_TRUE(copy.AddTensorView(t.name, t.type, t.shape, t.data).ok()) << t.name;
  }
  EXPECT_EQ(copy.Serialize(), bytes);

  // And through a real file.
  const std::string path = ::testing::TempDir() + "gguf_writer_roundtrip.gguf";
  ASSERT_TRUE(w.Write(path).ok());
  EXPECT_EQ(ReadAll(path), bytes);
  auto opened = GgufFile::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ((*opened)->tensors().size(), 7u);
  std::remove(path.c_str());
  EXPECT_FALSE(w.Write(::testing::TempDir() + "no/such/dir/x.gguf").ok());
}

// gannet's writer reproduces gguf-py's file byte for byte from what the reader found.
TEST(GgufWriter, ReproducesPythonFixtureBytes) {
  for (const char* name : {"all_types.gguf", "aligned64.gguf"}) {
    SCOPED_TRACE(name);
    const std::vector<uint8_t> original = ReadAll(FixturePath(name));
    auto r = GgufFile::FromBytes(original, name);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    GgufWriter w;
    for (const auto& [key, value] : (*r)->metadata()) ASSERT_TRUE(w.SetValue(key, value).ok());
    for (const GgufTensorInfo& t : (*r)->tensors()) {
      ASSERT_TRUE(w.AddTensorView(t.name, t.type, t.shape, t.data).ok());
    }
    EXPECT_EQ(w.Serialize(), original);
  }
}

TEST(GgufOpen, MissingFileIsAnError) {
  auto r = GgufFile::Open(FixturePath("does_not_exist.gguf"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("does_not_exist.gguf"), std::string::npos);
}

}  // namespace
}  // namespace gannet
