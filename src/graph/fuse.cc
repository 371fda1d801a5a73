#include "graph/fuse.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "kernels/types.h"

namespace gannet::graph {
namespace {

std::vector<std::vector<int32_t>> Users(const Graph& g) {
  std::vector<std::vector<int32_t>> users(g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (int32_t in : g.nodes[i].inputs) users[in].push_back(static_cast<int32_t>(i));
  }
  return users;
}

bool PlainMatMul(const Node& n) { return n.op == OpKind::kMatMul && !n.pre_norm; }

int FuseGlu(Graph& g) {
  const std::vector<std::vector<int32_t>> users = Users(g);
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    Node& n = g.nodes[i];
    if (n.op != OpKind::kGlu || n.inputs.size() != 2) continue;
    const int32_t gi = n.inputs[0], ui = n.inputs[1];
    if (gi == ui || gi == g.output || ui == g.output) continue;
    const Node& gate = g.nodes[gi];
    const Node& up = g.nodes[ui];
    if (!PlainMatMul(gate) || !PlainMatMul(up) || gate.inputs != up.inputs) continue;
    if (gate.weight.cols != up.weight.cols || gate.rows != up.rows || gate.cols != up.cols)
      continue;
    if (users[gi].size() != 1 || users[ui].size() != 1) continue;
    n.op = OpKind::kMatMulGlu;
    n.inputs = gate.inputs;
    n.weight = gate.weight;
    n.weight2 = up.weight;
    ++fused;
  }
  return fused;
}

int FuseNorms(Graph& g) {
  const std::vector<std::vector<int32_t>> users = Users(g);
  int fused = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op != OpKind::kRmsNorm || n.group != n.cols || static_cast<int32_t>(i) == g.output)
      continue;
    const std::vector<int32_t>& u = users[i];
    if (u.empty()) continue;
    // A residual add of the norm's output (and of something else): the add normalises it.
    if (u.size() == 1 && g.nodes[u[0]].op == OpKind::kAdd && !g.nodes[u[0]].pre_norm) {
      Node& add = g.nodes[u[0]];
      const int32_t id = static_cast<int32_t>(i);
      if (add.inputs.size() == 2 && (add.inputs[0] == id) != (add.inputs[1] == id)) {
        if (add.inputs[0] == id) std::swap(add.inputs[0], add.inputs[1]);  // IEEE addition commutes
        add.inputs[1] = n.inputs[0];
        add.pre_norm = true;
        add.norm = n.weight;
        add.eps = n.eps;
        ++fused;
        continue;
      }
    }
    bool all_matmuls = true;
    for (int32_t c : u) {
      const Node& m = g.nodes[c];
      all_matmuls &= (m.op == OpKind::kMatMul || m.op == OpKind::kMatMulGlu) && !m.pre_norm &&
                     m.inputs.size() == 1 && m.inputs[0] == static_cast<int32_t>(i);
    }
    if (!all_matmuls) continue;
    for (int32_t c : u) {
      Node& m = g.nodes[c];
      m.inputs[0] = n.inputs[0];
      m.pre_norm = true;
      m.norm = n.weight;
      m.eps = n.eps;
    }
    ++fused;
  }
  return fused;
}

// Drops the nodes the output does not depend on and renumbers the rest, order kept.
int RemoveDead(Graph& g) {
  const int32_t n = static_cast<int32_t>(g.nodes.size());
  std::vector<bool> live(n, false);
  live[g.output] = true;
  for (int32_t i = n - 1; i >= 0; --i) {
    if (!live[i]) continue;
    for (int32_t in : g.nodes[i].inputs) live[in] = true;
  }
  std::vector<int32_t> new_id(n, -1);
  std::vector<Node> kept;
  for (int32_t i = 0; i < n; ++i) {
    if (!live[i]) continue;
    new_id[i] = static_cast<int32_t>(kept.size());
    kept.push_back(std::move(g.nodes[i]));
  }
  for (Node& node : kept) {
    for (int32_t& in : node.inputs) in = new_id[in];
  }
  const int removed = n - static_cast<int32_t>(kept.size());
  g.output = new_id[g.output];
  g.nodes = std::move(kept);
  return removed;
}

void GroupSiblings(Graph& g, FuseStats& stats) {
  // Same input, and the same normalisation of it when pre-normed.
  using Key = std::tuple<int32_t, bool, const void*, uint32_t>;
  std::map<Key, std::vector<int32_t>> siblings;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (n.op != OpKind::kMatMul || n.inputs.size() != 1) continue;
    uint32_t eps_bits = 0;
    if (n.pre_norm) std::memcpy(&eps_bits, &n.eps, sizeof eps_bits);
    siblings[Key{n.inputs[0], n.pre_norm, n.pre_norm ? n.norm.data : nullptr, eps_bits}].push_back(
        static_cast<int32_t>(i));
  }
  for (const auto& [key, ids] : siblings) {
    for (size_t first = 0; first + 1 < ids.size(); first += kernels::kMaxMatMulGroup) {
      const size_t last = std::min(ids.size(), first + kernels::kMaxMatMulGroup);  // exclusive
      if (last - first < 2) break;
      Node& leader = g.nodes[ids[first]];
      for (size_t k = first + 1; k < last; ++k) {
        leader.siblings.push_back(ids[k]);
        g.nodes[ids[k]].computed_by = ids[first];
      }
      ++stats.groups;
      stats.grouped_matmuls += static_cast<int>(last - first);
    }
  }
}

}  // namespace

FuseStats Fuse(Graph& g) {
  FuseStats stats;
  stats.glu_pairs = FuseGlu(g);
  stats.norms = FuseNorms(g);
  stats.removed_nodes = RemoveDead(g);
  GroupSiblings(g, stats);
  return stats;
}

}  // namespace gannet::graph
