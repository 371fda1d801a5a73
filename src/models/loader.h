// Helpers shared by the architecture files: typed metadata with the architecture prefix, and
// weight lookup with type and shape checks.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"
#include "formats/gguf.h"
#include "graph/ir.h"
#include "models/model.h"

namespace gannet::models {

class WeightLoader {
 public:
  WeightLoader(const GgufFile& file, std::string arch) : file_(file), arch_(std::move(arch)) {}

  // "{arch}.<suffix>"
  std::string Key(const std::string& suffix) const { return arch_ + "." + suffix; }

  // A weight with ggml shape [cols, rows] (rows = 1 for vectors: pass rows = 1). A vector (a
  // norm's weights, a bias) is copied out of the file (see TakeCopies); a matrix points into it.
  Result<graph::WeightRef> Get(const std::string& name, int64_t cols, int64_t rows);
  // nullopt-like: an invalid WeightRef when absent; an error when present but malformed.
  Result<graph::WeightRef> GetOptional(const std::string& name, int64_t cols, int64_t rows);
  // A per-layer value that may be stored as a scalar or as an array of n_layer values.
  Result<std::vector<int64_t>> GetPerLayer(const std::string& suffix, int64_t n_layer,
                                           std::optional<int64_t> dflt);

  int64_t bytes_loaded() const { return bytes_; }

  // The copies of the vectors loaded so far; the model keeps them (the WeightRefs point into
  // them). Why copies: the matrices are copied by the backend at load and their file pages
  // dropped; a forward pass that read its norm vectors from the file faulted each one's
  // page-cache folio back in (up to 2 MiB a vector where the kernel keeps files in large
  // folios: 36 MiB of a 139 MiB model resident again after one step).
  std::vector<TensorCopy> TakeCopies() { return std::move(copies_); }

 private:
  const GgufFile& file_;
  std::string arch_;
  int64_t bytes_ = 0;
  std::vector<TensorCopy> copies_;
};

// The weights every pre-norm block here has (q/k norms and biases are optional; an
// architecture that requires them checks after loading).
struct BlockWeights {
  graph::WeightRef attn_norm, wq, wk, wv, wo, q_norm, k_norm;
  graph::WeightRef ffn_norm, gate, up, down;
};
Result<BlockWeights> LoadBlockWeights(WeightLoader& w, const ModelConfig& c, int64_t layer);

// Token embedding, final norm and output projection (the embedding when output.weight is absent).
struct IoWeights {
  graph::WeightRef tok_embd, output_norm, output;
  bool tied = false;
};
Result<IoWeights> LoadIoWeights(WeightLoader& w, const ModelConfig& c);

// "blk.<layer>.<name>"
inline std::string BlockTensorName(int64_t layer, const std::string& name) {
  return "blk." + std::to_string(layer) + "." + name;
}

// Fills the fields every architecture shares (sizes, norms eps, RoPE, vocab) from metadata.
Status ReadCommonConfig(const GgufFile& file, const WeightLoader& w, ModelConfig& c);

}  // namespace gannet::models
