// The log-probability file of `gannet perplexity` (kld_file.h).
#include "cli/kld_file.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace gannet::cli {
namespace {

constexpr char kMagic[8] = {'G', 'N', 'T', 'K', 'L', 'D', '0', '1'};
constexpr uint32_t kVersion = 1;
constexpr int64_t kHeaderBytes = 8 + 4 + 4 + 3 * 8;
constexpr int64_t kMaxVocab = int64_t{1} << 24;
constexpr int64_t kMaxCtx = int64_t{1} << 20;
constexpr int64_t kMaxTokens = int64_t{1} << 30;

int64_t RecordBytes(int32_t top_k) { return 8 + int64_t{8} * top_k; }

Status CheckHeader(const KldHeader& h) {
  if (h.n_vocab < 2 || h.n_vocab > kMaxVocab)
    return Status::InvalidArgument("vocabulary size " + std::to_string(h.n_vocab) +
                                   " out of range");
  if (h.top_k < 1 || h.top_k > kKldMaxTopK || h.top_k > h.n_vocab)
    return Status::InvalidArgument("top-k " + std::to_string(h.top_k) + " out of range (1.." +
                                   std::to_string(std::min<int64_t>(kKldMaxTopK, h.n_vocab)) + ")");
  if (h.n_ctx < 4 || h.n_ctx > kMaxCtx)
    return Status::InvalidArgument("context " + std::to_string(h.n_ctx) + " out of range");
  if (h.n_chunks < 1 || h.n_chunks > kMaxTokens / h.n_ctx)
    return Status::InvalidArgument("chunk count " + std::to_string(h.n_chunks) + " out of range");
  return Status::Ok();
}

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof v);
}

}  // namespace

