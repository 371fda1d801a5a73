#include "sampling/sampler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>

#include "sampling/row_scan.h"

namespace gannet {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A logit that can be sampled: not -infinity and not NaN (NaN fails every comparison).
inline bool Usable(float l) { return l > kNegInf; }

// Unnormalized softmax weight. Single precision (expf is several times cheaper than exp, and a
// 262144-token pass is on the token path); weights are summed in double.
inline float Weight(float logit, float max_logit) { return std::exp(logit - max_logit); }

// Weight of logit / temperature. The product is formed in double so that a tiny temperature
// gives 0 for every non-maximal token (and 1 for the maximum) instead of 0 * inf = NaN.
inline float TemperedWeight(float logit, float max_logit, double inv_t) {
  return std::exp(static_cast<float>((static_cast<double>(logit) - max_logit) * inv_t));
}

// Histogram bucket of a logit for top_p: its distance below the max in 1/kBucketsPerLogit steps,
// with everything kBuckets steps or more below (and NaN distances) in the last bucket.
inline int BucketOf(float logit, float max_logit) {
  const float d = (max_logit - logit) * static_cast<float>(Sampler::kBucketsPerLogit);
  return d < static_cast<float>(Sampler::kBuckets) ? static_cast<int>(d) : Sampler::kBuckets;
}

uint64_t OsSeed() {
  try {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd();
  } catch (...) {
    // No entropy source: fall back to the clock. A "random" seed only has to differ between runs.
    return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }
}

}  // namespace

