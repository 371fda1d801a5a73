// The log-probability file of `gannet perplexity --kl-divergence-base OUT` and its reader for
// `--kl-divergence IN`: a base model's next-token distributions at every scored position of the
// perplexity windows, so another model (a different quantization of the same weights, or another
// engine) can be compared with it token by token.
//
// Format (little-endian, version 1):
//   char[8]  magic "GNTKLD01"
//   u32      version (1)
//   u32      top_k                  (1..1024, <= n_vocab)
//   i64      n_vocab, n_ctx, n_chunks
//   i32      tokens[n_chunks * n_ctx]   every window as evaluated (BOS first where the model adds
//   it) n_chunks * (n_ctx - 1 - n_ctx / 2) records, one per scored position, in window order:
//     f32    target_logprob        log p(the token that followed)
//     f32    rest_logprob          log of the mass of every token outside ids (-inf when none)
//     i32    ids[top_k]            the top_k tokens, most probable first
//     f32    logprobs[top_k]       their log-probabilities
//
// Why top-k and not the whole vocabulary: Gemma 3 has 262,144 tokens, so a full f16 row is 512 KiB
// and a 50k-token text scored at -c 512 (97 windows, 24,735 positions) would take 13 GB; with
// top_k = 64 a record is 520 bytes and the same file is 12.9 MB. The KL divergence is then computed
// between the two distributions coarsened to the base's top_k tokens plus one "rest" bucket, a
// lower bound of the full-vocabulary KL divergence (coarsening never increases it) that is exact
// when the base's rest mass is 0; the dropped part is the divergence inside the rest bucket, where
// the base puts rest_logprob of its mass (typically under 1% with k = 64).
//
// Thread-safety: a writer or reader is used by one thread at a time.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/status.h"

namespace gannet::cli {

inline constexpr int32_t kKldDefaultTopK = 64;
inline constexpr int32_t kKldMaxTopK = 1024;

struct KldHeader {
  int32_t top_k = kKldDefaultTopK;
  int64_t n_vocab = 0, n_ctx = 0, n_chunks = 0;
  std::vector<int32_t> tokens;  // [n_chunks * n_ctx]

  // Positions scored per window: the logits at [n_ctx / 2, n_ctx - 1) predict the next token.
  int64_t scored_per_chunk() const { return n_ctx - 1 - n_ctx / 2; }
};

// One scored position of the base model.
struct KldRecord {
  float target_logprob = 0;
  float rest_logprob = 0;
  std::vector<int32_t> ids;     // [top_k], most probable first
  std::vector<float> logprobs;  // [top_k]
};

// Reduces one logits row to a record: log-softmax, the top_k tokens, the rest's mass.
// REQUIRES: 0 <= target < row.size(), 1 <= top_k <= row.size().
KldRecord MakeKldRecord(std::span<const float> row, int32_t target, int32_t top_k);

struct FileCloser {
  void operator()(std::FILE* f) const {
    if (f != nullptr) std::fclose(f);
  }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

class KldWriter {
 public:
  // Creates `path` and writes the header. InvalidArgument for a header out of the format's
  // limits; IoError when the file cannot be written.
  static Result<KldWriter> Create(const std::string& path, const KldHeader& header);
  // REQUIRES: record has the header's top_k entries; at most n_chunks * scored_per_chunk calls.
  Status Write(const KldRecord& record);
  // Flushes and closes; IoError when a write failed (e.g. a full disk).
  Status Close();

 private:
  std::string path_;
  FilePtr file_;
  int32_t top_k_ = 0;
};

class KldReader {
 public:
  // Opens and checks the file: magic, version, header limits, and a size that holds exactly the
  // header, the tokens and every record. NotFound / IoError when it cannot be read; Corrupt for
  // another format, a header out of limits, or a truncated or padded file.
  static Result<KldReader> Open(const std::string& path);
  const KldHeader& header() const { return header_; }
  // The next record; Corrupt for a token id outside the vocabulary or a short read, OutOfRange
  // past the last record.
  Status Read(KldRecord* record);

 private:
  std::string path_;
  FilePtr file_;
  KldHeader header_;
};

}  // namespace gannet::cli
