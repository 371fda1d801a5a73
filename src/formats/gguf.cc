// GGUF reader. Layout and rules: llama.cpp ggml/src/gguf.cpp (gguf_init_from_reader), restated in
// the reference notes §1. Every read goes through a bounds-checked cursor; every count is compared
// with the bytes that remain before anything is allocated for it; and the memory the parsed header
// needs is charged against a fixed budget, so a small crafted file cannot ask for gigabytes.
#include "formats/gguf.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

namespace gannet {
namespace {

static_assert(std::endian::native == std::endian::little,
              "GGUF is read in place: little-endian hosts only");

constexpr char kMagic[4] = {'G', 'G', 'U', 'F'};
// Smallest encodings, used to bound counts before allocating: a metadata entry is a key length (8),
// a value type (4) and at least one byte of value; a tensor info is a name length (8), n_dims (4),
// one dimension (8), a type (4) and an offset (8).
constexpr uint64_t kMinKvBytes = 13;
constexpr uint64_t kMinTensorInfoBytes = 32;
constexpr uint64_t kMinStringBytes = 8;
constexpr uint64_t kMinArrayBytes = 12;
// What the parsed header may cost in memory, whatever the file claims. Real models need a few MiB
// (a 256k-token vocabulary is 256k string views).
constexpr uint64_t kMemoryBudget = uint64_t{512} << 20;

std::string Quote(std::string_view s) {
  std::string out = "'";
  for (char c : s.substr(0, 200)) {
    const auto uc = static_cast<unsigned char>(c);
    out.push_back(uc < 0x20 || uc == 0x7f ? '?' : c);
  }
  if (s.size() > 200) out.append("...");
  out.push_back('\'');
  return out;
}

bool KnownType(int32_t t) { return t >= 0 && t <= static_cast<int32_t>(GgufType::kFloat64); }

class Parser {
 public:
  explicit Parser(std::span<const uint8_t> bytes) : bytes_(bytes) {}

  uint64_t pos() const { return pos_; }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  // Error for a read that ran off the end of the file while reading `what`.
  Status Truncated(const std::string& what) const {
    return Status::Corrupt("file is truncated: it ends (at byte " + std::to_string(bytes_.size()) +
                           ") inside " + what);
  }

