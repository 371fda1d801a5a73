// Compiled grammars shared by their text. Requests that send the same grammar (or the same JSON
// schema, which converts to the same GBNF text) get the same Grammar object, so what is keyed by
// it - the engine's MaskCache of token masks - carries over from one request to the next instead
// of being rebuilt cold for every request.
//
// A process-wide LRU of at most kMaxEntries grammars whose texts total at most kMaxTextBytes
// (default GBNF limits only). Errors are not cached.
// Thread-safety: thread-safe; a miss compiles outside the lock (two threads missing at once may
// both compile; the first stored wins and both get it).
#pragma once

#include <cstddef>
#include <memory>
#include <string_view>

#include "base/status.h"
#include "grammar/grammar.h"

namespace gannet::grammar {

inline constexpr size_t kMaxSharedGrammars = 64;
inline constexpr size_t kMaxSharedGrammarTextBytes = size_t{16} << 20;

// Grammar::Compile(gbnf) through the cache.
Result<std::shared_ptr<const Grammar>> CompileShared(std::string_view gbnf);

}  // namespace gannet::grammar
