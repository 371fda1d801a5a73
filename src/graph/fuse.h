// Fusion passes: rewrite a model's graph so that fewer, larger kernels run, with no change to any
// value the graph computes (every fused op gives the bits of the ops it replaces: a contract of
// kernels::Backend). Run by Plan::Compile unless PlanOptions::fuse is false.
//
// In order:
//   1. GLU: glu(matmul(x, Wg), matmul(x, Wu)), where nothing else reads either product, becomes
//      one kMatMulGlu node: gate and up are computed tile by tile and combined at once, so the two
//      [T, n_ff] products never reach memory.
//   2. Norms into their consumers: a whole-row RMSNorm read only by matmuls disappears; each of
//      its matmuls normalises x itself as it quantizes it (pre_norm). A whole-row RMSNorm read
//      only by a residual add (Gemma's post-norms) is applied by the add, row by row.
//   3. Sibling matmuls: kMatMul nodes on the same input (Q, K and V) are grouped; the first
//      computes all of them in one pass, quantizing (and normalising) x once, with one wake-up of
//      the thread pool for the whole group.
// Nodes left without a consumer are removed, and the node ids are renumbered.
// A fused graph no longer has the intermediate tensors it fused away (the norm's output, the gate
// and up products): tools that dump every named tensor compile without fusion.
#pragma once

#include "graph/ir.h"

namespace gannet::graph {

struct FuseStats {
  int glu_pairs = 0;        // gate + up + glu -> kMatMulGlu
  int norms = 0;            // RMSNorms folded into their matmuls' quantization or a residual add
  int groups = 0;           // groups of sibling matmuls
  int grouped_matmuls = 0;  // matmuls in those groups
  int removed_nodes = 0;    // nodes the rewrite left without a consumer
};

// Rewrites `g` in place. REQUIRES: a valid graph (nodes in execution order, output set).
FuseStats Fuse(Graph& g);

}  // namespace gannet::graph
