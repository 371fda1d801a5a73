// Stop strings: generated text is cut at the first stop string to complete, and no byte of a stop
// string is ever released before it is known not to complete.
//
// StopStrings compiles the strings once per request into a byte automaton (Aho-Corasick, made a
// full transition table over the byte classes the strings use; every other byte leads back to the
// root). A StopMatcher per sample walks it: its state is the longest suffix of the text that is a
// prefix of some stop string, which is exactly the tail it must hold back. So a push costs one
// table step per byte of the piece plus the bytes it releases, whatever the stop strings' length
// or number (the old way, re-searching the held text for every string, grew with both).
//
// Which stop wins: the one that completes first in the text; of those ending at the same byte, the
// longest (so "cab" beats "ab" in "xcab"). That is decided byte by byte, so the result never
// depends on how the text was split into pieces.
//
// Text arrives as whole UTF-8 characters and stop strings are valid UTF-8, so a held tail (a
// prefix of a stop string) always starts on a character boundary.
//
// Thread-safety: a StopStrings is immutable and may be shared; a StopMatcher is one sample's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace gannet::engine {

// Limits on what a request may ask for (bounded work and memory per request).
inline constexpr size_t kMaxStopStrings = 16;
inline constexpr size_t kMaxStopBytes = 4096;  // all stop strings together
// The transition table has (states) x (distinct bytes used + 1) cells of 2 bytes; states are at
// most the bytes + 1. Past this many cells (1 MiB) the strings are refused: ordinary stop
// strings use a few thousand, and a request cannot make the engine hold megabytes per request.
inline constexpr size_t kMaxStopTableCells = size_t{1} << 19;

class StopStrings {
 public:
  // Empty strings are ignored. InvalidArgument past kMaxStopStrings strings or kMaxStopBytes bytes.
  static Result<std::shared_ptr<const StopStrings>> Compile(const std::vector<std::string>& stops);

  bool empty() const { return depth_.size() <= 1; }
  size_t table_bytes() const { return next_.size() * sizeof(next_[0]); }

 private:
  friend class StopMatcher;
  StopStrings() = default;
  int32_t Step(int32_t state, unsigned char byte) const {
    return next_[state * n_classes_ + class_of_[byte]];
  }

  uint16_t class_of_[256] = {};  // byte -> class; 0: a byte no stop string contains
  int32_t n_classes_ = 1;
  std::vector<uint16_t> next_;  // [state][class] -> state
  std::vector<int32_t> depth_;  // [state]: length of the prefix it stands for
  std::vector<int32_t> match_;  // [state]: longest stop string ending here, 0: none
};

class StopMatcher {
 public:
  // `stops` may be null (no stop strings).
  explicit StopMatcher(std::shared_ptr<const StopStrings> stops = nullptr)
      : stops_(std::move(stops)) {}

  // Appends `text`; returns the newly releasable text. After a match, returns "" forever.
  std::string Push(std::string_view text);
  // Releases what is held (generation ended without completing a stop string).
  std::string Flush();

  bool matched() const { return matched_; }
  size_t held_bytes() const { return held_.size() - held_begin_; }

 private:
  std::shared_ptr<const StopStrings> stops_;
  int32_t state_ = 0;
  std::string held_;       // held_[held_begin_, end) is the tail held back
  size_t held_begin_ = 0;  // compacted lazily, so releasing costs what is released
  bool matched_ = false;
};

}  // namespace gannet::engine
