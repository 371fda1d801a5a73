// Bytes read per generated token (decode_bytes.h).
#include "cli/decode_bytes.h"

#include <algorithm>

namespace gannet::cli {

DecodeBytes BytesPerGeneratedToken(const engine::ModelRunner& eng, int64_t n_prompt,
                                   int64_t n_gen) {
  DecodeBytes d;
  const GgufFile& file = eng.file();
  const bool tied = file.FindTensor("output.weight") == nullptr;
  for (const GgufTensorInfo& t : file.tensors()) {
    if (t.name == "token_embd.weight" && !tied && !t.shape.empty() && t.n_elements > 0) {
      // A lookup touches one row of [n_embd, n_vocab]; the rows are whole quantization blocks.
      d.weights += t.n_bytes / (t.n_elements / t.shape[0]);
    } else {
      d.weights += t.n_bytes;  // the tied embedding is the output matmul and is read whole
    }
  }
  // The cache holds f16 K and V rows of kv_width(layer) (engine/paged_kv.h). Token i of the tg
  // phase sits at position n_prompt + i and attends to every position up to it, or to the last
  // `sliding_window` of them on a sliding-window layer.
  const models::ModelConfig& c = eng.config();
  for (int64_t i = 0; i < n_gen; ++i) {
    const int64_t visible = n_prompt + i + 1;
    for (int64_t l = 0; l < c.n_layer; ++l) {
      const bool swa = l < static_cast<int64_t>(c.layer_is_swa.size()) && c.layer_is_swa[l] &&
                       c.sliding_window > 0;
      const int64_t keys = swa ? std::min(visible, c.sliding_window) : visible;
      d.kv +=
          static_cast<double>(keys * c.kv_width(l) * 2 * static_cast<int64_t>(sizeof(uint16_t)));
    }
  }
  if (n_gen > 0) d.kv /= static_cast<double>(n_gen);
  return d;
}

}  // namespace gannet::cli
