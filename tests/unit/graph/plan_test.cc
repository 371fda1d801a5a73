// The graph builder's shape checks, the memory planner's invariant (buffers live at the same time
// never share bytes, and reuse makes the arena smaller than the sum of activations), and
// execution against a direct scalar computation.
#include "graph/plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "graph/builder.h"
#include "kernels/cpu/cpu_backend.h"
#include "plan_invariants.h"

namespace gannet::graph {
namespace {

WeightRef F32Weight(const std::vector<float>& data, int64_t rows, int64_t cols,
                    const std::string& name) {
  return WeightRef{
      .type = DType::kF32, .data = data.data(), .rows = rows, .cols = cols, .name = name};
}

std::vector<float> Random(size_t n, uint32_t seed, float scale = 0.3f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// A small residual MLP stack: x = E[tok]; repeat: x += W2 (silu(W1 n(x)) * W3 n(x)); out = Wo n(x).
struct Mlp {
  int64_t d = 16, ff = 40, vocab = 11, layers = 3;
  std::vector<float> emb = Random(vocab * d, 1), norm = Random(d, 2, 0.1f),
                     out = Random(vocab * d, 3);
  std::vector<std::vector<float>> w1, w2, w3;
  Mlp() {
    for (int64_t l = 0; l < layers; ++l) {
      w1.push_back(Random(ff * d, 10 + l));
      w2.push_back(Random(d * ff, 20 + l));
      w3.push_back(Random(ff * d, 30 + l));
    }
    for (float& g : norm) g += 1.0f;
  }
  Result<Graph> Build(int64_t n_tokens) const {
    GraphBuilder b(n_tokens, n_tokens);
    Value x = b.Embed(F32Weight(emb, vocab, d, "emb"), 1.0f, "inp");
    for (int64_t l = 0; l < layers; ++l) {
      b.SetLayer(static_cast<int32_t>(l));
      Value h = b.RmsNorm(x, F32Weight(norm, 1, d, "norm"), 1e-5f, d, "norm");
      Value g = b.MatMul(h, F32Weight(w1[l], ff, d, "w1"), "gate");
      Value u = b.MatMul(h, F32Weight(w3[l], ff, d, "w3"), "up");
      Value f = b.MatMul(b.Glu(g, u, GluAct::kSilu, "glu"), F32Weight(w2[l], d, ff, "w2"), "down");
      x = b.Add(x, f, "out");
    }
    b.SetLayer(-1);
    x = b.SelectOutputRows(x, "rows");
    x = b.RmsNorm(x, F32Weight(norm, 1, d, "norm"), 1e-5f, d, "final_norm");
    b.SetOutput(b.MatMul(x, F32Weight(out, vocab, d, "out"), "logits"));
    return b.Finish();
  }
  std::vector<double> Direct(const std::vector<int32_t>& toks) const {
    std::vector<double> logits;
    for (int32_t t : toks) {
      std::vector<double> x(emb.begin() + t * d, emb.begin() + (t + 1) * d);
      auto rms = [&](const std::vector<double>& v) {
        double ss = 0;
        for (double a : v) ss += a * a;
        const double inv = 1.0 / std::sqrt(ss / d + 1e-5);
        std::vector<double> o(d);
        for (int64_t i = 0; i < d; ++i) o[i] = v[i] * inv * norm[i];
        return o;
      };
      for (int64_t l = 0; l < layers; ++l) {
        std::vector<double> h = rms(x), a(ff);
        for (int64_t j = 0; j < ff; ++j) {
          double g = 0, u = 0;
          for (int64_t i = 0; i < d; ++i) {
            g += w1[l][j * d + i] * h[i];
            u += w3[l][j * d + i] * h[i];
          }
          a[j] = g / (1 + std::exp(-g)) * u;
        }
        for (int64_t i = 0; i < d; ++i) {
          double s = 0;
          for (int64_t j = 0; j < ff; ++j) s += w2[l][i * ff + j] * a[j];
          x[i] += s;
        }
      }
      std::vector<double> h = rms(x);
      for (int64_t v = 0; v < vocab; ++v) {
        double s = 0;
        for (int64_t i = 0; i < d; ++i) s += out[v * d + i] * h[i];
        logits.push_back(s);
      }
    }
    return logits;
  }
};

TEST(PlanTest, LiveBuffersNeverShareBytesAndReuseSavesMemory) {
  Mlp m;
  Result<Graph> g = m.Build(5);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  Result<Plan> p = Plan::Compile(*g);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ExpectLiveBuffersNeverShareBytes(*p);
  EXPECT_LT(p->arena_bytes() * 2, p->unplanned_bytes());
}

TEST(PlanTest, ExecutesLikeDirectComputation) {
  Mlp m;
  for (int threads : {1, 3}) {
    ThreadPool pool(threads);
    cpu::CpuBackend backend(pool);
    std::vector<int32_t> toks = {3, 0, 10, 7, 7};
    Result<Graph> g = m.Build(static_cast<int64_t>(toks.size()));
    ASSERT_TRUE(g.ok());
    Result<Plan> p = Plan::Compile(*g);
    ASSERT_TRUE(p.ok());
    std::vector<float> arena(p->arena_bytes() / sizeof(float) + 16);
    std::vector<float> scratch(p->scratch_bytes(backend) / sizeof(float) + 16);
    std::vector<int32_t> pos = {0, 1, 2, 3, 4}, rows = {0, 1, 2, 3, 4};
    BatchInputs in{.tokens = toks, .positions = pos, .output_rows = rows};
    int observed = 0;
    NodeObserver obs = [&](const Node&, const float*) { ++observed; };
    Result<std::span<const float>> out =
        p->Execute(backend, in, arena.data(), scratch.data(), &obs);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(observed, static_cast<int>(p->graph().nodes.size()) - 1);
    std::vector<double> want = m.Direct(toks);
    ASSERT_EQ(out->size(), want.size());
    for (size_t i = 0; i < want.size(); ++i)
      EXPECT_NEAR((*out)[i], want[i], 1e-4 + 1e-4 * std::fabs(want[i]));
    // A token outside the table is an error, not a read past it.
    std::vector<int32_t> bad = {3, 0, 11, 7, 7};
    in.tokens = bad;
    EXPECT_FALSE(p->Execute(backend, in, arena.data(), scratch.data()).ok());
  }
}

// A backend that counts its calls and forwards them to the CPU one: the plan reaches the kernels
// only through kernels::Backend, one call per executed node.
class CountingBackend final : public kernels::Backend {
 public:
  explicit CountingBackend(kernels::Backend& inner) : inner_(inner) {}
  int calls = 0;
  const char* name() const override { return "counting"; }
  void Embed(const kernels::Weight& t, std::span<const int32_t> tok, float s, float* out) override {
    ++calls;
    inner_.Embed(t, tok, s, out);
  }
  size_t MatMulScratchBytes(const kernels::MatMulArgs& a) const override {
    return inner_.MatMulScratchBytes(a);
  }
  void MatMul(const kernels::MatMulArgs& a) override {
    ++calls;
    inner_.MatMul(a);
  }
  void AddBias(const float* x, const float* b, int64_t r, int64_t c, float* out) override {
    ++calls;
    inner_.AddBias(x, b, r, c, out);
  }
  void RmsNorm(const float* x, const float* w, float eps, int64_t r, int64_t c,
               float* out) override {
    ++calls;
    inner_.RmsNorm(x, w, eps, r, c, out);
  }
  void Rope(const kernels::RopeParams& p, const float* x, int64_t n, const int32_t* pos,
            float* out) override {
    ++calls;
    inner_.Rope(p, x, n, pos, out);
  }
  void Attention(const kernels::AttentionArgs& a) override {
    ++calls;
    inner_.Attention(a);
  }
  void Glu(GluAct act, const float* g, const float* u, int64_t n, float* out) override {
    ++calls;
    inner_.Glu(act, g, u, n, out);
  }
  void Add(const float* a, const float* b, int64_t n, float* out) override {
    ++calls;
    inner_.Add(a, b, n, out);
  }
  void AddRmsNorm(const float* a, const float* b, const float* w, float eps, int64_t r, int64_t c,
                  float* out) override {
    ++calls;
    inner_.AddRmsNorm(a, b, w, eps, r, c, out);
  }
  void Scale(const float* x, int64_t n, float s, float* out) override {
    ++calls;
    inner_.Scale(x, n, s, out);
  }
  void Softcap(const float* x, int64_t n, float cap, float* out) override {
    ++calls;
    inner_.Softcap(x, n, cap, out);
  }
  void GatherRows(const float* x, int64_t c, std::span<const int32_t> rows, float* out) override {
    ++calls;
    inner_.GatherRows(x, c, rows, out);
  }

 private:
  kernels::Backend& inner_;
};

TEST(PlanTest, ExecutesThroughTheBackendOneCallPerNode) {
  Mlp m;
  ThreadPool pool(2);
  cpu::CpuBackend cpu_backend(pool);
  std::vector<int32_t> toks = {3, 0, 10}, pos = {0, 1, 2}, rows = {0, 1, 2};
  const BatchInputs in{.tokens = toks, .positions = pos, .output_rows = rows};
  for (bool fuse : {false, true}) {
    Result<Graph> g = m.Build(static_cast<int64_t>(toks.size()));
    ASSERT_TRUE(g.ok());
    Result<Plan> p = Plan::Compile(*g, {.fuse = fuse});
    ASSERT_TRUE(p.ok());
    CountingBackend counting(cpu_backend);
    EXPECT_EQ(p->scratch_bytes(counting), p->scratch_bytes(cpu_backend));
    std::vector<float> arena(p->arena_bytes() / sizeof(float) + 16);
    std::vector<float> a(p->scratch_bytes(cpu_backend) / sizeof(float) + 16);
    Result<std::span<const float>> out = p->Execute(counting, in, arena.data(), a.data());
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    int executed = 0;
    for (const Node& node : p->graph().nodes)
      executed += node.op != OpKind::kTokens && node.computed_by < 0;
    EXPECT_EQ(counting.calls, executed) << "fuse " << fuse;
    const std::vector<float> got(out->begin(), out->end());
    std::vector<float> b(p->scratch_bytes(cpu_backend) / sizeof(float) + 16);
    Result<std::span<const float>> direct = p->Execute(cpu_backend, in, arena.data(), b.data());
    ASSERT_TRUE(direct.ok());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), direct->begin(), direct->end()));
  }
}

TEST(PlanTest, BuilderReportsShapeErrorsWithNodeAndLayer) {
  Mlp m;
  GraphBuilder b(2, 1);
  Value x = b.Embed(F32Weight(m.emb, m.vocab, m.d, "emb"), 1.0f, "inp");
  b.SetLayer(4);
  b.MatMul(x, F32Weight(m.w2[0], m.d, m.ff, "w2"), "bad_mm");  // expects ff inputs, gets d
  ASSERT_FALSE(b.status().ok());
  EXPECT_NE(b.status().message().find("bad_mm"), std::string::npos);
  EXPECT_NE(b.status().message().find("layer 4"), std::string::npos);
  EXPECT_FALSE(b.Finish().ok());
}

}  // namespace
}  // namespace gannet::graph
