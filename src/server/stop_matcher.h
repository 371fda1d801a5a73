// StopMatcher: cuts generated text at the first stop string without ever releasing part of one.
//
// Text arrives piece by piece (one detokenized token at a time, always whole UTF-8 characters).
// Push returns what is safe to show: everything except a tail that could still grow into a stop
// string. Once a stop string is complete, the text before it is released, the stop string and
// anything after it are dropped, and matched() turns true. When generation ends without a match,
// Flush releases the held tail. Because stop strings are valid UTF-8 and a held tail is a prefix of
// one, the split points are always character boundaries.
//
// Thread-safety: none; one matcher per generated sample.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gannet::server {

class StopMatcher {
 public:
  // Empty strings in `stops` are ignored.
  explicit StopMatcher(std::vector<std::string> stops);

  // Appends `text` and returns the newly releasable text. After a match returns "" forever.
  std::string Push(std::string_view text);
  // Releases whatever is held (generation ended without completing a stop string).
  std::string Flush();

  bool matched() const { return matched_; }
  // Bytes currently held back.
  size_t held_bytes() const { return held_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool matched_ = false;
};

}  // namespace gannet::server
