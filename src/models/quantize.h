// Model quantization (`gannet quantize`): a GGUF model with F32 / F16 / BF16 weights in, the same
// model with block-quantized weights out, type by type as llama.cpp's llama-quantize chooses them.
//
// A target names a llama.cpp file type (LLAMA_FTYPE): a base type for the weight matrices plus, for
// the K-quant mixes, per-tensor rules that spend more bits where quantization hurts most (output
// projection, attn_v and ffn_down of the first, last and every third layer, ...). Tensors that are
// not weight matrices (norms, biases, 1-D tensors) are copied unchanged. A row length the chosen
// type cannot hold falls back as llama.cpp does (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0), and to
// F16 when not even a 32-value block fits.
// Thread-safety: the functions are reentrant; QuantizeModel runs its own thread pool.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "formats/gguf.h"
#include "tensor/dtype.h"

namespace gannet::models {

// One name `gannet quantize` accepts (llama-quantize's spelling).
struct QuantizeTarget {
  std::string_view name;         // "Q4_K_M"
  DType base;                    // type of the weight matrices before the mix rules
  int32_t file_type;             // llama.cpp's LLAMA_FTYPE, written to general.file_type
  bool is_mix;                   // per-tensor rules beyond the output/embedding rule
  std::string_view description;  // one line for --help
};

// All targets, in the order --help lists them. "Q4_K" and "Q5_K" are aliases of Q4_K_M and Q5_K_M,
// as in llama-quantize.
std::span<const QuantizeTarget> QuantizeTargets();
// By name (case-insensitive) or by llama.cpp file-type number ("15"). InvalidArgument naming the
// accepted names otherwise.
Result<QuantizeTarget> FindQuantizeTarget(std::string_view name);

struct QuantizeProgress {
  size_t tensor_index = 0;  // the tensor being written, 0-based, in file order
  size_t n_tensors = 0;
  std::string_view name;  // its name
  DType from = DType::kF32, to = DType::kF32;
  int64_t elements_done = 0;  // over the whole model, this tensor's finished rows included
  int64_t elements_total = 0;
};

struct QuantizeOptions {
  QuantizeTarget target;
  // Every weight matrix gets target.base (no mix rules, no output/embedding upgrade); shape
  // fallbacks still apply. llama-quantize's --pure.
  bool pure = false;
  // Types for output.weight and token_embd.weight, overriding the rules (llama-quantize's
  // --output-tensor-type / --token-embedding-type). The row length must fit the type.
  std::optional<DType> output_type;
  std::optional<DType> token_embedding_type;
  int n_threads = 0;  // <= 0: one per hardware thread
  // Called from the calling thread after each chunk of rows and each copied tensor.
  std::function<void(const QuantizeProgress&)> progress;
};

// What happens to one tensor.
struct TensorPlan {
  std::string name;
  std::vector<int64_t> shape;  // ggml order
  DType from = DType::kF32;
  DType to = DType::kF32;
  bool convert = false;  // false: the bytes are copied unchanged (to == from)
  std::string fallback;  // non-empty when the row length forced a type other than the rule's
};

struct QuantizeReport {
  std::vector<TensorPlan> tensors;
  uint64_t input_bytes = 0;  // file sizes
  uint64_t output_bytes = 0;
  int n_fallback = 0;
};

// Decides every tensor's output type without writing anything. InvalidArgument for an input that
// cannot be quantized (a weight already quantized to another type, a split file, ...).
Result<std::vector<TensorPlan>> PlanQuantization(const GgufFile& in,
                                                 const QuantizeOptions& options);

// Reads `input_path`, writes `output_path` (through a temporary file renamed at the end, so a
// failure leaves no partial output). Metadata is copied with general.file_type and
// general.quantization_version updated; the alignment is kept. Tensors are converted a chunk of
// rows at a time and streamed to the file, so memory stays at a few chunks however large the model.
// REQUIRES: options.target is one of QuantizeTargets().
Result<QuantizeReport> QuantizeModel(const std::string& input_path, const std::string& output_path,
                                     const QuantizeOptions& options);

}  // namespace gannet::models
