// libFuzzer target: the log-probability file `gannet perplexity --kl-divergence IN` reads
// (cli/kld_file.h). The file comes from elsewhere (another machine, another engine's run), so any
// bytes must be refused or read within bounds. The input is written to a temporary file, opened,
// and every record read. Checks: an opened file's header is within the format's limits; each
// record read has top_k ids, all inside the vocabulary; reading ends with OutOfRange exactly after
// the header's record count, or earlier with another error.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cli/kld_file.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = [] {
    const char* dir = std::getenv("TMPDIR");
    return std::string(dir != nullptr ? dir : "/tmp") + "/gannet-kld-fuzz-" +
           std::to_string(getpid()) + ".bin";
  }();
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (f == nullptr) return 0;
    const bool written = size == 0 || std::fwrite(data, 1, size, f) == size;
    std::fclose(f);
    if (!written) return 0;
  }
  gannet::Result<gannet::cli::KldReader> reader = gannet::cli::KldReader::Open(path);
  if (!reader.ok()) return 0;
  const gannet::cli::KldHeader& h = reader->header();
  Check(h.top_k >= 1 && h.top_k <= gannet::cli::kKldMaxTopK && h.top_k <= h.n_vocab);
  Check(h.n_ctx > 0 && h.n_chunks > 0);
  Check(static_cast<int64_t>(h.tokens.size()) == h.n_chunks * h.n_ctx);
  const int64_t records = h.n_chunks * h.scored_per_chunk();
  gannet::cli::KldRecord r;
  int64_t read = 0;
  for (;; ++read) {
    gannet::Status s = reader->Read(&r);
    if (!s.ok()) {
      Check(read <= records);
      if (s.code() == gannet::StatusCode::kOutOfRange) Check(read == records);
      break;
    }
    Check(read < records);
    Check(static_cast<int32_t>(r.ids.size()) == h.top_k &&
          static_cast<int32_t>(r.logprobs.size()) == h.top_k);
    for (int32_t id : r.ids) Check(id >= 0 && id < h.n_vocab);
  }
  return 0;
}
