#pragma once

#include <memory>
#include <vector>

#include "models/loader.h"
#include "models/model.h"

namespace gannet::models {

class Gemma3Model final : public Model {
 public:
  static Result<std::unique_ptr<Model>> Load(std::shared_ptr<const GgufFile> file);
  Result<graph::Graph> BuildGraph(int64_t n_tokens, int64_t n_outputs,
                                  const GraphOptions& options) const override;

 private:
  using Model::Model;
  struct Layer : BlockWeights {
    graph::WeightRef post_attn_norm, post_ffw_norm;
  };
  graph::WeightRef tok_embd_, output_norm_;
  std::vector<Layer> layers_;
};

}  // namespace gannet::models
