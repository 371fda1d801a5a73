// JsonScanner: an incremental, strict JSON syntax checker fed one byte at a time, which reports
// where each value starts and ends and under which key or index it sits. The tool-call parser
// (chat/tool_call_parser.h) uses it to find a call's name and arguments in text as it arrives,
// without ever re-reading earlier bytes.
//
// Strict RFC 8259 syntax: strings without raw control characters and with valid escapes, numbers
// as JSON writes them, true / false / null, blanks between tokens. The first byte that cannot
// continue a JSON text puts the scanner in kError; the end of the top-level value puts it in
// kDone (a top-level number ends only at the byte after it). Keys are kept as written, escapes
// included. Memory: one frame per open container; containers nested deeper than kMaxDepth are an
// error.
//
// Thread-safety: none; one per text.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gannet {

class JsonScanner {
 public:
  enum class State { kRunning, kDone, kError };
  static constexpr size_t kMaxDepth = 512;

  struct Event {
    bool start = true;  // true: a value starts at `offset` (its first byte); false: ends before it
    int depth = 0;      // containers around the value (0: the top-level value)
    size_t offset = 0;
    char first = 0;     // start: the value's first byte
    std::string key;    // the key the value sits under ("" at the top level or in an array)
    int32_t index = 0;  // the value's index in its array
  };

  // Feeds byte `c`, the text's byte number `at`; appends the values started or ended by it.
  State Step(char c, size_t at, std::vector<Event>* events);
  State state() const { return state_; }
  // The key of the member currently open in the container at `depth` (1 = the top-level one).
  const std::string& KeyAt(int depth) const;

 private:
  enum class Expect { kValue, kKeyOrEnd, kKey, kColon, kValueOrEnd, kCommaOrEnd };
  enum class Scalar { kNone, kString, kKeyString, kNumber, kLiteral };
  enum class Num { kMinus, kZero, kInt, kDot, kFrac, kE, kESign, kExp };
  struct Frame {
    char kind;  // '{' or '['
    Expect expect;
    std::string key;
    int32_t index = 0;
  };

  void Structural(char c, size_t at, std::vector<Event>* events);
  void BeginValue(char c, size_t at, std::vector<Event>* events);
  void EndValue(size_t end, std::vector<Event>* events);
  bool StringByte(char c, size_t at, std::vector<Event>* events);
  bool NumberByte(char c);
  Event MakeEvent(bool start, size_t offset, char first) const;
  void Fail() { state_ = State::kError; }

  State state_ = State::kRunning;
  std::vector<Frame> frames_;
  Scalar scalar_ = Scalar::kNone;
  Num num_ = Num::kInt;
  int escape_ = 0;  // in a string: 0 none, -1 after '\', 1..4 hex digits still wanted
  std::string key_;
  const char* literal_ = nullptr;  // the rest of true / false / null still wanted
};

}  // namespace gannet
