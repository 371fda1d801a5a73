#include "server/bounded_json.h"

#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace gannet::server {
namespace {

using Json = nlohmann::ordered_json;

// Objects with more members than this are de-duplicated through a hash index; fewer are scanned.
constexpr size_t kLinearDedupMax = 16;
// Longest syntax-error message passed on.
constexpr size_t kMaxErrorChars = 200;

// One open array or object. Members are gathered here, not in the Json value: a growing
// std::vector<std::pair<const std::string, Json>> (ordered_map) copies its elements, deeply, when
// it reallocates, because the pair's const key makes its move constructor throwing.
struct Frame {
  bool is_object = false;
  std::vector<Json> elements;                         // arrays
  std::vector<std::pair<std::string, Json>> members;  // objects, in order, duplicates kept
  std::string key;                                    // objects: the key of the next value
};

// nlohmann's SAX interface (json_sax concept); every callback returns false to stop the parse.
class BoundedBuilder {
 public:
  explicit BoundedBuilder(const JsonLimits& limits) : limits_(limits) {}

  bool null() { return Value(Json(nullptr)); }
  bool boolean(bool v) { return Value(Json(v)); }
  bool number_integer(Json::number_integer_t v) { return Value(Json(v)); }
  bool number_unsigned(Json::number_unsigned_t v) { return Value(Json(v)); }
  bool number_float(Json::number_float_t v, const std::string&) { return Value(Json(v)); }
  bool string(std::string& v) {
    if (!StringFits(v, "string")) return false;
    return Value(Json(std::move(v)));
  }
  bool binary(Json::binary_t&) { return Fail("binary values are not JSON"); }

  bool start_object(size_t) { return Open(true); }
  bool key(std::string& k) {
    if (!StringFits(k, "key")) return false;
    Frame& f = stack_.back();
    if (static_cast<int64_t>(f.members.size()) >= limits_.max_object_keys) {
      return Fail("an object has more than " + std::to_string(limits_.max_object_keys) + " keys");
    }
    f.key = std::move(k);
    return true;
  }
  bool end_object() { return Close(); }
  bool start_array(size_t) { return Open(false); }
  bool end_array() { return Close(); }

  bool parse_error(size_t, const std::string&, const nlohmann::detail::exception& e) {
    // nlohmann's message is "[json.exception.parse_error.101] parse error at line 1, column 9:
    // syntax error while parsing value - ... last read: '<token>'"; the part after the id is what
    // a user can act on, and the token (a whole unterminated string) is cut short.
    std::string what = e.what();
    if (size_t close = what.find("] "); close != std::string::npos) what = what.substr(close + 2);
    if (what.size() > kMaxErrorChars) what = what.substr(0, kMaxErrorChars) + "...";
    error_ = "the body is not valid JSON: " + what;
    return false;
  }

  const std::string& error() const { return error_; }
  bool limit_exceeded() const { return limit_exceeded_; }
  Json TakeRoot() { return std::move(root_); }

 private:
  bool Fail(const std::string& what) {
    error_ = what + " (limit of this server)";
    limit_exceeded_ = true;
    return false;
  }

  bool StringFits(const std::string& s, const char* what) {
    if (static_cast<int64_t>(s.size()) <= limits_.max_string_bytes) return true;
    return Fail(std::string("a ") + what + " is longer than " +
                std::to_string(limits_.max_string_bytes) + " bytes");
  }

  bool Count() {
    if (++n_values_ <= limits_.max_values) return true;
    return Fail("the body has more than " + std::to_string(limits_.max_values) + " values");
  }

  bool Open(bool is_object) {
    if (!Count()) return false;
    if (static_cast<int64_t>(stack_.size()) >= limits_.max_depth) {
      return Fail("the body nests arrays and objects deeper than " +
                  std::to_string(limits_.max_depth) + " levels");
    }
    stack_.push_back(Frame{.is_object = is_object});
    return true;
  }

  bool Close() {
    Frame f = std::move(stack_.back());
    stack_.pop_back();
    Json v = f.is_object ? BuildObject(&f.members) : Json(Json::array_t(std::move(f.elements)));
    return Attach(std::move(v));
  }

