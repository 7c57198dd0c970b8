// distgnn CPU dropout: out = keep ? x * scale : 0 with a counter-based mask, optionally of relu(x).
//
// keep = draw(seed, counter) >= threshold, where draw is word 0 of Philox4x32-10 with key
// (seed & 0xffffffff, seed >> 32) and counter (counter & 0xffffffff, counter >> 32, 0, 0) -- see philox.h.
// This is bit for bit what Triton's tl.randint(seed, offset) returns for an int64 offset = counter (its
// randint4x puts the offset's low and high halves in counter words 0 and 1 and philox() splits the seed
// into key words lo, hi), so the Triton dropout (kernels/triton_impl.py) is a tl.randint call. An
// element's counter is its flat index, or keys[row] * width + col when per-row keys are given; counters
// are 64-bit, so keys above 2^32 / width work. The mask is a pure function of (seed, counter), so:
//  * the loop is embarrassingly parallel and vectorises (no generator state carried between elements);
//  * the result does not depend on the thread count or on how elements are split between threads;
//  * no N x F mask is stored: the backward regenerates it from the seed, or (dropout_bits) applies the
//    forward's keep bits, one per element (1/32 of a float32 input), which costs one pass and no draw.
// kernels/reference.py (dropout_keep) computes the same Philox in torch integer ops: bit-identical masks.
//
// Vectorisation: Philox needs only 32 x 32 -> 64-bit multiplies, which every x86 vector ISA has
// (vpmuludq), unlike a 64-bit hash (vpmullq is AVX-512DQ only). Draws are made kPhiloxBlock elements at a
// time into a small buffer by philox_simd.h (AVX2: 2 x 8 lanes, AVX-512: 4 x 16 lanes interleaved),
// then a plain loop applies them. Entry points are compiled per ISA and chosen at run time (isa.h).

#include <torch/extension.h>

#include "isa.h"
#include "output.h"
#include "philox.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>

#ifdef DG_X86
#include <immintrin.h>
#endif

namespace {

constexpr int kPhiloxBlock = 64;  // draws made per batch (a multiple of the widest group: 4 x 16 lanes)

}  // namespace

