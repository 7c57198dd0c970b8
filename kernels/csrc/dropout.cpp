// distgnn CPU dropout: out = keep ? x * scale : 0 with a counter-based mask, optionally of relu(x).
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

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>


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

DGD_INLINE float load(const float* p, int64_t i) { return p[i]; }
DGD_INLINE float load(const uint16_t* p, int64_t i) { return bf16_to_f(p[i]); }
DGD_INLINE void store(float* p, int64_t i, float v) { p[i] = v; }
DGD_INLINE void store(uint16_t* p, int64_t i, float v) { p[i] = f_to_bf16(v); }

// Elements [begin, end) of the flat input, rows of `width` columns. BIAS: x + bias[column] first; RELU:
// then max(., 0); both fuse a layer's epilogue into the next layer's input dropout. KEYS: the counter of
// element (row, col) is keys[row] * width + col instead of its flat index, so a row's mask follows the
// row's key (a global node id) wherever the row sits: partitioning and chunking leave masks unchanged.
template <typename T, bool RELU, bool BIAS, bool KEYS>
DGD_CLONES void dropout_range(const T* x, T* out, int64_t begin, int64_t end, uint64_t seed, uint64_t thr,
                              float scale, const float* bias, int64_t width, const int64_t* keys) {
  constexpr bool ROWS = BIAS || KEYS;
  int64_t i = begin;
  while (i < end) {  // one row segment at a time, so the bias index and the counter are plain offsets
    const int64_t row = ROWS ? i / width : 0;
    const int64_t col = ROWS ? i - row * width : 0;
    const int64_t off = col - i;  // in this segment the bias of element j is bias[j + off]
    const uint64_t ctr_off = KEYS ? static_cast<uint64_t>(keys[row] * width + col - i) : 0;
    const int64_t stop = ROWS ? std::min(end, i + width - col) : end;
    for (; i < stop; ++i) {
      float v = load(x, i);
      if (BIAS) v += bias[i + off];
      const bool keep = draw(seed, static_cast<uint64_t>(i) + ctr_off) >= thr && (!RELU || v > 0.f);
      store(out, i, keep ? v * scale : 0.f);
    }
  }
}

template <typename T, bool KEYS>
void dropout_run_keys(const T* x, T* out, int64_t n, uint64_t seed, uint64_t thr, float scale, bool relu,
                      const float* bias, int64_t width, const int64_t* keys) {
  at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
    if (bias != nullptr) {
      relu ? dropout_range<T, true, true, KEYS>(x, out, b, e, seed, thr, scale, bias, width, keys)
           : dropout_range<T, false, true, KEYS>(x, out, b, e, seed, thr, scale, bias, width, keys);
    } else {
      relu ? dropout_range<T, true, false, KEYS>(x, out, b, e, seed, thr, scale, bias, width, keys)
           : dropout_range<T, false, false, KEYS>(x, out, b, e, seed, thr, scale, bias, width, keys);
    }
  });
}

template <typename T>
void dropout_run(const T* x, T* out, int64_t n, uint64_t seed, uint64_t thr, float scale, bool relu,
                 const float* bias, int64_t width, const int64_t* keys) {
  keys ? dropout_run_keys<T, true>(x, out, n, seed, thr, scale, relu, bias, width, keys)
       : dropout_run_keys<T, false>(x, out, n, seed, thr, scale, relu, bias, width, keys);
}

// The gradient of relu + dropout from its output: an element passed both iff out > 0 (scale >= 1 keeps
// every kept positive value positive), so no mask is regenerated and no input is kept.
DGD_CLONES void positive_scale_f32(const float* out, const float* g, float* res, int64_t begin, int64_t end,
                                   float scale) {
  for (int64_t i = begin; i < end; ++i) res[i] = out[i] > 0.f ? g[i] * scale : 0.f;
}

DGD_CLONES void positive_scale_bf16(const uint16_t* out, const uint16_t* g, uint16_t* res, int64_t begin,
                                    int64_t end, float scale) {
  for (int64_t i = begin; i < end; ++i) {
    res[i] = bf16_to_f(out[i]) > 0.f ? f_to_bf16(bf16_to_f(g[i]) * scale) : uint16_t(0);
  }
}