  template <typename T>
  Status Read(T* out, const std::string& what) {
    if (remaining() < sizeof(T)) return Truncated(what);
    std::memcpy(out, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::Ok();
  }

  template <typename Raw, typename Slot>
  Status ReadScalar(const std::string& what, Slot* slot) {
    Raw x{};
    GANNET_RETURN_IF_ERROR(Read(&x, what));
    *slot = static_cast<Slot>(x);
    return Status::Ok();
  }

  Status ReadView(uint64_t n, std::span<const uint8_t>* out, const std::string& what) {
    if (remaining() < n) return Truncated(what);
    *out = bytes_.subspan(pos_, n);
    pos_ += n;
    return Status::Ok();
  }

  Status ReadStringView(std::string_view* out, const std::string& what) {
    return ReadStringViewLazy(out, [&what] { return what; });
  }

  // As ReadStringView, with the description built only on error (hot in 256k-entry vocabularies).
  template <typename Describe>
  Status ReadStringViewLazy(std::string_view* out, const Describe& describe) {
    uint64_t len = 0;
    if (remaining() < sizeof(len)) return Truncated("the length of " + describe());
    std::memcpy(&len, bytes_.data() + pos_, sizeof(len));
    pos_ += sizeof(len);
    if (len > remaining()) {
      return Status::Corrupt(describe() + " claims a length of " + std::to_string(len) +
                             " bytes but only " + std::to_string(remaining()) +
                             " bytes remain in the file");
    }
    *out = std::string_view(reinterpret_cast<const char*>(bytes_.data() + pos_), len);
    pos_ += len;
    return Status::Ok();
  }

  Status Charge(uint64_t n) {
    if (n > kMemoryBudget - used_) {
      return Status::ResourceExhausted("the metadata and tensor infos would need more than " +
                                       std::to_string(kMemoryBudget >> 20) + " MiB of memory");
    }
    used_ += n;
    return Status::Ok();
  }

  // Reads a value of `type` (already read) for metadata entry `key`; `depth` counts enclosing
  // arrays.
  Status ReadValue(GgufType type, const std::string& key, int depth, GgufValue* v) {
    v->type = type;
    const std::string what = "the value of metadata key " + Quote(key);
    switch (type) {
      case GgufType::kUint8:
        return ReadScalar<uint8_t>(what, &v->u);
      case GgufType::kInt8:
        return ReadScalar<int8_t>(what, &v->i);
      case GgufType::kUint16:
        return ReadScalar<uint16_t>(what, &v->u);
      case GgufType::kInt16:
        return ReadScalar<int16_t>(what, &v->i);
      case GgufType::kUint32:
        return ReadScalar<uint32_t>(what, &v->u);
      case GgufType::kInt32:
        return ReadScalar<int32_t>(what, &v->i);
      case GgufType::kUint64:
        return ReadScalar<uint64_t>(what, &v->u);
      case GgufType::kInt64:
        return ReadScalar<int64_t>(what, &v->i);
      case GgufType::kFloat32:
        return ReadScalar<float>(what, &v->f);
      case GgufType::kFloat64:
        return ReadScalar<double>(what, &v->f);
      case GgufType::kBool: {
        GANNET_RETURN_IF_ERROR(ReadScalar<uint8_t>(what, &v->u));
        v->u = v->u != 0;
        break;
      }
      case GgufType::kString: {
        std::string_view sv;
        GANNET_RETURN_IF_ERROR(ReadStringView(&sv, what));
        GANNET_RETURN_IF_ERROR(Charge(sv.size()));
        v->s = std::string(sv);
        break;
      }
      case GgufType::kArray:
        return ReadArray(key, depth, v);
    }
    return Status::Ok();
  }

 private:
  Status ReadArray(const std::string& key, int depth, GgufValue* v) {
    const std::string what = "the array of metadata key " + Quote(key);
    if (depth >= kGgufMaxArrayDepth) {
      return Status::Corrupt("metadata key " + Quote(key) + " nests arrays more than " +
                             std::to_string(kGgufMaxArrayDepth) + " levels deep");
    }
    int32_t elem_type = 0;
    GANNET_RETURN_IF_ERROR(Read(&elem_type, "the element type of " + what));
    if (!KnownType(elem_type)) {
      return Status::Corrupt("metadata key " + Quote(key) + " is an array of unknown value type " +
                             std::to_string(elem_type));
    }
    v->elem_type = static_cast<GgufType>(elem_type);
    GANNET_RETURN_IF_ERROR(Read(&v->count, "the element count of " + what));
    const size_t scalar = GgufScalarSize(v->elem_type);
    const uint64_t min_elem = scalar                              ? scalar
                              : v->elem_type == GgufType::kString ? kMinStringBytes
                                                                  : kMinArrayBytes;
    if (v->count > remaining() / min_elem) {
      return Status::Corrupt("metadata key " + Quote(key) + " claims an array of " +
                             std::to_string(v->count) + " " +
                             std::string(GgufTypeName(v->elem_type)) + " elements but only " +
                             std::to_string(remaining()) + " bytes remain in the file");
    }
    if (scalar) return ReadView(v->count * scalar, &v->raw, what);
    if (v->elem_type == GgufType::kString) {
      GANNET_RETURN_IF_ERROR(Charge(v->count * sizeof(std::string_view)));
      v->strings.reserve(v->count);
      for (uint64_t k = 0; k < v->count; ++k) {
        std::string_view sv;
        GANNET_RETURN_IF_ERROR(ReadStringViewLazy(
            &sv, [&] { return "string #" + std::to_string(k) + " of " + what; }));
        v->strings.push_back(sv);
      }
    } else {
      GANNET_RETURN_IF_ERROR(Charge(v->count * sizeof(GgufValue)));
      v->elems.resize(v->count);
      for (uint64_t k = 0; k < v->count; ++k) {
        GANNET_RETURN_IF_ERROR(ReadArray(key, depth + 1, &v->elems[k]));
        v->elems[k].type = GgufType::kArray;
      }
    }
    return Status::Ok();
  }

  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
  uint64_t used_ = 0;
};

std::string ShapeString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

}  // namespace

Result<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  Result<MmapFile> mapped = MmapFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->file_ = std::move(mapped).value();
  file->bytes_ = file->file_.bytes();
  file->path_ = path;
  Status st = file->Parse();
  if (!st.ok()) return st.WithContext(path);
  return file;
}

Result<std::unique_ptr<GgufFile>> GgufFile::FromBytes(std::span<const uint8_t> bytes,
                                                      std::string name) {
  std::unique_ptr<GgufFile> file(new GgufFile());
  file->bytes_ = bytes;
  file->path_ = std::move(name);
  Status st = file->Parse();
  if (!st.ok()) return st.WithContext(file->path_);
  return file;
}

Status GgufFile::Parse() {
  Parser p(bytes_);
  if (bytes_.size() < 4) {
    return Status::Corrupt("not a GGUF file: only " + std::to_string(bytes_.size()) +
                           " bytes long");
  }
  if (std::memcmp(bytes_.data(), kMagic, 4) != 0) {
    std::string got;
    for (int k = 0; k < 4; ++k) {
      const char c = static_cast<char>(bytes_[k]);
      got.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    }
    return Status::Corrupt("not a GGUF file: the magic is '" + got + "', expected 'GGUF'");
  }
  uint32_t magic;
  GANNET_RETURN_IF_ERROR(p.Read(&magic, "the magic"));
  GANNET_RETURN_IF_ERROR(p.Read(&version_, "the version"));
  if (version_ != 2 && version_ != 3) {
    if (version_ != 0 && (version_ & 0xFFFF) == 0) {
      return Status::Unsupported(
          "GGUF version field reads " + std::to_string(version_) + " (byte-swapped " +
          std::to_string(__builtin_bswap32(version_)) +
          "): the file is in the wrong byte order (big-endian GGUF is not supported)");
    }
    return Status::Unsupported("GGUF version " + std::to_string(version_) +
                               " is not supported (only versions 2 and 3)");
  }
  int64_t n_tensors = 0, n_kv = 0;
  GANNET_RETURN_IF_ERROR(p.Read(&n_tensors, "the tensor count"));
  GANNET_RETURN_IF_ERROR(p.Read(&n_kv, "the metadata count"));
  if (n_tensors < 0 || static_cast<uint64_t>(n_tensors) > p.remaining() / kMinTensorInfoBytes) {
    return Status::Corrupt("the header claims " + std::to_string(n_tensors) +
                           " tensors, impossible in the " + std::to_string(p.remaining()) +
                           " bytes that remain");
  }
  if (n_kv < 0 || static_cast<uint64_t>(n_kv) > p.remaining() / kMinKvBytes) {
    return Status::Corrupt("the header claims " + std::to_string(n_kv) +
                           " metadata entries, impossible in the " + std::to_string(p.remaining()) +
                           " bytes that remain");
  }

  // Metadata.
  GANNET_RETURN_IF_ERROR(p.Charge(static_cast<uint64_t>(n_kv) * (sizeof(kv_[0]) + 64)));
  kv_.reserve(n_kv);
  for (int64_t k = 0; k < n_kv; ++k) {
    std::string_view key_view;
    GANNET_RETURN_IF_ERROR(
        p.ReadStringView(&key_view, "the key of metadata entry #" + std::to_string(k)));
    GANNET_RETURN_IF_ERROR(p.Charge(key_view.size()));
    std::string key(key_view);
    if (kv_index_.count(key)) return Status::Corrupt("duplicate metadata key " + Quote(key));
    int32_t type = 0;
    GANNET_RETURN_IF_ERROR(p.Read(&type, "the value type of metadata key " + Quote(key)));
    if (!KnownType(type)) {
      return Status::Corrupt("metadata key " + Quote(key) + " has unknown value type " +
                             std::to_string(type));
    }
    GgufValue value;
    GANNET_RETURN_IF_ERROR(p.ReadValue(static_cast<GgufType>(type), key, 0, &value));
    kv_index_.emplace(key, kv_.size());
    kv_.emplace_back(std::move(key), std::move(value));
  }
  if (const GgufValue* a = Find("general.alignment")) {
    if (a->type != GgufType::kUint32) {
      return Status::Corrupt("general.alignment must be a u32, but it is a " +
                             std::string(GgufTypeName(a->type)));
    }
    if (a->u == 0 || !std::has_single_bit(a->u)) {
      return Status::Corrupt("general.alignment must be a power of two, but it is " +
                             std::to_string(a->u));
    }
    alignment_ = static_cast<uint32_t>(a->u);
  }

  // Tensor infos.
  GANNET_RETURN_IF_ERROR(
      p.Charge(static_cast<uint64_t>(n_tensors) * (sizeof(GgufTensorInfo) + 64)));
  tensors_.reserve(n_tensors);
  for (int64_t k = 0; k < n_tensors; ++k) {
    GgufTensorInfo t;
    std::string_view name;
    const std::string label = "tensor #" + std::to_string(k);
    GANNET_RETURN_IF_ERROR(p.ReadStringView(&name, "the name of " + label));
    if (name.size() > kGgufMaxTensorName) {
      return Status::Corrupt("the name of " + label + " (" + Quote(name) + ") is " +
                             std::to_string(name.size()) + " bytes long; the limit is " +
                             std::to_string(kGgufMaxTensorName));
    }
    t.name = std::string(name);
    if (tensor_index_.count(t.name))
      return Status::Corrupt("duplicate tensor name " + Quote(t.name));
    const std::string tn = "tensor " + Quote(t.name);
    uint32_t n_dims = 0;
    GANNET_RETURN_IF_ERROR(p.Read(&n_dims, "the dimension count of " + tn));
    if (n_dims < 1 || n_dims > kGgufMaxDims) {
      return Status::Corrupt(tn + " has n_dims = " + std::to_string(n_dims) + "; it must be 1 to " +
                             std::to_string(kGgufMaxDims));
    }
    t.shape.resize(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      GANNET_RETURN_IF_ERROR(p.Read(&t.shape[d], "the shape of " + tn));
      if (t.shape[d] < 0) {
        return Status::Corrupt(tn + " has a negative dimension: ne[" + std::to_string(d) +
                               "] = " + std::to_string(t.shape[d]));
      }
    }
    int32_t type = 0;
    GANNET_RETURN_IF_ERROR(p.Read(&type, "the type of " + tn));
    GANNET_RETURN_IF_ERROR(p.Read(&t.offset, "the data offset of " + tn));
    const DTypeTraits* traits = FindDType(type);
    if (traits == nullptr) {
      return Status::Unsupported(tn + " has unknown type " + std::to_string(type));
    }
    t.type = traits->type;
    if (t.shape[0] % traits->block_size != 0) {
      return Status::Corrupt(tn + " has ne[0] = " + std::to_string(t.shape[0]) +
                             ", not a multiple of the " + std::string(traits->name) +
                             " block size " + std::to_string(traits->block_size));
    }
    // Elements and bytes, refusing any product that overflows int64.
    const int64_t kMax = std::numeric_limits<int64_t>::max();
    std::optional<int64_t> row = RowBytes(t.type, t.shape[0]);
    int64_t n_elements = t.shape[0];
    int64_t n_bytes = row.value_or(-1);
    bool overflow = !row.has_value();
    for (uint32_t d = 1; d < n_dims && !overflow; ++d) {
      const int64_t ne = t.shape[d];
      if (ne != 0 && (n_elements > kMax / ne || n_bytes > kMax / ne)) {
        overflow = true;
        break;
      }
      n_elements *= ne;
      n_bytes *= ne;
    }
    if (overflow) {
      return Status::Corrupt(tn + " has shape " + ShapeString(t.shape) +
                             ", too large: its element or byte count overflows 64 bits");
    }
    t.n_elements = n_elements;
    t.n_bytes = n_bytes;
    tensor_index_.emplace(t.name, tensors_.size());
    tensors_.push_back(std::move(t));
  }

  // Tensor data: aligned, inside the file, not overlapping.
  const uint64_t header_end = p.pos();
  data_offset_ = (header_end + alignment_ - 1) / alignment_ * alignment_;
  const uint64_t size = bytes_.size();
  for (GgufTensorInfo& t : tensors_) {
    const std::string tn = "tensor " + Quote(t.name);
    if (t.offset % alignment_ != 0) {
      return Status::Corrupt(tn + " has data offset " + std::to_string(t.offset) +
                             ", not a multiple of the alignment " + std::to_string(alignment_));
    }
    const uint64_t n_bytes = static_cast<uint64_t>(t.n_bytes);
    if (t.offset > size || data_offset_ + t.offset > size ||
        n_bytes > size - data_offset_ - t.offset) {
      // Computed in 128 bits so the message is right even when the sum overflows 64.
      const unsigned __int128 end =
          static_cast<unsigned __int128>(data_offset_) + t.offset + n_bytes;
      std::string end_str;
      if (end >> 64) {
        end_str = "beyond 2^64";
      } else {
        end_str = std::to_string(static_cast<uint64_t>(end));
      }
      return Status::Corrupt(tn + " data ends at byte " + end_str + ", past the end of the file (" +
                             std::to_string(size) + " bytes)");
    }
    t.data = bytes_.subspan(data_offset_ + t.offset, n_bytes);
  }
  std::vector<const GgufTensorInfo*> order;
  order.reserve(tensors_.size());
  for (const GgufTensorInfo& t : tensors_) {
    if (t.n_bytes > 0) order.push_back(&t);
  }
  std::sort(order.begin(), order.end(),
            [](const GgufTensorInfo* a, const GgufTensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensorInfo& a = *order[k - 1];
    const GgufTensorInfo& b = *order[k];
    if (a.offset + static_cast<uint64_t>(a.n_bytes) > b.offset) {
      return Status::Corrupt("tensors " + Quote(a.name) + " (data bytes " +
                             std::to_string(a.offset) + ".." +
                             std::to_string(a.offset + a.n_bytes) + ") and " + Quote(b.name) +
                             " (from byte " + std::to_string(b.offset) + ") overlap");
    }
  }
  return Status::Ok();
}

const GgufValue* GgufFile::Find(std::string_view key) const {
  auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const GgufTensorInfo* GgufFile::FindTensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

Status Missing(std::string_view key) {
  return Status::NotFound("metadata key " + Quote(key) + " is missing");
}

std::string TypeDescription(const GgufValue& v) {
  if (!v.is_array()) return std::string(GgufTypeName(v.type));
  return "array of " + std::string(GgufTypeName(v.elem_type));
}

Status WrongType(std::string_view key, std::string_view wanted, const GgufValue& v) {
  return Status::InvalidArgument("metadata key " + Quote(key) + " should be " +
                                 std::string(wanted) + " but is " + TypeDescription(v));
}

}  // namespace

Result<std::string> GgufFile::GetString(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (v->type != GgufType::kString) return WrongType(key, "a string", *v);
  return v->s;
}

Result<int64_t> GgufFile::GetInt(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (!v->is_integer()) return WrongType(key, "an integer", *v);
  std::optional<int64_t> x = v->AsInt();
  if (!x) {
    return Status::OutOfRange("metadata key " + Quote(key) + " = " + v->ToString() +
                              " does not fit in int64");
  }
  return *x;
}

Result<double> GgufFile::GetFloat(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  std::optional<double> x = v->AsDouble();
  if (!x) return WrongType(key, "a number", *v);
  return *x;
}

Result<bool> GgufFile::GetBool(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (v->type != GgufType::kBool) return WrongType(key, "a bool", *v);
  return v->u != 0;
}

Result<int64_t> GgufFile::GetIntOr(std::string_view key, int64_t dflt) const {
  if (!Find(key)) return dflt;
  return GetInt(key);
}

Result<double> GgufFile::GetFloatOr(std::string_view key, double dflt) const {
  if (!Find(key)) return dflt;
  return GetFloat(key);
}

Result<bool> GgufFile::GetBoolOr(std::string_view key, bool dflt) const {
  if (!Find(key)) return dflt;
  return GetBool(key);
}

Result<std::string> GgufFile::GetStringOr(std::string_view key, std::string dflt) const {
  if (!Find(key)) return dflt;
  return GetString(key);
}

Result<std::vector<std::string>> GgufFile::GetStringArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (!v->is_array() || v->elem_type != GgufType::kString) {
    return WrongType(key, "an array of string", *v);
  }
  return std::vector<std::string>(v->strings.begin(), v->strings.end());
}

Result<std::vector<float>> GgufFile::GetFloatArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  if (!v->is_array() ||
      (v->elem_type != GgufType::kFloat32 && v->elem_type != GgufType::kFloat64)) {
    return WrongType(key, "an array of f32", *v);
  }
  std::vector<float> out(v->count);
  if (v->elem_type == GgufType::kFloat32) {
    std::memcpy(out.data(), v->raw.data(), v->count * sizeof(float));
  } else {
    for (uint64_t k = 0; k < v->count; ++k) out[k] = static_cast<float>(v->At(k).f);
  }
  return out;
}

Result<std::vector<int64_t>> GgufFile::GetIntArray(std::string_view key) const {
  const GgufValue* v = Find(key);
  if (!v) return Missing(key);
  GgufValue probe;
  probe.type = v->elem_type;
  if (!v->is_array() || !probe.is_integer()) return WrongType(key, "an array of integers", *v);
  std::vector<int64_t> out(v->count);
  for (uint64_t k = 0; k < v->count; ++k) {
    std::optional<int64_t> x = v->At(k).AsInt();
    if (!x) {
      return Status::OutOfRange("metadata key " + Quote(key) + " element #" + std::to_string(k) +
                                " does not fit in int64");
    }
    out[k] = *x;
  }
  return out;
}

}  // namespace gannet
