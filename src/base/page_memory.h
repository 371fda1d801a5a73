// PageMemory: a block of anonymous, page-aligned, zero-filled memory of its own mapping, for large
// long-lived data streamed on every step (a model's weights). Move-only; unmaps on destruction.
//
// With huge pages asked for, the block starts on a 2 MiB boundary and is advised
// MADV_HUGEPAGE, so that where the kernel has transparent huge pages (even in its `madvise`
// mode) each 2 MiB of the block is one TLB entry and one page the hardware prefetchers may run
// through, instead of 512 pages of 4 KiB at whose borders they stop. Without huge pages the
// kernel may still back it with small pages; the contents are the same either way.
// Thread-safety: the object is not synchronised; its bytes are plain memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/status.h"

namespace gannet {

class PageMemory {
 public:
  PageMemory() = default;
  ~PageMemory();
  PageMemory(PageMemory&& other) noexcept;
  PageMemory& operator=(PageMemory&& other) noexcept;
  PageMemory(const PageMemory&) = delete;
  PageMemory& operator=(const PageMemory&) = delete;

  // `bytes` of zeroed memory (rounded up to whole pages; to whole 2 MiB with huge_pages). The
  // pages are not touched here: each is faulted in when first written. ResourceExhausted when
  // the mapping fails. bytes == 0 gives an empty block.
  static Result<PageMemory> Allocate(size_t bytes, bool huge_pages);

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }  // the usable bytes, >= the bytes asked for

  static constexpr size_t kHugePageBytes = size_t{2} << 20;

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace gannet
