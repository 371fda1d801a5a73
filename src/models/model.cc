#include "models/model.h"

#include "models/gemma3.h"
#include "models/llama.h"

namespace gannet::models {

std::vector<std::string> SupportedArchitectures() {
  return {"gemma3", "llama", "mistral", "qwen2", "qwen3"};
}

Result<std::unique_ptr<Model>> LoadModel(std::shared_ptr<const GgufFile> file) {
  // A split model (llama.cpp's gguf-split: the tensors spread over name-0000K-of-0000N.gguf) is
  // refused by name here rather than as a "missing tensor" later: its parts must be merged.
  GANNET_ASSIGN_OR_RETURN(int64_t split_count, file->GetIntOr("split.count", 1));
  if (split_count > 1) {
    GANNET_ASSIGN_OR_RETURN(int64_t split_no, file->GetIntOr("split.no", 0));
    return Status::Unsupported(
        "this file is part " + std::to_string(split_no + 1) + " of a split model (" +
        std::to_string(split_count) +
        " parts); gannet loads single-file models only: merge the parts with "
        "llama-gguf-split --merge FIRST-PART OUT.gguf");
  }
  GANNET_ASSIGN_OR_RETURN(std::string arch, file->GetString("general.architecture"));
  Result<std::unique_ptr<Model>> m = Status::Unsupported("");
  if (arch == "gemma3") {
    m = Gemma3Model::Load(file);
  } else if (arch == "llama" || arch == "mistral" || arch == "qwen2" || arch == "qwen3") {
    m = LlamaModel::Load(file, arch);
  } else {
    std::string list;
    for (const auto& a : SupportedArchitectures()) list += (list.empty() ? "" : ", ") + a;
    return Status::Unsupported("unknown model architecture '" + arch + "' (supported: " + list +
                               ")");
  }
  if (!m.ok()) return m.status().WithContext(arch + " model");
  return m;
}

}  // namespace gannet::models
