// Shared definitions of the native kernels: error types, SIMD levels, aligned buffers.
// Nothing here holds mutable static state: the addon must run in several worker_threads at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#if defined(__linux__)
#include <sys/mman.h>
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define FEDPG_X86 1
// Elementwise helpers are compiled three times and picked by the loader (GCC function
// multi-versioning, resolved once per process through an ifunc). They contain no reductions whose
// order could depend on the vector width, so every clone returns bit-identical results.
#define FEDPG_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FEDPG_X86 0
#define FEDPG_CLONES
#endif

namespace fedpg {

/** A caller's mistake (wrong length, non-finite value, out-of-range size): a RangeError in JS. */
struct ArgumentError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/** A numerical failure (singular system, no convergence): a plain Error in JS. */
struct NumericError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/** Vector instruction sets the dense LU can use; chosen at run time, never at compile time. */
enum class Simd : int { Generic = 0, Avx2 = 1, Avx512 = 2 };

/** The widest level this CPU (and OS) supports. */
Simd bestSimd();
bool simdSupported(Simd s);
const char* simdName(Simd s);
/** Parses "generic", "avx2", "avx512" (and "auto" = bestSimd()); false when unknown. */
bool parseSimd(const std::string& name, Simd* out);

/**
 * A zero-initialised, 64-byte aligned array of a trivial type. Large arrays (>= 4 MiB) are 2 MiB
 * aligned and advised as transparent huge pages: the alias tables of a large MDP are read at random
 * and would otherwise miss the TLB on nearly every draw.
 */
template <class T>
class Buffer {
  static_assert(std::is_trivially_copyable<T>::value, "Buffer holds trivial types only");

 public:
  Buffer() = default;
  explicit Buffer(size_t n) { reset(n); }
  /** Resizes; the contents are zero unless `zero` is false (for arrays the caller overwrites whole). */
  ~Buffer() { std::free(p_); }
  Buffer(Buffer&& o) noexcept : p_(o.p_), n_(o.n_) {
    o.p_ = nullptr;
    o.n_ = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      std::free(p_);
      p_ = o.p_;
      n_ = o.n_;
      o.p_ = nullptr;
      o.n_ = 0;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void reset(size_t n, bool zero = true) {
    std::free(p_);
    p_ = nullptr;
    n_ = 0;
    if (n == 0) return;
    if (n > (SIZE_MAX / 2) / sizeof(T)) throw std::bad_alloc();
    size_t bytes = n * sizeof(T);
    const size_t huge = size_t(2) << 20;
    const size_t align = bytes >= 2 * huge ? huge : 64;
    bytes = (bytes + align - 1) / align * align;
    void* p = nullptr;
    if (posix_memalign(&p, align, bytes) != 0 || !p) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (align == huge) madvise(p, bytes, MADV_HUGEPAGE);  // advice only: failure is harmless
#endif
    if (zero) std::memset(p, 0, bytes);
    p_ = static_cast<T*>(p);
    n_ = n;
  }
  void zero() {
    if (n_) std::memset(static_cast<void*>(p_), 0, n_ * sizeof(T));
  }

  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

/**
 * Non-zero when x is not finite: x - x is +0 exactly for finite x and NaN otherwise. OR-ed over a
 * local round's dense pass that writes theta (integer ORs vectorise), so checking theta for an
 * overflow costs no second pass over it (checkRoundTheta then finds the entry).
 */
inline uint64_t nonFiniteBits(double x) {
  const double d = x - x;
  uint64_t u;
  std::memcpy(&u, &d, sizeof u);
  return u;
}

/** The shortest decimal that reads back as v (as JavaScript prints numbers); NaN, Infinity, -Infinity. */
inline std::string str(double v) {
  if (v != v) return "NaN";
  if (v == 1.0 / 0.0) return "Infinity";
  if (v == -1.0 / 0.0) return "-Infinity";
  char buf[40];
  for (int prec = 1; prec <= 17; prec++) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}

}  // namespace fedpg
