// SpecialPartitioner against the rule it reproduces, written the direct way (one pass over the raw
// runs per special token, as llama.cpp's tokenizer_st_partition does), on random vocabularies
// whose texts overlap and nest, with lstrip / rstrip and parse-only tokens, and random texts.
#include "tokenizer/special_partition.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace gannet {
namespace {

using Special = SpecialPartitioner::Special;
using Fragment = SpecialPartitioner::Fragment;

std::vector<Fragment> Reference(const std::vector<Special>& specials, std::string_view text,
                                bool parse_special) {
  auto space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  for (const Special& sp : specials) {
    if (!parse_special && sp.parse_only) continue;
    std::vector<Fragment> next;
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t offset = f.offset, length = f.length;
      while (length > 0) {
        const size_t match = text.substr(0, offset + length).find(sp.text, offset);
        if (match == std::string_view::npos) break;
        size_t left_len = match - offset;
        if (sp.lstrip) {
          while (left_len > 0 && space(text[offset + left_len - 1])) --left_len;
        }
        if (left_len > 0) next.push_back({-1, offset, left_len});
        next.push_back({sp.id, 0, 0});
        size_t right = match + sp.text.size();
        size_t right_len = offset + length - right;
        if (sp.rstrip) {
          while (right_len > 0 && space(text[right])) {
            ++right;
            --right_len;
          }
        }
        offset = right;
        length = right_len;
      }
      if (length > 0) next.push_back({-1, offset, length});
    }
    fragments.swap(next);
  }
  return fragments;
}

std::string Show(const std::vector<Fragment>& fs) {
  std::string s;
  for (const Fragment& f : fs) {
    s += f.token >= 0 ? "[" + std::to_string(f.token) + "]"
                      : "(" + std::to_string(f.offset) + "+" + std::to_string(f.length) + ")";
  }
  return s;
}

// Distinct texts over a small alphabet (so that they overlap, nest and repeat), longest first,
// equal lengths in random order.
std::vector<Special> RandomSpecials(std::mt19937& rng) {
  const std::string alphabet = "ab< \n";
  std::set<std::string> seen;
  std::vector<Special> specials;
  const int n = 1 + static_cast<int>(rng() % 12);
  for (int i = 0; i < n; ++i) {
    std::string t(1 + rng() % 6, 'a');
    for (char& c : t) c = alphabet[rng() % alphabet.size()];
    if (!seen.insert(t).second) continue;
    specials.push_back({.id = 100 + i,
                        .text = t,
                        .parse_only = rng() % 3 == 0,
                        .lstrip = rng() % 4 == 0,
                        .rstrip = rng() % 4 == 0});
  }
  std::shuffle(specials.begin(), specials.end(), rng);
  std::stable_sort(specials.begin(), specials.end(), [](const Special& a, const Special& b) {
    return a.text.size() > b.text.size();
  });
  return specials;
}

std::string RandomText(std::mt19937& rng, const std::vector<Special>& specials) {
  const std::string alphabet = "ab< \nx";
  std::string text;
  const int pieces = static_cast<int>(rng() % 16);
  for (int i = 0; i < pieces; ++i) {
    if (rng() % 2 == 0) {
      text += specials[rng() % specials.size()].text;
    } else {
      text += alphabet[rng() % alphabet.size()];
    }
  }
  return text;
}

TEST(SpecialPartition, EqualsTheOneTokenAtATimeRuleOnRandomVocabularies) {
  std::mt19937 rng(20261204);
  for (int iter = 0; iter < 20000; ++iter) {
    const std::vector<Special> specials = RandomSpecials(rng);
    const SpecialPartitioner partitioner(specials);
    const std::string text = RandomText(rng, specials);
    for (const bool parse_special : {false, true}) {
      const std::vector<Fragment> want = Reference(specials, text, parse_special);
      const std::vector<Fragment> got = partitioner.Partition(text, parse_special);
      ASSERT_EQ(Show(got), Show(want)) << "iteration " << iter << " text '" << text << "'";
    }
  }
}

TEST(SpecialPartition, LongerTextsWinWhereverTheyStart) {
  // "bcd" is taken before "ab" although "ab" starts first; "ab" then only matches elsewhere.
  const SpecialPartitioner p({{.id = 1, .text = "bcd"}, {.id = 2, .text = "ab"}});
  EXPECT_EQ(Show(p.Partition("abcd ab", false)), "(0+1)[1](4+1)[2]");
}

TEST(SpecialPartition, StripsTakeOnlyRawSpaces) {
  const SpecialPartitioner p(
      {{.id = 1, .text = "<x>", .lstrip = true, .rstrip = true}, {.id = 2, .text = "y"}});
  EXPECT_EQ(Show(p.Partition("a  <x>  b", false)), "(0+1)[1](8+1)");
  EXPECT_EQ(Show(p.Partition("  <x>  ", false)), "[1]");
  EXPECT_EQ(Show(p.Partition("y <x> y", false)), "[2][1][2]");
}

TEST(SpecialPartition, ParseOnlyTokensNeedParseSpecial) {
  const SpecialPartitioner p({{.id = 7, .text = "<s>", .parse_only = true}});
  EXPECT_EQ(Show(p.Partition("a<s>b", false)), "(0+5)");
  EXPECT_EQ(Show(p.Partition("a<s>b", true)), "(0+1)[7](4+1)");
  EXPECT_TRUE(p.Partition("", true).empty());
}

TEST(SpecialPartition, NoSpecialsGiveOneRawRun) {
  const SpecialPartitioner p({});
  EXPECT_EQ(Show(p.Partition("hello", true)), "(0+5)");
}

}  // namespace
}  // namespace gannet