// The canonical candidate order: logit descending, id ascending. A strict total order, so a
// truncated set and its order never depend on how the standard library partitions or heaps.
bool Sampler::RanksBefore(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

Result<Sampler> Sampler::Create(const SamplingParams& params, int32_t n_vocab) {
  if (n_vocab <= 0) {
    return Status::InvalidArgument("sampler needs a vocabulary of at least one token (got " +
                                   std::to_string(n_vocab) + ")");
  }
  GANNET_RETURN_IF_ERROR(params.Validate(n_vocab));
  return Sampler(params, n_vocab);
}

Sampler::Sampler(const SamplingParams& params, int32_t n_vocab)
    : params_(params), n_vocab_(n_vocab) {
  GANNET_CHECK(n_vocab > 0);
  seed_ = params_.seed.has_value() ? *params_.seed : OsSeed();
  rng_.seed(seed_);

  penalties_on_ = params_.repeat_last_n > 0 &&
                  (params_.repeat_penalty != 1.0f || params_.frequency_penalty != 0.0f ||
                   params_.presence_penalty != 0.0f);
  if (penalties_on_) {
    const size_t window = static_cast<size_t>(params_.repeat_last_n);
    history_.assign(window, 0);
    history_sorted_.reserve(window);
    saved_.reserve(std::min(window, static_cast<size_t>(n_vocab)));
  }

  top_k_ = (params_.top_k > 0 && params_.top_k < n_vocab) ? params_.top_k : 0;
  const bool greedy = !(params_.temperature > 0.0f);
  const bool thresholds = params_.top_p < 1.0f || params_.min_p > 0.0f;
  if (!greedy && top_k_ > 1) {
    candidates_.reserve(static_cast<size_t>(top_k_));
  } else if (!greedy && top_k_ == 0 && thresholds) {
    candidates_.reserve(static_cast<size_t>(n_vocab));
    if (params_.top_p < 1.0f) bucket_mass_.assign(kBuckets + 1, 0.0);
  } else if (!greedy && top_k_ == 0 && params_.top_k != 1) {
    block_sums_.assign((static_cast<size_t>(n_vocab) + kBlock - 1) / kBlock, 0.0);
  }
}

int32_t Sampler::Sample(std::span<float> logits) {
  GANNET_CHECK(logits.size() == static_cast<size_t>(n_vocab_));
  ApplyLogitBias(logits);
  ApplyPenalties(logits);
  const int32_t token = Choose(logits);
  RestorePenalized(logits);
  return token;
}

int32_t Sampler::SampleUnchanged(std::span<const float> logits) {
  GANNET_CHECK(logits.size() == static_cast<size_t>(n_vocab_));
  GANNET_CHECK(!ChangesLogits());
  return Choose(logits);
}

void Sampler::ApplyBiasAndPenalties(std::span<float> logits) {
  GANNET_CHECK(logits.size() == static_cast<size_t>(n_vocab_));
  ApplyLogitBias(logits);
  ApplyPenalties(logits);
  saved_.clear();  // kept: the caller asked for the penalized values
}

void Sampler::Accept(int32_t token) {
  if (!penalties_on_ || token < 0 || token >= n_vocab_) return;
  history_[history_head_] = token;
  history_head_ = (history_head_ + 1) % history_.size();
  if (history_size_ < history_.size()) ++history_size_;
}

void Sampler::Reset() {
  history_head_ = 0;
  history_size_ = 0;
  rng_.seed(seed_);
}

void Sampler::ApplyLogitBias(std::span<float> logits) const {
  for (const auto& [id, bias] : params_.logit_bias) {
    if (id >= 0 && id < n_vocab_) logits[id] += bias;
  }
}

// llama.cpp's penalties sampler: each distinct token in the window is penalized once, with its
// count in the window. Counting sorts a copy of the window: O(w log w) with no vocabulary-sized
// state per sequence.
void Sampler::ApplyPenalties(std::span<float> logits) {
  saved_.clear();
  if (!penalties_on_ || history_size_ == 0) return;
  // While the ring is filling, its entries are history_[0, size); once full, all of it.
  history_sorted_.assign(history_.begin(), history_.begin() + history_size_);
  std::sort(history_sorted_.begin(), history_sorted_.end());
  const float repeat = params_.repeat_penalty;
  const float frequency = params_.frequency_penalty;
  const float presence = params_.presence_penalty;
  for (size_t i = 0; i < history_sorted_.size();) {
    const int32_t token = history_sorted_[i];
    size_t j = i + 1;
    while (j < history_sorted_.size() && history_sorted_[j] == token) ++j;
    const float count = static_cast<float>(j - i);
    i = j;

    float& l = logits[token];
    saved_.push_back({token, l});
    if (l <= 0.0f) {
      l *= repeat;
    } else {
      l /= repeat;
    }
    l -= count * frequency + presence;  // count > 0 for every token in the window
  }
}

void Sampler::RestorePenalized(std::span<float> logits) {
  for (const Saved& s : saved_) logits[s.id] = s.logit;
  saved_.clear();
}

int32_t Sampler::Choose(std::span<const float> logits) {
  if (!(params_.temperature > 0.0f)) return sampling::ArgmaxUsable(logits);
  const double u = NextUniform();  // drawn first, so RNG use never depends on the logits
  if (params_.top_k == 1) return sampling::ArgmaxUsable(logits);

  if (top_k_ > 1) {
    SelectTopK(logits);
    return candidates_.empty() ? 0 : DrawFromCandidates(u);
  }
  const float max_logit = sampling::MaxUsable(logits);
  if (!Usable(max_logit)) return 0;
  if (params_.top_p < 1.0f || params_.min_p > 0.0f) {
    SelectByThresholds(logits, max_logit);
    return DrawFromCandidates(u);
  }
  return DrawFromAll(logits, max_logit, u);
}

void Sampler::SelectTopK(std::span<const float> logits) {
  const auto ranks_before = [](const Candidate& a, const Candidate& b) {
    return RanksBefore(a, b);
  };
  // Bounded heap whose front is the worst kept candidate: one pass over the vocabulary with one
  // comparison for most tokens (most of them passed over a span at a time, ScanForTop).
  // Scanning in id order, an equal logit later never displaces an earlier one, as the canonical
  // order demands.
  const size_t k = static_cast<size_t>(top_k_);
  candidates_.clear();
  sampling::ScanForTop(
      logits, [&] { return candidates_.size() == k; }, [&] { return candidates_.front().logit; },
      [&](int32_t id, float l) {
        if (candidates_.size() < k) {
          candidates_.push_back({l, id});
          std::push_heap(candidates_.begin(), candidates_.end(), ranks_before);
        } else if (l > candidates_.front().logit) {
          std::pop_heap(candidates_.begin(), candidates_.end(), ranks_before);
          candidates_.back() = {l, id};
          std::push_heap(candidates_.begin(), candidates_.end(), ranks_before);
        }
      });
  std::sort(candidates_.begin(), candidates_.end(), ranks_before);
  if (candidates_.empty()) return;

  const float max_logit = candidates_.front().logit;
  if (params_.top_p < 1.0f) {
    // Softmax over the top-k set, as llama.cpp's top_p sees it; keep up to and including the
    // token at which the cumulative mass first reaches top_p.
    double z = 0.0;
    for (const Candidate& c : candidates_) z += Weight(c.logit, max_logit);
    double cum = 0.0;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      cum += Weight(candidates_[i].logit, max_logit) / z;
      if (cum >= params_.top_p) {
        candidates_.resize(i + 1);
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {
    // p_i >= min_p * p_max  <=>  logit_i >= max_logit + log(min_p); the set is sorted, so this
    // keeps a prefix, and the most likely token always stays.
    const float threshold = max_logit + std::log(params_.min_p);
    size_t keep = 1;
    while (keep < candidates_.size() && candidates_[keep].logit >= threshold) ++keep;
    candidates_.resize(keep);
  }
}

// Without top_k, top_p and min_p both keep a prefix of the vocabulary in rank order, so their
// composition is the shorter one. top_p's masses are normalized over the whole vocabulary, as
// llama.cpp's chain (top_p before min_p) computes them, but the vocabulary is never sorted: a
// histogram of the mass by distance below the max logit (buckets of 1/32 logit) finds the one
// bucket B where the cumulative mass crosses top_p. Every token in a bucket before B is kept
// unsorted, and only B's tokens are ranked to place the cut. The histogram's buckets near the
// max are filled first, from the few tokens there; the rest of the row only where B is further
// down (a flat row).
//
// Order of the result: tokens before B in id order, then B's survivors in rank order. That is not
// rank order, but it is fixed by the algorithm alone, which is all a reproducible draw needs.
void Sampler::SelectByThresholds(std::span<const float> logits, float max_logit) {
  const float min_p_threshold =
      params_.min_p > 0.0f ? max_logit + std::log(params_.min_p) : kNegInf;
  if (!(params_.top_p < 1.0f)) {  // min_p only
    CollectAtLeast(logits, min_p_threshold);
    return;
  }

  // z, the whole row's mass, from row_scan's vector sum. Each bucket's mass is its tokens' terms
  // added in id order, in one of the two passes below.
  const double z = sampling::SumTemperedExp(logits, max_logit, 1.0);
  const double target = static_cast<double>(params_.top_p) * z;
  std::fill(bucket_mass_.begin(), bucket_mass_.end(), 0.0);
  constexpr size_t kWeightBlock = 256;
  float w[kWeightBlock];

  // First the tokens in the buckets within kNearBuckets of the max, found a span at a time
  // (ScanForTop's test): in a language model's row they carry the top_p mass, so the cut falls
  // among them and the rest of the row is never histogrammed.
  candidates_.clear();
  const float near_bar = max_logit - static_cast<float>(kNearBuckets / kBucketsPerLogit) - 1.0f;
  sampling::ScanForTop(
      logits, [] { return true; }, [near_bar] { return near_bar; },
      [&](int32_t id, float l) {
        if (BucketOf(l, max_logit) < kNearBuckets) candidates_.push_back({l, id});
      });
  for (size_t b = 0; b < candidates_.size(); b += kWeightBlock) {
    const size_t m = std::min(kWeightBlock, candidates_.size() - b);
    for (size_t j = 0; j < m; ++j) w[j] = candidates_[b + j].logit;
    sampling::TemperedExps(w, m, max_logit, 1.0, w);
    for (size_t j = 0; j < m; ++j) {
      bucket_mass_[BucketOf(candidates_[b + j].logit, max_logit)] += w[j];
    }
  }
  double cum = 0.0;  // mass of the buckets before `cut_bucket`
  int cut_bucket = 0;
  for (; cut_bucket < kNearBuckets; ++cut_bucket) {
    if (cum + bucket_mass_[cut_bucket] >= target) break;
    cum += bucket_mass_[cut_bucket];
  }

  if (cut_bucket < kNearBuckets) {
    // The kept tokens are near ones: those before the cut bucket that min_p keeps, then the cut
    // bucket's, each in id order, as the whole row's pass lists them. In place: the head tokens
    // are swapped to the front in the order read (so they stay in id order), the cut bucket's
    // gathered behind them and put back in id order.
    size_t head = 0;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      const Candidate c = candidates_[i];
      if (BucketOf(c.logit, max_logit) < cut_bucket && c.logit >= min_p_threshold) {
        std::swap(candidates_[head++], candidates_[i]);
      }
    }
    size_t end = head;
    for (size_t i = head; i < candidates_.size(); ++i) {
      if (BucketOf(candidates_[i].logit, max_logit) == cut_bucket) {
        std::swap(candidates_[end++], candidates_[i]);
      }
    }
    candidates_.resize(end);
    std::sort(candidates_.begin() + static_cast<std::ptrdiff_t>(head), candidates_.end(),
              [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
    RankCutBucket(head, cum, target, max_logit, min_p_threshold);
    return;
  }

  // A flatter row: the buckets further down from the rest of the row, a block of weights at a
  // time from row_scan's vector exp (an expf per logit took ~1 ms of a 262144-token row); the
  // walk through the cut bucket below takes the same terms.
  for (size_t b = 0; b < logits.size(); b += kWeightBlock) {
    const size_t m = std::min(kWeightBlock, logits.size() - b);
    sampling::TemperedExps(logits.data() + b, m, max_logit, 1.0, w);
    for (size_t j = 0; j < m; ++j) {
      const float l = logits[b + j];
      if (!Usable(l)) continue;
      const int bucket = BucketOf(l, max_logit);
      if (bucket >= kNearBuckets) bucket_mass_[bucket] += w[j];
    }
  }
  for (; cut_bucket < kBuckets; ++cut_bucket) {
    if (cum + bucket_mass_[cut_bucket] >= target) break;
    cum += bucket_mass_[cut_bucket];
  }

  candidates_.clear();
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (Usable(l) && l >= min_p_threshold && BucketOf(l, max_logit) < cut_bucket) {
      candidates_.push_back({l, static_cast<int32_t>(i)});
    }
  }
  const size_t head = candidates_.size();
  // The cut bucket's tokens are ranked whatever min_p says: their masses count towards top_p.
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (Usable(l) && BucketOf(l, max_logit) == cut_bucket) {
      candidates_.push_back({l, static_cast<int32_t>(i)});
    }
  }
  RankCutBucket(head, cum, target, max_logit, min_p_threshold);
}

// candidates_[head, end) is the cut bucket's tokens; `cum` the mass before it, `target` the mass
// top_p keeps. Ranks them chunk by chunk (64, 256, 1024, ... best remaining), stopping at the
// token where the cumulative mass reaches top_p, then applies min_p.
void Sampler::RankCutBucket(size_t head, double cum, double target, float max_logit,
                            float min_p_threshold) {
  const auto ranks_before = [](const Candidate& a, const Candidate& b) {
    return RanksBefore(a, b);
  };
  const auto begin = candidates_.begin();
  const size_t n = candidates_.size();
  size_t keep = n;
  size_t done = head;
  for (size_t chunk = 64; done < n && keep == n; chunk *= 4) {
    const size_t end = std::min(n, done + chunk);
    if (end < n) std::nth_element(begin + done, begin + end, candidates_.end(), ranks_before);
    std::sort(begin + done, begin + end, ranks_before);
    for (size_t i = done; i < end; ++i) {
      cum += sampling::TemperedExp(candidates_[i].logit, max_logit, 1.0);  // z's terms
      if (cum >= target) {
        keep = i + 1;
        break;
      }
    }
    done = end;
  }
  // Then min_p; what is left of the cut bucket is ranked, so its survivors are a prefix.
  size_t out = head;
  while (out < keep && candidates_[out].logit >= min_p_threshold) ++out;
  candidates_.resize(out);
}

void Sampler::CollectAtLeast(std::span<const float> logits, float threshold) {
  candidates_.clear();
  // l >= threshold <=> l > the float below it: spans with nothing above that are passed over
  // (min_p 0.05 keeps the tokens within 3 logits of the max, a few spans' worth).
  const float bar = std::nextafter(threshold, kNegInf);
  sampling::ScanForTop(
      logits, [] { return true; }, [bar] { return bar; },
      [&](int32_t id, float l) {
        if (l >= threshold) candidates_.push_back({l, id});
      });
}

// Draws from softmax(logit / temperature) over candidates_ in their current order.
// REQUIRES: !candidates_.empty().
int32_t Sampler::DrawFromCandidates(double u) {
  float max_logit = kNegInf;
  for (const Candidate& c : candidates_) max_logit = std::max(max_logit, c.logit);
  const double inv_t = 1.0 / params_.temperature;
  double sum = 0.0;
  for (Candidate& c : candidates_) {
    // The logit slot now holds the unnormalized weight, so the walk below sums the same values.
    c.logit = TemperedWeight(c.logit, max_logit, inv_t);
    sum += c.logit;
  }
  const double target = u * sum;
  double cum = 0.0;
  int32_t last_positive = candidates_.front().id;
  for (const Candidate& c : candidates_) {
    if (c.logit <= 0.0f) continue;
    cum += c.logit;
    last_positive = c.id;
    if (target < cum) return c.id;
  }
  return last_positive;  // u * sum rounded up to the total
}

// Draws from softmax(logit / temperature) over the whole vocabulary in id order. Block sums from
// the summing pass let the walk skip to the right block of kBlock tokens, so the weights are
// computed about once per token instead of twice.
int32_t Sampler::DrawFromAll(std::span<const float> logits, float max_logit, double u) {
  const double inv_t = 1.0 / params_.temperature;
  const size_t size = logits.size();
  double sum = 0.0;
  for (size_t b = 0; b < block_sums_.size(); ++b) {
    const size_t begin = b * kBlock;
    const double block = sampling::SumTemperedExp(
        logits.subspan(begin, std::min(size, begin + kBlock) - begin), max_logit, inv_t);
    block_sums_[b] = block;
    sum += block;
  }
  const double target = u * sum;
  double cum = 0.0;
  size_t chosen_block = 0;
  for (size_t b = 0; b < block_sums_.size(); ++b) {
    if (block_sums_[b] <= 0.0) continue;
    chosen_block = b;  // the last block with mass, should u * sum round up to the total
    if (target < cum + block_sums_[b]) break;
    cum += block_sums_[b];
  }
  int32_t last_positive = -1;
  for (size_t i = chosen_block * kBlock; i < std::min(size, (chosen_block + 1) * kBlock); ++i) {
    if (!Usable(logits[i])) continue;
    const float w = sampling::TemperedExp(logits[i], max_logit, inv_t);  // the sums' terms
    if (w <= 0.0f) continue;
    cum += w;
    last_positive = static_cast<int32_t>(i);
    if (target < cum) break;
  }
  // The maximum's own term is 1, so the chosen block has mass and the walk a positive term; the
  // whole-row argmax (a pass over the vocabulary, once made on every draw) is only the fallback.
  return last_positive >= 0 ? last_positive : sampling::ArgmaxUsable(logits);
}
// 53 random bits scaled into [0, 1): exact and identical on every platform, unlike
// std::uniform_real_distribution, whose algorithm the standard leaves open.
double Sampler::NextUniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

}  // namespace gannet
