#include "chat/json_scanner.h"

namespace gannet {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

}  // namespace

const std::string& JsonScanner::KeyAt(int depth) const {
  static const std::string kEmpty;
  if (depth < 1 || depth > static_cast<int>(frames_.size())) return kEmpty;
  return frames_[static_cast<size_t>(depth - 1)].key;
}

JsonScanner::Event JsonScanner::MakeEvent(bool start, size_t offset, char first) const {
  Event e{
      .start = start, .depth = static_cast<int>(frames_.size()), .offset = offset, .first = first};
  if (!frames_.empty()) {
    e.key = frames_.back().kind == '{' ? frames_.back().key : std::string();
    e.index = frames_.back().index;
  }
  return e;
}

JsonScanner::State JsonScanner::Step(char c, size_t at, std::vector<Event>* events) {
  if (state_ != State::kRunning) return state_;
  switch (scalar_) {
    case Scalar::kString:
    case Scalar::kKeyString:
      if (!StringByte(c, at, events)) Fail();
      return state_;
    case Scalar::kLiteral:
      if (c != *literal_) {
        Fail();
        return state_;
      }
      if (*++literal_ == '\0') {
        scalar_ = Scalar::kNone;
        EndValue(at + 1, events);
      }
      return state_;
    case Scalar::kNumber:
      if (NumberByte(c)) return state_;
      if (num_ != Num::kZero && num_ != Num::kInt && num_ != Num::kFrac && num_ != Num::kExp) {
        Fail();
        return state_;
      }
      scalar_ = Scalar::kNone;
      EndValue(at, events);
      if (state_ != State::kRunning) return state_;
      break;  // the byte after the number is structural
    case Scalar::kNone:
      break;
  }
  Structural(c, at, events);
  return state_;
}

void JsonScanner::Structural(char c, size_t at, std::vector<Event>* events) {
  if (IsBlank(c)) return;
  if (frames_.empty()) return BeginValue(c, at, events);  // the top-level value
  Frame& f = frames_.back();
  switch (f.expect) {
    case Expect::kKeyOrEnd:
    case Expect::kKey:
      if (c == '}' && f.expect == Expect::kKeyOrEnd) {
        frames_.pop_back();
        return EndValue(at + 1, events);
      }
      if (c != '"') return Fail();
      scalar_ = Scalar::kKeyString;
      key_.clear();
      return;
    case Expect::kColon:
      if (c != ':') return Fail();
      f.expect = Expect::kValue;
      return;
    case Expect::kValueOrEnd:
      if (c == ']') {
        frames_.pop_back();
        return EndValue(at + 1, events);
      }
      return BeginValue(c, at, events);
    case Expect::kValue:
      return BeginValue(c, at, events);
    case Expect::kCommaOrEnd:
      if (c == ',') {
        if (f.kind == '[') ++f.index;
        f.expect = f.kind == '{' ? Expect::kKey : Expect::kValue;
        return;
      }
      if (c != (f.kind == '{' ? '}' : ']')) return Fail();
      frames_.pop_back();
      return EndValue(at + 1, events);
  }
}

void JsonScanner::BeginValue(char c, size_t at, std::vector<Event>* events) {
  const bool opens = c == '{' || c == '[' || c == '"' || c == '-' || IsDigit(c) || c == 't' ||
                     c == 'f' || c == 'n';
  if (!opens) return Fail();
  events->push_back(MakeEvent(true, at, c));
  if (c == '{' || c == '[') {
    if (frames_.size() >= kMaxDepth) return Fail();
    frames_.push_back(
        Frame{.kind = c, .expect = c == '{' ? Expect::kKeyOrEnd : Expect::kValueOrEnd});
  } else if (c == '"') {
    scalar_ = Scalar::kString;
    escape_ = 0;
  } else if (c == 't' || c == 'f' || c == 'n') {
    scalar_ = Scalar::kLiteral;
    literal_ = c == 't' ? "rue" : c == 'f' ? "alse" : "ull";
  } else {
    scalar_ = Scalar::kNumber;
    num_ = c == '-' ? Num::kMinus : c == '0' ? Num::kZero : Num::kInt;
  }
}

void JsonScanner::EndValue(size_t end, std::vector<Event>* events) {
  events->push_back(MakeEvent(false, end, 0));
  if (frames_.empty()) {
    state_ = State::kDone;
    return;
  }
  frames_.back().expect = Expect::kCommaOrEnd;
}

bool JsonScanner::StringByte(char c, size_t at, std::vector<Event>* events) {
  const bool key = scalar_ == Scalar::kKeyString;
  if (escape_ == -1) {
    if (c == 'u') {
      escape_ = 4;
    } else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' || c == 'r' ||
               c == 't') {
      escape_ = 0;
    } else {
      return false;
    }
  } else if (escape_ > 0) {
    if (!IsHex(c)) return false;
    --escape_;
  } else if (c == '\\') {
    escape_ = -1;
  } else if (c == '"') {
    scalar_ = Scalar::kNone;
    if (key) {
      frames_.back().key = key_;
      frames_.back().expect = Expect::kColon;
    } else {
      EndValue(at + 1, events);
    }
    return true;
  } else if (static_cast<unsigned char>(c) < 0x20) {
    return false;
  }
  if (key) key_.push_back(c);
  return true;
}

bool JsonScanner::NumberByte(char c) {
  const bool digit = IsDigit(c);
  switch (num_) {
    case Num::kMinus:
      if (!digit) return false;
      num_ = c == '0' ? Num::kZero : Num::kInt;
      return true;
    case Num::kZero:
    case Num::kInt:
      if (digit && num_ == Num::kInt) return true;
      if (c == '.')
        num_ = Num::kDot;
      else if (c == 'e' || c == 'E')
        num_ = Num::kE;
      else
        return false;
      return true;
    case Num::kDot:
    case Num::kFrac:
      if (digit) {
        num_ = Num::kFrac;
        return true;
      }
      if (num_ == Num::kFrac && (c == 'e' || c == 'E')) {
        num_ = Num::kE;
        return true;
      }
      return false;
    case Num::kE:
      if (c == '+' || c == '-') {
        num_ = Num::kESign;
        return true;
      }
      [[fallthrough]];
    case Num::kESign:
    case Num::kExp:
      if (!digit) return false;
      num_ = Num::kExp;
      return true;
  }
  return false;
}

}  // namespace gannet
