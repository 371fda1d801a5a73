// A stand-in for the engine's forward pass, for scheduler tests: it keeps a "KV store" in which
// each slot holds the token id whose K/V it would hold, performs the step's block copies, checks
// that every scheduled sequence reads exactly its own tokens through its block table (prefix hits,
// copy-on-write, deduplication and recompute all included), writes the new tokens, and returns
// sampled tokens chosen by the test.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "engine/scheduler.h"

namespace gannet::engine::testing {

// Chooses sample k of a scheduled entry that needs logits.
using SampleFn = std::function<SampledToken(const ScheduledSeq& entry, int32_t k)>;

class FakeForward {
 public:
  explicit FakeForward(const SchedulerOptions& o)
      : options_(o), kv_(static_cast<size_t>(o.num_blocks) * o.block_size, -1) {}

  // Call when a request is added (the prompt is what its sequences start with).
  void AddPrompt(RequestId id, const std::vector<int32_t>& prompt) { prompts_[id] = prompt; }

  // Runs one step: checks the output against the scheduler's limits and the KV store, applies it.
  // Returns the result to hand to Update(). Sets *error on the first inconsistency found.
  StepResult Run(const SchedulerOutput& out, const SampleFn& sample, std::string* error) {
    StepResult r{.step = out.step};
    const int32_t bs = options_.block_size;
    auto fail = [&](const std::string& m) {
      if (error->empty()) *error = "step " + std::to_string(out.step) + ": " + m;
    };
    if (out.num_tokens > options_.max_num_batched_tokens) fail("token budget exceeded");
    if (static_cast<int32_t>(out.seqs.size()) > options_.max_num_seqs)
      fail("max_num_seqs exceeded");
    for (const BlockCopy& c : out.copies) {
      for (int32_t i = 0; i < bs; ++i) kv_[Slot(c.dst, i)] = kv_[Slot(c.src, i)];
    }
    int32_t total = 0;
    std::unordered_set<SeqId> seen;
    std::unordered_set<int64_t> written;  // slots written this step: no two sequences may share one
    for (const ScheduledSeq& e : out.seqs) {
      const std::string who = "seq " + std::to_string(e.seq_id);
      if (!seen.insert(e.seq_id).second) fail(who + " scheduled twice");
      const int32_t n = static_cast<int32_t>(e.tokens.size());
      total += n;
      if (n <= 0) fail(who + " scheduled with no tokens");
      std::vector<int32_t>& want = Expected(e);
      if (e.start + n > static_cast<int32_t>(want.size())) {
        fail(who + " scheduled past its tokens");
        continue;
      }
      if (!std::equal(e.tokens.begin(), e.tokens.end(), want.begin() + e.start))
        fail(who + " got the wrong token ids");
      if (static_cast<int32_t>(e.block_table.size()) != (e.start + n + bs - 1) / bs)
        fail(who + " block table size");
      if (e.needs_logits != (e.start + n == static_cast<int32_t>(want.size())))
        fail(who + " needs_logits wrong");
      for (int32_t p = 0; p < e.start; ++p) {
        if (kv_[Slot(e.block_table[p / bs], p % bs)] != want[p]) {
          fail(who + " reads a wrong K/V at position " + std::to_string(p));
          break;
        }
      }
      for (int32_t i = 0; i < n; ++i) {
        const int32_t p = e.start + i;
        const int64_t slot = Slot(e.block_table[p / bs], p % bs);
        if (!written.insert(slot).second)
          fail(who + " writes a slot another sequence writes this step");
        kv_[slot] = e.tokens[i];
      }
      if (!e.needs_logits) continue;
      SeqStepResult sr{.seq_id = e.seq_id};
      for (int32_t k = 0; k < e.num_samples; ++k) {
        const SampledToken t = sample(e, k);
        sr.samples.push_back(t);
        if (k == 0) {
          want.push_back(t.token);
        } else {
          fork_tokens_[e.request_id][e.sample_index + k] = t.token;
        }
      }
      r.seqs.push_back(std::move(sr));
    }
    if (total != out.num_tokens) fail("num_tokens does not add up");
    return r;
  }

  // The tokens a sequence must have (prompt, then its samples), as the test saw them.
  std::vector<int32_t>& Expected(const ScheduledSeq& e) {
    auto it = expected_.find(e.seq_id);
    if (it != expected_.end()) return it->second;
    std::vector<int32_t> t = prompts_.at(e.request_id);
    if (e.sample_index > 0) t.push_back(fork_tokens_.at(e.request_id).at(e.sample_index));
    return expected_.emplace(e.seq_id, std::move(t)).first->second;
  }

 private:
  int64_t Slot(BlockId b, int32_t i) const {
    return static_cast<int64_t>(b) * options_.block_size + i;
  }

  SchedulerOptions options_;
  std::vector<int32_t> kv_;
  std::unordered_map<RequestId, std::vector<int32_t>> prompts_;
  std::unordered_map<RequestId, std::unordered_map<int32_t, int32_t>> fork_tokens_;
  std::unordered_map<SeqId, std::vector<int32_t>> expected_;
};

}  // namespace gannet::engine::testing