void check_float(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.is_contiguous(), what, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16,
              what, " supports float32 and bfloat16, got ", t.scalar_type());
}


}  // namespace

// out = keep ? v * scale : 0 with v = x (+ bias[column]) (then max(v, 0) when relu), for contiguous
// float32 / bfloat16 x and float32 bias of x's last-dimension size; keep as described at the top, with
// the counters of `keys` (int64, one per row of a 1-D or 2-D x) when given.
// threshold is in [0, 2^32]: an element is kept with probability 1 - threshold / 2^32.
torch::Tensor dropout(torch::Tensor x, int64_t seed, int64_t threshold, double scale, bool relu,
                      std::optional<torch::Tensor> bias, std::optional<torch::Tensor> keys) {
  check_float(x, "dropout input");
  TORCH_CHECK(threshold >= 0 && threshold <= (int64_t(1) << 32), "dropout threshold out of range");
  const float* pb = nullptr;
  int64_t width = 1;
  if (bias.has_value()) {
    TORCH_CHECK(bias->scalar_type() == torch::kFloat32 && bias->is_contiguous() && bias->dim() == 1,
                "dropout bias must be a contiguous float32 vector");
    TORCH_CHECK(x.dim() >= 1 && x.size(-1) == bias->numel(), "dropout bias must match x's last dimension");
    pb = bias->data_ptr<float>();
    width = std::max<int64_t>(bias->numel(), 1);
  }
  const int64_t* pk = nullptr;
  if (keys.has_value()) {
    TORCH_CHECK(keys->scalar_type() == torch::kInt64 && keys->is_contiguous() && keys->dim() == 1,
                "dropout keys must be a contiguous int64 vector");
    TORCH_CHECK((x.dim() == 1 && !bias.has_value()) || x.dim() == 2,
                "dropout keys need a 2-D x (or a 1-D x without bias)");
    TORCH_CHECK(keys->numel() == x.size(0), "dropout keys must have one entry per row of x");
    pk = keys->data_ptr<int64_t>();
    width = x.dim() == 2 ? std::max<int64_t>(x.size(1), 1) : 1;
  }
  auto out = distgnn::new_output(x.sizes(), x.options());
  const int64_t n = x.numel();
  const uint64_t s = static_cast<uint64_t>(seed), thr = static_cast<uint64_t>(threshold);
  const float sc = static_cast<float>(scale);
  if (x.scalar_type() == torch::kFloat32) {
    dropout_run(x.data_ptr<float>(), out.data_ptr<float>(), n, s, thr, sc, relu, pb, width, pk);
  } else {
    dropout_run(reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()),
                reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()), n, s, thr, sc, relu, pb, width, pk);
  }
  return out;
}

// res = out > 0 ? grad * scale : 0: the backward of relu + dropout given its output.
torch::Tensor positive_scale(torch::Tensor out, torch::Tensor grad, double scale) {
  check_float(out, "positive_scale output");
  TORCH_CHECK(grad.is_contiguous() && grad.scalar_type() == out.scalar_type() && grad.sizes() == out.sizes(),
              "positive_scale grad must be contiguous, of the output's dtype and shape");
  auto res = distgnn::new_output(out.sizes(), out.options());
  const int64_t n = out.numel();
  const float sc = static_cast<float>(scale);
  if (out.scalar_type() == torch::kFloat32) {
    const float *po = out.data_ptr<float>(), *pg = grad.data_ptr<float>();
    float* pr = res.data_ptr<float>();
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { positive_scale_f32(po, pg, pr, b, e, sc); });
  } else {
    const auto* po = reinterpret_cast<const uint16_t*>(out.data_ptr<at::BFloat16>());
    const auto* pg = reinterpret_cast<const uint16_t*>(grad.data_ptr<at::BFloat16>());
    auto* pr = reinterpret_cast<uint16_t*>(res.data_ptr<at::BFloat16>());
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) { positive_scale_bf16(po, pg, pr, b, e, sc); });
  }
  return res;
}
