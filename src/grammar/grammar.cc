#include "grammar/grammar.h"

#include <utility>

namespace gannet::grammar {
namespace {

// Which rules can match "" (a least fixed point, iterated until nothing changes).
std::vector<bool> NullableRules(const ParsedGrammar& g) {
  std::vector<bool> nullable(g.rules.size(), false);
  bool changed = true;
  while (changed) {
    changed = false;
    for (size_t r = 0; r < g.rules.size(); ++r) {
      if (nullable[r]) continue;
      for (const auto& alt : g.rules[r].alternatives) {
        bool all = true;
        for (const Symbol& s : alt) {
          if (s.kind == Symbol::Kind::kChars || !nullable[s.index]) {
            all = false;
            break;
          }
        }
        if (all) {
          nullable[r] = true;
          changed = true;
          break;
        }
      }
    }
  }
  return nullable;
}

// The user rule a generated rule came from, for messages ("expr/3" -> "expr").
std::string UserName(const ParsedRule& rule) {
  return rule.generated ? rule.name.substr(0, rule.name.find('/')) : rule.name;
}

// Finds a cycle in "A may begin with B" (B referenced after a prefix that can match ""), by an
// iterative depth-first search.
Status CheckLeftRecursion(const ParsedGrammar& g) {
  const size_t n = g.rules.size();
  std::vector<bool> nullable = NullableRules(g);
  std::vector<std::vector<uint32_t>> edges(n);
  for (size_t r = 0; r < n; ++r) {
    for (const auto& alt : g.rules[r].alternatives) {
      for (const Symbol& s : alt) {
        if (s.kind == Symbol::Kind::kChars) break;
        edges[r].push_back(s.index);
        if (!nullable[s.index]) break;
      }
    }
  }
  enum Color : uint8_t { kWhite, kGray, kBlack };
  std::vector<Color> color(n, kWhite);
  std::vector<std::pair<uint32_t, size_t>> path;  // (rule, next edge)
  for (uint32_t start = 0; start < n; ++start) {
    if (color[start] != kWhite) continue;
    path.push_back({start, 0});
    color[start] = kGray;
    while (!path.empty()) {
      auto& [r, next] = path.back();
      if (next == edges[r].size()) {
        color[r] = kBlack;
        path.pop_back();
        continue;
      }
      uint32_t to = edges[r][next++];
      if (color[to] == kGray) {
        std::string cycle;
        bool in = false;
        for (const auto& [p, unused] : path) {
          in = in || p == to;
          if (!in) continue;
          std::string name = UserName(g.rules[p]);
          if (cycle.empty() || cycle.substr(cycle.rfind(' ') + 1) != name) {
            cycle += (cycle.empty() ? "" : " -> ") + name;
          }
        }
        const ParsedRule& rule = g.rules[to];
        cycle += " -> " + UserName(rule);
        return Status::InvalidArgument(
            "grammar: line " + std::to_string(rule.line) + ", column " +
            std::to_string(rule.column) + ": left recursion (" + cycle +
            "): a rule can reach itself without consuming a character; rewrite it with "
            "repetition, e.g. expr ::= term (\"+\" term)*");
      }
      if (color[to] == kWhite) {
        color[to] = kGray;
        path.push_back({to, 0});
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<const Grammar>> Grammar::Compile(std::string_view gbnf,
                                                        const GbnfLimits& limits) {
  ParsedGrammar parsed;
  GANNET_ASSIGN_OR_RETURN(parsed, ParseGbnf(gbnf, limits));
  GANNET_RETURN_IF_ERROR(CheckLeftRecursion(parsed));

  std::shared_ptr<Grammar> g(new Grammar());
  g->root_ = parsed.root;
  g->rule_alts_.push_back(0);
  for (ParsedRule& rule : parsed.rules) {
    for (const auto& alt : rule.alternatives) {
      g->alt_starts_.push_back(static_cast<uint32_t>(g->items_.size()));
      for (const Symbol& s : alt) {
        g->items_.push_back(
            {s.kind == Symbol::Kind::kRule ? Item::Kind::kRule : Item::Kind::kChars, s.index});
      }
      g->items_.push_back({Item::Kind::kEnd, 0});
    }
    g->rule_alts_.push_back(static_cast<uint32_t>(g->alt_starts_.size()));
    g->names_.push_back(std::move(rule.name));
  }
  g->classes_ = std::move(parsed.classes);
  g->ascii_.resize(g->classes_.size());
  for (size_t c = 0; c < g->classes_.size(); ++c) {
    for (uint32_t cp = 0; cp < 128; ++cp) {
      if (g->classes_[c].Contains(cp)) g->ascii_[c][cp >> 6] |= uint64_t{1} << (cp & 63);
    }
  }
  return std::shared_ptr<const Grammar>(std::move(g));
}

}  // namespace gannet::grammar
