// A read-only memory-mapped file. Move-only; unmaps on destruction.
// Thread-safety: the mapping is immutable, any number of threads may read it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "base/status.h"

namespace gannet {

class MmapFile {
 public:
  MmapFile() = default;
  ~MmapFile();
  MmapFile(MmapFile&& other) noexcept;
  MmapFile& operator=(MmapFile&& other) noexcept;
  MmapFile(const MmapFile&) = delete;
  MmapFile& operator=(const MmapFile&) = delete;

  // Maps the whole file read-only. An empty file maps to an empty span.
  static Result<MmapFile> Open(const std::string& path);

  std::span<const uint8_t> bytes() const { return {data_, size_}; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

  // Tells the kernel that the whole pages inside `range` (a part of this mapping) will not be read
  // again soon, so one pass over a file larger than memory does not keep it all resident. The
  // bytes stay readable: they are paged in again from the file. Ignores a range outside the
  // mapping.
  void DropPages(std::span<const uint8_t> range) const;

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace gannet
