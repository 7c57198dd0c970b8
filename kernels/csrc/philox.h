// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11; Random123), the
// counter-based generator of torch's CUDA RNG and of Triton's tl.randint / tl.rand.
//
// distgnn's draw for (seed, counter), a 64-bit seed and a 64-bit counter, is word 0 of
//   Philox4x32-10(key = (seed & 0xffffffff, seed >> 32), counter = (ctr & 0xffffffff, ctr >> 32, 0, 0)),
// exactly what Triton computes for tl.randint(seed, offset) with an int64 `offset` (randint4x splits a
// 64-bit offset into counter words 0 and 1, and philox() splits the seed into key words lo, hi: see
// triton/language/random.py). A Triton kernel calling tl.randint(seed, counter) therefore draws the same
// 32 bits as this header, the C++ kernels and kernels/reference.py.
#pragma once

#include <cstdint>

namespace distgnn {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;  // multiplier of counter word 0 (Random123 PHILOX_M4x32_0)
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;  // multiplier of counter word 2 (PHILOX_M4x32_1)
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // key schedule increments (golden ratio, sqrt(3) - 1)
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

// The scalar definition: 10 rounds of (c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2),
// hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)), the key bumped by (W0, W1) between rounds. Returns output word 0.
inline __attribute__((always_inline)) uint32_t philox_draw(uint64_t seed, uint64_t counter) {
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  uint32_t c0 = static_cast<uint32_t>(counter), c1 = static_cast<uint32_t>(counter >> 32), c2 = 0, c3 = 0;
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c0, p1 = static_cast<uint64_t>(kPhiloxM1) * c2;
    c0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0;
    c2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    k0 += kPhiloxW0;
    k1 += kPhiloxW1;
  }
  return c0;
}

}  // namespace distgnn
