#include "sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace gannet {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingParams NoFilters(float temperature, uint64_t seed = 1) {
  return SamplingParams{
      .temperature = temperature, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .seed = seed};
}

std::vector<float> RandomLogits(int n, float scale, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The chain written the slow, obvious way (full sort, llama.cpp's semantics): the probability of
// each token that survives, given logits that already carry bias and penalties.
std::map<int32_t, double> Reference(const std::vector<float>& logits, const SamplingParams& p) {
  struct C {
    float logit;
    int32_t id;
  };
  std::vector<C> c;
  for (int32_t i = 0; i < static_cast<int32_t>(logits.size()); ++i) {
    if (logits[i] > -kInf) c.push_back({logits[i], i});
  }
  std::sort(c.begin(), c.end(), [](const C& a, const C& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
  });
  if (p.temperature == 0.0f) return {{c[0].id, 1.0}};
  if (p.top_k > 0 && p.top_k < static_cast<int32_t>(c.size())) c.resize(p.top_k);
  const double max_logit = c[0].logit;
  if (p.top_p < 1.0f) {
    double z = 0.0;
    for (const C& x : c) z += std::exp(x.logit - max_logit);
    double cum = 0.0;
    for (size_t i = 0; i < c.size(); ++i) {
      cum += std::exp(c[i].logit - max_logit) / z;
      if (cum >= p.top_p) {
        c.resize(i + 1);
        break;
      }
    }
  }
  if (p.min_p > 0.0f) {
    const float threshold = c[0].logit + std::log(p.min_p);
    std::vector<C> kept;
    for (const C& x : c) {
      if (x.logit >= threshold) kept.push_back(x);
    }
    c = kept;
  }
  double z = 0.0;
  for (const C& x : c) z += std::exp((x.logit - max_logit) / p.temperature);
  std::map<int32_t, double> probs;
  for (const C& x : c) probs[x.id] = std::exp((x.logit - max_logit) / p.temperature) / z;
  return probs;
}

std::map<int32_t, int> Draw(Sampler& sampler, const std::vector<float>& logits, int n) {
  std::map<int32_t, int> counts;
  std::vector<float> buf;
  for (int i = 0; i < n; ++i) {
    buf = logits;
    ++counts[sampler.Sample(buf)];
  }
  return counts;
}

// Every drawn token is in the reference set, every member with non-negligible probability is
// drawn, and frequencies agree with the probabilities within 5 standard deviations.
void ExpectMatchesReference(const std::vector<float>& logits, const SamplingParams& params,
                            int n_draws) {
  Sampler sampler(params, static_cast<int32_t>(logits.size()));
  const std::map<int32_t, double> expected = Reference(logits, params);
  const std::map<int32_t, int> counts = Draw(sampler, logits, n_draws);
  for (const auto& [id, count] : counts) {
    EXPECT_TRUE(expected.count(id))
        << "token " << id << " drawn " << count << " times but excluded";
  }
  for (const auto& [id, p] : expected) {
    const auto it = counts.find(id);
    const double freq = it == counts.end() ? 0.0 : static_cast<double>(it->second) / n_draws;
    const double tolerance = 5.0 * std::sqrt(p * (1.0 - p) / n_draws) + 1e-4;
    EXPECT_NEAR(freq, p, tolerance) << "token " << id;
    if (p * n_draws > 30) {
      EXPECT_GT(freq, 0.0) << "token " << id << " never drawn";
    }
  }
}

TEST(SamplerTest, GreedyPicksArgmaxLowestIdOnTies) {
  SamplingParams params{.temperature = 0.0f, .seed = 7};
  Sampler sampler(params, 6);
  std::vector<float> logits = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f, 2.0f};
  for (int i = 0; i < 5; ++i) EXPECT_EQ(sampler.Sample(logits), 1);

  std::vector<float> with_nan = {std::nanf(""), -kInf, 0.5f, 0.7f, std::nanf(""), 0.7f};
  EXPECT_EQ(sampler.Sample(with_nan), 3);

  std::vector<float> all_banned(6, -kInf);
  EXPECT_EQ(sampler.Sample(all_banned), 0);

  // top_k == 1 is greedy whatever the temperature.
  Sampler top1(SamplingParams{.temperature = 5.0f, .top_k = 1, .seed = 7}, 6);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(top1.Sample(logits), 1);
}

// The greedy pick runs in interleaved lanes; the plain loop is its reference: first index of the
// largest logit that is neither NaN nor -inf, 0 when there is none.
int32_t PlainArgmax(const std::vector<float>& logits) {
  int32_t best = 0;
  float best_logit = -kInf;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (logits[i] > best_logit) {
      best_logit = logits[i];
      best = static_cast<int32_t>(i);
    }
  }
  return best;
}

