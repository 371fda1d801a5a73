// Weights repacked at load for the decode and prefill matmul kernels.
//
// K-quants (Q4_K, Q5_K, Q6_K; AVX2 and AVX-512): the rows interleaved in groups of kRepackRows
// (matmul_internal.h), super-block b of row r at slot b * kRepackRows + r % kRepackRows of group
// r / kRepackRows. A decode step computes the 4 rows of a group, so the file layout's 4 row
// streams (one per row, a row's bytes apart) become one contiguous stream. The blocks are copied
// as they are (no field changes), and the interleaved kernels run the file layout's code on them,
// so every result keeps its bits. A last group of fewer than kRepackRows rows is padded with zero
// blocks (never read: a kernel repeats the last real row in the lanes of the missing ones).
//
// Q8_0, Q4_0 and Q5_0 (AVX-512 only): groups of kRepackRows16 = 16 rows, the blocks taken apart
// so that one 512-bit vpdpbusd multiplies 4 codes of each of the 16 rows with 4 broadcast
// activation codes, each row's sum in its own lane (no horizontal adds). A group of nb = cols / 32
// blocks is 16 * nb * block bytes (16 rows' bytes, as in the file), laid out as
//   codes  per block b, at byte b * C:
//          Q8_0 (C = 512): [8][16][4] u8, vector v = 4 * half + quad, lane r (row r of the group)
//            holds row r's codes 16 * half + 4 * quad .. + 3, each with its sign bit flipped
//            (w ^ 0x80 = w + 128 as u8, so vpdpbusd's unsigned operand; the kernel subtracts
//            128 * sum(x) of the half block);
//          Q4_0 (C = 256): [4][16][4] u8, vector q, lane r: row r's packed bytes qs[4q .. 4q + 3]
//            (low nibbles: codes 4q .. 4q + 3; high: 16 + 4q .. 16 + 4q + 3);
//          Q5_0 (C = 320): as Q4_0, then [8] u64 masks: bit 4r + i of mask v = 4 * half + quad is
//            the 5th bit (qh) of row r's code 16 * half + 4 * quad + i;
//   scales [nb][16] f16 at byte nb * C: block b's scales d of the 16 rows.
// So group g still starts at byte g * 16 * row_bytes, and rows [r0, r1) of a copy start at
// r0 * row_bytes when r0 is a group's first row. A last group of fewer than 16 rows is padded
// with scale 0 (and code 0 for Q8_0, zero bytes for the others: computed, never stored).
// Thread-safety: pure functions.
#pragma once

#include <cstddef>
#include <cstdint>

#include "base/thread_pool.h"
#include "kernels/cpu/ops.h"
#include "tensor/dtype.h"

namespace gannet::cpu {

// Whether MatMul on `isa` has interleaved kernels for `type` (Q4_K, Q5_K, Q6_K on AVX2 and
// AVX-512; Q8_0, Q4_0 and Q5_0 on AVX-512; the scalar target reads the file layout only).
bool CanRepack(DType type, Isa isa);

// Whether a matrix of `cols` values per row can be repacked for `isa`: CanRepack, cols a positive
// multiple of the type's block size, and at most (Q8_0) kMaxRepackColsQ8_0 values, the widest row
// whose per-token activation table fits the kernel's stack buffer, or (Q4_0, Q5_0) the widest
// row the AVX2 row-block kernels take (avx2::RowBlockMaxBlocks), whose bits the copy keeps.
bool CanRepackMatrix(DType type, Isa isa, int64_t cols);
inline constexpr int64_t kMaxRepackColsQ8_0 = 32 * 5440;

// Rows per interleaved group of `type`: kRepackRows16 for Q8_0, Q4_0 and Q5_0, kRepackRows for
// the others.
int RepackGroupRows(DType type);

// Bytes of the interleaved copy of rows x cols values (whole groups). REQUIRES: CanRepack(type,
// some ISA) and cols a multiple of the type's block size.
size_t RepackedBytes(DType type, int64_t rows, int64_t cols);

// dst (RepackedBytes bytes) = the rows of src (file layout, rows x cols values) interleaved.
// Groups are split over the pool's threads. REQUIRES: as RepackedBytes; dst does not overlap src.
void RepackRows(ThreadPool& pool, DType type, const void* src, int64_t rows, int64_t cols,
                void* dst);

// dst (RowBytes(type, cols) bytes) = row `row` of the matrix whose interleaved copy is `copy`,
// in the file layout: the bytes RepackRows read for it. REQUIRES: as RepackedBytes; row is one
// of the copy's rows.
void UnpackRow(DType type, const void* copy, int64_t row, int64_t cols, void* dst);

}  // namespace gannet::cpu
