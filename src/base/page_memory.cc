#include "base/page_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>

namespace gannet {

PageMemory::~PageMemory() {
  if (data_ != nullptr) munmap(data_, size_);
}

PageMemory::PageMemory(PageMemory&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

PageMemory& PageMemory::operator=(PageMemory&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Result<PageMemory> PageMemory::Allocate(size_t bytes, bool huge_pages) {
  PageMemory m;
  if (bytes == 0) return m;
  const auto page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  const size_t align = huge_pages ? kHugePageBytes : page;
  const size_t size = (bytes + align - 1) / align * align;
  // mmap only promises page alignment: map one alignment more and unmap the ends around the
  // aligned part.
  const size_t span = huge_pages ? size + align : size;
  void* p = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return Status::ResourceExhausted("cannot map " + std::to_string(bytes) +
                                     " bytes: " + std::strerror(errno));
  }
  auto* base = static_cast<uint8_t*>(p);
  auto* aligned = base;
  if (huge_pages) {
    const auto at = reinterpret_cast<uintptr_t>(base);
    aligned = base + ((at + align - 1) / align * align - at);
    if (aligned > base) munmap(base, static_cast<size_t>(aligned - base));
    const size_t tail = static_cast<size_t>(base + span - (aligned + size));
    if (tail > 0) munmap(aligned + size, tail);
    // Advice only: a kernel without transparent huge pages refuses it and the block keeps small
    // pages.
    madvise(aligned, size, MADV_HUGEPAGE);
  }
  m.data_ = aligned;
  m.size_ = size;
  return m;
}

}  // namespace gannet
