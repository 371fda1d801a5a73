#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <optional>
#include <unordered_set>

#include "base/status.h"
#include "kernels/cpu/repack.h"

namespace gannet::cpu {

namespace {

// Source bytes repacked between two release calls.
constexpr size_t kRepackSliceBytes = size_t{8} << 20;
// The widest row Embed unpacks from a copy (on the stack); wider rows read the original.
constexpr size_t kEmbedRowBytes = 32 * 1024;
// Bytes of a plain copy one thread copies at a time.
constexpr size_t kCopyPieceBytes = size_t{256} << 10;
// Where copies start in their block: a cache line, as the kernels' loads want.
constexpr size_t kCopyAlign = 64;

}  // namespace

void CpuBackend::CopyWeight(const kernels::Weight& w, bool interleave, uint8_t* dst,
                            const ReleaseFn& release) {
  const size_t row_bytes = static_cast<size_t>(*RowBytes(w.type, w.cols));
  // Slices of whole groups: a group's place in the copy does not depend on the slice.
  const int64_t group = interleave ? RepackGroupRows(w.type) : 1;
  const int64_t slice_rows =
      std::max<int64_t>(group, static_cast<int64_t>(kRepackSliceBytes / row_bytes) / group * group);
  const auto* src = static_cast<const uint8_t*>(w.data);
  for (int64_t r0 = 0; r0 < w.rows; r0 += slice_rows) {
    const int64_t n = std::min(slice_rows, w.rows - r0);
    const size_t at = static_cast<size_t>(r0) * row_bytes;
    const size_t bytes = static_cast<size_t>(n) * row_bytes;
    if (interleave) {
      RepackRows(pool_, w.type, src + at, n, w.cols, dst + at);
    } else {
      // Split over the threads: the first write to each page of the copy also faults it in
      // (zeroing a 2 MiB page), which is most of the time a copy takes.
      const int64_t pieces = static_cast<int64_t>((bytes + kCopyPieceBytes - 1) / kCopyPieceBytes);
      pool_.ParallelFor(pieces, [&](int64_t p0, int64_t p1, int) {
        const size_t b = static_cast<size_t>(p0) * kCopyPieceBytes;
        const size_t e = std::min(bytes, static_cast<size_t>(p1) * kCopyPieceBytes);
        std::memcpy(dst + at + b, src + at + b, e - b);
      });
    }
    if (release) release({src + at, bytes});
  }
}

std::vector<bool> CpuBackend::PrepareMatMulWeights(std::span<const kernels::Weight> weights,
                                                   const ReleaseFn& release) {
  std::vector<bool> copied(weights.size(), false);
  if (!options_.repack_weights) return copied;
  // Where each copy goes in one block: in the order offered, so that the copies a forward pass
  // reads one after another are neighbours in memory.
  struct Planned {
    size_t index, offset;
    bool interleave;
  };
  std::vector<Planned> plan;
  std::unordered_set<const void*> planned;  // data pointers of this call's copies
  size_t total = 0, copy_bytes = 0;
  for (size_t i = 0; i < weights.size(); ++i) {
    const kernels::Weight& w = weights[i];
    if (w.data == nullptr || w.rows <= 0) continue;
    // The same matrix named twice, or the shared backend's.
    if (CopyOf(w.data).data != nullptr || planned.contains(w.data)) {
      copied[i] = true;
      continue;
    }
    const bool interleave = CanRepackMatrix(w.type, isa_, w.cols);
    const std::optional<int64_t> row_bytes = RowBytes(w.type, w.cols);
    if (!interleave && !(options_.copy_other_weights && row_bytes.has_value())) continue;
    total = (total + kCopyAlign - 1) / kCopyAlign * kCopyAlign;
    plan.push_back({i, total, interleave});
    planned.insert(w.data);
    const size_t bytes = interleave ? RepackedBytes(w.type, w.rows, w.cols)
                                    : static_cast<size_t>(w.rows) * static_cast<size_t>(*row_bytes);
    total += bytes;
    copy_bytes += bytes;
  }
  if (plan.empty()) return copied;
  Result<PageMemory> block = PageMemory::Allocate(total, options_.huge_pages);
  if (!block.ok()) return copied;  // no memory for it: every weight keeps the file layout
  for (const Planned& p : plan) {
    const kernels::Weight& w = weights[p.index];
    uint8_t* dst = block.value().data() + p.offset;
    CopyWeight(w, p.interleave, dst, release);
    copies_.emplace(w.data, Copy{.data = dst, .interleaved = p.interleave});
    copied[p.index] = true;
  }
  prepared_bytes_ += copy_bytes;
  blocks_.push_back(std::move(block).value());
  return copied;
}

std::unique_ptr<kernels::Backend> CpuBackend::NewSharingWeights() const {
  return std::make_unique<CpuBackend>(pool_, isa_, options_, this);
}

CpuBackend::Copy CpuBackend::CopyOf(const void* data) const {
  if (auto it = copies_.find(data); it != copies_.end()) return it->second;
  return shared_ != nullptr ? shared_->CopyOf(data) : Copy{};
}

// The ops.h form of a MatMul: outputs copied into `outs` (kMaxMatMulGroup entries, on the caller's
// stack; no allocation).
MatMulGroupArgs CpuBackend::GroupArgs(const kernels::MatMulArgs& a, MatMulOutput* outs) const {
  const int n = static_cast<int>(a.outputs.size());
  for (int i = 0; i < n; ++i) {
    const kernels::MatMulOutput& o = a.outputs[i];
    outs[i] = MatMulOutput{
        .wtype = o.w.type, .w = o.w.data, .n_out = o.w.rows, .y = o.y, .y_stride = o.y_stride};
    if (copies_.empty() && shared_ == nullptr) continue;
    if (const Copy copy = CopyOf(o.w.data); copy.data != nullptr) {
      outs[i].w = copy.data;
      outs[i].w_interleaved = copy.interleaved;
    }
  }
  return MatMulGroupArgs{.x = a.x,
                         .x_stride = a.x_stride,
                         .n_in = a.n_in,
                         .n_tokens = a.n_tokens,
                         .outputs = outs,
                         .n_outputs = n,
                         .pre_norm = a.pre_norm,
                         .norm_weight = a.norm_weight,
                         .norm_eps = a.norm_eps,
                         .glu = a.glu,
                         .act = a.act,
                         .scratch = a.scratch};
}

void CpuBackend::ReadWeightRows(const kernels::Weight& w, std::span<const int32_t> rows,
                                void* dst) const {
  const Copy copy = copies_.empty() && shared_ == nullptr ? Copy{} : CopyOf(w.data);
  if (copy.data == nullptr) return Backend::ReadWeightRows(w, rows, dst);
  if (!copy.interleaved) {
    return Backend::ReadWeightRows(
        kernels::Weight{.type = w.type, .data = copy.data, .rows = w.rows, .cols = w.cols}, rows,
        dst);
  }
  const size_t rb = static_cast<size_t>(*RowBytes(w.type, w.cols));
  for (size_t i = 0; i < rows.size(); ++i) {
    UnpackRow(w.type, copy.data, rows[i], w.cols, static_cast<uint8_t*>(dst) + i * rb);
  }
}

void CpuBackend::Embed(const kernels::Weight& table, std::span<const int32_t> tokens, float scale,
                       float* out) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  const Copy copy = copies_.empty() && shared_ == nullptr ? Copy{} : CopyOf(table.data);
  const size_t row_bytes = static_cast<size_t>(*RowBytes(table.type, table.cols));
  if (copy.data != nullptr && !copy.interleaved) {
    // A tied table copied unchanged: its rows from the copy, for the same reason as below.
    GetRows(table.type, copy.data, table.cols, tokens.data(), n, out, table.cols);
  } else if (copy.data != nullptr && row_bytes <= kEmbedRowBytes) {
    // A tied table whose copy the matmuls read: its rows come from the copy (the same bytes), so
    // its file pages, dropped at load, are not paged back in (each looked-up row mapped a page
    // or more with it: 32 MiB more resident after a 512-token prompt).
    alignas(64) uint8_t row[kEmbedRowBytes];
    const int32_t first[1] = {0};
    for (int64_t i = 0; i < n; ++i) {
      UnpackRow(table.type, copy.data, tokens[i], table.cols, row);
      GetRows(table.type, row, table.cols, first, 1, out + i * table.cols, table.cols);
    }
  } else {
    GetRows(table.type, table.data, table.cols, tokens.data(), n, out, table.cols);
  }
  if (scale != 1.0f) cpu::Scale(out, n * table.cols, scale);
}