#ifdef DG_X86
#pragma GCC push_options
#pragma GCC target("arch=x86-64-v3")
namespace {
namespace philox_avx2 {
using distgnn::kPhiloxM0, distgnn::kPhiloxM1, distgnn::kPhiloxW0, distgnn::kPhiloxW1;
using V = __m256i;
constexpr int kLanes = 8;
constexpr int kGroups = 2;  // 2 x 4 state vectors + constants fit the 16 ymm registers
DG_INLINE V set1(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
DG_INLINE V load(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const V*>(p)); }
DG_INLINE V mul_even(V a, V b) { return _mm256_mul_epu32(a, b); }
DG_INLINE V shr32(V a) { return _mm256_srli_epi64(a, 32); }
DG_INLINE V blend_odd(V even, V odd) { return _mm256_blend_epi32(even, odd, 0xAA); }
DG_INLINE V mullo(V a, V b) { return _mm256_mullo_epi32(a, b); }
DG_INLINE V vxor(V a, V b) { return _mm256_xor_si256(a, b); }
DG_INLINE void store(uint32_t* p, V v) { _mm256_storeu_si256(reinterpret_cast<V*>(p), v); }
// bit l = (v[l] >= t[l]) as unsigned: max_epu32(v, t) == v, one sign bit per lane to a mask register
DG_INLINE uint32_t ge_bits(V v, V t) {
  return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_max_epu32(v, t), v))));
}
#include "philox_simd.h"
}  // namespace philox_avx2
}  // namespace
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("arch=x86-64-v4")
namespace {
namespace philox_avx512 {
using distgnn::kPhiloxM0, distgnn::kPhiloxM1, distgnn::kPhiloxW0, distgnn::kPhiloxW1;
using V = __m512i;
constexpr int kLanes = 16;
constexpr int kGroups = 4;  // 4 x 4 state vectors + constants fit the 32 zmm registers
DG_INLINE V set1(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
DG_INLINE V load(const uint32_t* p) { return _mm512_loadu_si512(p); }
DG_INLINE V mul_even(V a, V b) { return _mm512_mul_epu32(a, b); }
DG_INLINE V shr32(V a) { return _mm512_srli_epi64(a, 32); }
DG_INLINE V blend_odd(V even, V odd) { return _mm512_mask_blend_epi32(0xAAAA, even, odd); }
DG_INLINE V mullo(V a, V b) { return _mm512_mullo_epi32(a, b); }
DG_INLINE V vxor(V a, V b) { return _mm512_xor_si512(a, b); }
DG_INLINE void store(uint32_t* p, V v) { _mm512_storeu_si512(p, v); }
DG_INLINE uint32_t ge_bits(V v, V t) { return _mm512_cmpge_epu32_mask(v, t); }
#include "philox_simd.h"
}  // namespace philox_avx512
}  // namespace
#pragma GCC pop_options
#endif

namespace {

using distgnn::Isa;

constexpr int64_t kGrain = int64_t(1) << 15;  // elements per parallel task (keeps tasks >= ~100 us)

// out[k] = draw(seed, hi[k] << 32 | lo[k]) for k < n (the SIMD versions fill whole groups past n).
template <Isa I>
DG_INLINE void philox_draws(uint64_t seed, const uint32_t* lo, const uint32_t* hi, int n, uint32_t* out) {
#ifdef DG_X86
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  if constexpr (I == Isa::avx512) return philox_avx512::philox_block(k0, k1, lo, hi, n, out);
  if constexpr (I == Isa::avx2) return philox_avx2::philox_block(k0, k1, lo, hi, n, out);
#endif
  for (int k = 0; k < n; ++k) out[k] = distgnn::philox_draw(seed, (uint64_t(hi[k]) << 32) | lo[k]);
}

// Bit k = (d[k] >= thr) for the kPhiloxBlock (64) draws of one block: the keep mask, one word per block.
template <Isa I>
DG_INLINE uint64_t keep_bits(const uint32_t* d, uint32_t thr) {
#ifdef DG_X86
  if constexpr (I == Isa::avx512) return philox_avx512::keep_bits(d, thr);
  if constexpr (I == Isa::avx2) return philox_avx2::keep_bits(d, thr);
#endif
  uint64_t bits = 0;
  for (int k = 0; k < kPhiloxBlock; ++k) bits |= uint64_t(d[k] >= thr) << k;
  return bits;
}

DG_INLINE float bf16_to_f(uint16_t v) {
  uint32_t bits = static_cast<uint32_t>(v) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Round to nearest even, NaN -> quiet NaN: the same rounding as c10::BFloat16 (so as torch's bf16 mul).
DG_INLINE uint16_t f_to_bf16(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const uint32_t rounding = ((bits >> 16) & 1u) + 0x7FFFu;
  const uint16_t r = static_cast<uint16_t>((bits + rounding) >> 16);
  return (bits & 0x7FFFFFFFu) > 0x7F800000u ? uint16_t(0x7FC0) : r;  // NaN test on bits: vectorises
}

DG_INLINE float load(const float* p, int64_t i) { return p[i]; }
DG_INLINE float load(const uint16_t* p, int64_t i) { return bf16_to_f(p[i]); }
DG_INLINE void store(float* p, int64_t i, float v) { p[i] = v; }
DG_INLINE void store(uint16_t* p, int64_t i, float v) { p[i] = f_to_bf16(v); }

DG_INLINE uint32_t f_bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

DG_INLINE float masked(float f, uint32_t keep) {  // f if keep else +0.0, as bits
  const uint32_t b = f_bits(f) & (0u - keep);
  float r;
  std::memcpy(&r, &b, 4);
  return r;
}

// 1 iff v > 0 (bits in [+min subnormal, +inf]; not for -0, negatives or NaN), in integer ops only.
DG_INLINE uint32_t is_positive(float v) { return (f_bits(v) - 1u) < 0x7F800000u; }

// out[k] = keep ? v * scale : +0 with v = x[k] (+ bias[k]), keep = d[k] >= thr (and v > 0 with RELU).
// Integer masks and an unconditional multiply, over restrict pointers, so the loop vectorises: GCC does
// not if-convert a float select under -ftrapping-math, and a branch on a random keep bit mispredicts
// half the time (that branch cost more than the whole Philox draw).
template <typename T, bool RELU, bool BIAS>
DG_INLINE void apply_draws(const T* __restrict x, T* __restrict out, const uint32_t* __restrict d,
                           const float* __restrict bias, int64_t n, uint32_t thr, float scale) {
  for (int64_t k = 0; k < n; ++k) {
    float v = load(x, k);
    if (BIAS) v += bias[k];
    uint32_t keep = d[k] >= thr;
    if (RELU) keep &= is_positive(v);
    store(out, k, masked(v * scale, keep));
  }
}

// Elements [begin, end) of the flat input, rows of `width` columns, kPhiloxBlock at a time: the block's
// counters, its draws, then the outputs. BIAS: x + bias[column] first; RELU: then max(., 0); both fuse
// a layer's epilogue into the next layer's input dropout. KEYS: the counter of element (row, col) is
// keys[row] * width + col instead of its flat index, so a row's mask follows the row's key (a global
// node id) wherever the row sits: partitioning and chunking leave masks unchanged. `bits` (optional, with
// begin a multiple of kPhiloxBlock): word begin / 64 + j gets block j's keep bits (of the draw only, not
// of the ReLU), so a plain dropout's backward applies the mask without drawing it again.
template <Isa I, typename T, bool RELU, bool BIAS, bool KEYS>
DG_INLINE void dropout_range(const T* x, T* out, int64_t begin, int64_t end, uint64_t seed, uint32_t thr,
                             float scale, const float* bias, int64_t width, const int64_t* keys,
                             uint64_t* bits) {
  constexpr bool ROWS = BIAS || KEYS;
  alignas(64) uint32_t lo[kPhiloxBlock] = {}, hi[kPhiloxBlock] = {}, draws[kPhiloxBlock];
  for (int64_t b = begin; b < end; b += kPhiloxBlock) {
    const int64_t e = std::min<int64_t>(end, b + kPhiloxBlock);
    for (int64_t i = b; i < e;) {  // counters, one row segment at a time
      const int64_t row = KEYS ? i / width : 0, col = KEYS ? i - row * width : 0;
      const int64_t stop = KEYS ? std::min(e, i + width - col) : e;
      const uint64_t c0 = KEYS ? static_cast<uint64_t>(keys[row] * width + col) : static_cast<uint64_t>(i);
      for (int64_t j = i; j < stop; ++j) {
        const uint64_t c = c0 + static_cast<uint64_t>(j - i);
        lo[j - b] = static_cast<uint32_t>(c);
        hi[j - b] = static_cast<uint32_t>(c >> 32);
      }
      i = stop;
    }
    philox_draws<I>(seed, lo, hi, static_cast<int>(e - b), draws);
    if (bits != nullptr) {  // draws past e are garbage: their bits are cleared
      const uint64_t valid = e - b == kPhiloxBlock ? ~uint64_t(0) : (uint64_t(1) << (e - b)) - 1;
      bits[b / kPhiloxBlock] = keep_bits<I>(draws, thr) & valid;
    }
    for (int64_t i = b; i < e;) {  // outputs, one row segment at a time (the bias index is an offset)
      const int64_t row = ROWS ? i / width : 0, col = ROWS ? i - row * width : 0;
      const int64_t stop = ROWS ? std::min(e, i + width - col) : e;
      apply_draws<T, RELU, BIAS>(x + i, out + i, draws + (i - b), BIAS ? bias + col : nullptr, stop - i, thr,
                                 scale);
      i = stop;
    }
  }
}

template <Isa I, typename T>
DG_INLINE void dropout_task(const T* x, T* out, int64_t b, int64_t e, uint64_t seed, uint32_t thr, float scale,
                            bool relu, const float* bias, int64_t width, const int64_t* keys, uint64_t* bits) {
#define DG_RANGE(R, B, K) dropout_range<I, T, R, B, K>(x, out, b, e, seed, thr, scale, bias, width, keys, bits)
  if (keys != nullptr) {
    if (bias != nullptr) relu ? DG_RANGE(true, true, true) : DG_RANGE(false, true, true);
    else relu ? DG_RANGE(true, false, true) : DG_RANGE(false, false, true);
  } else {
    if (bias != nullptr) relu ? DG_RANGE(true, true, false) : DG_RANGE(false, true, false);
    else relu ? DG_RANGE(true, false, false) : DG_RANGE(false, false, false);
  }
#undef DG_RANGE
}

// The gradient of relu + dropout from its output: an element passed both iff out > 0 (scale >= 1 keeps
// every kept positive value positive), so no mask is regenerated and no input is kept.
template <typename T>
DG_INLINE void positive_scale_task(const T* __restrict out, const T* __restrict g, T* __restrict res,
                                   int64_t begin, int64_t end, float scale) {
  for (int64_t i = begin; i < end; ++i) store(res, i, masked(load(g, i) * scale, is_positive(load(out, i))));
}

// res = bit k of the mask ? g * scale : +0 for elements [begin, end) (begin a multiple of kPhiloxBlock): the
// backward of plain dropout from the forward's keep bits. 32 elements per 32-bit half-word, so the lane
// shift (w >> k) & 1 is a 32-bit variable shift, which AVX2 has (vpsrlvd).
template <typename T>
DG_INLINE void masked_scale_task(const T* __restrict g, const uint64_t* __restrict bits, T* __restrict res,
                                 int64_t begin, int64_t end, float scale) {
  for (int64_t b = begin; b < end; b += 32) {
    const uint32_t w = static_cast<uint32_t>(bits[b / kPhiloxBlock] >> (b % kPhiloxBlock));
    if (end - b >= 32) {
      for (int k = 0; k < 32; ++k) store(res, b + k, masked(load(g, b + k) * scale, (w >> k) & 1u));
    } else {
      for (int64_t k = 0; k < end - b; ++k) store(res, b + k, masked(load(g, b + k) * scale, (w >> k) & 1u));
    }
  }
}

// One entry point per ISA (isa.h): the templates above inlined under each target.
#define DG_DROPOUT_ENTRIES(SUFFIX, TARGET, ISA)                                                            \
  template <typename T>                                                                                  \
  TARGET void dropout_task_##SUFFIX(const T* x, T* out, int64_t b, int64_t e, uint64_t seed, uint32_t thr, \
                                    float scale, bool relu, const float* bias, int64_t width,            \
                                    const int64_t* keys, uint64_t* bits) {                               \
    dropout_task<ISA, T>(x, out, b, e, seed, thr, scale, relu, bias, width, keys, bits);                 \
  }                                                                                                      \
  template <typename T>                                                                                  \
  TARGET void masked_scale_task_##SUFFIX(const T* g, const uint64_t* m, T* r, int64_t b, int64_t e,       \
                                         float s) {                                                      \
    masked_scale_task<T>(g, m, r, b, e, s);                                                              \
  }                                                                                                      \
  template <typename T>                                                                                  \
  TARGET void positive_scale_task_##SUFFIX(const T* o, const T* g, T* r, int64_t b, int64_t e, float s) { \
    positive_scale_task<T>(o, g, r, b, e, s);                                                            \
  }
DG_DROPOUT_ENTRIES(avx512, DG_TARGET_AVX512, Isa::avx512)
DG_DROPOUT_ENTRIES(avx2, DG_TARGET_AVX2, Isa::avx2)
DG_DROPOUT_ENTRIES(baseline, , Isa::baseline)
#undef DG_DROPOUT_ENTRIES

void check_float(const torch::Tensor& t, const char* what) {
  TORCH_CHECK(t.is_contiguous(), what, " must be contiguous");
  TORCH_CHECK(t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16,
              what, " supports float32 and bfloat16, got ", t.scalar_type());
}


}  // namespace

