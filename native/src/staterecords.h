// The sampler's per-state scratch, interleaved: one record per state holds everything a trajectory
// step reads or writes for that state, so a newly visited state costs as many cache lines as its
// record spans (3 for A = 4) instead of one line in each of a dozen arrays. At 10^6 states every
// one of those lines is a cache miss, and the misses, not the arithmetic, set the cost of a step.
//
// Record of state s (stride a multiple of 64 bytes, records 64-byte aligned), for A = 4:
//   line 0: piStamp, visitStamp, pullT, lastPositive, visits | D[A]  (the step's checks; the lazy theta)
//   line 1: cum[A] | pi[A]                                        (the policy row)
//   line 2: acc[A] | counts[A]                                    (the score sums)
// Only the layout is new: every value is computed exactly as it was in separate arrays.
#pragma once

#include <cstdint>

#include "common.h"

namespace fedpg {

class StateRecords {
 public:
  struct Header {
    uint64_t piStamp;     // pi, cum, lastPositive (and acc in a lazy round) are current when == stamp
    uint64_t visitStamp;  // visits and counts belong to the trajectory numbered visitStamp
    int64_t pullT;        // a pulled round's D is x = theta - center as of this step (-1: untouched)
    int32_t lastPositive;
    int32_t visits;
  };
  static constexpr size_t kHeader = sizeof(Header);
  static_assert(kHeader % 8 == 0, "the rows after the header hold doubles");

  bool fits(int S, int A) const { return S_ == S && A_ == A; }

  /** S records of A actions: every field zero, pullT = -1. */
  void reset(int S, int A) {
    S_ = S;
    A_ = A;
    stride_ = (kHeader + size_t(A) * (4 * sizeof(double) + sizeof(int32_t)) + 63) / 64 * 64;
    buf_.reset(size_t(S) * stride_);
    for (int s = 0; s < S; s++) head(s).pullT = -1;
  }

  int states() const { return S_; }
  /** Bytes per record (for prefetching its lines). */
  size_t stride() const { return stride_; }
  unsigned char* record(int s) { return buf_.data() + size_t(s) * stride_; }

  Header& head(int s) { return *reinterpret_cast<Header*>(record(s)); }
  /** A lazy round's offset of row s (theta = start + l eta c + D; x = theta - center when pulled). */
  double* D(int s) { return reinterpret_cast<double*>(record(s) + kHeader); }
  /** Running sums of pi(.|s), for the action draw. */
  double* cum(int s) { return D(s) + A_; }
  double* pi(int s) { return D(s) + 2 * A_; }
  /** Score sums of the current estimate, sum over trajectories of G (c(s, .) - n(s) pi(.|s)). */
  double* acc(int s) { return D(s) + 3 * A_; }
  /** The current trajectory's visits of (s, a). */
  int32_t* counts(int s) { return reinterpret_cast<int32_t*>(D(s) + 4 * A_); }

  /** Starts loading every line of record s (write intent: a new state's record is written). */
  void prefetch(int s) {
    const unsigned char* r = record(s);
    for (size_t off = 0; off < stride_; off += 64) __builtin_prefetch(r + off, 1);
  }

 private:
  Buffer<unsigned char> buf_;
  size_t stride_ = 0;
  int S_ = -1;
  int A_ = 0;
};

}  // namespace fedpg