TEST(SamplerTest, GreedyLanesMatchThePlainLoopOnAwkwardRows) {
  std::mt19937_64 rng(3);
  for (int n : {1, 2, 7, 8, 9, 15, 16, 17, 255, 4097, 262144}) {
    SCOPED_TRACE(n);
    Sampler sampler(SamplingParams{.temperature = 0.0f, .seed = 1}, n);
    std::uniform_int_distribution<int> pos(0, n - 1);
    for (int trial = 0; trial < 24; ++trial) {
      // Few distinct values, so ties land in different lanes and in the tail; NaN, -inf and
      // signed zeros among them.
      std::vector<float> logits(static_cast<size_t>(n));
      std::uniform_int_distribution<int> kind(0, trial % 4 == 0 ? 3 : 9);
      for (float& l : logits) {
        switch (kind(rng)) {
          case 0:
            l = std::nanf("");
            break;
          case 1:
            l = -kInf;
            break;
          case 2:
            l = 0.0f;
            break;
          case 3:
            l = -0.0f;
            break;
          default:
            l = static_cast<float>(kind(rng)) * 0.25f - 2.0f;
        }
      }
      if (trial % 3 == 1) logits[static_cast<size_t>(pos(rng))] = 7.0f;  // one clear winner
      if (trial % 3 == 2) {  // the winner twice: the lower id must win
        logits[static_cast<size_t>(pos(rng))] = 7.0f;
        logits[static_cast<size_t>(pos(rng))] = 7.0f;
      }
      if (trial == 5) logits.back() = kInf;  // the tail's last logit
      if (trial == 6) std::fill(logits.begin(), logits.end(), std::nanf(""));
      EXPECT_EQ(sampler.Sample(logits), PlainArgmax(logits)) << "trial " << trial;
    }
  }
}

// top_k skips spans of logits that hold none above its heap's front. Reference: the same sampler
// over a row where every token outside the true top k (full sort, logit descending, id
// ascending) is -inf, so only those k can be kept. With top_p and min_p off the draws depend on
// the whole kept set, so a token lost or added changes them.
TEST(SamplerTest, TopKSkipsSpansWithoutChangingTheKeptSet) {
  std::mt19937_64 rng(5);
  for (int n : {31, 32, 33, 100, 4097, 262144}) {
    for (int k : {1, 2, 40, 64}) {
      for (int trial = 0; trial < 4; ++trial) {
        SCOPED_TRACE(testing::Message() << "n " << n << " k " << k << " trial " << trial);
        std::vector<float> logits(static_cast<size_t>(n));
        std::uniform_int_distribution<int> level(0, trial % 2 == 0 ? 6 : 1000);
        for (float& l : logits) l = static_cast<float>(level(rng)) * 0.01f;
        std::uniform_int_distribution<int> pos(0, n - 1);
        for (int j = 0; j < n / 50; ++j) logits[static_cast<size_t>(pos(rng))] = std::nanf("");
        for (int j = 0; j < n / 50; ++j) logits[static_cast<size_t>(pos(rng))] = -kInf;
        if (trial == 2) {  // a rising stretch: every logit of it enters the heap
          for (int j = 0; j < std::min(n, 500); ++j) logits[static_cast<size_t>(j)] = 20.0f + j;
        }
        if (trial == 3) logits.back() = 50.0f;  // the best token in the tail
        std::vector<int32_t> ids(static_cast<size_t>(n));
        for (int j = 0; j < n; ++j) ids[static_cast<size_t>(j)] = j;
        std::vector<int32_t> usable;
        for (int32_t id : ids) {
          if (logits[static_cast<size_t>(id)] > -kInf) usable.push_back(id);
        }
        std::sort(usable.begin(), usable.end(), [&](int32_t a, int32_t b) {
          const float la = logits[static_cast<size_t>(a)], lb = logits[static_cast<size_t>(b)];
          return la > lb || (la == lb && a < b);
        });
        usable.resize(std::min(usable.size(), static_cast<size_t>(k)));
        std::vector<float> only_top(static_cast<size_t>(n), -kInf);
        for (int32_t id : usable)
          only_top[static_cast<size_t>(id)] = logits[static_cast<size_t>(id)];

        const SamplingParams p{
            .temperature = 1.0f, .top_k = k, .top_p = 1.0f, .min_p = 0.0f, .seed = 9};
        Sampler fast(p, n), reference(p, n);
        for (int draw = 0; draw < 64; ++draw) {
          ASSERT_EQ(fast.Sample(logits), reference.Sample(only_top)) << "draw " << draw;
        }
      }
    }
  }
}

