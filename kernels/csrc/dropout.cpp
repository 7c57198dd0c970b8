// distgnn CPU dropout: out = keep ? x * scale : 0 with a counter-based mask.
//
// keep[i] = (splitmix64(seed, i) >> 32) >= threshold, where splitmix64(seed, i) is the i-th output of
// the splitmix64 generator started at `seed` (z = seed + (i + 1) * golden gamma, then two xor-shift-
// multiply rounds). The mask is a pure function of (seed, flat element index), so:
//  * the loop is embarrassingly parallel and vectorises (no generator state carried between elements);
//  * the result does not depend on the thread count or on how elements are split between threads;
//  * the backward regenerates the same mask from the seed instead of storing an N x F mask.
// The torch reference (kernels/reference.py: dropout_keep) computes the same hash with int64 ops, so the
// two implementations produce bit-identical masks. Hot loop compiled for AVX-512 / AVX2 / baseline
// (AVX-512DQ has a native 64-bit multiply) and picked at load time, as in aggregate.cpp.

#include <torch/extension.h>

#include "output.h"

#include <ATen/Parallel.h>

#include <cstdint>
#include <cstring>


#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DGD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DGD_CLONES
#endif
#define DGD_INLINE inline __attribute__((always_inline))

namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kMul1 = 0xBF58476D1CE4E5B9ull;
constexpr uint64_t kMul2 = 0x94D049BB133111EBull;
constexpr int64_t kGrain = int64_t(1) << 15;  // elements per parallel task (keeps tasks >= ~100 us)

DGD_INLINE uint32_t draw(uint64_t seed, uint64_t i) {
  uint64_t z = seed + (i + 1) * kGamma;
  z = (z ^ (z >> 30)) * kMul1;
  z = (z ^ (z >> 27)) * kMul2;
  z ^= z >> 31;
  return static_cast<uint32_t>(z >> 32);
}

DGD_INLINE float bf16_to_f(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, NaN -> quiet NaN: the same rounding as c10::BFloat16 (so as torch's bf16 mul).
DGD_INLINE uint16_t f_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (f != f) return 0x7FC0;
  const uint32_t rounding = ((bits >> 16) & 1u) + 0x7FFFu;
  return static_cast<uint16_t>((bits + rounding) >> 16);
}

DGD_CLONES void dropout_f32(const float* x, float* out, int64_t begin, int64_t end, uint64_t seed,
                            uint64_t thr, float scale) {
  for (int64_t i = begin; i < end; ++i) {
    const bool keep = draw(seed, static_cast<uint64_t>(i)) >= thr;
    out[i] = keep ? x[i] * scale : 0.f;
  }
}

DGD_CLONES void dropout_bf16(const uint16_t* x, uint16_t* out, int64_t begin, int64_t end, uint64_t seed,
                             uint64_t thr, float scale) {
  for (int64_t i = begin; i < end; ++i) {
    const bool keep = draw(seed, static_cast<uint64_t>(i)) >= thr;
    out[i] = keep ? f_to_bf16(bf16_to_f(x[i]) * scale) : uint16_t(0);
  }
}


}  // namespace

// out = keep ? x * scale : 0 for contiguous float32 / bfloat16 x; keep as described at the top.
// threshold is in [0, 2^32]: an element is kept with probability 1 - threshold / 2^32.
torch::Tensor dropout(torch::Tensor x, int64_t seed, int64_t threshold, double scale) {
  TORCH_CHECK(x.is_contiguous(), "dropout input must be contiguous");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
              "dropout supports float32 and bfloat16, got ", x.scalar_type());
  TORCH_CHECK(threshold >= 0 && threshold <= (int64_t(1) << 32), "dropout threshold out of range");
  auto out = distgnn::new_output(x.sizes(), x.options());
  const int64_t n = x.numel();
  const uint64_t s = static_cast<uint64_t>(seed), thr = static_cast<uint64_t>(threshold);
  const float sc = static_cast<float>(scale);
  if (x.scalar_type() == torch::kFloat32) {
    const float* px = x.data_ptr<float>();
    float* po = out.data_ptr<float>();
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { dropout_f32(px, po, b, e, s, thr, sc); });
  } else {
    const auto* px = reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>());
    auto* po = reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>());
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { dropout_bf16(px, po, b, e, s, thr, sc); });
  }
  return out;
}
