// Malformed GGUF files: each case starts from a valid file (written by GgufWriter, or raw bytes),
// breaks one thing, and expects an error whose message names it. Then every truncation and a
// deterministic mutation fuzz: the reader may only ever answer with an error or a consistent file.
// Run under the ASan/UBSan build (-DGANNET_SANITIZE=ON) to catch reads past the end.
#include <gtest/gtest.h>

#include <chrono>
#include <initializer_list>
#include <random>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "gguf_test_util.h"

namespace gannet {
namespace {

using testing_util::FindBytes;
using testing_util::ParseCopy;
using testing_util::Peek;
using testing_util::Poke;

// A small valid file. Tensor "tq8" (q8_0, [32, 2], 68 bytes, padded to 96) comes first and "tf32"
// (f32, [8], exactly 32 bytes) last, so the file ends where the last tensor's data ends.
std::vector<uint8_t> BaseFile() {
  GgufWriter w;
  w.SetString("general.architecture", "base");
  w.SetUint32("base.block_count", 2);
  w.SetString("dup.aa", "first");
  w.SetString("dup.ab", "second");
  w.SetArray<uint8_t>("arr.bytes", {1, 2, 3});
  const std::vector<std::string> toks = {"tokA", "tokB"};
  w.SetStringArray("arr.tokens", toks);
  w.SetFloat32("base.eps", 1e-6f);
  std::vector<uint8_t> q8(68, 0x11), f32(32, 0x22);
  EXPECT_TRUE(w.AddTensor("tq8", DType::kQ8_0, {32, 2}, q8).ok());
  EXPECT_TRUE(w.AddTensor("tf32", DType::kF32, {8}, f32).ok());
  return w.Serialize();
}

// Where the fields of tensor info `name` are (it must be a unique byte string in the file).
struct InfoPos {
  size_t n_dims, ne, type, offset;
};
InfoPos TensorInfo(const std::vector<uint8_t>& b, std::string_view name) {
  InfoPos p;
  p.n_dims = FindBytes(b, name) + name.size();
  const uint32_t n = Peek<uint32_t>(b, p.n_dims);
  p.ne = p.n_dims + 4;
  p.type = p.ne + 8 * n;
  p.offset = p.type + 4;
  return p;
}

// Asserts that parsing fails and the message contains every word.
void ExpectError(const std::vector<uint8_t>& bytes, std::initializer_list<std::string_view> words) {
  Status st = ParseCopy(bytes);
  ASSERT_FALSE(st.ok()) << "a malformed file was accepted";
  for (std::string_view w : words) {
    EXPECT_NE(st.message().find(w), std::string::npos)
        << "'" << w << "' missing in: " << st.message();
  }
}

TEST(GgufBadInput, BaseFileIsValid) {
  const std::vector<uint8_t> b = BaseFile();
  Status st = ParseCopy(b);
  ASSERT_TRUE(st.ok()) << st.ToString();
  auto f = GgufFile::FromBytes(b, "base");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ((*f)->FindTensor("tf32")->data.data() + 32, b.data() + b.size());
}

TEST(GgufBadInput, EveryTruncationFails) {
  const std::vector<uint8_t> b = BaseFile();
  for (size_t n = 0; n < b.size(); ++n) {
    std::vector<uint8_t> prefix(b.begin(), b.begin() + n);
    Status st = ParseCopy(prefix);
    EXPECT_FALSE(st.ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_FALSE(st.message().empty());
  }
  ExpectError({b.begin(), b.begin() + 12}, {"truncated", "at byte 12", "tensor count"});
  ExpectError({b.begin(), b.end() - 1}, {"tensor 'tf32'", "past the end of the file"});
}

TEST(GgufBadInput, WrongMagic) {
  std::vector<uint8_t> b = BaseFile();
  b[0] = 'X';
  ExpectError(b, {"not a GGUF file", "XGUF"});
  ExpectError({}, {"not a GGUF file"});
}

TEST(GgufBadInput, UnsupportedVersions) {
  std::vector<uint8_t> b = BaseFile();
  for (uint32_t v : {0u, 1u, 4u, 100u}) {
    Poke<uint32_t>(&b, 4, v);
    ExpectError(b, {"GGUF version " + std::to_string(v) + " is not supported"});
  }
  Poke<uint32_t>(&b, 4, 0x03000000);
  ExpectError(b, {"wrong byte order"});
  Poke<uint32_t>(&b, 4, 0x00030000);
  ExpectError(b, {"wrong byte order"});
  Poke<uint32_t>(&b, 4, 2);  // version 2 has the same layout
  EXPECT_TRUE(ParseCopy(b).ok());
}

TEST(GgufBadInput, AbsurdCounts) {
  std::vector<uint8_t> b = BaseFile();
  Poke<int64_t>(&b, 8, int64_t{1} << 40);
  ExpectError(b, {"tensors"});
  b = BaseFile();
  Poke<int64_t>(&b, 8, -1);
  ExpectError(b, {"-1 tensors"});
  b = BaseFile();
  Poke<int64_t>(&b, 16, int64_t{1} << 60);
  ExpectError(b, {"metadata entries"});
  b = BaseFile();
  Poke<int64_t>(&b, 16, 100);  // plausible but wrong: runs into the tensor infos
  EXPECT_FALSE(ParseCopy(b).ok());
}

TEST(GgufBadInput, HugeStringLengthFailsFast) {
  std::vector<uint8_t> b = BaseFile();
  const size_t key = FindBytes(b, "base.block_count");
  Poke<uint64_t>(&b, key - 8, uint64_t{1} << 60);
  const auto start = std::chrono::steady_clock::now();
  ExpectError(b, {"claims a length of 1152921504606846976 bytes"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  // A string value, and a string inside an array.
  b = BaseFile();
  Poke<uint64_t>(&b, FindBytes(b, "first") - 8, ~uint64_t{0});
  ExpectError(b, {"'dup.aa'", "claims a length"});
  b = BaseFile();
  Poke<uint64_t>(&b, FindBytes(b, "tokB") - 8, uint64_t{1} << 60);
  ExpectError(b, {"string #1", "'arr.tokens'"});
}

TEST(GgufBadInput, HugeArrayCountFailsFast) {
  std::vector<uint8_t> b = BaseFile();
  // arr.bytes: key, type (4), element type (4), count (8).
  const size_t count_at = FindBytes(b, "arr.bytes") + 9 + 8;
  ASSERT_EQ(Peek<uint64_t>(b, count_at), 3u);
  Poke<uint64_t>(&b, count_at, uint64_t{1} << 60);
  ExpectError(b, {"'arr.bytes'", "1152921504606846976 u8 elements"});
  Poke<uint64_t>(&b, count_at, ~uint64_t{0});
  ExpectError(b, {"'arr.bytes'", "elements"});
  b = BaseFile();
  const size_t str_count = FindBytes(b, "arr.tokens") + 10 + 8;
  ASSERT_EQ(Peek<uint64_t>(b, str_count), 2u);
  Poke<uint64_t>(&b, str_count, uint64_t{1} << 60);
  ExpectError(b, {"'arr.tokens'", "string elements"});
}

TEST(GgufBadInput, UnknownValueTypes) {
  std::vector<uint8_t> b = BaseFile();
  const size_t type_at = FindBytes(b, "base.block_count") + 16;
  Poke<int32_t>(&b, type_at, 13);
  ExpectError(b, {"'base.block_count'", "unknown value type 13"});
  Poke<int32_t>(&b, type_at, -1);
  ExpectError(b, {"unknown value type -1"});
  b = BaseFile();
  Poke<int32_t>(&b, FindBytes(b, "arr.bytes") + 13, 99);
  ExpectError(b, {"'arr.bytes'", "array of unknown value type 99"});
}

TEST(GgufBadInput, DuplicateKeyAndTensorName) {
  std::vector<uint8_t> b = BaseFile();
  b[FindBytes(b, "dup.ab") + 5] = 'a';
  ExpectError(b, {"duplicate metadata key 'dup.aa'"});

  GgufWriter w;
  EXPECT_TRUE(w.AddTensor("t.a", DType::kF32, {8}, std::vector<uint8_t>(32)).ok());
  EXPECT_TRUE(w.AddTensor("t.b", DType::kF32, {8}, std::vector<uint8_t>(32)).ok());
  b = w.Serialize();
  ASSERT_TRUE(ParseCopy(b).ok());
  b[FindBytes(b, "t.b") + 2] = 'a';
  ExpectError(b, {"duplicate tensor name 't.a'"});
}

TEST(GgufBadInput, BadAlignment) {
  auto with_alignment = [](auto set) {
    GgufWriter w;
    set(&w);
    EXPECT_TRUE(w.AddTensor("t", DType::kF32, {8}, std::vector<uint8_t>(32)).ok());
    return w.Serialize();
  };
  ExpectError(with_alignment([](GgufWriter* w) { w->SetUint32("general.alignment", 0); }),
              {"general.alignment", "power of two", "0"});
  ExpectError(with_alignment([](GgufWriter* w) { w->SetUint32("general.alignment", 3); }),
              {"general.alignment", "power of two", "3"});
  ExpectError(with_alignment([](GgufWriter* w) { w->SetUint64("general.alignment", 32); }),
              {"general.alignment must be a u32", "u64"});
  ExpectError(with_alignment([](GgufWriter* w) { w->SetString("general.alignment", "32"); }),
              {"general.alignment must be a u32", "string"});
  ExpectError(with_alignment([](GgufWriter* w) { w->SetInt32("general.alignment", 32); }),
              {"general.alignment must be a u32", "i32"});
  std::vector<uint8_t> ok =
      with_alignment([](GgufWriter* w) { EXPECT_TRUE(w->SetAlignment(256).ok()); });
  auto f = GgufFile::FromBytes(ok, "aligned");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->alignment(), 256u);
  EXPECT_EQ((*f)->data_offset(), 256u);
}

TEST(GgufBadInput, TensorDataPastTheEnd) {
  std::vector<uint8_t> b = BaseFile();
  const InfoPos p = TensorInfo(b, "tf32");
  Poke<uint64_t>(&b, p.offset, 96 + 32);  // one slot further
  const std::string size = std::to_string(b.size());
  ExpectError(b, {"tensor 'tf32' data ends at byte " + std::to_string(b.size() + 32),
                  "past the end of the file (" + size + " bytes)"});
  Poke<uint64_t>(&b, p.offset, ~uint64_t{31});  // aligned, and the sum overflows 64 bits
  ExpectError(b, {"tensor 'tf32'", "past the end of the file"});
}

TEST(GgufBadInput, OverlappingTensors) {
  std::vector<uint8_t> b = BaseFile();
  Poke<uint64_t>(&b, TensorInfo(b, "tf32").offset, 64);  // inside tq8's 68 bytes
  ExpectError(b, {"'tq8'", "'tf32'", "overlap"});
  Poke<uint64_t>(&b, TensorInfo(b, "tf32").offset, 0);
  ExpectError(b, {"overlap"});
}

TEST(GgufBadInput, MisalignedOffset) {
  std::vector<uint8_t> b = BaseFile();
  Poke<uint64_t>(&b, TensorInfo(b, "tf32").offset, 100);
  ExpectError(b, {"tensor 'tf32'", "offset 100", "not a multiple of the alignment 32"});
}

TEST(GgufBadInput, AbsurdDimensions) {
  std::vector<uint8_t> b = BaseFile();
  const InfoPos p = TensorInfo(b, "tf32");
  Poke<int64_t>(&b, p.ne, int64_t{1} << 62);  // 2^62 f32 values: 2^64 bytes
  ExpectError(b, {"tensor 'tf32'", "overflows"});
  Poke<int64_t>(&b, p.ne, int64_t{1} << 40);  // fits in int64 but not in the file
  ExpectError(b, {"tensor 'tf32'", "past the end of the file"});
  Poke<int64_t>(&b, p.ne, -8);
  ExpectError(b, {"tensor 'tf32'", "negative", "-8"});

  b = BaseFile();
  const InfoPos q = TensorInfo(b, "tq8");  // [32, 2]: make it [2^35, 2^35] -> 2^70 elements
  Poke<int64_t>(&b, q.ne, int64_t{1} << 35);
  Poke<int64_t>(&b, q.ne + 8, int64_t{1} << 35);
  ExpectError(b, {"tensor 'tq8'", "overflows"});
  Poke<int64_t>(&b, q.ne, 0);  // zero elements: no bytes, fine
  EXPECT_TRUE(ParseCopy(b).ok());
}

TEST(GgufBadInput, DimensionCount) {
  std::vector<uint8_t> b = BaseFile();
  const InfoPos p = TensorInfo(b, "tf32");
  Poke<uint32_t>(&b, p.n_dims, 0);
  ExpectError(b, {"tensor 'tf32'", "n_dims = 0"});
  Poke<uint32_t>(&b, p.n_dims, 5);
  ExpectError(b, {"tensor 'tf32'", "n_dims = 5"});
  Poke<uint32_t>(&b, p.n_dims, 0xFFFFFFFF);
  ExpectError(b, {"n_dims = 4294967295"});
}

TEST(GgufBadInput, UnknownTensorType) {
  std::vector<uint8_t> b = BaseFile();
  const InfoPos p = TensorInfo(b, "tf32");
  Poke<int32_t>(&b, p.type, 123);
  ExpectError(b, {"tensor 'tf32' has unknown type 123"});
  Poke<int32_t>(&b, p.type, 4);  // retired Q4_2
  ExpectError(b, {"unknown type 4"});
}

TEST(GgufBadInput, RowNotAMultipleOfTheBlockSize) {
  std::vector<uint8_t> b = BaseFile();
  Poke<int64_t>(&b, TensorInfo(b, "tq8").ne, 33);
  ExpectError(b, {"tensor 'tq8'", "ne[0] = 33", "q8_0 block size 32"});
}

TEST(GgufBadInput, TensorNameLength) {
  // 63 bytes are accepted (llama.cpp's limit is < 64); 64 are not. Lengthen a 63-byte name by one
  // byte: the error comes before anything after the name matters.
  GgufWriter w;
  const std::string name(63, 'n');
  EXPECT_TRUE(w.AddTensor(name, DType::kF32, {8}, std::vector<uint8_t>(32)).ok());
  std::vector<uint8_t> b = w.Serialize();
  ASSERT_TRUE(ParseCopy(b).ok());
  const size_t at = FindBytes(b, name);
  Poke<uint64_t>(&b, at - 8, 64);
  b.insert(b.begin() + at, 'n');
  ExpectError(b, {"64 bytes long", "limit is 63"});
}

// Raw bytes for files the writer will not produce.
class RawFile {
 public:
  RawFile(int64_t n_tensors, int64_t n_kv) {
    bytes_ = {'G', 'G', 'U', 'F'};
    Put<uint32_t>(3);
    Put<int64_t>(n_tensors);
    Put<int64_t>(n_kv);
  }
  template <typename T>
  void Put(T v) {
    const size_t at = bytes_.size();
    bytes_.resize(at + sizeof(T));
    std::memcpy(bytes_.data() + at, &v, sizeof(T));
  }
  void PutString(std::string_view s) {
    Put<uint64_t>(s.size());
    bytes_.insert(bytes_.end(), s.begin(), s.end());
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

TEST(GgufBadInput, ArrayNestingDepth) {
  auto nested = [](int levels) {
    RawFile f(0, 1);
    f.PutString("deep");
    f.Put<int32_t>(static_cast<int32_t>(GgufType::kArray));
    for (int k = 1; k < levels; ++k) {
      f.Put<int32_t>(static_cast<int32_t>(GgufType::kArray));
      f.Put<uint64_t>(1);
    }
    f.Put<int32_t>(static_cast<int32_t>(GgufType::kInt32));
    f.Put<uint64_t>(1);
    f.Put<int32_t>(42);
    return f.bytes();
  };
  const std::vector<uint8_t> deepest = nested(kGgufMaxArrayDepth);
  auto ok = GgufFile::FromBytes(deepest, "ok");
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)->Find("deep")->ToString(), "[[[[[[[[42]]]]]]]]");
  ExpectError(nested(kGgufMaxArrayDepth + 1), {"'deep'", "nests arrays more than 8 levels"});
  ExpectError(nested(1000), {"nests arrays"});
}

TEST(GgufBadInput, ManyEmptyNestedArraysStayBounded) {
  // A count of nested arrays that fits in the file is accepted; memory is charged per element.
  RawFile f(0, 1);
  f.PutString("many");
  f.Put<int32_t>(static_cast<int32_t>(GgufType::kArray));
  f.Put<int32_t>(static_cast<int32_t>(GgufType::kArray));
  f.Put<uint64_t>(1000);
  for (int k = 0; k < 1000; ++k) {
    f.Put<int32_t>(static_cast<int32_t>(GgufType::kUint8));
    f.Put<uint64_t>(0);
  }
  auto r = GgufFile::FromBytes(f.bytes(), "many");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)->Find("many")->count, 1000u);
}

// Exercises everything a caller might touch on a file that parsed.
void UseEverything(const GgufFile& f, std::span<const uint8_t> bytes) {
  for (const auto& [key, value] : f.metadata()) {
    (void)value.ToString(4, 16);
    (void)f.GetInt(key);
    (void)f.GetFloat(key);
    (void)f.GetString(key);
    (void)f.GetIntArray(key);
    (void)f.GetFloatArray(key);
    (void)f.GetStringArray(key);
  }
  for (const GgufTensorInfo& t : f.tensors()) {
    ASSERT_GE(t.data.data(), bytes.data());
    ASSERT_LE(t.data.data() + t.data.size(), bytes.data() + bytes.size());
    ASSERT_EQ(static_cast<int64_t>(t.data.size()), t.n_bytes);
    uint64_t sum = 0;
    for (uint8_t x : t.data) sum += x;  // touch every byte: ASan checks it is ours
    (void)sum;
  }
  (void)FormatGgufSummary(f, false);
}

// Mutates `base` `iterations` times (seeded): random bytes, bit flips, boundary values in 4- or
// 8-byte fields, truncations and insertions. Returns {accepted, rejected}.
std::pair<int, int> Fuzz(const std::vector<uint8_t>& base, uint64_t seed, int iterations) {
  std::mt19937_64 rng(seed);
  const uint64_t kInteresting[] = {0,
                                   1,
                                   2,
                                   3,
                                   4,
                                   5,
                                   31,
                                   32,
                                   33,
                                   0x7f,
                                   0x80,
                                   0xff,
                                   0xffff,
                                   0xffffffffull,
                                   uint64_t{1} << 32,
                                   uint64_t{1} << 62,
                                   uint64_t{1} << 63,
                                   ~uint64_t{0},
                                   ~uint64_t{0} - 7};
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < iterations; ++iter) {
    std::vector<uint8_t> b = base;
    const int n_mut = 1 + static_cast<int>(rng() % 4);
    for (int m = 0; m < n_mut && !b.empty(); ++m) {
      const size_t at = rng() % b.size();
      switch (rng() % 5) {
        case 0:
          b[at] = static_cast<uint8_t>(rng());
          break;
        case 1:
          b[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
          break;
        case 2: {  // an interesting 8- or 4-byte value
          const uint64_t v = kInteresting[rng() % std::size(kInteresting)];
          const size_t n = (rng() % 2) ? 8 : 4;
          if (at + n <= b.size()) std::memcpy(b.data() + at, &v, n);
          break;
        }
        case 3:
          b.resize(at);
          break;
        default:
          b.insert(b.begin() + at, static_cast<uint8_t>(rng()));
          break;
      }
    }
    std::vector<uint8_t> copy(b);  // exactly sized, so ASan sees overreads
    auto r = GgufFile::FromBytes(copy, "fuzz");
    if (r.ok()) {
      ++accepted;
      UseEverything(**r, copy);
    } else {
      ++rejected;
      EXPECT_FALSE(r.status().message().empty());
    }
  }
  return {accepted, rejected};
}

TEST(GgufBadInput, MutationFuzz) {
  auto [accepted, rejected] = Fuzz(BaseFile(), 12345, 3000);
  EXPECT_GT(rejected, 100);
  EXPECT_GT(accepted, 10);  // mutations of tensor bytes and string contents stay valid
}

TEST(GgufBadInput, MutationFuzzEveryValueType) {
  // The gguf-py fixture has every value type and nested arrays.
  const std::vector<uint8_t> base =
      testing_util::ReadAll(testing_util::FixturePath("all_types.gguf"));
  ASSERT_FALSE(base.empty());
  auto [accepted, rejected] = Fuzz(base, 678, 3000);
  EXPECT_GT(rejected, 100);
  EXPECT_GT(accepted, 10);
}

}  // namespace
}  // namespace gannet
