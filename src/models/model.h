// A loaded model: its hyperparameters, borrowed weights, and the forward pass written once
// against graph/ (DESIGN.md: models say what is computed, never when or for whom).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "base/status.h"
#include "formats/gguf.h"
#include "graph/ir.h"

namespace gannet::models {

// Hyperparameters, read from the file's metadata with llama.cpp's defaults.
struct ModelConfig {
  std::string arch;  // general.architecture
  std::string name;  // general.name (may be empty)
  int64_t n_layer = 0, n_embd = 0, n_vocab = 0, n_ctx_train = 0;
  int64_t head_dim_k = 0, head_dim_v = 0, n_rot = 0;
  std::vector<int64_t> n_head, n_head_kv, n_ff;  // per layer
  float rms_eps = 1e-5f;
  kernels::RopeMode rope_mode = kernels::RopeMode::kNorm;
  float rope_base = 10000.0f, rope_freq_scale = 1.0f;
  float rope_base_swa = 10000.0f, rope_freq_scale_swa = 1.0f;  // sliding-window layers
  float rope_ext_factor = 0.0f, rope_attn_factor = 1.0f, yarn_beta_fast = 32.0f,
        yarn_beta_slow = 1.0f;
  int64_t rope_n_ctx_orig = 0;
  int64_t sliding_window = 0;      // 0: no sliding-window layers
  std::vector<bool> layer_is_swa;  // per layer
  float attn_scale = 0.0f;         // query scale (1/sqrt(head_dim) by default)
  float embed_scale = 1.0f;
  float final_logit_softcap = 0.0f;  // 0: off
  bool tied_output = false;

  int64_t kv_width(int64_t layer) const { return n_head_kv[layer] * head_dim_k; }
  int64_t max_kv_width() const;
};

// A variant of the forward pass over the same weights (self-speculation's draft,
// engine/self_draft.h): fewer layers (early exit) and/or another output matrix.
struct GraphOptions {
  int64_t n_layers = 0;  // run layers [0, n_layers) only; 0: all
  // The output projection [n_out, n_embd] (e.g. a gathered subset of the output matrix's rows,
  // giving n_out logits per row); invalid: the model's own.
  graph::WeightRef output;
};

// A copy of a tensor's bytes (64-byte aligned), kept by the model whose weights point into it.
struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using TensorCopy = std::unique_ptr<void, FreeDeleter>;

class Model {
 public:
  virtual ~Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  const ModelConfig& config() const { return config_; }
  const GgufFile& file() const { return *file_; }

  // The forward pass for a batch of n_tokens tokens producing n_outputs rows of logits.
  // REQUIRES: options.n_layers <= config().n_layer; options.output, when valid, has
  // n_embd columns.
  virtual Result<graph::Graph> BuildGraph(int64_t n_tokens, int64_t n_outputs,
                                          const GraphOptions& options) const = 0;

  // The output projection [n_vocab, n_embd] (the token embedding when tied).
  const graph::WeightRef& output_weight() const { return output_; }

  // Bytes of all weights the forward pass reads (for reporting).
  int64_t weight_bytes() const { return weight_bytes_; }

 protected:
  Model(std::shared_ptr<const GgufFile> file, ModelConfig config)
      : file_(std::move(file)), config_(std::move(config)) {}
  std::shared_ptr<const GgufFile> file_;  // keeps the mapping the weights point into alive
  ModelConfig config_;
  graph::WeightRef output_;
  int64_t weight_bytes_ = 0;
  // The vectors (norm weights, biases) copied out of the file at load: WeightLoader::TakeCopies.
  std::vector<TensorCopy> copies_;
};

// Reads general.architecture and builds the matching model, validating every weight's presence,
// type and shape. Errors name the architecture, key or tensor concerned.
Result<std::unique_ptr<Model>> LoadModel(std::shared_ptr<const GgufFile> file);

// Architectures this build can run (for messages and `gannet inspect`).
std::vector<std::string> SupportedArchitectures();

}  // namespace gannet::models
