// The sampler's per-state scratch, interleaved: one record per state holds everything a trajectory
// step reads or writes for that state, so a newly visited state costs as many cache lines as its
// record spans (2 for A = 4) instead of one line in each of eight arrays. At 10^6 states every
// one of those lines is a cache miss, and the misses, not the arithmetic, set the cost of a step.
//
// Record of state s (stride a multiple of 64 bytes, records 64-byte aligned), for A = 4:
//   line 0: piStamp, visitStamp, lastPositive, visits | cum[A] | counts[A]  (the step: row check, action, visit)
//   line 1: pi[A] | acc[A]                                                 (row formation, scores)
// A lazy round's D and a pulled round's pullT stay dense arrays (SamplerScratch): the round's end
// reads them in one streaming pass over all states, which strided records would slow threefold.
// Only the layout is new: every value is computed exactly as it was in separate arrays.
#pragma once

#include <cstdint>

#include "common.h"

namespace fedpg {

class StateRecords {
 public:
  struct Header {
    uint32_t piStamp;     // pi, cum, lastPositive (and the acc row) are current when == the scratch's stamp
    uint32_t visitStamp;  // visits and counts belong to the trajectory numbered visitStamp
    int32_t lastPositive;
    int32_t visits;
  };
  static constexpr size_t kHeader = sizeof(Header);
  static_assert(kHeader % 8 == 0, "the rows after the header hold doubles");

  bool fits(int S, int A) const { return S_ == S && A_ == A; }

  /** S records of A actions, every field zero. */
  void reset(int S, int A) {
    S_ = S;
    A_ = A;
    countsBytes_ = (size_t(A) * sizeof(int32_t) + 7) / 8 * 8;  // keeps the rows after it 8-byte aligned
    stride_ = (kHeader + size_t(A) * 3 * sizeof(double) + countsBytes_ + 63) / 64 * 64;
    buf_.reset(size_t(S) * stride_);
  }

  int states() const { return S_; }
  unsigned char* record(int s) { return buf_.data() + size_t(s) * stride_; }

  Header& head(int s) { return *reinterpret_cast<Header*>(record(s)); }
  /** Running sums of pi(.|s), for the action draw. */
  double* cum(int s) { return reinterpret_cast<double*>(record(s) + kHeader); }
  /** The current trajectory's visits of (s, a). */
  int32_t* counts(int s) { return reinterpret_cast<int32_t*>(record(s) + kHeader + size_t(A_) * sizeof(double)); }
  double* pi(int s) { return reinterpret_cast<double*>(record(s) + kHeader + size_t(A_) * sizeof(double) + countsBytes_); }
  /** Score sums of the current estimate (zeroed when the row is formed). */
  double* acc(int s) { return pi(s) + A_; }

  /** Starts loading every line of record s (write intent: a new state's record is written). */
  void prefetch(int s) {
    const unsigned char* r = record(s);
    for (size_t off = 0; off < stride_; off += 64) __builtin_prefetch(r + off, 1);
  }

  /** Every record's piStamp back to 0 (before the 32-bit stamp wraps). */
  void clearPiStamps() {
    for (int s = 0; s < S_; s++) head(s).piStamp = 0;
  }
  /** Every record's visitStamp back to 0 (before the 32-bit trajectory number wraps). */
  void clearVisitStamps() {
    for (int s = 0; s < S_; s++) head(s).visitStamp = 0;
  }

 private:
  Buffer<unsigned char> buf_;
  size_t stride_ = 0;
  size_t countsBytes_ = 0;
  int S_ = -1;
  int A_ = 0;
};

}  // namespace fedpg
