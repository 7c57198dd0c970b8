// No include guard: included once per ISA, each time in its own namespace.
// Philox4x32-10 word 0 for up to kPhiloxBlock counters, vectorised (included once per ISA by dropout.cpp
// inside a `#pragma GCC target` region, with V, kLanes, kGroups and the primitives set1, load, mul_even,
// shr32, blend_odd, mullo, vxor, store, ge_bits defined for that ISA's vector width), and the keep-mask
// bits of a block of draws.
//
// One 32 x 32 -> 64-bit multiply per lane needs two even-lane multiplies (vpmuludq) and a blend; the
// rounds are a chain of multiplies, so kGroups independent vectors are interleaved to hide latency.
// Rounds 1 and 10 are specialised from the definition (philox.h), giving the same bits: counter words 2
// and 3 start at 0, and only word 0 of the last round is used.

// out[k] = philox_draw(seed, hi[k] << 32 | lo[k]) for k < n <= kPhiloxBlock, in whole groups of
// G * kLanes (lo and hi must be readable up to the group boundary; draws past n are garbage).
inline void philox_block(uint32_t k0, uint32_t k1, const uint32_t* lo, const uint32_t* hi, int n,
                         uint32_t* out) {
  constexpr int G = kGroups;
  static_assert(kPhiloxBlock % (G * kLanes) == 0, "block must be whole groups");
  const V A = set1(kPhiloxM0), B = set1(kPhiloxM1), K0 = set1(k0), K1 = set1(k1);
  const V K0r2 = set1(k0 + kPhiloxW0), K1r2 = set1(k1 + kPhiloxW1);
  for (int base = 0; base < n; base += G * kLanes) {
    V c0[G], c1[G], c2[G], c3[G];
    for (int g = 0; g < G; ++g) {
      const V x = load(lo + base + g * kLanes), u = vxor(load(hi + base + g * kLanes), K0);
      // round 1 (c2 = c3 = 0): c0 = c1 ^ k0 = u, c1 = 0, c2 = hi(M0 x) ^ k1, c3 = lo(M0 x)
      const V c2a = vxor(blend_odd(shr32(mul_even(x, A)), mul_even(shr32(x), A)), K1), c3a = mullo(x, A);
      // round 2: c0 = hi(M1 c2a) ^ 0 ^ k0', c1 = lo(M1 c2a), c2 = hi(M0 u) ^ c3a ^ k1', c3 = lo(M0 u)
      const V hb = blend_odd(shr32(mul_even(c2a, B)), mul_even(shr32(c2a), B));
      const V ha = blend_odd(shr32(mul_even(u, A)), mul_even(shr32(u), A));
      c0[g] = vxor(hb, K0r2);
      c1[g] = mullo(c2a, B);
      c2[g] = vxor(vxor(ha, c3a), K1r2);
      c3[g] = mullo(u, A);
    }
    uint32_t r0 = k0 + 2 * kPhiloxW0, r1 = k1 + 2 * kPhiloxW1;
    for (int r = 2; r < 9; ++r) {  // rounds 3..9
      const V R0 = set1(r0), R1 = set1(r1);
      for (int g = 0; g < G; ++g) {
        const V hb = blend_odd(shr32(mul_even(c2[g], B)), mul_even(shr32(c2[g]), B));
        const V ha = blend_odd(shr32(mul_even(c0[g], A)), mul_even(shr32(c0[g]), A));
        const V lb = mullo(c2[g], B), la = mullo(c0[g], A);
        c0[g] = vxor(vxor(hb, c1[g]), R0);
        c2[g] = vxor(vxor(ha, c3[g]), R1);
        c1[g] = lb;
        c3[g] = la;
      }
      r0 += kPhiloxW0;
      r1 += kPhiloxW1;
    }
    const V R0 = set1(r0);
    for (int g = 0; g < G; ++g) {  // round 10: word 0 only
      const V hb = blend_odd(shr32(mul_even(c2[g], B)), mul_even(shr32(c2[g]), B));
      store(out + base + g * kLanes, vxor(vxor(hb, c1[g]), R0));
    }
  }
}

// Bit k = (d[k] >= thr) for the 64 draws of one block (ge_bits: one bit per lane, unsigned compare).
inline uint64_t keep_bits(const uint32_t* d, uint32_t thr) {
  static_assert(kPhiloxBlock == 64, "one 64-bit mask word per block");
  const V T = set1(thr);
  uint64_t bits = 0;
  for (int k = 0; k < kPhiloxBlock; k += kLanes) bits |= uint64_t(ge_bits(load(d + k), T)) << k;
  return bits;
}
