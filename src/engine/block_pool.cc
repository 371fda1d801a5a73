#include "engine/block_pool.h"

#include <algorithm>
#include <string>

namespace gannet::engine {
namespace {

// 64x64 -> 128-bit multiply folded to 64 bits: the mixing step of the wyhash family. Every input
// bit reaches every output bit after one round, and it costs one multiply per 8 bytes of input.
inline uint64_t Mum(uint64_t a, uint64_t b) {
  const unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(p) ^ static_cast<uint64_t>(p >> 64);
}

constexpr uint64_t kK0 = 0xa0761d6478bd642fULL;
constexpr uint64_t kK1 = 0xe7037ed1a0b428dbULL;
constexpr uint64_t kK2 = 0x8ebc6af09c88c6e3ULL;

}  // namespace

BlockHash HashBlockTokens(BlockHash parent, std::span<const int32_t> tokens) {
  uint64_t h = Mum(parent ^ kK0, tokens.size() ^ kK1);
  size_t i = 0;
  for (; i + 2 <= tokens.size(); i += 2) {
    const uint64_t lo = static_cast<uint32_t>(tokens[i]);
    const uint64_t hi = static_cast<uint32_t>(tokens[i + 1]);
    const uint64_t w = lo | (hi << 32);
    h = Mum(h ^ kK1, w ^ kK2);
  }
  if (i < tokens.size()) h = Mum(h ^ kK2, static_cast<uint32_t>(tokens[i]) ^ kK0);
  return Mum(h ^ kK0, kK1);
}

Result<BlockPool> BlockPool::Create(const BlockPoolOptions& options) {
  if (options.block_size <= 0 || options.block_size > 4096) {
    return Status::InvalidArgument("KV block size must be in [1, 4096] tokens, got " +
                                   std::to_string(options.block_size));
  }
  if (options.num_blocks <= 0) {
    return Status::InvalidArgument("KV block pool needs at least one block, got " +
                                   std::to_string(options.num_blocks));
  }
  if (static_cast<int64_t>(options.num_blocks) * options.block_size > (int64_t{1} << 31) - 1) {
    return Status::OutOfRange("KV block pool of " + std::to_string(options.num_blocks) +
                              " blocks of " + std::to_string(options.block_size) +
                              " tokens exceeds 2^31 token slots");
  }
  BlockPool p;
  const int32_t n = options.num_blocks;
  p.num_blocks_ = n;
  p.block_size_ = options.block_size;
  p.ref_.assign(n, 0);
  p.prev_.assign(n + 1, n);
  p.next_.assign(n + 1, n);
  p.in_queue_.assign(n, 0);
  p.hash_valid_.assign(n, 0);
  p.hash_.assign(n, 0);
  p.parent_.assign(n, kNoBlock);
  p.parent_generation_.assign(n, 0);
  p.generation_.assign(n, 0);
  p.tokens_.assign(static_cast<size_t>(n) * options.block_size, 0);
  p.cached_.reserve(n);
  for (BlockId id = 0; id < n; ++id) p.QueuePushBack(id);
  return p;
}

void BlockPool::QueuePushBack(BlockId id) {
  const int32_t s = num_blocks_;
  prev_[id] = prev_[s];
  next_[id] = s;
  next_[prev_[s]] = id;
  prev_[s] = id;
  in_queue_[id] = 1;
  ++num_free_;
}

void BlockPool::QueuePushFront(BlockId id) {
  const int32_t s = num_blocks_;
  next_[id] = next_[s];
  prev_[id] = s;
  prev_[next_[s]] = id;
  next_[s] = id;
  in_queue_[id] = 1;
  ++num_free_;
}

void BlockPool::QueueRemove(BlockId id) {
  next_[prev_[id]] = next_[id];
  prev_[next_[id]] = prev_[id];
  prev_[id] = next_[id] = num_blocks_;
  in_queue_[id] = 0;
  --num_free_;
}

void BlockPool::Evict(BlockId id) {
  if (!hash_valid_[id]) return;
  cached_.erase(hash_[id]);
  hash_valid_[id] = 0;
  parent_[id] = kNoBlock;
  ++generation_[id];  // children registered under this incarnation no longer match
  ++num_evictions_;
}

std::span<const int32_t> BlockPool::TokensOf(BlockId id) const {
  return {tokens_.data() + static_cast<size_t>(id) * block_size_, static_cast<size_t>(block_size_)};
}

std::optional<std::vector<BlockId>> BlockPool::Allocate(int32_t n) {
  if (n < 0 || n > num_free_) return std::nullopt;
  std::vector<BlockId> out;
  out.reserve(n);
  for (int32_t i = 0; i < n; ++i) {
    const BlockId id = next_[num_blocks_];
    QueueRemove(id);
    Evict(id);
    ref_[id] = 1;
    out.push_back(id);
  }
  return out;
}

void BlockPool::AddRef(BlockId id) {
  GANNET_CHECK(id >= 0 && id < num_blocks_);
  if (ref_[id] == 0) {
    GANNET_CHECK(hash_valid_[id] && in_queue_[id]);
    QueueRemove(id);
  }
  ++ref_[id];
}

void BlockPool::Release(BlockId id) {
  GANNET_CHECK(id >= 0 && id < num_blocks_ && ref_[id] > 0);
  if (--ref_[id] > 0) return;
  if (hash_valid_[id]) {
    QueuePushBack(id);
  } else {
    QueuePushFront(id);
  }
}

BlockId BlockPool::Lookup(BlockHash hash, BlockId parent, std::span<const int32_t> tokens) const {
  const auto it = cached_.find(hash);
  if (it == cached_.end()) return kNoBlock;
  const BlockId id = it->second;
  if (parent_[id] != parent) return kNoBlock;
  if (parent != kNoBlock && parent_generation_[id] != generation_[parent]) return kNoBlock;
  const std::span<const int32_t> have = TokensOf(id);
  if (!std::equal(have.begin(), have.end(), tokens.begin(), tokens.end())) return kNoBlock;
  return id;
}

BlockId BlockPool::Register(BlockId id, BlockHash hash, BlockId parent,
                            std::span<const int32_t> tokens) {
  GANNET_CHECK(id >= 0 && id < num_blocks_ && ref_[id] > 0 && !hash_valid_[id]);
  GANNET_CHECK(static_cast<int32_t>(tokens.size()) == block_size_);
  GANNET_CHECK(parent == kNoBlock || (parent >= 0 && parent < num_blocks_ && hash_valid_[parent]));
  if (cached_.count(hash) != 0) return Lookup(hash, parent, tokens);
  cached_.emplace(hash, id);
  hash_valid_[id] = 1;
  hash_[id] = hash;
  parent_[id] = parent;
  parent_generation_[id] = parent == kNoBlock ? 0 : generation_[parent];
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<size_t>(id) * block_size_);
  return id;
}