size_t CpuBackend::MatMulScratchBytes(const kernels::MatMulArgs& a) const {
  GANNET_CHECK(!a.outputs.empty() && a.outputs.size() <= static_cast<size_t>(kMaxMatMulGroup));
  MatMulOutput outs[kMaxMatMulGroup];
  return MatMulGroupScratchBytes(GroupArgs(a, outs));
}

void CpuBackend::MatMul(const kernels::MatMulArgs& a) {
  GANNET_CHECK(!a.outputs.empty() && a.outputs.size() <= static_cast<size_t>(kMaxMatMulGroup));
  MatMulOutput outs[kMaxMatMulGroup];
  MatMulGroup(pool_, GroupArgs(a, outs), isa_);
}

void CpuBackend::AddBias(const float* x, const float* bias, int64_t rows, int64_t cols,
                         float* out) {
  for (int64_t r = 0; r < rows; ++r) cpu::Add(x + r * cols, bias, cols, out + r * cols, isa_);
}

namespace {

// Row-wise ops split over the pool from this many values (below, one thread does it sooner than
// a pool run's round trip between cores would let two).
constexpr int64_t kParallelRowValues = 8192;

}  // namespace

template <typename F>
void CpuBackend::ForRows(int64_t rows, int64_t cols, F&& fn) {
  if (rows >= 2 && rows * cols >= kParallelRowValues && pool_.size() > 1) {
    pool_.ParallelFor(rows, [&](int64_t r0, int64_t r1, int) { fn(r0, r1); });
  } else {
    fn(0, rows);
  }
}

