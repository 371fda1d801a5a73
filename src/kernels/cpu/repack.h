// Weights repacked at load for the decode and prefill matmul kernels: the rows of a K-quant
// matrix interleaved in groups of kRepackRows (matmul_internal.h), super-block b of row r at slot
// b * kRepackRows + r % kRepackRows of group r / kRepackRows. A decode step computes the 4 rows of
// a group, so the file layout's 4 row streams (one per row, a row's bytes apart) become one
// contiguous stream. The blocks are copied as they are (no field changes), and the interleaved
// kernels run the file layout's code on them, so every result keeps its bits.
// A last group of fewer than kRepackRows rows is padded with zero blocks (never read: a kernel
// repeats the last real row in the lanes of the missing ones).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/thread_pool.h"
#include "kernels/cpu/ops.h"
#include "tensor/dtype.h"

namespace gannet::cpu {

// Whether MatMul on `isa` has interleaved kernels for `type` (Q4_K, Q5_K, Q6_K on AVX2 and
// AVX-512; the scalar target reads the file layout only).
bool CanRepack(DType type, Isa isa);

// Bytes of the interleaved copy of rows x cols values (whole groups). REQUIRES: CanRepack(type,
// some ISA) and cols a multiple of the type's block size.
size_t RepackedBytes(DType type, int64_t rows, int64_t cols);

// dst (RepackedBytes bytes) = the rows of src (file layout, rows x cols values) interleaved.
// Groups are split over the pool's threads. REQUIRES: as RepackedBytes; dst does not overlap src.
void RepackRows(ThreadPool& pool, DType type, const void* src, int64_t rows, int64_t cols,
                void* dst);

}  // namespace gannet::cpu