std::optional<BlockId> BlockPool::MakeWritable(BlockId id, std::vector<BlockCopy>* copies) {
  GANNET_CHECK(id >= 0 && id < num_blocks_ && ref_[id] > 0);
  if (ref_[id] == 1) return id;
  std::optional<std::vector<BlockId>> fresh = Allocate(1);
  if (!fresh) return std::nullopt;
  copies->push_back({.src = id, .dst = (*fresh)[0]});
  Release(id);  // still held by the others: ref stays > 0, the contents survive for the copy
  return (*fresh)[0];
}

std::vector<BlockId> BlockPool::FreeQueue() const {
  std::vector<BlockId> out;
  for (int32_t id = next_[num_blocks_];
       id != num_blocks_ && static_cast<int32_t>(out.size()) <= num_blocks_; id = next_[id]) {
    out.push_back(id);
  }
  return out;
}

Status BlockPool::CheckInvariants() const {
  auto fail = [](const std::string& m) { return Status::Internal("block pool: " + m); };
  // Walk the queue both ways: it must visit exactly the ref-0 blocks, each once.
  std::vector<uint8_t> seen(num_blocks_, 0);
  int32_t count = 0;
  int32_t last = num_blocks_;
  for (int32_t id = next_[num_blocks_]; id != num_blocks_; id = next_[id]) {
    if (id < 0 || id >= num_blocks_) return fail("queue link out of range");
    if (seen[id]) return fail("block " + std::to_string(id) + " twice in the free queue");
    if (prev_[id] != last) return fail("broken back link at block " + std::to_string(id));
    seen[id] = 1;
    last = id;
    if (++count > num_blocks_) return fail("free queue longer than the pool");
  }
  if (prev_[num_blocks_] != last) return fail("sentinel back link");
  if (count != num_free_) {
    return fail("free count " + std::to_string(num_free_) + " but queue holds " +
                std::to_string(count));
  }
  for (BlockId id = 0; id < num_blocks_; ++id) {
    if (ref_[id] < 0) return fail("negative ref count at block " + std::to_string(id));
    if ((ref_[id] == 0) != static_cast<bool>(seen[id])) {
      return fail("block " + std::to_string(id) + " has ref " + std::to_string(ref_[id]) +
                  (seen[id] ? " but is in the free queue" : " but is not in the free queue"));
    }
    if (static_cast<bool>(in_queue_[id]) != static_cast<bool>(seen[id]))
      return fail("in_queue flag wrong");
  }
  int32_t registered = 0;
  for (BlockId id = 0; id < num_blocks_; ++id) {
    if (!hash_valid_[id]) continue;
    ++registered;
    const auto it = cached_.find(hash_[id]);
    if (it == cached_.end() || it->second != id) {
      return fail("registered block " + std::to_string(id) + " missing from the cache index");
    }
  }
  if (registered != static_cast<int32_t>(cached_.size()))
    return fail("cache index holds stale entries");
  return Status::Ok();
}

}  // namespace gannet::engine
