// GgufValue: element access, numeric conversions and the readable form used by `gannet inspect`.
#include <charconv>
#include <cstdio>
#include <cstring>
#include <limits>

#include "formats/gguf.h"

namespace gannet {
namespace {

template <typename T>
T LoadLe(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // GGUF is little-endian, as is every host gannet builds for.
  return v;
}

void AppendDouble(std::string* out, double v, bool single) {
  char buf[64];
  std::to_chars_result r = single ? std::to_chars(buf, buf + sizeof(buf), static_cast<float>(v))
                                  : std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, r.ptr);
}

void AppendQuoted(std::string* out, std::string_view s, size_t max_string) {
  const bool cut = max_string != 0 && s.size() > max_string;
  std::string_view shown = cut ? s.substr(0, max_string) : s;
  out->push_back('"');
  for (char c : shown) {
    const auto uc = static_cast<unsigned char>(c);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      default:
        if (uc < 0x20 || uc == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\x%02x", uc);
          out->append(buf);
        } else {
          out->push_back(c);
        }
    }
  }
  out->push_back('"');
  if (cut) out->append("... (" + std::to_string(s.size()) + " bytes)");
}

bool IsUnsigned(GgufType t) {
  return t == GgufType::kUint8 || t == GgufType::kUint16 || t == GgufType::kUint32 ||
         t == GgufType::kUint64;
}

}  // namespace

std::string_view GgufTypeName(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
      return "u8";
    case GgufType::kInt8:
      return "i8";
    case GgufType::kUint16:
      return "u16";
    case GgufType::kInt16:
      return "i16";
    case GgufType::kUint32:
      return "u32";
    case GgufType::kInt32:
      return "i32";
    case GgufType::kFloat32:
      return "f32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "u64";
    case GgufType::kInt64:
      return "i64";
    case GgufType::kFloat64:
      return "f64";
  }
  return "unknown";
}

size_t GgufScalarSize(GgufType t) {
  switch (t) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    case GgufType::kString:
    case GgufType::kArray:
      return 0;
  }
  return 0;
}

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const {
  return type == GgufType::kFloat32 || type == GgufType::kFloat64;
}

std::optional<int64_t> GgufValue::AsInt() const {
  if (!is_integer()) return std::nullopt;
  if (IsUnsigned(type)) {
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return std::nullopt;
    return static_cast<int64_t>(u);
  }
  return i;
}

std::optional<uint64_t> GgufValue::AsUint() const {
  if (!is_integer()) return std::nullopt;
  if (IsUnsigned(type)) return u;
  if (i < 0) return std::nullopt;
  return static_cast<uint64_t>(i);
}

std::optional<double> GgufValue::AsDouble() const {
  if (is_float()) return f;
  if (!is_integer()) return std::nullopt;
  return IsUnsigned(type) ? static_cast<double>(u) : static_cast<double>(i);
}

GgufValue GgufValue::At(size_t index) const {
  GgufValue v;
  v.type = elem_type;
  if (elem_type == GgufType::kString) {
    v.s = std::string(strings[index]);
    return v;
  }
  if (elem_type == GgufType::kArray) return elems[index];
  const uint8_t* p = raw.data() + index * GgufScalarSize(elem_type);
  switch (elem_type) {
    case GgufType::kUint8:
      v.u = LoadLe<uint8_t>(p);
      break;
    case GgufType::kBool:
      v.u = LoadLe<uint8_t>(p) != 0;
      break;
    case GgufType::kInt8:
      v.i = LoadLe<int8_t>(p);
      break;
    case GgufType::kUint16:
      v.u = LoadLe<uint16_t>(p);
      break;
    case GgufType::kInt16:
      v.i = LoadLe<int16_t>(p);
      break;
    case GgufType::kUint32:
      v.u = LoadLe<uint32_t>(p);
      break;
    case GgufType::kInt32:
      v.i = LoadLe<int32_t>(p);
      break;
    case GgufType::kUint64:
      v.u = LoadLe<uint64_t>(p);
      break;
    case GgufType::kInt64:
      v.i = LoadLe<int64_t>(p);
      break;
    case GgufType::kFloat32:
      v.f = LoadLe<float>(p);
      break;
    case GgufType::kFloat64:
      v.f = LoadLe<double>(p);
      break;
    default:
      break;
  }
  return v;
}

std::string GgufValue::ToString(size_t max_elems, size_t max_string) const {
  std::string out;
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kUint16:
    case GgufType::kUint32:
    case GgufType::kUint64:
      return std::to_string(u);
    case GgufType::kInt8:
    case GgufType::kInt16:
    case GgufType::kInt32:
    case GgufType::kInt64:
      return std::to_string(i);
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      AppendDouble(&out, f, type == GgufType::kFloat32);
      return out;
    case GgufType::kBool:
      return u ? "true" : "false";
    case GgufType::kString:
      AppendQuoted(&out, s, max_string);
      return out;
    case GgufType::kArray:
      break;
  }
  out.push_back('[');
  const uint64_t shown = count < max_elems ? count : max_elems;
  for (uint64_t k = 0; k < shown; ++k) {
    if (k) out.append(", ");
    out.append(At(k).ToString(max_elems, max_string));
  }
  if (shown < count) {
    out.append(shown ? ", ... " : "... ");
    out.append(std::to_string(count) + " items");
  }
  out.push_back(']');
  return out;
}

}  // namespace gannet
