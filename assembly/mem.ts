/**
 * Raw memory helpers. Every table lives in linear memory as a block from the TLSF heap and is
 * addressed by pointer; element access is a plain load/store, so no kernel pays for bounds
 * checks (the JS facade checks lengths before a call, and envFinish() checks the indices held in
 * the tables once).
 */

// @ts-ignore: decorator
@inline export function ldf(p: usize, i: i32): f64 {
  return load<f64>(p + ((<usize>i) << 3));
}
// @ts-ignore: decorator
@inline export function stf(p: usize, i: i32, v: f64): void {
  store<f64>(p + ((<usize>i) << 3), v);
}
// @ts-ignore: decorator
@inline export function ldi(p: usize, i: i32): i32 {
  return load<i32>(p + ((<usize>i) << 2));
}
// @ts-ignore: decorator
@inline export function sti(p: usize, i: i32, v: i32): void {
  store<i32>(p + ((<usize>i) << 2), v);
}

/** A zero-filled block of `count` elements of `size` bytes (at least 16 bytes, 16-aligned). */
export function zalloc(count: i32, size: i32): usize {
  const wide = <u64>count * <u64>size;
  // TLSF blocks stop short of 1 GiB; anything larger cannot be a table of this module.
  if (count < 0 || wide > 0x3ff00000) throw new Error('table too large for WebAssembly memory');
  let bytes = <usize>wide;
  if (bytes < 16) bytes = 16;
  const p = heap.alloc(bytes);
  memory.fill(p, 0, bytes);
  return p;
}

export function release(p: usize): void {
  if (p) heap.free(p);
}

/**
 * sum_j x[j] y[j] with four interleaved partial sums (j mod 4), combined as (s0 + s1) + (s2 + s3),
 * then the tail in order: the same operations in the SIMD build (two f64x2 accumulators) and the
 * scalar one, so both give the same bits; four chains instead of one hide the adder's latency.
 */
export function dot(x: usize, y: usize, n: i32): f64 {
  let j = 0;
  let total: f64 = 0;
  if (n >= 4) {
    if (ASC_FEATURE_SIMD) {
      let a = f64x2.splat(0), b = f64x2.splat(0);
      for (; j + 4 <= n; j += 4) {
        const o = (<usize>j) << 3;
        a = f64x2.add(a, f64x2.mul(v128.load(x + o), v128.load(y + o)));
        b = f64x2.add(b, f64x2.mul(v128.load(x + o, 16), v128.load(y + o, 16)));
      }
      total = (f64x2.extract_lane(a, 0) + f64x2.extract_lane(a, 1)) + (f64x2.extract_lane(b, 0) + f64x2.extract_lane(b, 1));
    } else {
      let s0: f64 = 0, s1: f64 = 0, s2: f64 = 0, s3: f64 = 0;
      for (; j + 4 <= n; j += 4) {
        const o = (<usize>j) << 3;
        s0 += load<f64>(x + o) * load<f64>(y + o);
        s1 += load<f64>(x + o, 8) * load<f64>(y + o, 8);
        s2 += load<f64>(x + o, 16) * load<f64>(y + o, 16);
        s3 += load<f64>(x + o, 24) * load<f64>(y + o, 24);
      }
      total = (s0 + s1) + (s2 + s3);
    }
  }
  for (; j < n; j++) total += ldf(x, j) * ldf(y, j);
  return total;
}
