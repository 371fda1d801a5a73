// GGUF reader (versions 2 and 3): metadata, tensor infos and tensor data of a memory-mapped file.
//
// Every count, length, offset, size, type and shape is checked against the file before use;
// a malformed file yields a Status naming the problem, never a crash, hang or huge allocation.
// Thread-safety: a GgufFile is immutable after Open(); concurrent readers are fine.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/mmap_file.h"
#include "base/status.h"
#include "tensor/dtype.h"

namespace gannet {

// GGUF metadata value types (gguf.h enum gguf_type).
enum class GgufType : int32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};
std::string_view GgufTypeName(GgufType t);

// One metadata value. Scalars are widened into one of three slots. Arrays keep their element
// type; their elements are not copied: numeric and bool elements stay in `raw` and strings are
// views, both pointing into the file's bytes, so a GgufValue read from a file is valid only while
// that GgufFile (or the bytes given to FromBytes) lives. Nested arrays (which llama.cpp rejects;
// gannet reads them, depth-bounded) are decoded into `elems`.
struct GgufValue {
  GgufType type = GgufType::kUint8;
  // Scalars: exactly one of these is meaningful, chosen by `type`.
  uint64_t u = 0;  // unsigned ints and bool
  int64_t i = 0;   // signed ints
  double f = 0;    // floats
  std::string s;   // kString
  // kArray:
  GgufType elem_type = GgufType::kUint8;
  uint64_t count = 0;                     // number of elements
  std::span<const uint8_t> raw;           // numeric / bool elements: count * size, little-endian
  std::vector<std::string_view> strings;  // kString elements
  std::vector<GgufValue> elems;           // kArray elements (nested arrays)

  bool is_array() const { return type == GgufType::kArray; }
  bool is_integer() const;
  bool is_float() const;
  // Numeric conversions; nullopt when the value is not numeric or does not fit.
  std::optional<int64_t> AsInt() const;
  std::optional<uint64_t> AsUint() const;
  std::optional<double> AsDouble() const;
  // Array element `index` as a scalar (or nested array) value. REQUIRES: is_array(), index < count.
  GgufValue At(size_t index) const;
  // Readable form, arrays shortened to their first `max_elems` elements: "[1, 2, 3, ... 1000
  // items]". Strings are quoted and escaped; a string longer than `max_string` bytes is cut (0 = no
  // limit).
  std::string ToString(size_t max_elems = 8, size_t max_string = 0) const;
};

// Size in bytes of one scalar of type t in a file; 0 for kString / kArray / unknown.
size_t GgufScalarSize(GgufType t);

struct GgufTensorInfo {
  std::string name;
  DType type = DType::kF32;
  std::vector<int64_t> shape;  // ggml order: shape[0] is innermost (contiguous)
  uint64_t offset = 0;         // relative to the data section
  int64_t n_elements = 0;
  int64_t n_bytes = 0;
  std::span<const uint8_t> data;  // inside the mapping; validated in range and aligned
};

class GgufFile {
 public:
  // Opens, maps and validates the whole header (metadata and tensor infos) and tensor ranges.
  static Result<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Same, over bytes the caller keeps alive (tests, fuzzing).
  static Result<std::unique_ptr<GgufFile>> FromBytes(std::span<const uint8_t> bytes,
                                                     std::string name);

  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }
  uint64_t file_size() const { return bytes_.size(); }
  const std::string& path() const { return path_; }

  // Metadata in file order.
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return kv_; }
  const GgufValue* Find(std::string_view key) const;

  // Typed getters: NotFound when missing, InvalidArgument (naming the key and the actual type) when
  // the type is wrong.
  Result<std::string> GetString(std::string_view key) const;
  Result<int64_t> GetInt(std::string_view key) const;   // any integer type
  Result<double> GetFloat(std::string_view key) const;  // any numeric type
  Result<bool> GetBool(std::string_view key) const;
  // With a default for optional keys (wrong type is still an error).
  Result<int64_t> GetIntOr(std::string_view key, int64_t dflt) const;
  Result<double> GetFloatOr(std::string_view key, double dflt) const;
  Result<bool> GetBoolOr(std::string_view key, bool dflt) const;
  Result<std::string> GetStringOr(std::string_view key, std::string dflt) const;
  // Arrays.
  Result<std::vector<std::string>> GetStringArray(std::string_view key) const;
  Result<std::vector<float>> GetFloatArray(std::string_view key) const;  // f32 or f64 elements
  Result<std::vector<int64_t>> GetIntArray(std::string_view key) const;  // any integer elements

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* FindTensor(std::string_view name) const;
  // Lets the kernel drop the pages of `bytes` (part of a tensor's data) from memory after a
  // one-pass read (MmapFile::DropPages); the data stays readable.
  void DropPages(std::span<const uint8_t> bytes) const { file_.DropPages(bytes); }

 private:
  GgufFile() = default;
  Status Parse();

  MmapFile file_;  // empty when built FromBytes
  std::span<const uint8_t> bytes_;
  std::string path_;
  uint32_t version_ = 0;
  uint32_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

// Limits the reader enforces beyond the format itself.
inline constexpr size_t kGgufMaxTensorName = 63;  // llama.cpp: name length < GGML_MAX_NAME (64)
inline constexpr int kGgufMaxArrayDepth = 8;      // nesting of arrays of arrays
inline constexpr uint32_t kGgufDefaultAlignment = 32;
inline constexpr uint32_t kGgufMaxDims = 4;

// `gannet inspect`: a header, the metadata as "key = value" lines (arrays and long strings
// shortened unless show_all_metadata) and a tensor table (index, name, type, shape, bytes) with
// totals.
std::string FormatGgufSummary(const GgufFile& file, bool show_all_metadata);

}  // namespace gannet