void CpuBackend::RmsNorm(const float* x, const float* w, float eps, int64_t rows, int64_t cols,
                         float* out) {
  ForRows(rows, cols, [&](int64_t r0, int64_t r1) {
    cpu::RmsNorm(x + r0 * cols, cols, w, eps, r1 - r0, cols, out + r0 * cols, cols, isa_);
  });
}

bool CpuBackend::RopeCache::Matches(const kernels::RopeParams& p, int64_t n,
                                    const int32_t* positions) const {
  if (n != n_tokens || p.n_rot != n_rot || p.base != base || p.freq_scale != freq_scale ||
      p.attn_factor != attn_factor || p.ext_factor != ext_factor || p.beta_fast != beta_fast ||
      p.beta_slow != beta_slow || p.n_ctx_orig != n_ctx_orig ||
      (p.freq_factors != nullptr) != !freq_factors.empty()) {
    return false;
  }
  if (p.freq_factors != nullptr &&
      std::memcmp(p.freq_factors, freq_factors.data(), freq_factors.size() * sizeof(float)) != 0) {
    return false;
  }
  return std::memcmp(positions, pos.data(), static_cast<size_t>(n) * sizeof(int32_t)) == 0;
}

void CpuBackend::Rope(const kernels::RopeParams& p, const float* x, int64_t n_tokens,
                      const int32_t* positions, float* out) {
  const int64_t cols = p.n_heads * p.head_dim;
  const RopeArgs args{.x = out,
                      .x_stride = cols,
                      .n_tokens = n_tokens,
                      .n_heads = p.n_heads,
                      .head_dim = p.head_dim,
                      .n_rot = p.n_rot,
                      .pos = positions,
                      .mode = p.mode,
                      .base = p.base,
                      .freq_scale = p.freq_scale,
                      .freq_factors = p.freq_factors,
                      .attn_factor = p.attn_factor,
                      .ext_factor = p.ext_factor,
                      .beta_fast = p.beta_fast,
                      .beta_slow = p.beta_slow,
                      .n_ctx_orig = p.n_ctx_orig};
  // The angles depend on the positions and the parameters only: every layer of a pass (Q and K
  // alike) rotates the same positions with one or two parameter sets (Gemma 3's local and global
  // bases), so the cos/sin table is made once per pass and set, not once per call.
  RopeCache* hit = nullptr;
  for (RopeCache& c : rope_cache_) {
    if (c.Matches(p, n_tokens, positions)) hit = &c;
  }
  if (hit == nullptr) {
    hit = &rope_cache_[rope_next_];
    rope_next_ = (rope_next_ + 1) % rope_cache_.size();
    const int64_t half = p.n_rot / 2;
    hit->n_tokens = -1;  // invalid until filled
    hit->cs.resize(static_cast<size_t>(n_tokens * 2 * half));
    ForRows(n_tokens, 8 * half,
            [&](int64_t t0, int64_t t1) { RopeTable(args, t0, t1, hit->cs.data()); });
    hit->n_tokens = n_tokens;
    hit->n_rot = p.n_rot;
    hit->base = p.base;
    hit->freq_scale = p.freq_scale;
    hit->attn_factor = p.attn_factor;
    hit->ext_factor = p.ext_factor;
    hit->beta_fast = p.beta_fast;
    hit->beta_slow = p.beta_slow;
    hit->n_ctx_orig = p.n_ctx_orig;
    hit->freq_factors.assign(p.freq_factors, p.freq_factors + (p.freq_factors ? half : 0));
    hit->pos.assign(positions, positions + n_tokens);
  }
  // Each range copied (out of place) and rotated by the thread that has it: the rows were just
  // written by the threads of the matmul before, and one thread copying all of them waited on
  // the other core's cache for half.
  ForRows(n_tokens, p.n_heads * p.n_rot, [&](int64_t t0, int64_t t1) {
    if (x != out) {
      std::memcpy(out + t0 * cols, x + t0 * cols,
                  static_cast<size_t>((t1 - t0) * cols) * sizeof(float));
    }
    RopeApply(args, hit->cs.data(), t0, t1);
  });
}