  // A scalar: counted, then attached to the open container (or made the root).
  bool Value(Json v) { return Count() && Attach(std::move(v)); }

  bool Attach(Json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      return true;
    }
    Frame& f = stack_.back();
    if (f.is_object) {
      f.members.emplace_back(std::move(f.key), std::move(v));
      return true;
    }
    if (static_cast<int64_t>(f.elements.size()) >= limits_.max_array_elements) {
      return Fail("an array has more than " + std::to_string(limits_.max_array_elements) +
                  " elements");
    }
    f.elements.push_back(std::move(v));
    return true;
  }

  static Json BuildObject(std::vector<std::pair<std::string, Json>>* members);

  const JsonLimits& limits_;
  int64_t n_values_ = 0;
  std::vector<Frame> stack_;
  Json root_;
  std::string error_;
  bool limit_exceeded_ = false;
};

// Members in first-seen order, the last value of a duplicated key winning (nlohmann's parse).
Json BoundedBuilder::BuildObject(std::vector<std::pair<std::string, Json>>* members) {
  std::vector<size_t> keep;  // index of each distinct key's first occurrence
  keep.reserve(members->size());
  std::unordered_map<std::string_view, size_t> index;  // key -> position in `keep`
  const bool hashed = members->size() > kLinearDedupMax;
  for (size_t i = 0; i < members->size(); ++i) {
    const std::string& k = (*members)[i].first;
    size_t found = keep.size();
    if (hashed) {
      auto [it, inserted] = index.emplace(k, keep.size());
      if (!inserted) found = it->second;
    } else {
      for (size_t q = 0; q < keep.size(); ++q) {
        if ((*members)[keep[q]].first == k) found = q;
      }
    }
    if (found == keep.size()) {
      keep.push_back(i);
    } else {
      (*members)[keep[found]].second = std::move((*members)[i].second);
    }
  }
  Json obj = Json::object();
  // ordered_map is a vector of pairs; appending through the vector skips its linear key search
  // (the keys are distinct already), and reserving first means no reallocation, so no deep copy.
  auto* map = static_cast<Json::object_t::Container*>(obj.get_ptr<Json::object_t*>());
  map->reserve(keep.size());
  for (size_t i : keep) {
    auto& [k, v] = (*members)[i];
    map->emplace_back(std::move(k), std::move(v));
  }
  return obj;
}

// A number literal is converted (strtod) before the SAX callback sees it, at tens of ns per digit;
// runs of number characters outside strings are measured first so a megabyte of digits costs a
// scan, not a conversion.
Status CheckNumberLengths(std::string_view text, int32_t max_chars) {
  bool in_string = false;
  int64_t run = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    const bool number_char =
        (c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E';
    run = number_char ? run + 1 : 0;
    if (run > max_chars) {
      return Status::ResourceExhausted(
          "a number literal is longer than " + std::to_string(max_chars) +
          " characters (limit of this server; at byte " + std::to_string(i) + ")");
    }
    in_string = c == '"';
  }
  return Status::Ok();
}

}  // namespace

Result<nlohmann::ordered_json> ParseBoundedJson(std::string_view text, const JsonLimits& limits) {
  GANNET_RETURN_IF_ERROR(CheckNumberLengths(text, limits.max_number_chars));
  BoundedBuilder builder(limits);
  bool ok = false;
  try {
    ok = Json::sax_parse(text.begin(), text.end(), &builder, Json::input_format_t::json,
                         /*strict=*/true, /*ignore_comments=*/false);
  } catch (const std::exception& e) {  // nlohmann reports through parse_error; belt and braces
    return Status::InvalidArgument(std::string("the body is not valid JSON: ") + e.what());
  }
  if (builder.limit_exceeded()) return Status::ResourceExhausted(builder.error());
  if (!ok) {
    return Status::InvalidArgument(builder.error().empty() ? "the body is not valid JSON"
                                                           : builder.error());
  }
  return builder.TakeRoot();
}

}  // namespace gannet::server
