#include "formats/gguf_writer.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>

namespace gannet {
namespace {

constexpr uint32_t kVersion = 3;

class Encoder {
 public:
  template <typename T>
  void Put(T v) {
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  void PutBytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  void PutString(std::string_view s) {
    Put<uint64_t>(s.size());
    PutBytes(s.data(), s.size());
  }
  void PadTo(uint64_t alignment) {
    out_.resize((out_.size() + alignment - 1) / alignment * alignment, 0);
  }
  std::vector<uint8_t>& bytes() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

// Encodes the payload of `v` (no type tag). Fails on a value whose parts disagree.
Status EncodePayload(const GgufValue& v, int depth, Encoder* e) {
  switch (v.type) {
    case GgufType::kUint8:
      e->Put<uint8_t>(static_cast<uint8_t>(v.u));
      return Status::Ok();
    case GgufType::kInt8:
      e->Put<int8_t>(static_cast<int8_t>(v.i));
      return Status::Ok();
    case GgufType::kUint16:
      e->Put<uint16_t>(static_cast<uint16_t>(v.u));
      return Status::Ok();
    case GgufType::kInt16:
      e->Put<int16_t>(static_cast<int16_t>(v.i));
      return Status::Ok();
    case GgufType::kUint32:
      e->Put<uint32_t>(static_cast<uint32_t>(v.u));
      return Status::Ok();
    case GgufType::kInt32:
      e->Put<int32_t>(static_cast<int32_t>(v.i));
      return Status::Ok();
    case GgufType::kUint64:
      e->Put<uint64_t>(v.u);
      return Status::Ok();
    case GgufType::kInt64:
      e->Put<int64_t>(v.i);
      return Status::Ok();
    case GgufType::kFloat32:
      e->Put<float>(static_cast<float>(v.f));
      return Status::Ok();
    case GgufType::kFloat64:
      e->Put<double>(v.f);
      return Status::Ok();
    case GgufType::kBool:
      e->Put<uint8_t>(v.u ? 1 : 0);
      return Status::Ok();
    case GgufType::kString:
      e->PutString(v.s);
      return Status::Ok();
    case GgufType::kArray:
      break;
  }
  if (depth >= kGgufMaxArrayDepth) {
    return Status::InvalidArgument("arrays nested more than " + std::to_string(kGgufMaxArrayDepth) +
                                   " levels deep");
  }
  e->Put<int32_t>(static_cast<int32_t>(v.elem_type));
  e->Put<uint64_t>(v.count);
  const size_t scalar = GgufScalarSize(v.elem_type);
  if (scalar) {
    if (v.raw.size() != v.count * scalar) {
      return Status::InvalidArgument("array of " + std::to_string(v.count) + " " +
                                     std::string(GgufTypeName(v.elem_type)) + " has " +
                                     std::to_string(v.raw.size()) + " bytes of elements");
    }
    e->PutBytes(v.raw.data(), v.raw.size());
    return Status::Ok();
  }
  if (v.elem_type == GgufType::kString) {
    if (v.strings.size() != v.count) return Status::InvalidArgument("string array count mismatch");
    for (std::string_view s : v.strings) e->PutString(s);
    return Status::Ok();
  }
  if (v.elem_type != GgufType::kArray || v.elems.size() != v.count) {
    return Status::InvalidArgument("array of " + std::string(GgufTypeName(v.elem_type)) +
                                   " is inconsistent");
  }
  for (const GgufValue& child : v.elems) {
    if (child.type != GgufType::kArray) {
      return Status::InvalidArgument("an array of arrays holds a " +
                                     std::string(GgufTypeName(child.type)));
    }
    GANNET_RETURN_IF_ERROR(EncodePayload(child, depth + 1, e));
  }
  return Status::Ok();
}

template <typename T>
std::vector<uint8_t> EncodeScalar(GgufType type, T v) {
  Encoder e;
  e.Put<int32_t>(static_cast<int32_t>(type));
  e.Put<T>(v);
  return std::move(e.bytes());
}

uint64_t PadUp(uint64_t x, uint64_t n) { return (x + n - 1) / n * n; }

}  // namespace

void GgufWriter::SetEncoded(std::string_view key, std::vector<uint8_t> encoded) {
  if (key == "general.alignment") {
    // The key defines the data alignment; one that is not a u32 power of two (written on purpose
    // by tests) leaves the default.
    alignment_ = kGgufDefaultAlignment;
    int32_t type = -1;
    uint32_t a = 0;
    if (encoded.size() == 8) {
      std::memcpy(&type, encoded.data(), 4);
      std::memcpy(&a, encoded.data() + 4, 4);
    }
    if (type == static_cast<int32_t>(GgufType::kUint32)) {
      if (a != 0 && std::has_single_bit(a)) alignment_ = a;
    }
  }
  for (auto& [k, v] : kv_) {
    if (k == key) {
      v = std::move(encoded);
      return;
    }
  }
  kv_.emplace_back(std::string(key), std::move(encoded));
}

void GgufWriter::SetUint8(std::string_view key, uint8_t v) {
  SetEncoded(key, EncodeScalar(GgufType::kUint8, v));
}
void GgufWriter::SetInt8(std::string_view key, int8_t v) {
  SetEncoded(key, EncodeScalar(GgufType::kInt8, v));
}
void GgufWriter::SetUint16(std::string_view key, uint16_t v) {
  SetEncoded(key, EncodeScalar(GgufType::kUint16, v));
}
void GgufWriter::SetInt16(std::string_view key, int16_t v) {
  SetEncoded(key, EncodeScalar(GgufType::kInt16, v));
}
void GgufWriter::SetUint32(std::string_view key, uint32_t v) {
  SetEncoded(key, EncodeScalar(GgufType::kUint32, v));
}
void GgufWriter::SetInt32(std::string_view key, int32_t v) {
  SetEncoded(key, EncodeScalar(GgufType::kInt32, v));
}
void GgufWriter::SetUint64(std::string_view key, uint64_t v) {
  SetEncoded(key, EncodeScalar(GgufType::kUint64, v));
}
void GgufWriter::SetInt64(std::string_view key, int64_t v) {
  SetEncoded(key, EncodeScalar(GgufType::kInt64, v));
}
void GgufWriter::SetFloat32(std::string_view key, float v) {
  SetEncoded(key, EncodeScalar(GgufType::kFloat32, v));
}
void GgufWriter::SetFloat64(std::string_view key, double v) {
  SetEncoded(key, EncodeScalar(GgufType::kFloat64, v));
}
void GgufWriter::SetBool(std::string_view key, bool v) {
  SetEncoded(key, EncodeScalar<uint8_t>(GgufType::kBool, v ? 1 : 0));
}

void GgufWriter::SetString(std::string_view key, std::string_view v) {
  Encoder e;
  e.Put<int32_t>(static_cast<int32_t>(GgufType::kString));
  e.PutString(v);
  SetEncoded(key, std::move(e.bytes()));
}

void GgufWriter::SetRawArray(std::string_view key, GgufType elem_type, const void* data,
                             size_t count, size_t elem_size) {
  Encoder e;
  e.Put<int32_t>(static_cast<int32_t>(GgufType::kArray));
  e.Put<int32_t>(static_cast<int32_t>(elem_type));
  e.Put<uint64_t>(count);
  if (count) e.PutBytes(data, count * elem_size);
  SetEncoded(key, std::move(e.bytes()));
}

void GgufWriter::SetBoolArray(std::string_view key, const std::vector<bool>& values) {
  std::vector<uint8_t> bytes(values.begin(), values.end());
  SetRawArray(key, GgufType::kBool, bytes.data(), bytes.size(), 1);
}

void GgufWriter::SetStringArray(std::string_view key, std::span<const std::string> values) {
  Encoder e;
  e.Put<int32_t>(static_cast<int32_t>(GgufType::kArray));
  e.Put<int32_t>(static_cast<int32_t>(GgufType::kString));
  e.Put<uint64_t>(values.size());
  for (const std::string& s : values) e.PutString(s);
  SetEncoded(key, std::move(e.bytes()));
}

Status GgufWriter::SetValue(std::string_view key, const GgufValue& value) {
  Encoder e;
  e.Put<int32_t>(static_cast<int32_t>(value.type));
  Status st = EncodePayload(value, 0, &e);
  if (!st.ok()) return st.WithContext("metadata key '" + std::string(key) + "'");
  SetEncoded(key, std::move(e.bytes()));
  return Status::Ok();
}

Status GgufWriter::SetAlignment(uint32_t alignment) {
  if (alignment == 0 || !std::has_single_bit(alignment)) {
    return Status::InvalidArgument("GGUF alignment must be a power of two, got " +
                                   std::to_string(alignment));
  }
  SetUint32("general.alignment", alignment);
  return Status::Ok();
}

void GgufWriter::Remove(std::string_view key) {
  if (key == "general.alignment") alignment_ = kGgufDefaultAlignment;
  for (auto it = kv_.begin(); it != kv_.end(); ++it) {
    if (it->first == key) {
      kv_.erase(it);
      return;
    }
  }
}

bool GgufWriter::Has(std::string_view key) const {
  for (const auto& kv : kv_) {
    if (kv.first == key) return true;
  }
  return false;
}

Status GgufWriter::CheckTensor(std::string_view name, DType type, const std::vector<int64_t>& shape,
                               size_t data_size) const {
  const std::string tn = "tensor '" + std::string(name) + "'";
  if (name.size() > kGgufMaxTensorName) {
    return Status::InvalidArgument(tn + ": name longer than " + std::to_string(kGgufMaxTensorName) +
                                   " bytes");
  }
  for (const Tensor& t : tensors_) {
    if (t.name == name) return Status::InvalidArgument(tn + " added twice");
  }
  if (shape.empty() || shape.size() > kGgufMaxDims) {
    return Status::InvalidArgument(tn + ": 1 to 4 dimensions, got " + std::to_string(shape.size()));
  }
  if (FindDType(static_cast<int32_t>(type)) == nullptr) {
    return Status::InvalidArgument(tn + ": unknown type " +
                                   std::to_string(static_cast<int32_t>(type)));
  }
  std::optional<int64_t> bytes = RowBytes(type, shape[0]);
  if (!bytes) {
    return Status::InvalidArgument(tn + ": ne[0] = " + std::to_string(shape[0]) +
                                   " is not a multiple of the block size of " +
                                   std::string(DTypeName(type)));
  }
  int64_t n = *bytes;
  for (size_t d = 1; d < shape.size(); ++d) {
    if (shape[d] < 0 || (shape[d] != 0 && n > std::numeric_limits<int64_t>::max() / shape[d])) {
      return Status::InvalidArgument(tn + ": bad shape");
    }
    n *= shape[d];
  }
  if (static_cast<uint64_t>(n) != data_size) {
    return Status::InvalidArgument(tn + ": shape needs " + std::to_string(n) + " bytes, got " +
                                   std::to_string(data_size));
  }
  return Status::Ok();
}

Status GgufWriter::AddTensor(std::string_view name, DType type, std::vector<int64_t> shape,
                             std::vector<uint8_t> data) {
  GANNET_RETURN_IF_ERROR(CheckTensor(name, type, shape, data.size()));
  Tensor t;
  t.name = std::string(name);
  t.type = type;
  t.shape = std::move(shape);
  t.owned = std::move(data);
  tensors_.push_back(std::move(t));
  // The span is taken after the move into the vector's element; later reallocations of tensors_
  // move the inner vector, which keeps its heap buffer, so the span stays valid.
  tensors_.back().data = tensors_.back().owned;
  tensors_.back().size = tensors_.back().owned.size();
  return Status::Ok();
}

Status GgufWriter::AddTensorView(std::string_view name, DType type, std::vector<int64_t> shape,
                                 std::span<const uint8_t> data) {
  GANNET_RETURN_IF_ERROR(CheckTensor(name, type, shape, data.size()));
  Tensor t;
  t.name = std::string(name);
  t.type = type;
  t.shape = std::move(shape);
  t.data = data;
  t.size = data.size();
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

Status GgufWriter::AddTensorInfo(std::string_view name, DType type, std::vector<int64_t> shape) {
  if (shape.empty() || shape.size() > kGgufMaxDims) {
    return Status::InvalidArgument("tensor '" + std::string(name) + "': 1 to 4 dimensions, got " +
                                   std::to_string(shape.size()));
  }
  // The size the shape implies (CheckTensor then reports a bad name, type or row length).
  std::optional<int64_t> n = RowBytes(type, shape[0]);
  int64_t bytes = n.value_or(0);
  for (size_t d = 1; d < shape.size(); ++d) {
    if (shape[d] < 0 || (shape[d] != 0 && bytes > std::numeric_limits<int64_t>::max() / shape[d])) {
      return Status::InvalidArgument("tensor '" + std::string(name) + "': bad shape");
    }
    bytes *= shape[d];
  }
  const uint64_t size = static_cast<uint64_t>(bytes);
  GANNET_RETURN_IF_ERROR(CheckTensor(name, type, shape, size));
  Tensor t;
  t.name = std::string(name);
  t.type = type;
  t.shape = std::move(shape);
  t.size = size;
  t.declared = true;
  tensors_.push_back(std::move(t));
  return Status::Ok();
}

std::vector<uint8_t> GgufWriter::Header() const {
  Encoder e;
  e.PutBytes("GGUF", 4);
  e.Put<uint32_t>(kVersion);
  e.Put<int64_t>(static_cast<int64_t>(tensors_.size()));
  e.Put<int64_t>(static_cast<int64_t>(kv_.size()));
  for (const auto& [key, encoded] : kv_) {
    e.PutString(key);
    e.PutBytes(encoded.data(), encoded.size());
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    e.PutString(t.name);
    e.Put<uint32_t>(static_cast<uint32_t>(t.shape.size()));
    for (int64_t d : t.shape) e.Put<int64_t>(d);
    e.Put<int32_t>(static_cast<int32_t>(t.type));
    e.Put<uint64_t>(offset);
    offset += PadUp(t.size, alignment_);
  }
  e.PadTo(alignment_);
  return std::move(e.bytes());
}

uint64_t GgufWriter::DataSize() const {
  uint64_t n = 0;
  for (const Tensor& t : tensors_) n += PadUp(t.size, alignment_);
  return n;
}

std::vector<uint8_t> GgufWriter::Serialize() const {
  std::vector<uint8_t> out = Header();
  out.reserve(out.size() + DataSize());
  for (const Tensor& t : tensors_) {
    if (t.declared) {
      out.resize(out.size() + t.size, 0);
    } else {
      out.insert(out.end(), t.data.begin(), t.data.end());
    }
    out.resize(PadUp(out.size(), alignment_), 0);
  }
  return out;
}

Status GgufWriter::Write(const std::string& path, const TensorProducer& produce) const {
  for (const Tensor& t : tensors_) {
    if (t.declared && !produce) {
      return Status::InvalidArgument("tensor '" + t.name +
                                     "' was declared without data and no producer was given");
    }
  }
  struct Closer {
    void operator()(std::FILE* f) const { std::fclose(f); }
  };
  std::unique_ptr<std::FILE, Closer> f(std::fopen(path.c_str(), "wb"));
  if (!f) return Status::IoError("cannot create " + path + ": " + std::strerror(errno));
  const std::vector<uint8_t> header = Header();
  const std::vector<uint8_t> zeros(alignment_, 0);
  auto put = [&](const void* p, size_t n) -> Status {
    if (n == 0 || std::fwrite(p, 1, n, f.get()) == n) return Status::Ok();
    return Status::IoError("writing " + path + " failed: " + std::strerror(errno));
  };
  GANNET_RETURN_IF_ERROR(put(header.data(), header.size()));
  for (size_t i = 0; i < tensors_.size(); ++i) {
    const Tensor& t = tensors_[i];
    if (t.declared) {
      uint64_t written = 0;
      const ByteSink sink = [&](std::span<const uint8_t> piece) -> Status {
        if (piece.size() > t.size - written) {
          return Status::InvalidArgument("tensor '" + t.name +
                                         "': producer yielded more than its " +
                                         std::to_string(t.size) + " bytes");
        }
        written += piece.size();
        return put(piece.data(), piece.size());
      };
      GANNET_RETURN_IF_ERROR(produce(i, sink));
      if (written != t.size) {
        return Status::InvalidArgument("tensor '" + t.name + "': producer yielded " +
                                       std::to_string(written) + " of its " +
                                       std::to_string(t.size) + " bytes");
      }
    } else {
      GANNET_RETURN_IF_ERROR(put(t.data.data(), t.data.size()));
    }
    GANNET_RETURN_IF_ERROR(put(zeros.data(), PadUp(t.size, alignment_) - t.size));
  }
  if (std::fclose(f.release()) != 0) {
    return Status::IoError("closing " + path + " failed: " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace gannet