namespace {

// The dropout of `x` (see the entry points below); with `want_bits`, also its keep mask as bits, one int64
// word per 64 elements (bit k of word j: element 64 j + k was kept by the draw; the ReLU is not in it).
std::tuple<torch::Tensor, torch::Tensor> dropout_impl(const torch::Tensor& x, int64_t seed, int64_t threshold,
                                                      double scale, bool relu,
                                                      const std::optional<torch::Tensor>& bias,
                                                      const std::optional<torch::Tensor>& keys, bool want_bits) {
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
  const int64_t blocks = (n + kPhiloxBlock - 1) / kPhiloxBlock;
  auto bits = torch::empty({want_bits ? blocks : 0}, x.options().dtype(torch::kInt64));
  if (threshold == (int64_t(1) << 32)) {  // no 32-bit draw reaches 2^32: keep none
    bits.zero_();
    return {out.zero_(), bits};
  }
  uint64_t* pm = want_bits ? reinterpret_cast<uint64_t*>(bits.data_ptr<int64_t>()) : nullptr;
  const uint64_t s = static_cast<uint64_t>(seed);
  const uint32_t thr = static_cast<uint32_t>(threshold);
  const float sc = static_cast<float>(scale);
  const distgnn::Isa isa = distgnn::active_isa();
  auto run = [&](const auto* px, auto* po) {
    // Tasks are whole blocks of kPhiloxBlock elements, so each writes whole mask words.
    at::parallel_for(0, blocks, kGrain / kPhiloxBlock, [&](int64_t bb, int64_t eb) {
      const int64_t b = bb * kPhiloxBlock, e = std::min(n, eb * kPhiloxBlock);
      if (isa == Isa::avx512) dropout_task_avx512(px, po, b, e, s, thr, sc, relu, pb, width, pk, pm);
      else if (isa == Isa::avx2) dropout_task_avx2(px, po, b, e, s, thr, sc, relu, pb, width, pk, pm);
      else dropout_task_baseline(px, po, b, e, s, thr, sc, relu, pb, width, pk, pm);
    });
  };
  if (x.scalar_type() == torch::kFloat32) {
    run(x.data_ptr<float>(), out.data_ptr<float>());
  } else {
    run(reinterpret_cast<const uint16_t*>(x.data_ptr<at::BFloat16>()),
        reinterpret_cast<uint16_t*>(out.data_ptr<at::BFloat16>()));
  }
  return {out, bits};
}

}  // namespace

