// The fusion passes: which patterns they fuse and which they must leave alone, the rewritten
// graph's structure (renumbered, no dead nodes, groups led by their first member), the planner's
// invariant for grouped outputs (written at their leader), and execution: a fused plan gives the
// unfused plan's outputs bit for bit, on quantized weights of several types, for several token
// counts and thread counts.
#include "graph/fuse.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "graph/builder.h"
#include "graph/plan.h"
#include "kernels/cpu/cpu_backend.h"
#include "plan_invariants.h"
#include "tensor/quant/quant.h"

namespace gannet::graph {
namespace {

struct Weight {
  DType type;
  int64_t rows, cols;
  std::vector<uint8_t> bytes;
  WeightRef Ref(const std::string& name) const {
    return WeightRef{.type = type, .data = bytes.data(), .rows = rows, .cols = cols, .name = name};
  }
};

Weight MakeWeight(std::mt19937& rng, DType type, int64_t rows, int64_t cols, float mean = 0.0f,
                  float sd = 0.1f) {
  Weight w{type, rows, cols, {}};
  const size_t rb = static_cast<size_t>(*RowBytes(type, cols));
  w.bytes.resize(rb * rows);
  std::normal_distribution<float> nd(mean, sd);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = nd(rng);
    EXPECT_TRUE(QuantizeRow(type, row.data(), w.bytes.data() + r * rb, cols));
  }
  return w;
}

// A residual stack with every pattern the passes look for, and the near misses they must skip:
//   h = norm(x)                           -> folded into q, k, v (all matmuls); a buffer dies
//                                            between q and k (k is written with q)
//   q, k, v = h Wq, h Wk, h Wv            -> one group (Q8_0, Q4_K and F16: three partner types)
//   x += (q + k) Wo ... v Wv2             -> (q + k): k's output is read after the group
//   g = norm2(x); f = glu(g Wg, g Wu)     -> GLU pair with its norm folded in
//   x = post_norm(f Wd) + x               -> the add normalises its operand (operands swapped)
//   s = norm3(x); y = x + s; t = s Wt     -> norm3 is read by an add: NOT folded
//   a = t Wa; b = t Wb; c = glu(a, b); y2 = a + c -> a is read twice: NOT a GLU pair (a, b group)
struct Net {
  int64_t d = 64, ff = 96, vocab = 13;
  Weight emb, norm_w, wq, wk, wv, wo, wg, wu, wd, wt, wa, wb, wout;
  std::vector<float> norm;
  explicit Net(uint32_t seed) {
    std::mt19937 rng(seed);
    emb = MakeWeight(rng, DType::kF32, vocab, d, 0.0f, 1.0f);
    wq = MakeWeight(rng, DType::kQ8_0, d, d);
    wk = MakeWeight(rng, DType::kQ8_0, d, d);
    wv = MakeWeight(rng, DType::kF16, 32, d);
    wo = MakeWeight(rng, DType::kQ5_0, d, d);
    wg = MakeWeight(rng, DType::kQ4_0, ff, d);
    wu = MakeWeight(rng, DType::kQ5_1, ff, d);
    wd = MakeWeight(rng, DType::kQ8_0, d, ff);
    wt = MakeWeight(rng, DType::kQ4_1, 32, d);
    wa = MakeWeight(rng, DType::kQ8_0, 32, 32);
    wb = MakeWeight(rng, DType::kQ8_0, 32, 32);
    wout = MakeWeight(rng, DType::kQ8_0, vocab, 32);
    norm.resize(d);
    std::normal_distribution<float> nd(1.0f, 0.2f);
    for (float& v : norm) v = nd(rng);
  }
  WeightRef Norm() const {
    return WeightRef{
        .type = DType::kF32, .data = norm.data(), .rows = 1, .cols = d, .name = "norm"};
  }
  Graph Build(int64_t n_tokens) const {
    GraphBuilder b(n_tokens, n_tokens);
    Value x = b.Embed(emb.Ref("emb"), 1.0f, "inp");
    Value e = b.Scale(x, 0.5f, "e");
    Value h = b.RmsNorm(x, Norm(), 1e-5f, d, "attn_norm");
    Value q = b.MatMul(h, wq.Ref("wq"), "q");
    // e dies here, between q and k: k (written with q) must not take its bytes.
    Value z = b.Add(e, e, "z");
    Value k = b.MatMul(h, wk.Ref("wk"), "k");
    Value v = b.MatMul(h, wv.Ref("wv"), "v");
    Value qk = b.Add(q, k, "qk");
    x = b.Add(b.Add(x, b.MatMul(qk, wo.Ref("wo"), "o"), "res0"), z, "res1");
    Value g = b.RmsNorm(x, Norm(), 1e-6f, d, "ffn_norm");
    Value f = b.Glu(b.MatMul(g, wg.Ref("wg"), "gate"), b.MatMul(g, wu.Ref("wu"), "up"),
                    GluAct::kGeluTanh, "geglu");
    // Gemma's post-norm, first operand of the residual add: applied by the add.
    x = b.Add(b.RmsNorm(b.MatMul(f, wd.Ref("wd"), "down"), Norm(), 1e-5f, d, "post_norm"), x,
              "res2");
    Value s = b.RmsNorm(x, Norm(), 1e-5f, d, "norm3");
    Value y = b.Add(x, s, "res3");
    Value t = b.MatMul(s, wt.Ref("wt"), "t");
    Value a = b.MatMul(t, wa.Ref("wa"), "a");
    Value bb = b.MatMul(t, wb.Ref("wb"), "b");
    Value c = b.Glu(a, bb, GluAct::kSilu, "glu2");
    Value y2 = b.Add(b.Add(a, c, "y2"), v, "y3");
    (void)y;
    b.SetOutput(b.MatMul(b.SelectOutputRows(y2, "rows"), wout.Ref("wout"), "logits"));
    Result<Graph> r = b.Finish();
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return *r;
  }
};

const Node* Find(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

TEST(Fuse, FusesThePatternsAndSkipsTheNearMisses) {
  Net net(1);
  Graph g = net.Build(3);
  const size_t before = g.nodes.size();
  const FuseStats st = Fuse(g);
  EXPECT_EQ(st.glu_pairs, 1);  // gate/up; not a/b (a is read again)
  EXPECT_EQ(st.norms,
            3);  // attn_norm, ffn_norm, post_norm; not norm3 (read by an add and a matmul)
  EXPECT_EQ(st.groups, 2);  // {q, k, v} and {a, b}
  EXPECT_EQ(st.grouped_matmuls, 5);
  // Gone: the three norms, gate, up, and res3 (dead: the output does not read it).
  EXPECT_EQ(st.removed_nodes, 6);
  EXPECT_EQ(g.nodes.size(), before - 6);
  for (const char* gone : {"attn_norm", "ffn_norm", "post_norm", "gate", "up", "res3"}) {
    EXPECT_EQ(Find(g, gone), nullptr) << gone;
  }
  const Node* res2 = Find(g, "res2");
  ASSERT_NE(res2, nullptr);
  EXPECT_TRUE(res2->pre_norm);
  EXPECT_EQ(g.nodes[res2->inputs[0]].name, "res1");  // the plain operand first
  EXPECT_EQ(g.nodes[res2->inputs[1]].name, "down");

  const Node* geglu = Find(g, "geglu");
  ASSERT_NE(geglu, nullptr);
  EXPECT_EQ(geglu->op, OpKind::kMatMulGlu);
  EXPECT_EQ(geglu->weight.data, net.wg.bytes.data());
  EXPECT_EQ(geglu->weight2.data, net.wu.bytes.data());
  EXPECT_TRUE(geglu->pre_norm);
  EXPECT_EQ(geglu->eps, 1e-6f);
  EXPECT_EQ(g.nodes[geglu->inputs[0]].name, "res1");

  const Node* q = Find(g, "q");
  ASSERT_NE(q, nullptr);
  EXPECT_TRUE(q->pre_norm);
  EXPECT_EQ(q->norm.data, net.norm.data());
  EXPECT_EQ(q->computed_by, -1);
  ASSERT_EQ(q->siblings.size(), 2u);
  EXPECT_EQ(g.nodes[q->siblings[0]].name, "k");
  EXPECT_EQ(g.nodes[q->siblings[1]].name, "v");
  const int32_t q_id = static_cast<int32_t>(q - g.nodes.data());
  EXPECT_EQ(g.nodes[q->siblings[0]].computed_by, q_id);
  EXPECT_EQ(g.nodes[q->siblings[1]].computed_by, q_id);

  EXPECT_EQ(Find(g, "norm3")->op, OpKind::kRmsNorm);
  EXPECT_FALSE(Find(g, "t")->pre_norm);
  EXPECT_EQ(Find(g, "glu2")->op, OpKind::kGlu);
  EXPECT_EQ(Find(g, "b")->computed_by, static_cast<int32_t>(Find(g, "a") - g.nodes.data()));

  // Renumbered: every input precedes its node; the output is the logits.
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (int32_t in : g.nodes[i].inputs) EXPECT_LT(in, static_cast<int32_t>(i)) << g.nodes[i].name;
  }
  EXPECT_EQ(g.nodes[g.output].name, "logits");
}

TEST(Fuse, GroupedOutputsAreLiveFromTheirLeader) {
  Net net(2);
  Result<Plan> p = Plan::Compile(net.Build(4));
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  ExpectLiveBuffersNeverShareBytes(*p);
}

TEST(Fuse, FusedPlanGivesTheUnfusedOutputsBitForBit) {
  Net net(3);
  for (int64_t n_tokens : {1, 5, 17}) {
    Result<Plan> fused = Plan::Compile(net.Build(n_tokens));
    Result<Plan> plain = Plan::Compile(net.Build(n_tokens), {.fuse = false});
    ASSERT_TRUE(fused.ok() && plain.ok());
    EXPECT_LT(fused->graph().nodes.size(), plain->graph().nodes.size());
    EXPECT_EQ(plain->fuse_stats().glu_pairs + plain->fuse_stats().groups, 0);
    std::vector<int32_t> toks(n_tokens), pos(n_tokens), rows(n_tokens);
    for (int64_t t = 0; t < n_tokens; ++t) {
      toks[t] = static_cast<int32_t>((t * 7 + 3) % net.vocab);
      pos[t] = rows[t] = static_cast<int32_t>(t);
    }
    const BatchInputs in{.tokens = toks, .positions = pos, .output_rows = rows};
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      cpu::CpuBackend backend(pool);
      auto run = [&](const Plan& p) {
        std::vector<float> arena(p.arena_bytes() / sizeof(float) + 16);
        std::vector<float> scratch(p.scratch_bytes(backend) / sizeof(float) + 16);
        Result<std::span<const float>> out = p.Execute(backend, in, arena.data(), scratch.data());
        EXPECT_TRUE(out.ok()) << out.status().ToString();
        return out.ok() ? std::vector<float>(out->begin(), out->end()) : std::vector<float>();
      };
      const std::vector<float> a = run(*fused), b = run(*plain);
      ASSERT_EQ(a.size(), static_cast<size_t>(n_tokens * net.vocab));
      ASSERT_EQ(a.size(), b.size());
      EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0)
          << "tokens " << n_tokens << " threads " << threads;
    }
  }
}

