// Speculative decoding's engine tests (draft_model_test, self_draft_test): run requests through an
// Engine and collect each sample's tokens, logprobs and finish reasons, to compare runs with and
// without speculation. Checks on the way (EXPECT): every request succeeds, and no KV block of the
// target or of a draft model is left in use once the engine shuts down. Also the requests and
// pool of their outputs-identical tests.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "engine/engine.h"
#include "engine/paged_kv.h"

namespace gannet::engine::spec_test {

struct Outcome {
  std::vector<std::vector<int32_t>> tokens;  // per sample
  std::vector<std::vector<float>> logprobs;  // per sample
  std::vector<FinishReason> finish;
  bool operator==(const Outcome&) const = default;
};

struct Collector {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  Outcome out;
  Status status;
  GenerationCallbacks Callbacks(int n) {
    out.tokens.assign(n, {});
    out.logprobs.assign(n, {});
    return {.on_token =
                [this](const TokenEvent& ev) {
                  std::lock_guard<std::mutex> lock(mu);
                  out.tokens[ev.sample_index].push_back(ev.token);
                  out.logprobs[ev.sample_index].push_back(ev.logprob);
                },
            .on_done =
                [this](const GenerationResult& r) {
                  std::lock_guard<std::mutex> lock(mu);
                  status = r.status;
                  for (const SampleResult& s : r.samples) out.finish.push_back(s.finish);
                  done = true;
                  cv.notify_all();
                }};
  }
  bool Wait() {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(120), [&] { return done; });
  }
};

inline std::vector<Outcome> RunAll(ModelRunner* runner, const EngineOptions& options,
                                   const std::vector<GenerationRequest>& requests,
                                   EngineStats* stats) {
  auto eng = Engine::Create(runner, options);
  EXPECT_TRUE(eng.ok()) << eng.status().ToString();
  if (!eng.ok()) return {};
  std::vector<Collector> col(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_TRUE((*eng)->Submit(requests[i], col[i].Callbacks(requests[i].n)).ok());
  }
  std::vector<Outcome> outs;
  for (Collector& c : col) {
    EXPECT_TRUE(c.Wait());
    EXPECT_TRUE(c.status.ok()) << c.status.ToString();
    outs.push_back(c.out);
  }
  (*eng)->Shutdown(std::chrono::milliseconds(0));
  *stats = (*eng)->stats();
  EXPECT_EQ(stats->kv_blocks_used, 0);
  EXPECT_EQ(stats->draft_kv_blocks_used, 0);  // the draft's K/V went with its sequences
  return outs;
}

// Deterministic prompt tokens (the i-th prompt of length len).
inline std::vector<int32_t> Prompt(int i, int len, int64_t n_vocab) {
  std::vector<int32_t> p;
  for (int k = 0; k < len; ++k) p.push_back(static_cast<int32_t>((37 * i + 13 * k + 3) % n_vocab));
  return p;
}

// Six concurrent requests: greedy and seeded, n of 1 and 2, logprobs.
inline std::vector<GenerationRequest> MixedRequests(int64_t n_vocab) {
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r{.prompt = Prompt(i, 9 + 4 * i, n_vocab),
                        .max_tokens = 18 + 5 * (i % 3),
                        .n = 1 + i % 2,
                        .sampling = {.temperature = 0.0f},
                        .stop_at_eog = false,
                        .top_logprobs = 2};
    if (i % 3 == 2) r.sampling = {.temperature = 0.8f, .top_p = 0.95f, .seed = 40u + i};
    reqs.push_back(r);
  }
  return reqs;
}

// Six sequences over a pool of kSmallPoolBlocks blocks of 4 positions: small enough to preempt.
inline constexpr int32_t kSmallPoolBlocks = 36;
inline EngineOptions SmallPoolOptions(const models::ModelConfig& target) {
  return EngineOptions{.block_size = 4,
                       .kv_memory_bytes = kSmallPoolBlocks * PagedKvStore::BytesPerBlock(target, 4),
                       .max_batch_tokens = 40,
                       .max_seqs = 6,
                       .itl_factor = 0};
}

// `base` with drafts of up to 6 tokens, the control off, and the KV memory a draft model of
// `draft`'s shape takes besides the target's blocks (one draft block per target block, and 3
// chain blocks per sequence), so that the target keeps kSmallPoolBlocks blocks.
inline EngineOptions WithDrafts(EngineOptions base, SpecMethod method,
                                const models::ModelConfig& draft) {
  base.spec = method;
  base.spec_max_tokens = 6;
  base.spec_adaptive = false;
  const size_t per_draft_block = PagedKvStore::BytesPerBlock(draft, 4);
  base.kv_memory_bytes += (kSmallPoolBlocks + 3 * 6) * per_draft_block;
  return base;
}

}  // namespace gannet::engine::spec_test