// out = keep ? v * scale : 0 with v = x (+ bias[column]) (then max(v, 0) when relu), for contiguous
// float32 / bfloat16 x and float32 bias of x's last-dimension size; keep as described at the top, with
// the counters of `keys` (int64, one per row of a 1-D or 2-D x) when given.
// threshold is in [0, 2^32]: an element is kept with probability 1 - threshold / 2^32.
torch::Tensor dropout(torch::Tensor x, int64_t seed, int64_t threshold, double scale, bool relu,
                      std::optional<torch::Tensor> bias, std::optional<torch::Tensor> keys) {
  return std::get<0>(dropout_impl(x, seed, threshold, scale, relu, bias, keys, false));
}

// dropout(...) and its keep mask as int64 [ceil(numel / 64)] bits (1/32 of a float32 x's bytes): the
// backward of a plain dropout then applies the bits (masked_scale) instead of drawing the mask again.
std::tuple<torch::Tensor, torch::Tensor> dropout_bits(torch::Tensor x, int64_t seed, int64_t threshold,
                                                      double scale, bool relu, std::optional<torch::Tensor> bias,
                                                      std::optional<torch::Tensor> keys) {
  return dropout_impl(x, seed, threshold, scale, relu, bias, keys, true);
}

// res = bit i of `bits` ? grad[i] * scale : 0, bits from dropout_bits of a tensor shaped like grad.
torch::Tensor masked_scale(torch::Tensor grad, torch::Tensor bits, double scale) {
  check_float(grad, "masked_scale grad");
  const int64_t n = grad.numel();
  TORCH_CHECK(bits.scalar_type() == torch::kInt64 && bits.is_contiguous() && bits.dim() == 1 &&
                  bits.numel() == (n + kPhiloxBlock - 1) / kPhiloxBlock,
              "masked_scale bits must be the int64 [ceil(numel / 64)] mask of dropout_bits");
  auto res = distgnn::new_output(grad.sizes(), grad.options());
  const uint64_t* pm = reinterpret_cast<const uint64_t*>(bits.data_ptr<int64_t>());
  const float sc = static_cast<float>(scale);
  const distgnn::Isa isa = distgnn::active_isa();
  const int64_t blocks = (n + kPhiloxBlock - 1) / kPhiloxBlock;
  auto run = [&](const auto* pg, auto* pr) {
    at::parallel_for(0, blocks, kGrain / kPhiloxBlock, [&](int64_t bb, int64_t eb) {
      const int64_t b = bb * kPhiloxBlock, e = std::min(n, eb * kPhiloxBlock);
      if (isa == Isa::avx512) masked_scale_task_avx512(pg, pm, pr, b, e, sc);
      else if (isa == Isa::avx2) masked_scale_task_avx2(pg, pm, pr, b, e, sc);
      else masked_scale_task_baseline(pg, pm, pr, b, e, sc);
    });
  };
  if (grad.scalar_type() == torch::kFloat32) {
    run(grad.data_ptr<float>(), res.data_ptr<float>());
  } else {
    run(reinterpret_cast<const uint16_t*>(grad.data_ptr<at::BFloat16>()),
        reinterpret_cast<uint16_t*>(res.data_ptr<at::BFloat16>()));
  }
  return res;
}

