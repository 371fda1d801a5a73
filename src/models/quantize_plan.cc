// Which type each tensor gets: the targets and llama.cpp's per-tensor rules (llama-quant.cpp,
// llama_tensor_get_type), restricted to the types gannet can produce.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <numeric>

#include "models/quantize.h"

namespace gannet::models {
namespace {

// LLAMA_FTYPE values (llama.h).
constexpr int32_t kFtypeAllF32 = 0, kFtypeF16 = 1, kFtypeQ4_0 = 2, kFtypeQ4_1 = 3, kFtypeQ8_0 = 7,
                  kFtypeQ5_0 = 8, kFtypeQ5_1 = 9, kFtypeQ4_K_S = 14, kFtypeQ4_K_M = 15,
                  kFtypeQ5_K_S = 16, kFtypeQ5_K_M = 17, kFtypeQ6_K = 18, kFtypeBF16 = 32;

constexpr QuantizeTarget kTargets[] = {
    {"Q4_0", DType::kQ4_0, kFtypeQ4_0, false, "4.5 bits per weight, 32-value blocks, one scale"},
    {"Q4_1", DType::kQ4_1, kFtypeQ4_1, false, "5.0 bpw, 32-value blocks, scale and minimum"},
    {"Q5_0", DType::kQ5_0, kFtypeQ5_0, false, "5.5 bpw, 32-value blocks, one scale"},
    {"Q5_1", DType::kQ5_1, kFtypeQ5_1, false, "6.0 bpw, 32-value blocks, scale and minimum"},
    {"Q8_0", DType::kQ8_0, kFtypeQ8_0, false, "8.5 bpw, nearly lossless"},
    {"Q4_K_S", DType::kQ4_K, kFtypeQ4_K_S, true,
     "Q4_K; Q5_K for the first attn_v and ffn_down layers"},
    {"Q4_K_M", DType::kQ4_K, kFtypeQ4_K_M, true,
     "Q4_K; Q6_K for half of attn_v and ffn_down (recommended)"},
    {"Q4_K", DType::kQ4_K, kFtypeQ4_K_M, true, "alias of Q4_K_M"},
    {"Q5_K_S", DType::kQ5_K, kFtypeQ5_K_S, true, "Q5_K throughout"},
    {"Q5_K_M", DType::kQ5_K, kFtypeQ5_K_M, true, "Q5_K; Q6_K for half of attn_v and ffn_down"},
    {"Q5_K", DType::kQ5_K, kFtypeQ5_K_M, true, "alias of Q5_K_M"},
    {"Q6_K", DType::kQ6_K, kFtypeQ6_K, false, "6.56 bpw, 256-value super-blocks"},
    {"F16", DType::kF16, kFtypeF16, false, "16-bit floats"},
    {"BF16", DType::kBF16, kFtypeBF16, false, "bfloat16"},
    {"F32", DType::kF32, kFtypeAllF32, false, "32-bit floats (no quantization)"},
};

bool Contains(std::string_view s, std::string_view part) {
  return s.find(part) != std::string_view::npos;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// "blk.N." -> N; -1 for tensors outside the blocks (what sscanf("blk.%d.") leaves in llama.cpp).
int LayerOf(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  int layer = -1;
  const char* begin = name.data() + 4;
  const char* end = name.data() + name.size();
  auto [p, ec] = std::from_chars(begin, end, layer);
  if (ec != std::errc() || p == end || *p != '.') return -1;
  return layer;
}

// ggml_n_dims: trailing dimensions of extent 1 do not count.
int NumDims(const std::vector<int64_t>& shape) {
  int n = 1;
  for (size_t d = 1; d < shape.size(); ++d) {
    if (shape[d] != 1) n = static_cast<int>(d) + 1;
  }
  return n;
}

// llama.cpp quantizes only weight matrices; everything else (norms, position embeddings, small
// recurrent-state matrices, MoE routers) is copied as it is.
bool IsQuantizable(const GgufTensorInfo& t) {
  const std::string_view n = t.name;
  if (n.size() < 6 || n.substr(n.size() - 6) != "weight") return false;
  if (NumDims(t.shape) < 2) return false;
  static constexpr std::string_view kKeep[] = {"_norm.weight",
                                               "ffn_gate_inp.weight",
                                               "altup",
                                               "laurel",
                                               "per_layer_model_proj",
                                               "ssm_conv1d.weight",
                                               "shortconv.conv.weight",
                                               "time_mix_first.weight",
                                               "time_mix_w0.weight",
                                               "time_mix_w1.weight",
                                               "time_mix_w2.weight",
                                               "time_mix_v0.weight",
                                               "time_mix_v1.weight",
                                               "time_mix_v2.weight",
                                               "time_mix_a0.weight",
                                               "time_mix_a1.weight",
                                               "time_mix_a2.weight",
                                               "time_mix_g1.weight",
                                               "time_mix_g2.weight",
                                               "time_mix_decay_w1.weight",
                                               "time_mix_decay_w2.weight",
                                               "time_mix_lerp_fused.weight",
                                               "attn_rel_b.weight"};
  for (std::string_view k : kKeep) {
    if (Contains(n, k)) return false;
  }
  return n != "position_embd.weight" && n != "token_types.weight";
}

// The layers that get more bits in the _M mixes: the first and last eighth, and every third layer
// in between (llama.cpp's use_more_bits).
bool UseMoreBits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

// What the rules need to know about the model.
struct ModelFacts {
  std::string arch;
  int n_layer = 0;
  int n_expert = 0;
  bool is_70b =
      false;  // llama.cpp's LLM_TYPE_70B for llama: 80 layers with grouped-query attention
  bool has_output = false;
  int n_attention_wv = 0;
};

// Counters llama.cpp advances as it meets tensors in its order (by layer, then name).
struct RuleState {
  int i_attention_wv = 0;
  int i_ffn_down = 0;
};

Result<ModelFacts> ReadFacts(const GgufFile& in) {
  ModelFacts f;
  GANNET_ASSIGN_OR_RETURN(f.arch, in.GetString("general.architecture"));
  int max_layer = -1;
  for (const GgufTensorInfo& t : in.tensors()) {
    max_layer = std::max(max_layer, LayerOf(t.name));
    if (Contains(t.name, "attn_v.weight") || Contains(t.name, "attn_qkv.weight") ||
        Contains(t.name, "attn_kv_b.weight")) {
      ++f.n_attention_wv;
    }
    if (t.name == "output.weight") f.has_output = true;
  }
  GANNET_ASSIGN_OR_RETURN(int64_t n_layer, in.GetIntOr(f.arch + ".block_count", max_layer + 1));
  GANNET_ASSIGN_OR_RETURN(int64_t n_expert, in.GetIntOr(f.arch + ".expert_count", 0));
  if (n_layer < 0 || n_layer > 100000 || n_expert < 0 || n_expert > 100000) {
    return Status::Corrupt("implausible " + f.arch + ".block_count or expert_count");
  }
  f.n_layer = static_cast<int>(n_layer);
  f.n_expert = static_cast<int>(n_expert);
  if (f.arch == "llama" && f.n_layer == 80) {
    Result<int64_t> heads = in.GetInt(f.arch + ".attention.head_count");
    Result<int64_t> kv_heads =
        in.GetIntOr(f.arch + ".attention.head_count_kv", heads.ok() ? *heads : 0);
    f.is_70b = heads.ok() && kv_heads.ok() && *kv_heads != *heads;
  }
  return f;
}

// llama_tensor_get_type for the file types gannet produces (no importance matrix).
Result<DType> MixType(const GgufTensorInfo& t, const QuantizeTarget& target, const ModelFacts& m,
                      RuleState& s) {
  const std::string& name = t.name;
  const int32_t ft = target.file_type;
  const bool falcon = m.arch == "falcon";
  DType type = target.base;
  if (name == "output.weight" || (!m.has_output && name == "token_embd.weight")) {
    // The output projection (or the embedding that doubles as it) decides every logit.
    if (falcon || t.shape[0] % Traits(type).block_size != 0) {
      type = DType::kQ8_0;
    } else if (type != DType::kQ8_0) {
      type = DType::kQ6_K;
    }
  } else if (name == "token_embd.weight") {
    // Looked up row by row, never multiplied: the base type is enough.
  } else if (Contains(name, "attn_v.weight")) {
    if ((ft == kFtypeQ4_K_M || ft == kFtypeQ5_K_M) &&
        UseMoreBits(s.i_attention_wv, m.n_attention_wv)) {
      type = DType::kQ6_K;
    } else if (ft == kFtypeQ4_K_S && s.i_attention_wv < 4) {
      type = DType::kQ5_K;
    }
    // With 8 query heads per value head, attn_v is small: more bits cost little.
    if (m.is_70b && type == DType::kQ4_K) type = DType::kQ5_K;
    if (m.n_expert == 8) type = DType::kQ8_0;
    ++s.i_attention_wv;
  } else if (Contains(name, "attn_k.weight")) {
    if (m.n_expert == 8) type = DType::kQ8_0;
  } else if (Contains(name, "ffn_down")) {
    int i_layer = s.i_ffn_down;
    const int n_layer = m.n_layer;
    if (m.n_expert > 1) {
      // Expert tensors are not one per layer in file order; the layer comes from the name.
      i_layer = LayerOf(name);
      if (i_layer < 0 || i_layer >= n_layer) {
        return Status::Corrupt("cannot tell the layer of tensor '" + name + "' (block_count " +
                               std::to_string(n_layer) + ")");
      }
    }
    if (ft == kFtypeQ4_K_M) {
      if (falcon) {
        type = i_layer < n_layer / 16          ? DType::kQ6_K
               : UseMoreBits(i_layer, n_layer) ? DType::kQ5_K
                                               : DType::kQ4_K;
      } else if (UseMoreBits(i_layer, n_layer)) {
        type = DType::kQ6_K;
      }
    } else if (ft == kFtypeQ5_K_M && UseMoreBits(i_layer, n_layer)) {
      type = DType::kQ6_K;
    } else if (ft == kFtypeQ4_K_S && !falcon && i_layer < n_layer / 8) {
      type = DType::kQ5_K;
    }
    ++s.i_ffn_down;
  } else if (Contains(name, "attn_output.weight")) {
    if (!falcon && m.n_expert == 8 && (ft == kFtypeQ4_K_S || ft == kFtypeQ4_K_M))
      type = DType::kQ5_K;
  } else if (Contains(name, "attn_qkv.weight")) {
    if (ft == kFtypeQ4_K_M) type = DType::kQ5_K;
    if (ft == kFtypeQ5_K_M) type = DType::kQ6_K;
  }
  return type;
}

// A type whose block fits the row length: llama.cpp's fallbacks, then F16 (where llama.cpp would
// stop with an error) so that any shape can be written.
DType FitRow(DType type, int64_t ne0, std::string* why) {
  if (ne0 % Traits(type).block_size == 0) return type;
  DType fallback = DType::kF16;
  switch (type) {
    case DType::kQ4_K:
      fallback = DType::kQ5_0;
      break;
    case DType::kQ5_K:
      fallback = DType::kQ5_1;
      break;
    case DType::kQ6_K:
      fallback = DType::kQ8_0;
      break;
    default:
      break;
  }
  if (ne0 % Traits(fallback).block_size != 0) fallback = DType::kF16;
  *why = "rows of " + std::to_string(ne0) + " values are not a multiple of " +
         std::to_string(Traits(type).block_size) + ": " + std::string(DTypeName(type)) + " -> " +
         std::string(DTypeName(fallback));
  return fallback;
}

bool IsFloat(DType t) { return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16; }

}  // namespace

std::span<const QuantizeTarget> QuantizeTargets() { return kTargets; }

Result<QuantizeTarget> FindQuantizeTarget(std::string_view name) {
  int32_t number = -1;
  auto [p, ec] = std::from_chars(name.data(), name.data() + name.size(), number);
  const bool numeric = !name.empty() && ec == std::errc() && p == name.data() + name.size();
  std::string names;
  for (const QuantizeTarget& t : kTargets) {
    if (numeric ? t.file_type == number : EqualsIgnoreCase(t.name, name)) return t;
    names += (names.empty() ? "" : ", ") + std::string(t.name);
  }
  return Status::InvalidArgument("unknown quantization type '" + std::string(name) + "' (one of " +
                                 names + ")");
}

Result<std::vector<TensorPlan>> PlanQuantization(const GgufFile& in,
                                                 const QuantizeOptions& options) {
  const QuantizeTarget& target = options.target;
  GANNET_ASSIGN_OR_RETURN(int64_t split_count, in.GetIntOr("split.count", 1));
  if (split_count > 1) {
    return Status::Unsupported("'" + in.path() + "' is one part of a split model (" +
                               std::to_string(split_count) +
                               " parts); merge it first (llama-gguf-split --merge)");
  }
  GANNET_ASSIGN_OR_RETURN(ModelFacts facts, ReadFacts(in));

  // llama.cpp meets tensors ordered by layer number, then by name; its counters follow that order.
  const std::vector<GgufTensorInfo>& tensors = in.tensors();
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const int la = LayerOf(tensors[a].name), lb = LayerOf(tensors[b].name);
    return la != lb ? la < lb : tensors[a].name < tensors[b].name;
  });