TEST(SamplerTest, TemperatureMatchesSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 0.5f, -1.0f};
  double argmax_freq_cold = 0.0;
  double argmax_freq_hot = 0.0;
  for (float t : {0.5f, 1.0f, 2.0f}) {
    SCOPED_TRACE(t);
    ExpectMatchesReference(logits, NoFilters(t, 11), 100000);
    Sampler sampler(NoFilters(t, 12), 4);
    const double f = Draw(sampler, logits, 20000)[1] / 20000.0;
    if (t == 0.5f) argmax_freq_cold = f;
    if (t == 2.0f) argmax_freq_hot = f;
  }
  EXPECT_GT(argmax_freq_cold, argmax_freq_hot + 0.2);  // colder is peakier
}

TEST(SamplerTest, TopKKeepsExactlyTheKBest) {
  // Ids shuffled against rank, so id order is not rank order.
  const std::vector<float> logits = {0.3f, 2.5f, -1.0f, 1.7f, 2.2f, 0.0f, 1.9f, -3.0f};
  SamplingParams params = NoFilters(1.0f, 3);
  params.top_k = 3;
  ExpectMatchesReference(logits, params, 50000);
  Sampler sampler(params, 8);
  const auto counts = Draw(sampler, logits, 5000);
  EXPECT_EQ(counts.size(), 3u);
  EXPECT_TRUE(counts.count(1) && counts.count(4) && counts.count(6));

  // Ties at the cut go to the lower ids.
  SamplingParams tie = NoFilters(1.0f, 4);
  tie.top_k = 2;
  Sampler tie_sampler(tie, 5);
  const auto tie_counts = Draw(tie_sampler, {1.0f, 5.0f, 5.0f, 5.0f, 5.0f}, 5000);
  EXPECT_EQ(tie_counts.size(), 2u);
  EXPECT_TRUE(tie_counts.count(1) && tie_counts.count(2));
}

TEST(SamplerTest, TopPKeepsSmallestPrefixReachingP) {
  // Probabilities 0.05, 0.5, 0.15, 0.3 at ids 0..3.
  const std::vector<float> logits = {std::log(0.05f), std::log(0.5f), std::log(0.15f),
                                     std::log(0.3f)};
  const std::vector<std::pair<float, std::set<int32_t>>> cases = {
      {0.4f, {1}}, {0.75f, {1, 3}}, {0.85f, {1, 2, 3}}, {0.99f, {0, 1, 2, 3}}};
  for (const auto& [top_p, want] : cases) {
    SCOPED_TRACE(top_p);
    SamplingParams params = NoFilters(1.0f, 5);
    params.top_p = top_p;
    Sampler sampler(params, 4);
    std::set<int32_t> got;
    for (const auto& [id, count] : Draw(sampler, logits, 20000)) got.insert(id);
    EXPECT_EQ(got, want);
    ExpectMatchesReference(logits, params, 50000);
  }
  // After top_k = 3 the masses renormalize: 0.5/0.95, 0.3/0.95, ... so 0.8 needs two tokens.
  SamplingParams params = NoFilters(1.0f, 6);
  params.top_k = 3;
  params.top_p = 0.8f;
  Sampler sampler(params, 4);
  std::set<int32_t> got;
  for (const auto& [id, count] : Draw(sampler, logits, 20000)) got.insert(id);
  EXPECT_EQ(got, (std::set<int32_t>{1, 3}));
}

