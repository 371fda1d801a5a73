// The doctor's kernel self-check: on this machine every compiled target passes, and there is one
// matmul and one attention result per target.
#include "kernels/cpu/self_check.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace gannet::cpu {
namespace {

TEST(KernelSelfCheck, EveryTargetPassesHere) {
  ThreadPool pool(2);
  const std::vector<SelfCheckResult> results = RunKernelSelfCheck(pool);
  Isa isas[3];
  const int n = AvailableIsas(isas);
  ASSERT_EQ(results.size(), static_cast<size_t>(2 * n));
  std::set<std::string> names;
  for (const SelfCheckResult& r : results) {
    EXPECT_TRUE(r.ok) << r.name << ": " << r.detail;
    names.insert(r.name);
  }
  for (int i = 0; i < n; ++i) {
    EXPECT_TRUE(names.count(std::string("matmul/") + IsaName(isas[i])));
    EXPECT_TRUE(names.count(std::string("attention/") + IsaName(isas[i])));
  }
}

}  // namespace
}  // namespace gannet::cpu
