// GgufWriter::AddTensorInfo + Write(path, producer): tensors produced while the file is written.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>

#include "formats/gguf.h"
#include "formats/gguf_writer.h"

namespace gannet {
namespace {

std::vector<uint8_t> ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + 7 * i);
  return v;
}

TEST(GgufWriterStream, ProducedInPiecesEqualsTheInMemoryFile) {
  const std::vector<uint8_t> a = Pattern(64 * 3 * 4, 1);  // f32 [64, 3]
  const std::vector<uint8_t> b = Pattern(34 * 5, 2);      // q8_0 [32, 5]
  const std::vector<uint8_t> c = Pattern(10, 3);          // f16 [5]

  GgufWriter reference;
  reference.SetString("general.architecture", "llama");
  ASSERT_TRUE(reference.SetAlignment(64).ok());
  ASSERT_TRUE(reference.AddTensor("a", DType::kF32, {64, 3}, a).ok());
  ASSERT_TRUE(reference.AddTensor("b", DType::kQ8_0, {32, 5}, b).ok());
  ASSERT_TRUE(reference.AddTensor("c", DType::kF16, {5}, c).ok());

  GgufWriter w;
  w.SetString("general.architecture", "llama");
  ASSERT_TRUE(w.SetAlignment(64).ok());
  ASSERT_TRUE(w.AddTensorInfo("a", DType::kF32, {64, 3}).ok());
  ASSERT_TRUE(w.AddTensorView("b", DType::kQ8_0, {32, 5}, b).ok());  // mixed with a view
  ASSERT_TRUE(w.AddTensorInfo("c", DType::kF16, {5}).ok());
  std::vector<size_t> asked;
  const std::string path = ::testing::TempDir() + "gguf_stream.gguf";
  Status st = w.Write(path, [&](size_t i, const GgufWriter::ByteSink& sink) -> Status {
    asked.push_back(i);
    const std::vector<uint8_t>& src = i == 0 ? a : c;
    // Uneven pieces, one of them empty.
    size_t at = 0;
    for (size_t piece : {size_t{1}, size_t{0}, size_t{100}}) {
      piece = std::min(piece, src.size() - at);
      GANNET_RETURN_IF_ERROR(sink(std::span<const uint8_t>(src.data() + at, piece)));
      at += piece;
    }
    return sink(std::span<const uint8_t>(src.data() + at, src.size() - at));
  });
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_EQ(asked, (std::vector<size_t>{0, 2}));
  EXPECT_EQ(ReadAll(path), reference.Serialize());

  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ((*f)->alignment(), 64u);
  ASSERT_EQ((*f)->tensors().size(), 3u);
  EXPECT_TRUE(std::equal(a.begin(), a.end(), (*f)->tensors()[0].data.begin()));
}

TEST(GgufWriterStream, SerializeWritesZerosForDeclaredTensors) {
  GgufWriter w;
  ASSERT_TRUE(w.AddTensorInfo("z", DType::kQ4_0, {64, 2}).ok());
  std::vector<uint8_t> bytes = w.Serialize();
  auto f = GgufFile::FromBytes(bytes, "z.gguf");
  ASSERT_TRUE(f.ok()) << f.status().message();
  const GgufTensorInfo& t = (*f)->tensors()[0];
  EXPECT_EQ(t.n_bytes, 2 * 2 * 18);
  EXPECT_TRUE(std::all_of(t.data.begin(), t.data.end(), [](uint8_t b) { return b == 0; }));
}

TEST(GgufWriterStream, WrongByteCountsAndMissingProducerAreErrors) {
  const std::string path = ::testing::TempDir() + "gguf_stream_bad.gguf";
  GgufWriter w;
  ASSERT_TRUE(w.AddTensorInfo("t", DType::kF32, {8}).ok());
  const std::vector<uint8_t> bytes(40, 1);

  Status none = w.Write(path);
  EXPECT_EQ(none.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(none.message().find("'t'"), std::string::npos) << none.message();

  Status shortfall = w.Write(path, [&](size_t, const GgufWriter::ByteSink& sink) {
    return sink(std::span<const uint8_t>(bytes.data(), 31));
  });
  EXPECT_NE(shortfall.message().find("31 of its 32 bytes"), std::string::npos)
      << shortfall.message();

  Status excess = w.Write(path, [&](size_t, const GgufWriter::ByteSink& sink) {
    return sink(std::span<const uint8_t>(bytes.data(), 40));
  });
  EXPECT_NE(excess.message().find("more than its 32 bytes"), std::string::npos) << excess.message();

  Status passed_on =
      w.Write(path, [](size_t, const GgufWriter::ByteSink&) { return Status::Corrupt("boom"); });
  EXPECT_EQ(passed_on.code(), StatusCode::kCorrupt);

  // The declared shape is checked like an added tensor's.
  EXPECT_FALSE(w.AddTensorInfo("t", DType::kF32, {8}).ok());        // duplicate name
  EXPECT_FALSE(w.AddTensorInfo("u", DType::kQ4_K, {100, 2}).ok());  // 100 % 256 != 0
  EXPECT_FALSE(w.AddTensorInfo("v", DType::kF32, {}).ok());         // no dimensions
  EXPECT_FALSE(w.AddTensorInfo("w", DType::kF32, {1 << 30, 1 << 30, 1 << 30}).ok());  // overflow
}

}  // namespace
}  // namespace gannet