namespace {

// Sequence s of a: its ops.h attention arguments.
AttentionArgs Describe(const kernels::AttentionArgs& a, const kernels::SeqSlice& s) {
  const kernels::KvLayerView& kv = s.kv[a.kv_layer];
  const int64_t b = s.row_begin, n = s.row_end - s.row_begin;
  return AttentionArgs{
      .q = a.q + b * a.q_stride,
      .q_stride = a.q_stride,
      .n_tokens = n,
      .n_head = a.n_head,
      .n_kv_head = a.n_kv_head,
      .head_dim = a.head_dim,
      .q_pos = a.positions + b,
      .kv = KvView{.k_blocks = kv.k_blocks, .v_blocks = kv.v_blocks, .block_size = kv.block_size},
      .n_kv = s.n_kv,
      .window = a.window,
      .scale = a.scale,
      .out = a.out + b * a.out_stride,
      .out_stride = a.out_stride,
      .tree_mask = s.tree_mask,
      .tree_base = s.tree_base};
}

// Sequence s of a: its rows' K/V stored into its cache, and its ops.h attention arguments.
AttentionArgs StoreAndDescribe(const kernels::AttentionArgs& a, const kernels::SeqSlice& s,
                               Isa isa) {
  const int64_t kv_width = a.n_kv_head * a.head_dim;
  const kernels::KvLayerView& kv = s.kv[a.kv_layer];
  const int64_t b = s.row_begin, n = s.row_end - s.row_begin;
  // A token tree's rows go to consecutive slots from tree_base, not to their positions.
  int32_t tree_slots[kMaxTreeTokens];
  const int32_t* slots = a.positions + b;
  if (s.tree_mask != nullptr) {
    GANNET_CHECK(n <= kMaxTreeTokens && s.n_kv == s.tree_base + n);
    for (int64_t i = 0; i < n; ++i) tree_slots[i] = static_cast<int32_t>(s.tree_base + i);
    slots = tree_slots;
  }
  StoreKv(a.k + b * a.k_stride, a.k_stride, a.v + b * a.v_stride, a.v_stride, n, kv_width, slots,
          kv.k_blocks, kv.v_blocks, kv.block_size, isa);
  return Describe(a, s);
}

// A sequence's attention work, in keys visited by its rows (at most), plus a row's fixed part
// (its setup and final scaling, about what a few dozen keys cost).
int64_t AttentionCost(const kernels::AttentionArgs& a, const kernels::SeqSlice& s) {
  constexpr int64_t kRowKeys = 32;
  const int64_t n = s.row_end - s.row_begin;
  const int64_t keys = a.window > 0 ? std::min(s.n_kv, a.window + n) : s.n_kv;
  return n * (keys + kRowKeys);
}

}  // namespace