TEST(SamplerTest, TopPOnAFlatLargeVocabulary) {
  // Near-uniform over 5000 tokens: top_p 0.9 keeps thousands, and the bucket where the cut falls
  // holds hundreds, so ranking it takes several chunks.
  const std::vector<float> logits = RandomLogits(5000, 0.05f, 21);
  SamplingParams params = NoFilters(1.0f, 22);
  params.top_p = 0.9f;
  const auto expected = Reference(logits, params);
  ASSERT_GT(expected.size(), 4000u);
  ASSERT_LT(expected.size(), 5000u);
  Sampler sampler(params, 5000);
  for (const auto& [id, count] : Draw(sampler, logits, 5000)) {
    EXPECT_TRUE(expected.count(id)) << "token " << id << " excluded by top_p but drawn";
  }

  // Exact ties across the cut: 1000 equal logits, top_p 0.5005 keeps 501 of them, lowest ids first.
  params.top_p = 0.5005f;
  Sampler tied(params, 1000);
  const auto counts = Draw(tied, std::vector<float>(1000, 0.0f), 20000);
  EXPECT_EQ(counts.rbegin()->first, 500);
  EXPECT_GT(counts.size(), 480u);
}

// top_p's histogram is filled near the max first and from the whole row only where the cut lies
// further down (Sampler::kNearBuckets): both ways keep exactly the reference's set. min_p alone
// passes over the spans below its threshold.
TEST(SamplerTest, TopPNearTheMaxAndFarBelowIt) {
  // Peaked, as a language model's rows are: 262144 tokens, 1000 of them likely, the cut a few
  // logits below the max.
  std::vector<float> peaked = RandomLogits(262144, 2.5f, 41);
  std::mt19937_64 rng(42);
  std::normal_distribution<float> likely(10.0f, 3.0f);
  std::uniform_int_distribution<int> token(0, 262143);
  for (int k = 0; k < 1000; ++k) peaked[static_cast<size_t>(token(rng))] = likely(rng);
  // Two clusters, 100 tokens near 0 and 19900 near -12 (0.12% of the mass): top_p 0.9995 cuts
  // among the far ones.
  std::vector<float> wide = RandomLogits(20000, 0.5f, 43);
  for (size_t i = 100; i < wide.size(); ++i) wide[i] -= 12.0f;
  struct Case {
    const std::vector<float>* logits;
    float top_p, min_p;
  };
  for (const Case& c :
       {Case{&peaked, 0.9f, 0.0f}, Case{&peaked, 0.5f, 0.0f}, Case{&peaked, 0.95f, 0.05f},
        Case{&wide, 0.9995f, 0.0f}, Case{&wide, 0.9999f, 1e-7f}}) {
    SCOPED_TRACE(testing::Message() << c.logits->size() << " tokens, top_p " << c.top_p);
    SamplingParams params = NoFilters(1.0f, 44);
    params.top_p = c.top_p;
    params.min_p = c.min_p;
    const auto expected = Reference(*c.logits, params);
    Sampler sampler(params, static_cast<int32_t>(c.logits->size()));
    std::map<int32_t, int> counts;
    for (int i = 0; i < 1000; ++i) ++counts[sampler.SampleUnchanged(*c.logits)];
    for (const auto& [id, count] : counts) {
      EXPECT_TRUE(expected.count(id)) << "token " << id << " excluded by top_p but drawn";
    }
    // The most likely kept tokens are drawn.
    for (const auto& [id, prob] : expected) {
      if (prob > 0.01) {
        EXPECT_GT(counts[id], 0) << "token " << id << " p " << prob;
      }
    }
  }
  // Where the cut is: the peaked row's 0.9 within 10 logits of the max, the two clusters' beyond.
  const auto cut_depth = [](const std::vector<float>& logits, float top_p) {
    SamplingParams params = NoFilters(1.0f);
    params.top_p = top_p;
    const auto kept = Reference(logits, params);
    float lowest = kInf;
    for (const auto& [id, prob] : kept) lowest = std::min(lowest, logits[static_cast<size_t>(id)]);
    return *std::max_element(logits.begin(), logits.end()) - lowest;
  };
  EXPECT_LT(cut_depth(peaked, 0.9f), 10.0f);
  EXPECT_GT(cut_depth(wide, 0.9995f), 10.5f);
}

