// Adaptive control of speculative decoding: draft only where it pays.
//
// A draft row costs compute in the forward pass whether or not it is accepted. On a CPU a decode
// step mostly streams weights, so a few extra rows cost little beside one sequence's token; in a
// large batch the step is compute-bound and an extra row costs about what a sequence's own token
// does. Two pieces decide:
//
// - SpecCostModel fits step time = a + b * rows (rows: tokens computed in the step) online, by
//   exponentially weighted least squares over the steps that only decode (prompt chunks run in
//   another regime and are left out). From it, Threshold(): how many accepted tokens a draft row
//   must yield for speculation to raise the step's tokens per second, b * seqs / (a + b * rows).
// - SpecController (one per sample) estimates how likely its drafts' tokens are accepted, p (each
//   token in turn, as a chain: a verification that accepted j of m tokens saw j successes and, when
//   j < m, one failure), apart for each class of draft (a model's; an n-gram's by the length of
//   its match), and sizes the next draft to the length k that maximizes the sequence's
//   tokens per unit of step time, (1 + p + p^2 + ... + p^k) / (1 + threshold * k): the threshold is
//   a draft row's cost in units of the sequence's share of the step. Cheap rows and high acceptance
//   give long drafts; costly rows (a compute-bound batch, an expensive draft model) or low
//   acceptance give short ones or none (free-form text). When none pays, drafting pauses, probing
//   again with a small draft after an exponentially growing pause: in a batch where a draft of
//   unknown acceptance (the prior's) would be made (a large batch's probe rows cost nearly what
//   its sequences' own rows do), for a lone sequence wherever a draft could pay at all.
//
// Thread-safety: none. The cost model lives on the engine's step thread; each controller is used
// by one sampling job at a time.
#pragma once

#include <cstdint>

namespace gannet::engine {

class SpecCostModel {
 public:
  // A step that only decoded: `rows` tokens computed in `seconds`.
  void Observe(int32_t rows, double seconds);
  // Drafts from a second model (engine/draft_model.h): `tokens` draft tokens took `seconds` of
  // draft-model passes. Each draft row is then charged this cost too.
  void ObserveDraft(int32_t tokens, double seconds);
  // Accepted tokens per draft row below which drafting lowers throughput, in a step whose rows
  // besides the draft rows are `rows`, `seqs` of them yielding work (a decoding sequence's token;
  // the engine counts a prompt chunk's rows too): (b + d) * seqs / (a + b * rows), d the draft
  // model's seconds per draft token (0 without one): a draft row costs b + d and must yield more
  // than the step's own rows do per second. Before a few decode-only steps are observed: 0.25
  // for one sequence, 1 (no draft can pay) for a batch. A
  // draft row yields one token at most, so a threshold of 1 or more means drafting cannot pay.
  // With `charge_draft` false, d is left out: the bar for draft rows that cost no model pass (the
  // n-gram lookup's).
  double Threshold(int32_t seqs, int32_t rows, bool charge_draft = true) const;
  double fixed_seconds() const;            // a
  double per_row_seconds() const;          // b
  double draft_seconds_per_token() const;  // d

 private:
  // Exponentially weighted sums of 1, x, y, x^2, x*y.
  double w_ = 0, sx_ = 0, sy_ = 0, sxx_ = 0, sxy_ = 0;
  int64_t n_observed_ = 0;                       // steps observed, not weighted
  double draft_tokens_ = 0, draft_seconds_ = 0;  // exponentially weighted
};

class SpecController {
 public:
  // Drafts fall into classes by the evidence behind them, each with its own acceptance estimate:
  // class 0 for a model's drafts, class n (1..kClasses-1) for n-gram drafts whose longest match of
  // the sequence's end was n tokens (the last class: that many or more). A longer match is far
  // likelier to go on matching: on the default model's grounded prompts, 9% of drafts behind a
  // 4-token match had their first token rejected, against 67% behind a 1-token match.
  static constexpr int32_t kClasses = 5;

  explicit SpecController(int32_t max_nodes);

  // A model's draft (class 0): how many tokens to draft for the next step (0: no draft this step)
  // given the cost model's threshold (0: no cost, the control is off: always max_nodes).
  // `lone`: the sequence is the step's only one. Its probes are then made wherever a draft that is
  // always accepted would pay, not only where one of the prior's acceptance would (see Budget).
  int32_t NextBudget(double threshold, bool lone = false);
  // A draft that costs nothing to make (the n-gram lookup's): the most tokens it should propose,
  // max_nodes, or 0 where no acceptance could pay (threshold as above); then, once it is made, how
  // many of its first `proposed` tokens to verify given its class (0: drop it).
  int32_t FreeBudget(double threshold) const;
  int32_t Keep(int32_t cls, double threshold, int32_t proposed, bool lone = false);
  // After a verification of the draft last budgeted (NextBudget or a Keep that kept tokens): draft
  // tokens verified and how many of them were accepted.
  void Observe(int32_t drafted, int32_t accepted);
  // The class of the draft last budgeted (what Observe counts against).
  int32_t pending_class() const { return pending_; }

  // Acceptance shared across sequences. The engine keeps one controller that sees every
  // verification (ObserveClass), and a new sequence's controller starts each class from it
  // (SeedFrom) instead of the fixed prior: a request's first drafts are then sized by what the
  // engine's recent drafts of that class achieved (on grounded prompts a long match is accepted
  // ~9 times in 10, against the prior's 6), and its own verifications soon outweigh the seed.
  void ObserveClass(int32_t cls, int32_t drafted, int32_t accepted);
  void SeedFrom(const SpecController& shared);

  // The estimated chance that a draft token of class `cls` is accepted, given its parent was.
  double acceptance(int32_t cls = 0) const;
  // The draft length that maximizes expected tokens per unit of step time at acceptance p and a
  // draft row cost of `threshold` (as above), in [0, max_nodes]; 0 when no length gains at least
  // kMinGain over not drafting.
  static int32_t BestLength(double p, double threshold, int32_t max_nodes);

 private:
  struct Estimate {
    // Exponentially weighted successes and trials of draft tokens (a prior of 0.6 to start,
    // kPrior in spec_control.cc).
    double successes = 1.2, trials = 2.0;
    int32_t pause = 0;  // drafts left out before a probe
    int32_t backoff = 1;
    bool probe = false;  // the next draft is a probe
  };
  // Draft tokens for a draft of class `cls` of at most `max_nodes` tokens (the pause and probe
  // logic of NextBudget and Keep).
  int32_t Budget(int32_t cls, double threshold, int32_t max_nodes, bool lone);

  int32_t max_nodes_;
  Estimate est_[kClasses];
  int32_t pending_ = 0;  // the class of the draft last budgeted
};

}  // namespace gannet::engine
