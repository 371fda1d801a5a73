// SHA-256 (FIPS 180-4), streaming: the checksum the hub publishes for every large file, computed
// while a download is written so a file is never read twice.
//
// Thread-safety: a Sha256 is used by one thread at a time.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "base/status.h"

namespace gannet::hub {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  // The digest as 64 lower-case hex digits. REQUIRES: called once; the object is spent after.
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);

  std::array<uint32_t, 8> h_;
  std::array<uint8_t, 64> buf_{};
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

// Feeds the first `n_bytes` of `path` (all of it when n_bytes < 0) into `sha`.
Status HashFile(const std::filesystem::path& path, int64_t n_bytes, Sha256& sha);

// True for 64 hex digits (either case): the form of a sha256 in the hub's answers.
bool IsSha256Hex(std::string_view s);

}  // namespace gannet::hub
