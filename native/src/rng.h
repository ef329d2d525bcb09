// xoshiro128** exactly as src/rng.ts: four 32-bit words advanced in place, and a uniform double in
// [0, 1) built from two outputs x, y as ((x >> 5) * 2^26 + (y >> 6)) * 2^-53.
#pragma once

#include <cstdint>

namespace fedpg {

struct Xoshiro128 {
  uint32_t s0, s1, s2, s3;

  explicit Xoshiro128(const uint32_t* s) : s0(s[0]), s1(s[1]), s2(s[2]), s3(s[3]) {}
  void store(uint32_t* s) const {
    s[0] = s0;
    s[1] = s1;
    s[2] = s2;
    s[3] = s3;
  }

  static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

  inline uint32_t next() {
    const uint32_t m = s1 * 5u;
    const uint32_t result = rotl(m, 7) * 9u;
    const uint32_t t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = rotl(s3, 11);
    return result;
  }

  inline double nextDouble() {
    const uint32_t x = next() >> 5;
    const uint32_t y = next() >> 6;
    return (static_cast<double>(x) * 67108864.0 + static_cast<double>(y)) * 1.1102230246251565e-16;
  }
};

}  // namespace fedpg
