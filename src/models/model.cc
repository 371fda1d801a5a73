#include "models/model.h"

#include "models/gemma3.h"
#include "models/llama.h"

namespace gannet::models {

std::vector<std::string> SupportedArchitectures() {
  return {"gemma3", "llama", "mistral", "qwen2", "qwen3"};
}

Result<std::unique_ptr<Model>> LoadModel(std::shared_ptr<const GgufFile> file) {
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
