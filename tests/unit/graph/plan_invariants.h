// The memory planner's invariant, checked on a compiled plan: two buffers live at the same time
// never share bytes. A buffer lives from the node that writes it (a grouped matmul's leader, see
// graph/fuse.h) to its last consumer; the output to the end. Every buffer lies inside the arena.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "graph/plan.h"

namespace gannet::graph {

inline void ExpectLiveBuffersNeverShareBytes(const Plan& p) {
  const auto& nodes = p.graph().nodes;
  const int32_t n = static_cast<int32_t>(nodes.size());
  std::vector<int32_t> first(n), last(n);
  for (int32_t i = 0; i < n; ++i) {
    first[i] = nodes[i].computed_by >= 0 ? nodes[i].computed_by : i;
    last[i] = i;
    for (int32_t in : nodes[i].inputs) last[in] = std::max(last[in], i);
  }
  last[p.graph().output] = n;
  for (int32_t a = 0; a < n; ++a) {
    if (nodes[a].op == OpKind::kTokens) continue;
    const size_t a0 = p.offset(a), a1 = a0 + nodes[a].rows * nodes[a].cols * sizeof(float);
    EXPECT_LE(a1, p.arena_bytes());
    for (int32_t b = a + 1; b < n; ++b) {
      if (nodes[b].op == OpKind::kTokens || first[b] > last[a] || first[a] > last[b]) continue;
      const size_t b0 = p.offset(b), b1 = b0 + nodes[b].rows * nodes[b].cols * sizeof(float);
      EXPECT_TRUE(a1 <= b0 || b1 <= a0)
          << nodes[a].name << " (layer " << nodes[a].layer << ") and " << nodes[b].name
          << " (layer " << nodes[b].layer << ") overlap";
    }
  }
}

}  // namespace gannet::graph