  std::vector<TensorPlan> plan(tensors.size());
  RuleState state;
  const bool rules = !options.pure && Traits(target.base).is_quantized;
  for (size_t i : order) {
    const GgufTensorInfo& t = tensors[i];
    TensorPlan& p = plan[i];
    p.name = t.name;
    p.shape = t.shape;
    p.from = t.type;
    p.to = t.type;
    if (!IsQuantizable(t)) continue;

    DType type = target.base;
    if (rules) {
      GANNET_ASSIGN_OR_RETURN(type, MixType(t, target, facts, state));
    }
    type = FitRow(type, t.shape[0], &p.fallback);
    const std::optional<DType>& forced = t.name == "output.weight" ? options.output_type
                                         : t.name == "token_embd.weight"
                                             ? options.token_embedding_type
                                             : std::nullopt;
    if (forced) {
      const bool producible =
          std::any_of(std::begin(kTargets), std::end(kTargets),
                      [&](const QuantizeTarget& k) { return k.base == *forced; });
      if (!producible) {
        return Status::InvalidArgument("gannet cannot quantize to " +
                                       std::string(DTypeName(*forced)) + " (for tensor '" + t.name +
                                       "')");
      }
      if (t.shape[0] % Traits(*forced).block_size != 0) {
        return Status::InvalidArgument(
            "tensor '" + t.name + "' has rows of " + std::to_string(t.shape[0]) +
            " values, which " + std::string(DTypeName(*forced)) + " cannot hold (blocks of " +
            std::to_string(Traits(*forced).block_size) + ")");
      }
      type = *forced;
      p.fallback.clear();
    }
    p.to = type;
    if (t.type == type) continue;  // already in the wanted type: copied
    if (!IsFloat(t.type)) {
      return Status::InvalidArgument("tensor '" + t.name + "' is already quantized (" +
                                     std::string(DTypeName(t.type)) +
                                     "); quantize from the F32, F16 or BF16 model instead");
    }
    p.convert = true;
  }
  return plan;
}

}  // namespace gannet::models