TEST(SamplerTest, MinPKeepsTokensAboveFractionOfMax) {
  const std::vector<float> logits = {std::log(0.05f), std::log(0.5f), std::log(0.15f),
                                     std::log(0.3f)};
  const std::vector<std::pair<float, std::set<int32_t>>> cases = {
      {0.2f, {1, 2, 3}}, {0.5f, {1, 3}}, {0.7f, {1}}, {0.05f, {0, 1, 2, 3}}};
  for (const auto& [min_p, want] : cases) {
    SCOPED_TRACE(min_p);
    for (int32_t top_k : {0, 3}) {  // threshold path and top-k path
      SamplingParams params = NoFilters(1.0f, 8);
      params.min_p = min_p;
      params.top_k = top_k;
      Sampler sampler(params, 4);
      std::set<int32_t> got;
      for (const auto& [id, count] : Draw(sampler, logits, 20000)) got.insert(id);
      std::set<int32_t> want_k = want;
      if (top_k == 3) want_k.erase(0);
      EXPECT_EQ(got, want_k) << "top_k " << top_k;
      ExpectMatchesReference(logits, params, 50000);
    }
  }
}

TEST(SamplerTest, CombinedChainsMatchReference) {
  const std::vector<float> logits = RandomLogits(300, 2.0f, 31);
  const std::vector<SamplingParams> configs = {
      {.temperature = 1.0f, .top_k = 5, .top_p = 1.0f, .min_p = 0.0f},
      {.temperature = 1.0f, .top_k = 50, .top_p = 0.6f, .min_p = 0.0f},
      {.temperature = 1.0f, .top_k = 0, .top_p = 0.5f, .min_p = 0.0f},
      {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.3f},
      {.temperature = 1.0f, .top_k = 0, .top_p = 0.9f, .min_p = 0.1f},
      {.temperature = 0.7f, .top_k = 20, .top_p = 0.9f, .min_p = 0.2f},
      {.temperature = 1.3f, .top_k = 0, .top_p = 0.3f, .min_p = 0.001f},
      {.temperature = 0.8f},  // the defaults
  };
  uint64_t seed = 100;
  for (SamplingParams params : configs) {
    SCOPED_TRACE(testing::Message() << "top_k " << params.top_k << " top_p " << params.top_p
                                    << " min_p " << params.min_p);
    params.seed = ++seed;
    ExpectMatchesReference(logits, params, 20000);
  }
}