// res = out > 0 ? grad * scale : 0: the backward of relu + dropout given its output.
torch::Tensor positive_scale(torch::Tensor out, torch::Tensor grad, double scale) {
  check_float(out, "positive_scale output");
  TORCH_CHECK(grad.is_contiguous() && grad.scalar_type() == out.scalar_type() && grad.sizes() == out.sizes(),
              "positive_scale grad must be contiguous, of the output's dtype and shape");
  auto res = distgnn::new_output(out.sizes(), out.options());
  const int64_t n = out.numel();
  const float sc = static_cast<float>(scale);
  const distgnn::Isa isa = distgnn::active_isa();
  auto run = [&](const auto* po, const auto* pg, auto* pr) {
    at::parallel_for(0, n, kGrain, [&](int64_t b, int64_t e) {
      if (isa == Isa::avx512) positive_scale_task_avx512(po, pg, pr, b, e, sc);
      else if (isa == Isa::avx2) positive_scale_task_avx2(po, pg, pr, b, e, sc);
      else positive_scale_task_baseline(po, pg, pr, b, e, sc);
    });
  };
  if (out.scalar_type() == torch::kFloat32) {
    run(out.data_ptr<float>(), grad.data_ptr<float>(), res.data_ptr<float>());
  } else {
    run(reinterpret_cast<const uint16_t*>(out.data_ptr<at::BFloat16>()),
        reinterpret_cast<const uint16_t*>(grad.data_ptr<at::BFloat16>()),
        reinterpret_cast<uint16_t*>(res.data_ptr<at::BFloat16>()));
  }
  return res;
}
