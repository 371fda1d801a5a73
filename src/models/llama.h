#pragma once

#include <memory>
#include <string>
#include <vector>

#include "models/loader.h"
#include "models/model.h"

namespace gannet::models {

class LlamaModel final : public Model {
 public:
  // arch: "llama", "mistral", "qwen2", "qwen3" (RoPE pairing and biases follow from it).
  static Result<std::unique_ptr<Model>> Load(std::shared_ptr<const GgufFile> file,
                                             const std::string& arch);
  Result<graph::Graph> BuildGraph(int64_t n_tokens, int64_t n_outputs,
                                  const GraphOptions& options) const override;

 private:
  using Model::Model;
  struct Layer : BlockWeights {
    graph::WeightRef bq, bk, bv, bo;  // Qwen2 and similar
  };
  graph::WeightRef tok_embd_, output_norm_, rope_freqs_;
  std::vector<Layer> layers_;
};

}  // namespace gannet::models
