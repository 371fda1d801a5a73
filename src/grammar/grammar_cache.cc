#include "grammar/grammar_cache.h"

#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace gannet::grammar {
namespace {

struct Cache {
  struct Entry {
    std::string text;
    std::shared_ptr<const Grammar> grammar;
  };
  std::mutex mu;
  std::list<Entry> lru;  // most recently used first
  std::unordered_map<std::string_view, std::list<Entry>::iterator> index;  // views into lru
  size_t text_bytes = 0;

  std::shared_ptr<const Grammar> Find(std::string_view text) {
    const auto it = index.find(text);
    if (it == index.end()) return nullptr;
    lru.splice(lru.begin(), lru, it->second);
    return it->second->grammar;
  }

  std::shared_ptr<const Grammar> Insert(std::string_view text,
                                        std::shared_ptr<const Grammar> grammar) {
    if (std::shared_ptr<const Grammar> found = Find(text)) return found;
    if (text.size() > kMaxSharedGrammarTextBytes) return grammar;
    lru.push_front({std::string(text), std::move(grammar)});
    index.emplace(lru.front().text, lru.begin());
    text_bytes += text.size();
    while (lru.size() > kMaxSharedGrammars || text_bytes > kMaxSharedGrammarTextBytes) {
      text_bytes -= lru.back().text.size();
      index.erase(lru.back().text);
      lru.pop_back();
    }
    return lru.front().grammar;
  }
};

Cache& TheCache() {
  static Cache* cache = new Cache();  // never destroyed: used until the process exits
  return *cache;
}

}  // namespace

Result<std::shared_ptr<const Grammar>> CompileShared(std::string_view gbnf) {
  Cache& c = TheCache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (std::shared_ptr<const Grammar> g = c.Find(gbnf)) return g;
  }
  std::shared_ptr<const Grammar> compiled;
  GANNET_ASSIGN_OR_RETURN(compiled, Grammar::Compile(gbnf));
  std::lock_guard<std::mutex> lock(c.mu);
  return c.Insert(gbnf, std::move(compiled));
}

}  // namespace gannet::grammar
