// Speculative decoding's engine tests (draft_model_test, self_draft_test): run requests through an
// Engine and collect each sample's tokens, logprobs and finish reasons, to compare runs with and
// without speculation. Checks on the way (EXPECT): every request succeeds, and no KV block of the
// target or of a draft model is left in use once the engine shuts down.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "engine/engine.h"

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

}  // namespace gannet::engine::spec_test
