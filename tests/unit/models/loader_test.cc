// models/loader: the vectors a forward pass reads (norm weights, biases) are the model's own
// copies of the file's bytes, so that no step reads the file mapping once the backend has copied
// the matrices and dropped their pages; the matrices still point into the file.
#include "models/loader.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>

#include "formats/gguf.h"

namespace gannet::models {
namespace {

const std::string kDir = std::string(GANNET_FIXTURES_DIR) + "/tiny/";

class LoaderTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LoaderTest, VectorsAreCopiesAndMatricesPointIntoTheFile) {
  Result<std::unique_ptr<GgufFile>> opened = GgufFile::Open(kDir + GetParam() + ".gguf");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  std::shared_ptr<const GgufFile> file = std::move(*opened);
  Result<std::unique_ptr<Model>> model = LoadModel(file);
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  Result<graph::Graph> g = (*model)->BuildGraph(3, 1, {});
  ASSERT_TRUE(g.ok()) << g.status().ToString();

  std::less<const void*> before;  // a total order over unrelated pointers
  auto in_file = [&](const void* p) {
    for (const GgufTensorInfo& t : file->tensors()) {
      if (!before(p, t.data.data()) && before(p, t.data.data() + t.data.size())) return true;
    }
    return false;
  };
  int vectors = 0, matrices = 0;
  for (const graph::Node& n : g->nodes) {
    if (!n.weight.valid()) continue;
    const GgufTensorInfo* t = file->FindTensor(n.weight.name);
    ASSERT_NE(t, nullptr) << n.weight.name;
    if (n.weight.rows == 1) {
      ++vectors;
      EXPECT_FALSE(in_file(n.weight.data)) << n.weight.name << " is read from the file";
      EXPECT_EQ(reinterpret_cast<uintptr_t>(n.weight.data) % 64, 0u) << n.weight.name;
      EXPECT_EQ(std::memcmp(n.weight.data, t->data.data(), t->data.size()), 0) << n.weight.name;
    } else {
      ++matrices;
      EXPECT_EQ(n.weight.data, t->data.data()) << n.weight.name;
    }
  }
  EXPECT_GT(vectors, 0);
  EXPECT_GT(matrices, 0);
  // The copies live as long as the model: a second graph reads the same ones.
  Result<graph::Graph> again = (*model)->BuildGraph(1, 1, {});
  ASSERT_TRUE(again.ok());
  for (const graph::Node& n : again->nodes) {
    if (n.weight.valid() && n.weight.rows == 1) {
      EXPECT_FALSE(in_file(n.weight.data)) << n.weight.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoaderTest,
                         ::testing::Values("tiny-llama-f32", "tiny-llama-q", "tiny-gemma3-q",
                                           "tiny-qwen2-f32"),
                         [](const auto& info) {
                           std::string s = info.param;
                           std::replace(s.begin(), s.end(), '-', '_');  // a valid test name
                           return s;
                         });

}  // namespace
}  // namespace gannet::models