void CpuBackend::Attention(const kernels::AttentionArgs& a) {
  // A decode batch is many sequences of a row or a few, each a few microseconds of work: one
  // pool run per sequence would be a wake-up and a barrier each, and a thread coming late to one
  // leaves it to the caller (a 16-sequence Gemma 3 step ran nearly all of its attention on one
  // thread). Sequences of at most 1 / (2 * threads) of the layer's work therefore go whole to
  // the threads in one run, each claiming the next; larger ones (a prefill chunk, a long context
  // among few) are split over the threads one at a time. A sequence's output has the same bits
  // either way (ops.h), and sequences share no output row and no K/V slot they write.
  const int n_threads = pool_.size();
  small_seqs_.clear();
  if (n_threads > 1 && a.seqs.size() >= 2 * static_cast<size_t>(n_threads)) {
    int64_t total = 0;
    for (const kernels::SeqSlice& s : a.seqs) total += AttentionCost(a, s);
    for (size_t i = 0; i < a.seqs.size(); ++i) {
      if (AttentionCost(a, a.seqs[i]) * 2 * n_threads <= total) {
        small_seqs_.push_back(static_cast<uint32_t>(i));
      }
    }
    if (small_seqs_.size() < 2) small_seqs_.clear();
  }
  size_t next_small = 0;
  for (size_t i = 0; i < a.seqs.size(); ++i) {
    if (next_small < small_seqs_.size() && small_seqs_[next_small] == i) {
      ++next_small;
      continue;
    }
    cpu::Attention(pool_, StoreAndDescribe(a, a.seqs[i], isa_), isa_);
  }
  if (small_seqs_.empty()) return;
  // Each thread holds its next claim while it computes the current one, and has that one's keys
  // requested meanwhile: the weights a step streams evict the K/V, and a sequence's first tile
  // (which its own kernel cannot request ahead) was its largest stall.
  std::atomic<size_t> next{0};
  pool_.Run([&](int, int) {
    auto claim = [&] {
      const size_t k = next.fetch_add(1, std::memory_order_relaxed);
      if (k < small_seqs_.size()) AttentionPrefetch(Describe(a, a.seqs[small_seqs_[k]]));
      return k;
    };
    for (size_t k = claim(); k < small_seqs_.size();) {
      const size_t after = claim();
      AttentionOnThisThread(StoreAndDescribe(a, a.seqs[small_seqs_[k]], isa_), isa_);
      k = after;
    }
  });
}

void CpuBackend::Glu(kernels::GluAct act, const float* gate, const float* up, int64_t n,
                     float* out) {
  cpu::Glu(act, gate, up, n, out, isa_);
}

void CpuBackend::Add(const float* a, const float* b, int64_t n, float* out) {
  cpu::Add(a, b, n, out, isa_);
}

void CpuBackend::AddRmsNorm(const float* a, const float* b, const float* w, float eps, int64_t rows,
                            int64_t cols, float* out) {
  // The norm into out, then the add in place: out never aliases a or b.
  ForRows(rows, cols, [&](int64_t r0, int64_t r1) {
    const int64_t at = r0 * cols;
    cpu::RmsNorm(b + at, cols, w, eps, r1 - r0, cols, out + at, cols, isa_);
    cpu::Add(a + at, out + at, (r1 - r0) * cols, out + at, isa_);
  });
}

void CpuBackend::Scale(const float* x, int64_t n, float s, float* out) {
  if (x != out) std::memcpy(out, x, static_cast<size_t>(n) * sizeof(float));
  cpu::Scale(out, n, s);
}

void CpuBackend::Softcap(const float* x, int64_t n, float cap, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = cap * std::tanh(x[j] / cap);
}

void CpuBackend::GatherRows(const float* x, int64_t cols, std::span<const int32_t> rows,
                            float* out) {
  for (size_t r = 0; r < rows.size(); ++r) {
    std::memcpy(out + static_cast<int64_t>(r) * cols, x + static_cast<int64_t>(rows[r]) * cols,
                static_cast<size_t>(cols) * sizeof(float));
  }
}

}  // namespace gannet::cpu