TEST(Fuse, ObserverSeesEveryExecutedNodeWithItsValues) {
  // Grouped outputs are reported at their own place, after the leader wrote them.
  Net net(4);
  Result<Plan> fused = Plan::Compile(net.Build(2));
  Result<Plan> plain = Plan::Compile(net.Build(2), {.fuse = false});
  ASSERT_TRUE(fused.ok() && plain.ok());
  std::vector<int32_t> toks = {1, 2}, pos = {0, 1}, rows = {0, 1};
  const BatchInputs in{.tokens = toks, .positions = pos, .output_rows = rows};
  ThreadPool pool(2);
  cpu::CpuBackend backend(pool);
  auto observe = [&](const Plan& p) {
    std::map<std::string, std::vector<float>> seen;
    NodeObserver obs = [&](const Node& node, const float* data) {
      seen[node.name].assign(data, data + node.rows * node.cols);
    };
    std::vector<float> arena(p.arena_bytes() / sizeof(float) + 16);
    std::vector<float> scratch(p.scratch_bytes(backend) / sizeof(float) + 16);
    EXPECT_TRUE(p.Execute(backend, in, arena.data(), scratch.data(), &obs).ok());
    return seen;
  };
  const auto f = observe(*fused), u = observe(*plain);
  EXPECT_EQ(f.size(), fused->graph().nodes.size() - 1);  // all but the token placeholder
  for (const char* name : {"q", "k", "v", "geglu", "a", "b", "logits"}) {
    ASSERT_TRUE(f.count(name) && u.count(name)) << name;
    EXPECT_EQ(f.at(name), u.at(name)) << name;
  }
}

}  // namespace
}  // namespace gannet::graph