TEST(SamplerTest, PenaltiesFollowTheFormulas) {
  SamplingParams params{.temperature = 0.0f,
                        .repeat_penalty = 1.3f,
                        .repeat_last_n = 5,
                        .presence_penalty = 0.5f,
                        .frequency_penalty = 0.25f,
                        .logit_bias = {{0, -0.5f}, {3, 1.0f}}};
  Sampler sampler(params, 6);
  // Token 2 leaves the 5-token window; then 1 x2, 4 x1, 0 x2.
  for (int32_t t : {2, 1, 1, 4, 0, 0}) sampler.Accept(t);
  const std::vector<float> original = {3.0f, -2.0f, 0.5f, 1.0f, 0.0f, 4.0f};
  std::vector<float> logits = original;
  sampler.ApplyBiasAndPenalties(logits);
  EXPECT_FLOAT_EQ(logits[0], (3.0f - 0.5f) / 1.3f - (2 * 0.25f + 0.5f));  // positive: divided
  EXPECT_FLOAT_EQ(logits[1], -2.0f * 1.3f - (2 * 0.25f + 0.5f));          // negative: multiplied
  EXPECT_FLOAT_EQ(logits[2], 0.5f);                                       // out of the window
  EXPECT_FLOAT_EQ(logits[3], 2.0f);                                       // bias only
  EXPECT_FLOAT_EQ(logits[4], 0.0f * 1.3f - (1 * 0.25f + 0.5f));           // zero: multiplied
  EXPECT_FLOAT_EQ(logits[5], 4.0f);

  // Sample sees the penalized values but hands back logits + bias only.
  logits = original;
  EXPECT_EQ(sampler.Sample(logits), 5);
  const std::vector<float> biased = {2.5f, -2.0f, 0.5f, 2.0f, 0.0f, 4.0f};
  EXPECT_EQ(logits, biased);

  // Reset forgets the history.
  sampler.Reset();
  logits = original;
  sampler.ApplyBiasAndPenalties(logits);
  EXPECT_EQ(logits, biased);

  // repeat_last_n = 0 switches all penalties off.
  params.repeat_last_n = 0;
  Sampler off(params, 6);
  for (int32_t t : {0, 1, 4}) off.Accept(t);
  logits = original;
  off.ApplyBiasAndPenalties(logits);
  EXPECT_EQ(logits, biased);
}

TEST(SamplerTest, RepeatPenaltyFlipsGreedyChoice) {
  const std::vector<float> logits = {2.0f, 1.5f};
  for (const auto& [penalty, want] : std::vector<std::pair<float, int32_t>>{{1.5f, 1}, {1.2f, 0}}) {
    Sampler sampler(SamplingParams{.temperature = 0.0f, .repeat_penalty = penalty}, 2);
    sampler.Accept(0);  // a prompt token
    std::vector<float> buf = logits;
    EXPECT_EQ(sampler.Sample(buf), want) << "penalty " << penalty;  // 2/1.5 < 1.5 < 2/1.2
  }
}

TEST(SamplerTest, LogitBiasShiftsAndBans) {
  const std::vector<float> logits = {1.0f, 3.0f, 2.0f};
  SamplingParams params{.temperature = 0.0f, .logit_bias = {{0, 5.0f}}};
  Sampler boosted(params, 3);
  std::vector<float> buf = logits;
  EXPECT_EQ(boosted.Sample(buf), 0);
  EXPECT_EQ(buf, (std::vector<float>{6.0f, 3.0f, 2.0f}));

  // A banned token is never drawn, greedy or not.
  params.logit_bias = {{1, -kInf}};
  Sampler greedy(params, 3);
  buf = logits;
  EXPECT_EQ(greedy.Sample(buf), 2);
  for (int32_t top_k : {0, 2}) {
    SamplingParams hot = NoFilters(3.0f, 9);
    hot.top_k = top_k;
    hot.logit_bias = {{1, -kInf}};
    Sampler sampler(hot, 3);
    EXPECT_EQ(Draw(sampler, logits, 5000).count(1), 0u);
  }
}

