#include "sampling/logprobs.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "sampling/row_scan.h"

namespace gannet {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// "a ranks before b": higher logprob first, lower id on ties. A strict total order, so the top-n
// set does not depend on the standard library's heap layout.
bool RanksBefore(const TokenLogprob& a, const TokenLogprob& b) {
  return a.logprob > b.logprob || (a.logprob == b.logprob && a.id < b.id);
}

}  // namespace

void TopLogprobs(std::span<const float> logits, int32_t chosen, int32_t n,
                 std::vector<TokenLogprob>& out_top, float* chosen_logprob) {
  out_top.clear();
  const int64_t size = static_cast<int64_t>(logits.size());

  const float max_logit = sampling::MaxUsable(logits);
  if (!(max_logit > kNegInf)) {  // nothing has a finite probability
    if (chosen_logprob != nullptr) *chosen_logprob = kNegInf;
    return;
  }
  // log-sum-exp, its terms summed in double: 262144 float terms summed in float would lose the
  // small ones. Each term in float (~2 ulp): exp in double cost 1.4 ms per 262144-token row.
  const double log_z =
      static_cast<double>(max_logit) + std::log(sampling::SumExpBelow(logits, max_logit));
  auto logprob = [log_z](float l) { return static_cast<float>(static_cast<double>(l) - log_z); };

  if (chosen_logprob != nullptr) {
    const bool valid = chosen >= 0 && chosen < size && logits[chosen] > kNegInf;
    *chosen_logprob = valid ? logprob(logits[chosen]) : kNegInf;
  }

  if (n <= 0) return;
  const size_t keep = static_cast<size_t>(std::min<int64_t>(n, size));
  // Bounded heap whose front is the worst kept entry; raw logits are compared (same order as
  // their logprobs) and converted at the end. Scanning in id order means a later equal logit
  // never displaces an earlier one.
  sampling::ScanForTop(
      logits, [&] { return out_top.size() == keep; }, [&] { return out_top.front().logprob; },
      [&](int32_t id, float l) {
        if (out_top.size() < keep) {
          out_top.push_back({id, l});
          std::push_heap(out_top.begin(), out_top.end(), RanksBefore);
        } else if (l > out_top.front().logprob) {
          std::pop_heap(out_top.begin(), out_top.end(), RanksBefore);
          out_top.back() = {id, l};
          std::push_heap(out_top.begin(), out_top.end(), RanksBefore);
        }
      });
  std::sort(out_top.begin(), out_top.end(), RanksBefore);
  for (TokenLogprob& t : out_top) t.logprob = logprob(t.logprob);
}

}  // namespace gannet
