// Sampler: picks the next token of one sequence from the model's logits.
//
// The chain and its order follow llama.cpp's default sampler chain, so results can be compared
// with it stage by stage:
//
//   logit_bias -> penalties (repeat, frequency, presence over the last repeat_last_n accepted
//   tokens) -> top_k -> top_p -> min_p -> temperature -> draw from the softmax
//
// top_p and min_p are computed on the untempered distribution left by the stages before them;
// temperature only reshapes the final draw. temperature == 0 is greedy: the argmax after bias and
// penalties, ties to the lowest id (truncation cannot change an argmax, so it is skipped).
//
// Determinism: the RNG is std::mt19937_64 (fully specified by the C++ standard) and uniforms are
// made from its output by gannet's own conversion, and every candidate set is put in an order fixed
// by the algorithm alone (ranks compare logit, then id; never the standard library's partition or
// heap layout) before the draw. So the same seed, params and sequence of logits and Accept() calls
// give the same tokens with any standard library. Each
// Sample() with temperature > 0 draws exactly one number from the RNG; greedy draws none.
//
// Cost and memory: everything is allocated in the constructor, sized by the params, and Sample()
// and Accept() never allocate. Greedy: one pass over the logits, no scratch. top_k: one pass with
// a k-entry heap (the vocabulary is never sorted). top_p / min_p without top_k: a few passes and a
// histogram of the mass, ranking only the tokens near top_p's cut; one candidate slot per
// vocabulary entry. Nothing: two passes (block sums). Penalties: O(w log w) for a window of w.
// NaN logits are treated as -infinity.
//
// Thread-safety: none; one Sampler per sequence, used by one thread at a time.
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "base/status.h"
#include "sampling/sampling_params.h"

namespace gannet {

class Sampler {
 public:
  // Validates params (including logit_bias ids against n_vocab) and builds the sampler.
  static Result<Sampler> Create(const SamplingParams& params, int32_t n_vocab);

  // REQUIRES: params.Validate(n_vocab).ok() and n_vocab > 0. Prefer Create() for params that come
  // from a user; with invalid params the output is unspecified (but memory-safe).
  Sampler(const SamplingParams& params, int32_t n_vocab);

  Sampler(Sampler&&) = default;
  Sampler& operator=(Sampler&&) = default;
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  // Returns the next token id, in [0, n_vocab).
  //
  // logits: [n_vocab], the model's output for this position. On return it holds the logits plus
  // logit_bias and nothing else (penalties are applied in place and undone), which is what
  // TopLogprobs() reports from. If every logit is -infinity or NaN, returns 0.
  // Does not add the token to the penalty history: call Accept() with the token the sequence
  // keeps (a speculative draft may be rejected).
  // REQUIRES: logits.size() == n_vocab.
  int32_t Sample(std::span<float> logits);

  // False when Sample() leaves its logits as they are: no logit_bias and no penalties. The caller
  // may then sample from logits it must keep (SampleUnchanged) instead of from a copy.
  bool ChangesLogits() const { return !params_.logit_bias.empty() || penalties_on_; }

  // Sample() for logits that stay as they are, with the same draw.
  // REQUIRES: !ChangesLogits() and logits.size() == n_vocab.
  int32_t SampleUnchanged(std::span<const float> logits);

  // Applies logit_bias and the penalties in place and leaves them there: the logits that top_k
  // and the stages after it see. For tests and for dumping logits to diff against llama.cpp's
  // chain stage by stage. Uses no randomness. REQUIRES: logits.size() == n_vocab.
  void ApplyBiasAndPenalties(std::span<float> logits);

  // Adds a token to the penalty history. Prompt tokens are accepted too (as llama.cpp does), so a
  // reply is penalized for repeating its prompt. Ids outside [0, n_vocab) are ignored. A no-op
  // when the penalties are off.
  void Accept(int32_t token);

  // Back to the state just after construction: empty history, RNG re-seeded with seed().
  void Reset();

  // Internal sizes, public for the implementation's helpers: the top_p histogram has kBuckets
  // buckets of 1/kBucketsPerLogit logit below the max, plus one for everything further down; an
  // untruncated draw sums weights in blocks of kBlock tokens.
  static constexpr int kBucketsPerLogit = 32;
  static constexpr int kBuckets = 64 * kBucketsPerLogit;
  // top_p looks first at the tokens in the buckets within 10 logits of the max (a weight above
  // e^-10 each): where the cut falls among them, the rest of the row is not histogrammed.
  static constexpr int kNearBuckets = 10 * kBucketsPerLogit;
  static constexpr size_t kBlock = 1024;

  const SamplingParams& params() const { return params_; }
  int32_t n_vocab() const { return n_vocab_; }
  // The seed in use: params.seed, or the one drawn at construction when it was unset.
  uint64_t seed() const { return seed_; }

 private:
  struct Candidate {
    float logit;
    int32_t id;
  };
  struct Saved {
    int32_t id;
    float logit;
  };

  static bool RanksBefore(const Candidate& a, const Candidate& b);

  void ApplyLogitBias(std::span<float> logits) const;
  void ApplyPenalties(std::span<float> logits);
  void RestorePenalized(std::span<float> logits);
  int32_t Choose(std::span<const float> logits);
  // Fills candidates_ with the top_k set, sorted, then cuts it by top_p and min_p.
  void SelectTopK(std::span<const float> logits);
  // Without top_k: candidates_ = the tokens top_p and min_p keep (see the .cc for their order).
  void SelectByThresholds(std::span<const float> logits, float max_logit);
  void RankCutBucket(size_t head, double cum, double target, float max_logit,
                     float min_p_threshold);
  // candidates_ = usable tokens with logit >= threshold, in id order.
  void CollectAtLeast(std::span<const float> logits, float threshold);
  int32_t DrawFromCandidates(double u);
  int32_t DrawFromAll(std::span<const float> logits, float max_logit, double u);
  double NextUniform();  // in [0, 1)

  SamplingParams params_;
  int32_t n_vocab_ = 0;
  uint64_t seed_ = 0;
  std::mt19937_64 rng_;

  int32_t top_k_ = 0;  // params_.top_k when it truncates (1 < top_k < n_vocab), else 0 or 1
  bool penalties_on_ = false;
  std::vector<int32_t> history_;  // ring buffer of the last repeat_last_n accepted tokens
  size_t history_head_ = 0;       // next slot to write
  size_t history_size_ = 0;
  std::vector<int32_t> history_sorted_;  // scratch: history, sorted, to count repeats
  std::vector<Saved> saved_;             // scratch: logits before penalties, to restore them

  std::vector<Candidate> candidates_;  // scratch, capacity fixed at construction
  std::vector<double> bucket_mass_;    // scratch for top_p without top_k: [kBuckets + 1]
  std::vector<double> block_sums_;  // scratch for untruncated draws: [n_vocab / kBlock, rounded up]
};

}  // namespace gannet
