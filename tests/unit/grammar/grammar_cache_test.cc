#include "grammar/grammar_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

namespace gannet::grammar {
namespace {

TEST(GrammarCacheTest, SameTextSameGrammar) {
  auto a = CompileShared("root ::= \"a\"+");
  auto b = CompileShared("root ::= \"a\"+");
  auto c = CompileShared("root ::= \"b\"+");
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->get(), b->get());
  EXPECT_NE(a->get(), c->get());
}

TEST(GrammarCacheTest, ErrorsAreNotCachedAndCarryTheParsersMessage) {
  for (int i = 0; i < 2; ++i) {
    auto bad = CompileShared("root ::= [");
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), Grammar::Compile("root ::= [").status().code());
    EXPECT_EQ(bad.status().message(), Grammar::Compile("root ::= [").status().message());
  }
}

TEST(GrammarCacheTest, LeastRecentlyUsedIsEvicted) {
  auto first = CompileShared("root ::= \"first\"");
  ASSERT_TRUE(first.ok());
  const Grammar* first_ptr = first->get();
  for (size_t i = 0; i < kMaxSharedGrammars; ++i) {
    ASSERT_TRUE(CompileShared("root ::= \"x" + std::to_string(i) + "\"").ok());
  }
  auto again = CompileShared("root ::= \"first\"");
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->get(), first_ptr);  // recompiled: the old entry was evicted (and is still alive)
  // A recently used grammar stays.
  auto hot = CompileShared("root ::= \"hot\"");
  for (size_t i = 0; i < kMaxSharedGrammars / 2; ++i) {
    ASSERT_TRUE(CompileShared("root ::= \"y" + std::to_string(i) + "\"").ok());
    ASSERT_EQ(CompileShared("root ::= \"hot\"")->get(), hot->get());
  }
}

TEST(GrammarCacheTest, ConcurrentCallersGetOneGrammar) {
  std::vector<const Grammar*> got(8);
  std::vector<std::shared_ptr<const Grammar>> keep(8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      auto g = CompileShared("root ::= [0-9]+ \"-concurrent\"");
      ASSERT_TRUE(g.ok());
      keep[t] = *g;
      got[t] = g->get();
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 1; t < 8; ++t) EXPECT_EQ(got[t], got[0]);
}

}  // namespace
}  // namespace gannet::grammar
