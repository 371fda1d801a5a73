#include "models/loader.h"

#include <cmath>
#include <cstring>

namespace gannet::models {

int64_t ModelConfig::max_kv_width() const {
  int64_t m = 0;
  for (int64_t l = 0; l < n_layer; ++l) m = std::max(m, kv_width(l));
  return m;
}

Result<graph::WeightRef> WeightLoader::GetOptional(const std::string& name, int64_t cols,
                                                   int64_t rows) {
  const GgufTensorInfo* t = file_.FindTensor(name);
  if (t == nullptr) return graph::WeightRef{};
  const int64_t want_elems = cols * rows;
  bool shape_ok = t->n_elements == want_elems && !t->shape.empty() && t->shape[0] == cols;
  for (size_t i = 2; i < t->shape.size(); ++i) shape_ok = shape_ok && t->shape[i] == 1;
  if (!shape_ok) {
    std::string got;
    for (size_t i = 0; i < t->shape.size(); ++i)
      got += (i ? " x " : "") + std::to_string(t->shape[i]);
    return Status::Corrupt("tensor '" + name + "' has shape [" + got + "], expected [" +
                           std::to_string(cols) + (rows > 1 ? " x " + std::to_string(rows) : "") +
                           "]");
  }
  const DTypeTraits& tr = Traits(t->type);
  if (!tr.can_load) {
    return Status::Unsupported("tensor '" + name + "' has type " + std::string(tr.name) +
                               ", which gannet cannot compute with yet");
  }
  bytes_ += t->n_bytes;
  const void* data = t->data.data();
  if (rows == 1) {
    TensorCopy copy(std::aligned_alloc(64, (t->data.size() + 63) / 64 * 64));
    if (copy == nullptr) return Status::ResourceExhausted("no memory for tensor '" + name + "'");
    std::memcpy(copy.get(), t->data.data(), t->data.size());
    data = copy.get();
    copies_.push_back(std::move(copy));
  }
  return graph::WeightRef{.type = t->type, .data = data, .rows = rows, .cols = cols, .name = name};
}

Result<graph::WeightRef> WeightLoader::Get(const std::string& name, int64_t cols, int64_t rows) {
  GANNET_ASSIGN_OR_RETURN(graph::WeightRef w, GetOptional(name, cols, rows));
  if (!w.valid()) return Status::NotFound("required tensor '" + name + "' is missing");
  return w;
}

Result<std::vector<int64_t>> WeightLoader::GetPerLayer(const std::string& suffix, int64_t n_layer,
                                                       std::optional<int64_t> dflt) {
  const std::string key = Key(suffix);
  const GgufValue* v = file_.Find(key);
  if (v == nullptr) {
    if (!dflt) return Status::NotFound("required metadata key '" + key + "' is missing");
    return std::vector<int64_t>(n_layer, *dflt);
  }
  if (v->is_array()) {
    GANNET_ASSIGN_OR_RETURN(std::vector<int64_t> vals, file_.GetIntArray(key));
    if (static_cast<int64_t>(vals.size()) != n_layer) {
      return Status::Corrupt("'" + key + "' has " + std::to_string(vals.size()) + " values for " +
                             std::to_string(n_layer) + " layers");
    }
    return vals;
  }
  GANNET_ASSIGN_OR_RETURN(int64_t x, file_.GetInt(key));
  return std::vector<int64_t>(n_layer, x);
}

Result<BlockWeights> LoadBlockWeights(WeightLoader& w, const ModelConfig& c, int64_t l) {
  BlockWeights b;
  const int64_t d = c.n_embd, hd = c.head_dim_k;
  const int64_t q_w = c.n_head[l] * hd, kv_w = c.n_head_kv[l] * hd, ff = c.n_ff[l];
  auto name = [&](const char* n) { return BlockTensorName(l, n); };
  GANNET_ASSIGN_OR_RETURN(b.attn_norm, w.Get(name("attn_norm.weight"), d, 1));
  GANNET_ASSIGN_OR_RETURN(b.wq, w.Get(name("attn_q.weight"), d, q_w));
  GANNET_ASSIGN_OR_RETURN(b.wk, w.Get(name("attn_k.weight"), d, kv_w));
  GANNET_ASSIGN_OR_RETURN(b.wv, w.Get(name("attn_v.weight"), d, kv_w));
  GANNET_ASSIGN_OR_RETURN(b.wo, w.Get(name("attn_output.weight"), q_w, d));
  GANNET_ASSIGN_OR_RETURN(b.q_norm, w.GetOptional(name("attn_q_norm.weight"), hd, 1));
  GANNET_ASSIGN_OR_RETURN(b.k_norm, w.GetOptional(name("attn_k_norm.weight"), hd, 1));
  GANNET_ASSIGN_OR_RETURN(b.ffn_norm, w.Get(name("ffn_norm.weight"), d, 1));
  GANNET_ASSIGN_OR_RETURN(b.gate, w.Get(name("ffn_gate.weight"), d, ff));
  GANNET_ASSIGN_OR_RETURN(b.up, w.Get(name("ffn_up.weight"), d, ff));
  GANNET_ASSIGN_OR_RETURN(b.down, w.Get(name("ffn_down.weight"), ff, d));
  return b;
}

Result<IoWeights> LoadIoWeights(WeightLoader& w, const ModelConfig& c) {
  IoWeights io;
  GANNET_ASSIGN_OR_RETURN(io.tok_embd, w.Get("token_embd.weight", c.n_embd, c.n_vocab));
  GANNET_ASSIGN_OR_RETURN(io.output_norm, w.Get("output_norm.weight", c.n_embd, 1));
  GANNET_ASSIGN_OR_RETURN(io.output, w.GetOptional("output.weight", c.n_embd, c.n_vocab));
  if (!io.output.valid()) {
    io.output = io.tok_embd;
    io.tied = true;
  }
  return io;
}

namespace {
Status CheckRange(const std::string& key, int64_t v, int64_t lo, int64_t hi) {
  if (v < lo || v > hi) {
    return Status::Corrupt("'" + key + "' = " + std::to_string(v) + " is outside [" +
                           std::to_string(lo) + ", " + std::to_string(hi) + "]");
  }
  return Status::Ok();
}
}  // namespace

Status ReadCommonConfig(const GgufFile& f, const WeightLoader& w, ModelConfig& c) {
  constexpr int64_t kMaxDim = 1 << 20;
  GANNET_ASSIGN_OR_RETURN(c.name, f.GetStringOr("general.name", ""));
  GANNET_ASSIGN_OR_RETURN(c.n_ctx_train, f.GetInt(w.Key("context_length")));
  GANNET_ASSIGN_OR_RETURN(c.n_embd, f.GetInt(w.Key("embedding_length")));
  GANNET_ASSIGN_OR_RETURN(c.n_layer, f.GetInt(w.Key("block_count")));
  GANNET_RETURN_IF_ERROR(CheckRange(w.Key("context_length"), c.n_ctx_train, 1, int64_t{1} << 24));
  GANNET_RETURN_IF_ERROR(CheckRange(w.Key("embedding_length"), c.n_embd, 1, kMaxDim));
  GANNET_RETURN_IF_ERROR(CheckRange(w.Key("block_count"), c.n_layer, 1, 4096));

  WeightLoader& wl = const_cast<WeightLoader&>(w);
  GANNET_ASSIGN_OR_RETURN(c.n_head,
                          wl.GetPerLayer("attention.head_count", c.n_layer, std::nullopt));
  GANNET_ASSIGN_OR_RETURN(c.n_head_kv,
                          wl.GetPerLayer("attention.head_count_kv", c.n_layer, c.n_head[0]));
  GANNET_ASSIGN_OR_RETURN(c.n_ff, wl.GetPerLayer("feed_forward_length", c.n_layer, std::nullopt));
  for (int64_t l = 0; l < c.n_layer; ++l) {
    GANNET_RETURN_IF_ERROR(CheckRange(w.Key("attention.head_count"), c.n_head[l], 1, 4096));
    GANNET_RETURN_IF_ERROR(
        CheckRange(w.Key("attention.head_count_kv"), c.n_head_kv[l], 1, c.n_head[l]));
    GANNET_RETURN_IF_ERROR(CheckRange(w.Key("feed_forward_length"), c.n_ff[l], 1, kMaxDim));
    if (c.n_head[l] % c.n_head_kv[l] != 0) {
      return Status::Corrupt("head_count " + std::to_string(c.n_head[l]) +
                             " is not a multiple of head_count_kv " +
                             std::to_string(c.n_head_kv[l]));
    }
  }
  GANNET_ASSIGN_OR_RETURN(c.head_dim_k,
                          f.GetIntOr(w.Key("attention.key_length"), c.n_embd / c.n_head[0]));
  GANNET_ASSIGN_OR_RETURN(c.head_dim_v,
                          f.GetIntOr(w.Key("attention.value_length"), c.n_embd / c.n_head[0]));
  GANNET_RETURN_IF_ERROR(CheckRange(w.Key("attention.key_length"), c.head_dim_k, 2, 4096));
  if (c.head_dim_v != c.head_dim_k) {
    return Status::Unsupported("key_length " + std::to_string(c.head_dim_k) + " != value_length " +
                               std::to_string(c.head_dim_v));
  }
  GANNET_ASSIGN_OR_RETURN(c.n_rot, f.GetIntOr(w.Key("rope.dimension_count"), c.head_dim_k));
  if (c.n_rot <= 0 || c.n_rot > c.head_dim_k || c.n_rot % 2 != 0) {
    return Status::Corrupt("rope.dimension_count " + std::to_string(c.n_rot) +
                           " does not fit head size " + std::to_string(c.head_dim_k));
  }
  GANNET_ASSIGN_OR_RETURN(double eps, f.GetFloat(w.Key("attention.layer_norm_rms_epsilon")));
  if (!(eps > 0 && eps < 1)) return Status::Corrupt("layer_norm_rms_epsilon must be in (0, 1)");
  c.rms_eps = static_cast<float>(eps);

  GANNET_ASSIGN_OR_RETURN(double base, f.GetFloatOr(w.Key("rope.freq_base"), 10000.0));
  if (!(base > 0) || !std::isfinite(base))
    return Status::Corrupt("rope.freq_base must be positive");
  c.rope_base = static_cast<float>(base);
  c.rope_n_ctx_orig = c.n_ctx_train;
  GANNET_ASSIGN_OR_RETURN(std::string scaling, f.GetStringOr(w.Key("rope.scaling.type"), "none"));
  double factor = 0;
  if (const GgufValue* fv = f.Find(w.Key("rope.scaling.factor")); fv != nullptr) {
    GANNET_ASSIGN_OR_RETURN(factor, f.GetFloat(w.Key("rope.scaling.factor")));
  } else if (f.Find(w.Key("rope.scale_linear")) != nullptr) {
    GANNET_ASSIGN_OR_RETURN(factor, f.GetFloat(w.Key("rope.scale_linear")));
    if (scaling == "none") scaling = "linear";
  }
  if (scaling == "linear" || scaling == "yarn") {
    if (factor > 0) c.rope_freq_scale = static_cast<float>(1.0 / factor);
    GANNET_ASSIGN_OR_RETURN(
        c.rope_n_ctx_orig,
        f.GetIntOr(w.Key("rope.scaling.original_context_length"), c.n_ctx_train));
    if (scaling == "yarn") {
      c.rope_ext_factor = 1.0f;
      GANNET_ASSIGN_OR_RETURN(double af, f.GetFloatOr(w.Key("rope.scaling.attn_factor"), 1.0));
      c.rope_attn_factor = static_cast<float>(af);
      GANNET_ASSIGN_OR_RETURN(double bf, f.GetFloatOr(w.Key("rope.scaling.yarn_beta_fast"), 32.0));
      GANNET_ASSIGN_OR_RETURN(double bs, f.GetFloatOr(w.Key("rope.scaling.yarn_beta_slow"), 1.0));
      c.yarn_beta_fast = static_cast<float>(bf);
      c.yarn_beta_slow = static_cast<float>(bs);
    }
  } else if (scaling != "none") {
    return Status::Unsupported("rope scaling type '" + scaling + "'");
  }

  GANNET_ASSIGN_OR_RETURN(double softcap, f.GetFloatOr(w.Key("final_logit_softcapping"), 0.0));
  c.final_logit_softcap = static_cast<float>(softcap);
  c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim_k));
  c.layer_is_swa.assign(c.n_layer, false);

  // Vocabulary size: the embedding table's rows are the truth; metadata must agree if present.
  const GgufTensorInfo* emb = f.FindTensor("token_embd.weight");
  if (emb == nullptr) return Status::NotFound("required tensor 'token_embd.weight' is missing");
  if (emb->shape.size() < 2) return Status::Corrupt("tensor 'token_embd.weight' must be 2-D");
  c.n_vocab = emb->shape[1];
  if (const GgufValue* toks = f.Find("tokenizer.ggml.tokens");
      toks != nullptr && toks->is_array()) {
    if (static_cast<int64_t>(toks->elems.size()) > c.n_vocab) {
      return Status::Corrupt("the tokenizer has " + std::to_string(toks->elems.size()) +
                             " tokens but token_embd.weight only " + std::to_string(c.n_vocab) +
                             " rows");
    }
  }
  return Status::Ok();
}

}  // namespace gannet::models
