// Loading a model whose file is valid GGUF but wrong as a model: every case must come back as a
// Status naming the problem (never a crash). Files are derived from the tiny Llama fixture by
// copying it through GgufWriter with one change.
#include <gtest/gtest.h>

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "engine/engine.h"
#include "formats/gguf_writer.h"

namespace gannet::engine {
namespace {

const std::string kBase = std::string(GANNET_FIXTURES_DIR) + "/tiny/tiny-llama-f32.gguf";

struct Mutation {
  std::string name;
  std::function<void(GgufWriter&)> edit_metadata;  // after copying metadata
  std::function<bool(const GgufTensorInfo&, GgufWriter&)>
      tensor;          // true: handled (skip default copy)
  std::string expect;  // substring of the error
};

std::string WriteMutated(const Mutation& m) {
  Result<std::unique_ptr<GgufFile>> src = GgufFile::Open(kBase);
  EXPECT_TRUE(src.ok()) << src.status().ToString();
  GgufWriter w;
  for (const auto& [key, value] : (*src)->metadata()) EXPECT_TRUE(w.SetValue(key, value).ok());
  if (m.edit_metadata) m.edit_metadata(w);
  for (const GgufTensorInfo& t : (*src)->tensors()) {
    if (m.tensor && m.tensor(t, w)) continue;
    EXPECT_TRUE(
        w.AddTensor(t.name, t.type, t.shape, std::vector<uint8_t>(t.data.begin(), t.data.end()))
            .ok());
  }
  const std::string path = ::testing::TempDir() + "/mutated_" + m.name + ".gguf";
  EXPECT_TRUE(w.Write(path).ok());
  return path;
}

TEST(ModelLoadErrorsTest, EachProblemIsNamed) {
  const std::vector<Mutation> cases = {
      {"unknown_arch", [](GgufWriter& w) { w.SetString("general.architecture", "mamba9"); },
       nullptr, "unknown model architecture 'mamba9'"},
      {"no_arch", [](GgufWriter& w) { w.Remove("general.architecture"); }, nullptr,
       "general.architecture"},
      {"no_block_count", [](GgufWriter& w) { w.Remove("llama.block_count"); }, nullptr,
       "llama.block_count"},
      {"no_eps", [](GgufWriter& w) { w.Remove("llama.attention.layer_norm_rms_epsilon"); }, nullptr,
       "layer_norm_rms_epsilon"},
      {"zero_heads", [](GgufWriter& w) { w.SetUint32("llama.attention.head_count", 0); }, nullptr,
       "llama.attention.head_count"},
      {"absurd_width",
       [](GgufWriter& w) { w.SetUint64("llama.embedding_length", uint64_t{1} << 40); }, nullptr,
       "llama.embedding_length"},
      {"wrong_type_key", [](GgufWriter& w) { w.SetString("llama.block_count", "three"); }, nullptr,
       "llama.block_count"},
      {"kv_heads_not_divisor",
       [](GgufWriter& w) { w.SetUint32("llama.attention.head_count_kv", 3); }, nullptr,
       "head_count_kv"},
      {"missing_tensor", nullptr,
       [](const GgufTensorInfo& t, GgufWriter&) { return t.name == "blk.1.ffn_up.weight"; },
       "required tensor 'blk.1.ffn_up.weight' is missing"},
      {"wrong_shape", nullptr,
       [](const GgufTensorInfo& t, GgufWriter& w) {
         if (t.name != "blk.0.attn_q.weight") return false;
         std::vector<int64_t> shape = {t.shape[1], t.shape[0]};  // transposed
         if (shape[0] == shape[1]) shape = {t.shape[0], t.shape[1] / 2};
         const size_t bytes = static_cast<size_t>(shape[0] * shape[1]) * sizeof(float);
         EXPECT_TRUE(w.AddTensor(t.name, t.type, shape, std::vector<uint8_t>(bytes)).ok());
         return true;
       },
       "blk.0.attn_q.weight"},
      {"unsupported_type", nullptr,
       [](const GgufTensorInfo& t, GgufWriter& w) {
         if (t.name != "blk.0.ffn_down.weight") return false;
         // Q8_1 is a valid GGUF type (an activation format) that gannet cannot compute with.
         const size_t bytes = static_cast<size_t>(t.shape[0] / 32 * 36 * t.shape[1]);
         EXPECT_TRUE(w.AddTensor(t.name, DType::kQ8_1, t.shape, std::vector<uint8_t>(bytes)).ok());
         return true;
       },
       "q8_1"},
      {"no_tokenizer", [](GgufWriter& w) { w.Remove("tokenizer.ggml.tokens"); }, nullptr,
       "tokenizer"},
      {"bad_tokenizer_model",
       [](GgufWriter& w) { w.SetString("tokenizer.ggml.model", "wordpiece9"); }, nullptr,
       "wordpiece9"},
  };
  for (const Mutation& m : cases) {
    SCOPED_TRACE(m.name);
    const std::string path = WriteMutated(m);
    Result<std::unique_ptr<ModelRunner>> e = ModelRunner::Load(path, {.n_threads = 1, .n_ctx = 32});
    ASSERT_FALSE(e.ok()) << m.name << " loaded";
    EXPECT_NE(e.status().message().find(m.expect), std::string::npos)
        << m.name << ": message was: " << e.status().message();
    std::printf("%-22s -> %s\n", m.name.c_str(), e.status().message().c_str());
  }
}

TEST(ModelLoadErrorsTest, BadRequestsAtRunTime) {
  Result<std::unique_ptr<ModelRunner>> e = ModelRunner::Load(kBase, {.n_threads = 2, .n_ctx = 16});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  ModelRunner& eng = **e;
  const int32_t vocab = static_cast<int32_t>(eng.config().n_vocab);
  std::vector<int32_t> bad = {1, vocab};
  Result<std::span<const float>> r = eng.Evaluate(bad, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("outside the vocabulary"), std::string::npos);
  std::vector<int32_t> too_long(17, 1);
  r = eng.Evaluate(too_long, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("context"), std::string::npos);
  // Through the Engine: requests that cannot fit are refused at Submit; one that fills the context
  // exactly runs to its end.
  Result<std::unique_ptr<Engine>> created = Engine::Create(&eng, {.block_size = 4, .max_seqs = 1});
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  Engine& engine = **created;
  EXPECT_EQ(engine.context_length(), 16);
  EXPECT_FALSE(engine.Submit({.prompt = std::vector<int32_t>(16, 1), .max_tokens = 1}, {}).ok());
  EXPECT_FALSE(engine.Submit({.prompt = {}, .max_tokens = 1}, {}).ok());
  EXPECT_FALSE(engine.Submit({.prompt = {1, vocab}, .max_tokens = 1}, {}).ok());
  std::mutex mu;
  std::condition_variable cv;
  std::optional<GenerationResult> done;
  int64_t tokens = 0;
  GenerationRequest req{.prompt = {1, 5, 6}, .max_tokens = 16 - 3, .stop_at_eog = false};
  req.sampling.temperature = 0;
  ASSERT_TRUE(engine
                  .Submit(std::move(req), {.on_token = [&](const TokenEvent&) { ++tokens; },
                                           .on_done =
                                               [&](const GenerationResult& r) {
                                                 std::lock_guard<std::mutex> lock(mu);
                                                 done = r;
                                                 cv.notify_one();
                                               }})
                  .ok());
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done.has_value(); });
  ASSERT_TRUE(done->status.ok()) << done->status.ToString();
  EXPECT_EQ(done->samples[0].finish, FinishReason::kLength);
  EXPECT_EQ(tokens, 16 - 3);
}

}  // namespace
}  // namespace gannet::engine
