// GGUF writer (version 3, little-endian): metadata of every value type, tensors of any known DType.
//
// Metadata keeps insertion order; setting a key again replaces its value in place. Tensors are laid
// out in the order added, each at a multiple of the alignment (the llama.cpp convention: offset =
// running sum of padded sizes). The writer checks what it is given (names, shapes, byte counts) but
// not the metadata: tests use it to write well-formed files with bad metadata on purpose.
// Thread-safety: none; one writer per thread.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/status.h"
#include "formats/gguf.h"
#include "tensor/dtype.h"

namespace gannet {

class GgufWriter {
 public:
  GgufWriter() = default;
  // Move-only: tensors added with AddTensor are referenced by span into their own buffers.
  GgufWriter(GgufWriter&&) = default;
  GgufWriter& operator=(GgufWriter&&) = default;
  GgufWriter(const GgufWriter&) = delete;
  GgufWriter& operator=(const GgufWriter&) = delete;

  // Scalars.
  void SetUint8(std::string_view key, uint8_t v);
  void SetInt8(std::string_view key, int8_t v);
  void SetUint16(std::string_view key, uint16_t v);
  void SetInt16(std::string_view key, int16_t v);
  void SetUint32(std::string_view key, uint32_t v);
  void SetInt32(std::string_view key, int32_t v);
  void SetUint64(std::string_view key, uint64_t v);
  void SetInt64(std::string_view key, int64_t v);
  void SetFloat32(std::string_view key, float v);
  void SetFloat64(std::string_view key, double v);
  void SetBool(std::string_view key, bool v);
  void SetString(std::string_view key, std::string_view v);

  // Arrays. T is one of uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, uint64_t, int64_t,
  // float, double.
  template <typename T>
  void SetArray(std::string_view key, std::span<const T> values);
  template <typename T>
  void SetArray(std::string_view key, const std::vector<T>& values) {
    SetArray(key, std::span<const T>(values));
  }
  void SetBoolArray(std::string_view key, const std::vector<bool>& values);
  void SetStringArray(std::string_view key, std::span<const std::string> values);

  // Any value, including nested arrays and values read from another file (copying metadata from a
  // reader: the reader must still be open). InvalidArgument for an inconsistent value.
  Status SetValue(std::string_view key, const GgufValue& value);

  // Sets the data alignment and writes general.alignment (u32); InvalidArgument unless a power of
  // two. Setting general.alignment by any other setter (e.g. SetValue while copying metadata) also
  // sets the data alignment when the value is a u32 power of two, and the default 32 otherwise.
  Status SetAlignment(uint32_t alignment);
  uint32_t alignment() const { return alignment_; }

  // Removes a key if present.
  void Remove(std::string_view key);
  bool Has(std::string_view key) const;

  // Adds a tensor with `shape` in ggml order (shape[0] innermost). `data` must hold exactly the
  // tensor's bytes. AddTensor takes the bytes; AddTensorView borrows them until Write returns.
  Status AddTensor(std::string_view name, DType type, std::vector<int64_t> shape,
                   std::vector<uint8_t> data);
  Status AddTensorView(std::string_view name, DType type, std::vector<int64_t> shape,
                       std::span<const uint8_t> data);

  // Declares a tensor whose bytes are produced only while the file is written (Write with a
  // producer), so a file larger than memory can be written one piece at a time.
  Status AddTensorInfo(std::string_view name, DType type, std::vector<int64_t> shape);

  // Receives the next consecutive piece of a declared tensor's bytes; an error aborts the write.
  using ByteSink = std::function<Status(std::span<const uint8_t>)>;
  // Produces declared tensor number `index` (its position among all tensors, in the order added)
  // by calling `sink` with its bytes in order, in any number of pieces.
  using TensorProducer = std::function<Status(size_t index, const ByteSink& sink)>;

  // The whole file in memory (tests, small files). Declared tensors come out as zero bytes.
  std::vector<uint8_t> Serialize() const;
  // Writes the file to `path` (streamed: tensor data is not copied into one buffer). Declared
  // tensors are asked of `produce` in file order; InvalidArgument when there are declared tensors
  // and no producer, or when a producer yields more or fewer bytes than its tensor's size. A failed
  // write may leave a partial file behind (the caller decides whether to remove it).
  Status Write(const std::string& path, const TensorProducer& produce = nullptr) const;

 private:
  struct Tensor {
    std::string name;
    DType type = DType::kF32;
    std::vector<int64_t> shape;
    std::vector<uint8_t> owned;
    std::span<const uint8_t> data;
    uint64_t size = 0;      // bytes of data; for a declared tensor, what the producer must yield
    bool declared = false;  // added by AddTensorInfo: no data until Write
  };

  // Encoded value (type tag + payload) for `key`, replacing an earlier one.
  void SetEncoded(std::string_view key, std::vector<uint8_t> encoded);
  void SetRawArray(std::string_view key, GgufType elem_type, const void* data, size_t count,
                   size_t elem_size);
  Status CheckTensor(std::string_view name, DType type, const std::vector<int64_t>& shape,
                     size_t data_size) const;
  // Header, metadata, tensor infos and padding up to the data section.
  std::vector<uint8_t> Header() const;
  uint64_t DataSize() const;

  std::vector<std::pair<std::string, std::vector<uint8_t>>> kv_;
  std::vector<Tensor> tensors_;
  uint32_t alignment_ = kGgufDefaultAlignment;
};

template <typename T>
void GgufWriter::SetArray(std::string_view key, std::span<const T> values) {
  static_assert(std::is_arithmetic_v<T> && !std::is_same_v<T, bool>, "use SetBoolArray");
  GgufType t;
  if constexpr (std::is_same_v<T, uint8_t>)
    t = GgufType::kUint8;
  else if constexpr (std::is_same_v<T, int8_t>)
    t = GgufType::kInt8;
  else if constexpr (std::is_same_v<T, uint16_t>)
    t = GgufType::kUint16;
  else if constexpr (std::is_same_v<T, int16_t>)
    t = GgufType::kInt16;
  else if constexpr (std::is_same_v<T, uint32_t>)
    t = GgufType::kUint32;
  else if constexpr (std::is_same_v<T, int32_t>)
    t = GgufType::kInt32;
  else if constexpr (std::is_same_v<T, uint64_t>)
    t = GgufType::kUint64;
  else if constexpr (std::is_same_v<T, int64_t>)
    t = GgufType::kInt64;
  else if constexpr (std::is_same_v<T, float>)
    t = GgufType::kFloat32;
  else if constexpr (std::is_same_v<T, double>)
    t = GgufType::kFloat64;
  else
    static_assert(sizeof(T) == 0, "unsupported GGUF array element type");
  SetRawArray(key, t, values.data(), values.size(), sizeof(T));
}

}  // namespace gannet
