// The Llama family: Llama 2/3, Mistral-style (llama arch), SmolLM, Qwen2 (QKV bias, NEOX RoPE),
// Qwen3 (per-head q/k RMSNorm, NEOX RoPE). Follows the Llama paper's pre-norm block:
//   x += Wo Attn(RoPE(Wq h), RoPE(Wk h), Wv h),  h = RMSNorm(x)
//   x += Wdown(silu(Wgate h) * Wup h),          h = RMSNorm(x)
#include "models/llama.h"

#include <algorithm>
#include <cmath>

#include "graph/builder.h"
#include "models/loader.h"

namespace gannet::models {

using graph::GraphBuilder;
using graph::Value;
using graph::WeightRef;

Result<std::unique_ptr<Model>> LlamaModel::Load(std::shared_ptr<const GgufFile> file,
                                                const std::string& arch) {
  WeightLoader w(*file, arch);
  ModelConfig c;
  c.arch = arch;
  GANNET_RETURN_IF_ERROR(ReadCommonConfig(*file, w, c));
  c.rope_mode =
      (arch == "llama" || arch == "mistral") ? kernels::RopeMode::kNorm : kernels::RopeMode::kNeox;

  std::unique_ptr<LlamaModel> m(new LlamaModel(file, c));
  GANNET_ASSIGN_OR_RETURN(IoWeights io, LoadIoWeights(w, c));
  m->tok_embd_ = io.tok_embd;
  m->output_norm_ = io.output_norm;
  m->output_ = io.output;
  m->config_.tied_output = io.tied;
  GANNET_ASSIGN_OR_RETURN(m->rope_freqs_, w.GetOptional("rope_freqs.weight", c.n_rot / 2, 1));
  if (m->rope_freqs_.valid() && m->rope_freqs_.type != DType::kF32) {
    return Status::Unsupported("rope_freqs.weight must be f32");
  }
  m->layers_.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    Layer& L = m->layers_[l];
    GANNET_ASSIGN_OR_RETURN(static_cast<BlockWeights&>(L), LoadBlockWeights(w, c, l));
    const int64_t q_w = c.n_head[l] * c.head_dim_k, kv_w = c.n_head_kv[l] * c.head_dim_k;
    GANNET_ASSIGN_OR_RETURN(L.bq, w.GetOptional(BlockTensorName(l, "attn_q.bias"), q_w, 1));
    GANNET_ASSIGN_OR_RETURN(L.bk, w.GetOptional(BlockTensorName(l, "attn_k.bias"), kv_w, 1));
    GANNET_ASSIGN_OR_RETURN(L.bv, w.GetOptional(BlockTensorName(l, "attn_v.bias"), kv_w, 1));
    GANNET_ASSIGN_OR_RETURN(L.bo,
                            w.GetOptional(BlockTensorName(l, "attn_output.bias"), c.n_embd, 1));
    if (arch == "qwen2" && !(L.bq.valid() && L.bk.valid() && L.bv.valid())) {
      return Status::NotFound("qwen2 layer " + std::to_string(l) + " lacks its q/k/v biases");
    }
  }
  m->weight_bytes_ = w.bytes_loaded();
  m->copies_ = w.TakeCopies();
  return std::unique_ptr<Model>(std::move(m));
}

Result<graph::Graph> LlamaModel::BuildGraph(int64_t n_tokens, int64_t n_outputs,
                                            const GraphOptions& options) const {
  const ModelConfig& c = config_;
  GraphBuilder b(n_tokens, n_outputs);
  const int64_t hd = c.head_dim_k;
  Value x = b.Embed(tok_embd_, 1.0f, "inp_embd");
  const int64_t n_layers = options.n_layers > 0 ? std::min(options.n_layers, c.n_layer) : c.n_layer;
  for (int64_t l = 0; l < n_layers; ++l) {
    const Layer& L = layers_[l];
    b.SetLayer(static_cast<int32_t>(l));
    Value h = b.RmsNorm(x, L.attn_norm, c.rms_eps, c.n_embd, "attn_norm");
    Value q = b.MatMul(h, L.wq, "Qcur");
    Value k = b.MatMul(h, L.wk, "Kcur");
    Value v = b.MatMul(h, L.wv, "Vcur");
    if (L.bq.valid()) q = b.AddBias(q, L.bq, "Qcur_bias");
    if (L.bk.valid()) k = b.AddBias(k, L.bk, "Kcur_bias");
    if (L.bv.valid()) v = b.AddBias(v, L.bv, "Vcur_bias");
    if (L.q_norm.valid()) q = b.RmsNorm(q, L.q_norm, c.rms_eps, hd, "Qcur_normed");
    if (L.k_norm.valid()) k = b.RmsNorm(k, L.k_norm, c.rms_eps, hd, "Kcur_normed");
    graph::RopeParams rp{.n_heads = c.n_head[l],
                         .head_dim = hd,
                         .n_rot = c.n_rot,
                         .mode = c.rope_mode,
                         .base = c.rope_base,
                         .freq_scale = c.rope_freq_scale,
                         .attn_factor = c.rope_attn_factor,
                         .ext_factor = c.rope_ext_factor,
                         .beta_fast = c.yarn_beta_fast,
                         .beta_slow = c.yarn_beta_slow,
                         .n_ctx_orig = c.rope_n_ctx_orig,
                         .freq_factors = rope_freqs_.valid()
                                             ? static_cast<const float*>(rope_freqs_.data)
                                             : nullptr};
    q = b.Rope(q, rp, "Qcur_rope");
    rp.n_heads = c.n_head_kv[l];
    k = b.Rope(k, rp, "Kcur_rope");
    Value a = b.Attention(q, k, v,
                          graph::AttentionParams{.kv_layer = static_cast<int32_t>(l),
                                                 .n_head = c.n_head[l],
                                                 .n_kv_head = c.n_head_kv[l],
                                                 .head_dim = hd,
                                                 .window = 0,
                                                 .scale = c.attn_scale},
                          "kqv_out");
    a = b.MatMul(a, L.wo, "attn_out");
    if (L.bo.valid()) a = b.AddBias(a, L.bo, "attn_out_bias");
    x = b.Add(x, a, "ffn_inp");
    h = b.RmsNorm(x, L.ffn_norm, c.rms_eps, c.n_embd, "ffn_norm");
    Value g = b.MatMul(h, L.gate, "ffn_gate");
    Value u = b.MatMul(h, L.up, "ffn_up");
    Value f = b.Glu(g, u, kernels::GluAct::kSilu, "ffn_swiglu");
    f = b.MatMul(f, L.down, "ffn_out");
    x = b.Add(x, f, "l_out");
  }
  b.SetLayer(-1);
  x = b.SelectOutputRows(x, "out_rows");
  x = b.RmsNorm(x, output_norm_, c.rms_eps, c.n_embd, "result_norm");
  Value logits = b.MatMul(x, options.output.valid() ? options.output : output_, "result_output");
  if (c.final_logit_softcap > 0)
    logits = b.Softcap(logits, c.final_logit_softcap, "result_softcap");
  b.SetOutput(logits);
  return b.Finish();
}

}  // namespace gannet::models
