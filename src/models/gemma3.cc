// Gemma 3 (text). Differences from the Llama block (reference: Gemma 3 technical report; the
// GGUF conventions of llama.cpp's converter):
//  - embeddings scaled by sqrt(n_embd); four RMSNorms per layer (pre and post attention, pre
//    and post FFN), norm weights already hold the "+1" of Gemma's (1 + w) convention;
//  - per-head RMSNorm on q and k before RoPE; NEOX RoPE with two bases: sliding-window layers
//    use 10000, global layers the file's freq_base (and its scaling);
//  - 5 of every 6 layers attend within a sliding window; the 6th is global;
//  - GeGLU (tanh GELU) feed-forward; query scale 1/sqrt(head_dim) (1/sqrt(n_embd/n_head) at 27B).
#include "models/gemma3.h"

#include <algorithm>
#include <cmath>

#include "graph/builder.h"
#include "models/loader.h"

namespace gannet::models {

using graph::GraphBuilder;
using graph::Value;

Result<std::unique_ptr<Model>> Gemma3Model::Load(std::shared_ptr<const GgufFile> file) {
  WeightLoader w(*file, "gemma3");
  ModelConfig c;
  c.arch = "gemma3";
  GANNET_RETURN_IF_ERROR(ReadCommonConfig(*file, w, c));
  c.rope_mode = kernels::RopeMode::kNeox;
  c.embed_scale = std::sqrt(static_cast<float>(c.n_embd));
  GANNET_ASSIGN_OR_RETURN(c.sliding_window, file->GetIntOr(w.Key("attention.sliding_window"), 0));
  if (c.sliding_window < 0) return Status::Corrupt("gemma3.attention.sliding_window is negative");
  // Every 6th layer is global (llama.cpp: sliding when il % 6 < 5); the pattern key, when a
  // file has it, overrides the period.
  GANNET_ASSIGN_OR_RETURN(int64_t pattern,
                          file->GetIntOr(w.Key("attention.sliding_window_pattern"), 6));
  if (pattern < 0) return Status::Corrupt("gemma3.attention.sliding_window_pattern is negative");
  for (int64_t l = 0; l < c.n_layer; ++l) {
    c.layer_is_swa[l] = c.sliding_window > 0 && pattern > 0 && (l % pattern) < (pattern - 1);
  }
  c.rope_base_swa = 10000.0f;
  c.rope_freq_scale_swa = 1.0f;
  if (c.n_layer == 62)
    c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.n_embd / c.n_head[0]));  // 27B

  std::unique_ptr<Gemma3Model> m(new Gemma3Model(file, c));
  GANNET_ASSIGN_OR_RETURN(IoWeights io, LoadIoWeights(w, c));
  m->tok_embd_ = io.tok_embd;
  m->output_norm_ = io.output_norm;
  m->output_ = io.output;
  m->config_.tied_output = io.tied;
  m->layers_.resize(c.n_layer);
  for (int64_t l = 0; l < c.n_layer; ++l) {
    Layer& L = m->layers_[l];
    GANNET_ASSIGN_OR_RETURN(static_cast<BlockWeights&>(L), LoadBlockWeights(w, c, l));
    if (!L.q_norm.valid() || !L.k_norm.valid()) {
      const char* missing = L.q_norm.valid() ? "attn_k_norm.weight" : "attn_q_norm.weight";
      return Status::NotFound("required tensor '" + BlockTensorName(l, missing) + "' is missing");
    }
    GANNET_ASSIGN_OR_RETURN(L.post_attn_norm,
                            w.Get(BlockTensorName(l, "post_attention_norm.weight"), c.n_embd, 1));
    GANNET_ASSIGN_OR_RETURN(L.post_ffw_norm,
                            w.Get(BlockTensorName(l, "post_ffw_norm.weight"), c.n_embd, 1));
  }
  m->weight_bytes_ = w.bytes_loaded();
  m->copies_ = w.TakeCopies();
  return std::unique_ptr<Model>(std::move(m));
}

Result<graph::Graph> Gemma3Model::BuildGraph(int64_t n_tokens, int64_t n_outputs,
                                             const GraphOptions& options) const {
  const ModelConfig& c = config_;
  GraphBuilder b(n_tokens, n_outputs);
  const int64_t hd = c.head_dim_k;
  Value x = b.Embed(tok_embd_, c.embed_scale, "inp_scaled");
  const int64_t n_layers = options.n_layers > 0 ? std::min(options.n_layers, c.n_layer) : c.n_layer;
  for (int64_t l = 0; l < n_layers; ++l) {
    const Layer& L = layers_[l];
    const bool swa = c.layer_is_swa[l];
    b.SetLayer(static_cast<int32_t>(l));
    Value h = b.RmsNorm(x, L.attn_norm, c.rms_eps, c.n_embd, "attn_norm");
    Value q = b.MatMul(h, L.wq, "Qcur");
    Value k = b.MatMul(h, L.wk, "Kcur");
    Value v = b.MatMul(h, L.wv, "Vcur");
    q = b.RmsNorm(q, L.q_norm, c.rms_eps, hd, "Qcur_normed");
    k = b.RmsNorm(k, L.k_norm, c.rms_eps, hd, "Kcur_normed");
    graph::RopeParams rp{.n_heads = c.n_head[l],
                         .head_dim = hd,
                         .n_rot = c.n_rot,
                         .mode = c.rope_mode,
                         .base = swa ? c.rope_base_swa : c.rope_base,
                         .freq_scale = swa ? c.rope_freq_scale_swa : c.rope_freq_scale,
                         .attn_factor = c.rope_attn_factor,
                         .ext_factor = swa ? 0.0f : c.rope_ext_factor,
                         .beta_fast = c.yarn_beta_fast,
                         .beta_slow = c.yarn_beta_slow,
                         .n_ctx_orig = c.rope_n_ctx_orig};
    q = b.Rope(q, rp, "Qcur_rope");
    rp.n_heads = c.n_head_kv[l];
    k = b.Rope(k, rp, "Kcur_rope");
    Value a = b.Attention(q, k, v,
                          graph::AttentionParams{.kv_layer = static_cast<int32_t>(l),
                                                 .n_head = c.n_head[l],
                                                 .n_kv_head = c.n_head_kv[l],
                                                 .head_dim = hd,
                                                 .window = swa ? c.sliding_window : 0,
                                                 .scale = c.attn_scale},
                          "kqv_out");
    a = b.MatMul(a, L.wo, "attn_out");
    a = b.RmsNorm(a, L.post_attn_norm, c.rms_eps, c.n_embd, "attn_post_norm");
    x = b.Add(x, a, "sa_out");
    h = b.RmsNorm(x, L.ffn_norm, c.rms_eps, c.n_embd, "ffn_norm");
    Value g = b.MatMul(h, L.gate, "ffn_gate");
    Value u = b.MatMul(h, L.up, "ffn_up");
    Value f = b.Glu(g, u, kernels::GluAct::kGeluTanh, "ffn_geglu");
    f = b.MatMul(f, L.down, "ffn_out");
    f = b.RmsNorm(f, L.post_ffw_norm, c.rms_eps, c.n_embd, "ffn_post_norm");
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