TEST(SamplerTest, SameSeedSameTokensDifferentSeedDiffers) {
  auto run = [](uint64_t seed, int reset_at) {
    SamplingParams params{.temperature = 1.0f,
                          .top_k = 0,
                          .top_p = 0.98f,
                          .min_p = 0.01f,
                          .repeat_penalty = 1.1f,
                          .seed = seed};
    Sampler sampler(params, 500);
    std::vector<int32_t> tokens;
    for (int i = 0; i < 200; ++i) {
      if (i == reset_at) sampler.Reset();
      std::vector<float> logits = RandomLogits(500, 1.0f, 1000 + i % 100);
      const int32_t t = sampler.Sample(logits);
      sampler.Accept(t);
      tokens.push_back(t);
    }
    return tokens;
  };
  const auto a = run(42, -1);
  EXPECT_EQ(a, run(42, -1));
  EXPECT_NE(a, run(43, -1));
  // Reset replays: logits at i and i + 100 are the same, and so is the sampler's state.
  const auto r = run(42, 100);
  EXPECT_EQ(std::vector<int32_t>(r.begin(), r.begin() + 100),
            std::vector<int32_t>(r.begin() + 100, r.end()));

  // An unset seed is drawn per sampler and reported.
  Sampler s1(SamplingParams{}, 10);
  Sampler s2(SamplingParams{}, 10);
  EXPECT_NE(s1.seed(), s2.seed());
  Sampler s3(SamplingParams{.seed = 5}, 10);
  EXPECT_EQ(s3.seed(), 5u);
}

TEST(SamplerTest, FixedSeedGivesAFixedStream) {
  // Pins the RNG and its conversion: a change here changes every seeded run users have recorded.
  Sampler sampler(NoFilters(1.0f, 1234), 4);
  const std::vector<float> logits = {0.0f, 0.0f, 0.0f, 0.0f};
  std::vector<int32_t> tokens;
  std::vector<float> buf;
  for (int i = 0; i < 16; ++i) {
    buf = logits;
    tokens.push_back(sampler.Sample(buf));
  }
  // Uniform over 4: token = floor(4 * u) with u from mt19937_64(1234), 53 bits.
  std::mt19937_64 rng(1234);
  std::vector<int32_t> want;
  for (int i = 0; i < 16; ++i) {
    want.push_back(static_cast<int32_t>(4.0 * static_cast<double>(rng() >> 11) * 0x1.0p-53));
  }
  EXPECT_EQ(tokens, want);
}

TEST(SamplerTest, CreateValidates) {
  EXPECT_TRUE(Sampler::Create(SamplingParams{}, 100).ok());
  EXPECT_EQ(Sampler::Create(SamplingParams{}, 0).status().code(), StatusCode::kInvalidArgument);
  const auto bad = Sampler::Create(SamplingParams{.logit_bias = {{100, 1.0f}}}, 100);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("logit_bias"), std::string::npos);
}

TEST(SamplerTest, LargeVocabularySmoke) {
  constexpr int32_t kVocab = 262144;
  const std::vector<float> base = RandomLogits(kVocab, 3.0f, 77);
  struct Case {
    const char* name;
    SamplingParams params;
  };
  const std::vector<Case> cases = {
      {"defaults (top_k 40)", SamplingParams{.seed = 1}},
      {"greedy", SamplingParams{.temperature = 0.0f, .seed = 1}},
      {"top_p 0.95 + min_p 0.05", SamplingParams{.top_k = 0, .seed = 1}},
      {"top_p 0.9 only", SamplingParams{.top_k = 0, .top_p = 0.9f, .min_p = 0.0f, .seed = 1}},
      {"min_p 0.05 only", SamplingParams{.top_k = 0, .top_p = 1.0f, .seed = 1}},
      {"no truncation", NoFilters(1.0f)},
      {"defaults + penalties",
       SamplingParams{
           .repeat_penalty = 1.1f, .presence_penalty = 0.2f, .frequency_penalty = 0.2f, .seed = 1}},
  };
  for (const Case& c : cases) {
    Sampler sampler(c.params, kVocab);
    std::vector<float> logits;
    constexpr int kTokens = 30;
    double seconds = 0.0;
    for (int i = 0; i < kTokens; ++i) {
      logits = base;
      logits[(i * 7919) % kVocab] += 20.0f;  // move the peak around
      const auto start = std::chrono::steady_clock::now();
      const int32_t t = sampler.Sample(logits);
      seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ASSERT_GE(t, 0);
      ASSERT_LT(t, kVocab);
      sampler.Accept(t);
    }
    std::printf("  %-26s %8.1f us/token\n", c.name, 1e6 * seconds / kTokens);
  }
}

}  // namespace
}  // namespace gannet