KldRecord MakeKldRecord(std::span<const float> row, int32_t target, int32_t top_k) {
  float max = -std::numeric_limits<float>::infinity();
  for (float x : row) max = std::max(max, x);
  double sum = 0;
  for (float x : row) sum += std::exp(static_cast<double>(x) - max);
  const double lse = max + std::log(sum);
  // The top_k (logit, id) pairs: a min-heap on (higher logit, then lower id) wins.
  auto better = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  std::vector<std::pair<float, int32_t>> heap;
  heap.reserve(top_k);
  for (int32_t i = 0; i < static_cast<int32_t>(row.size()); ++i) {
    const std::pair<float, int32_t> e{row[i], i};
    if (static_cast<int32_t>(heap.size()) < top_k) {
      heap.push_back(e);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(e, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = e;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort(heap.begin(), heap.end(), better);
  KldRecord r;
  r.target_logprob = static_cast<float>(row[target] - lse);
  double top_sum = 0;
  for (const auto& [logit, id] : heap) {
    r.ids.push_back(id);
    r.logprobs.push_back(static_cast<float>(logit - lse));
    top_sum += std::exp(static_cast<double>(logit) - max);
  }
  const double rest = (sum - top_sum) / sum;  // double: no cancellation at the mass kept here
  r.rest_logprob =
      rest > 0 ? static_cast<float>(std::log(rest)) : -std::numeric_limits<float>::infinity();
  return r;
}

Result<KldWriter> KldWriter::Create(const std::string& path, const KldHeader& header) {
  if (Status s = CheckHeader(header); !s.ok()) return s;
  if (static_cast<int64_t>(header.tokens.size()) != header.n_chunks * header.n_ctx)
    return Status::InvalidArgument("token count does not match the windows");
  KldWriter w;
  w.path_ = path;
  w.top_k_ = header.top_k;
  w.file_.reset(std::fopen(path.c_str(), "wb"));
  if (!w.file_) return Status::IoError("cannot create " + path + ": " + std::strerror(errno));
  std::string head(kMagic, sizeof kMagic);
  Put(&head, kVersion);
  Put(&head, static_cast<uint32_t>(header.top_k));
  Put(&head, header.n_vocab);
  Put(&head, header.n_ctx);
  Put(&head, header.n_chunks);
  const size_t token_bytes = header.tokens.size() * sizeof(int32_t);
  if (std::fwrite(head.data(), 1, head.size(), w.file_.get()) != head.size() ||
      std::fwrite(header.tokens.data(), 1, token_bytes, w.file_.get()) != token_bytes)
    return Status::IoError("cannot write " + path + ": " + std::strerror(errno));
  return w;
}

Status KldWriter::Write(const KldRecord& r) {
  std::string rec;
  rec.reserve(RecordBytes(top_k_));
  Put(&rec, r.target_logprob);
  Put(&rec, r.rest_logprob);
  rec.append(reinterpret_cast<const char*>(r.ids.data()), r.ids.size() * sizeof(int32_t));
  rec.append(reinterpret_cast<const char*>(r.logprobs.data()), r.logprobs.size() * sizeof(float));
  if (static_cast<int64_t>(rec.size()) != RecordBytes(top_k_))
    return Status::Internal("record of the wrong size");
  if (std::fwrite(rec.data(), 1, rec.size(), file_.get()) != rec.size())
    return Status::IoError("cannot write " + path_ + ": " + std::strerror(errno));
  return Status::Ok();
}

Status KldWriter::Close() {
  std::FILE* f = file_.release();
  if (f == nullptr) return Status::Ok();
  const bool ok = std::fflush(f) == 0 && !std::ferror(f);
  if (std::fclose(f) != 0 || !ok)
    return Status::IoError("cannot write " + path_ + ": " + std::strerror(errno));
  return Status::Ok();
}

Result<KldReader> KldReader::Open(const std::string& path) {
  KldReader r;
  r.path_ = path;
  r.file_.reset(std::fopen(path.c_str(), "rb"));
  if (!r.file_) {
    const int err = errno;
    const std::string m = "cannot open " + path + ": " + std::strerror(err);
    return err == ENOENT ? Status::NotFound(m) : Status::IoError(m);
  }
  struct stat st {};
  if (fstat(fileno(r.file_.get()), &st) != 0) return Status::IoError("cannot stat " + path);
  const int64_t size = st.st_size;
  char head[kHeaderBytes];
  if (size < kHeaderBytes || std::fread(head, 1, sizeof head, r.file_.get()) != sizeof head ||
      std::memcmp(head, kMagic, sizeof kMagic) != 0)
    return Status::Corrupt(path + " is not a gannet log-probability file (made by gannet " +
                           "perplexity --kl-divergence-base)");
  uint32_t version = 0, top_k = 0;
  std::memcpy(&version, head + 8, 4);
  std::memcpy(&top_k, head + 12, 4);
  if (version != kVersion)
    return Status::Corrupt(path + ": format version " + std::to_string(version) +
                           ", this gannet reads version " + std::to_string(kVersion));
  KldHeader& h = r.header_;
  h.top_k = static_cast<int32_t>(std::min<uint32_t>(top_k, kKldMaxTopK + 1));
  std::memcpy(&h.n_vocab, head + 16, 8);
  std::memcpy(&h.n_ctx, head + 24, 8);
  std::memcpy(&h.n_chunks, head + 32, 8);
  if (Status s = CheckHeader(h); !s.ok()) return Status::Corrupt(path + ": " + s.message());
  const int64_t n_tokens = h.n_chunks * h.n_ctx;
  const int64_t want =
      kHeaderBytes + 4 * n_tokens + h.n_chunks * h.scored_per_chunk() * RecordBytes(h.top_k);
  if (size != want)
    return Status::Corrupt(path + " has " + std::to_string(size) + " bytes, its header says " +
                           std::to_string(want) + (size < want ? " (truncated)" : ""));
  h.tokens.resize(n_tokens);
  if (std::fread(h.tokens.data(), 4, n_tokens, r.file_.get()) != static_cast<size_t>(n_tokens))
    return Status::IoError("cannot read " + path);
  for (int32_t t : h.tokens) {
    if (t < 0 || t >= h.n_vocab)
      return Status::Corrupt(path + ": token id " + std::to_string(t) + " out of range");
  }
  return r;
}

Status KldReader::Read(KldRecord* r) {
  const size_t k = header_.top_k;
  float head[2];
  if (std::fread(head, sizeof(float), 2, file_.get()) != 2) {
    if (std::feof(file_.get())) return Status::OutOfRange(path_ + ": no more records");
    return Status::IoError("cannot read " + path_);
  }
  r->target_logprob = head[0];
  r->rest_logprob = head[1];
  r->ids.resize(k);
  r->logprobs.resize(k);
  if (std::fread(r->ids.data(), sizeof(int32_t), k, file_.get()) != k ||
      std::fread(r->logprobs.data(), sizeof(float), k, file_.get()) != k)
    return Status::Corrupt(path_ + ": short record");
  for (int32_t id : r->ids) {
    if (id < 0 || id >= header_.n_vocab)
      return Status::Corrupt(path_ + ": token id " + std::to_string(id) + " out of range");
  }
  return Status::Ok();
}

}  // namespace gannet::cli
