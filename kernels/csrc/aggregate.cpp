// distgnn CPU aggregation kernels: fused CSR gSpMM (sum/mean/max), SDDMM, edge softmax, edge dot.
//
// Row-parallel over destinations with OpenMP using torch's thread count. Rows are cut into chunks of
// equal work (edges + rows) and handed out dynamically, so a power-law degree distribution (or a thread
// preempted by another process) does not leave a thread idle. The hot loops are compiled for AVX-512 /
// AVX2 / baseline as separate entry points and picked at each call (isa.h: DISTGNN_CPU_ISA forces one;
// safe to cache and ship, unlike -march=native). Accumulation is float32 for float32 and bfloat16
// features; source/destination scaling, bias and ReLU are fused. The CSR arrays are int32 or int64 (one
// template instance each, `idx_t`); loaded indices are widened to int64_t before any offset is formed.
//
// The sum/mean kernel is gather-bound (one random feature row per edge), so it is written for memory
// throughput: a row's accumulator lives in vector registers (chunks of kPassVecs native vectors of the
// ISA: see there for what each entry point keeps in registers), the source rows
// of the next kPrefetchEdges edges are software-prefetched (the hardware
// prefetcher cannot guess random rows), and large outputs are placed on transparent huge pages before
// the first write (4 KiB page faults on a fresh 256 MB output cost more than the write itself).

#include <torch/extension.h>

#include "isa.h"
#include "output.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <cstring>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__x86_64__)
#include <immintrin.h>
#define DG_STREAM 1
#endif

namespace {

using distgnn::Isa;

constexpr int64_t kPrefetchEdges = 16;    // how many edges ahead to prefetch source rows
constexpr int64_t kPrefetchBytes = 1024;  // at most this much of each row (the rest streams)
// Register blocking of the sum/mean kernel: one pass over a row's in-edges accumulates kPassVecs native
// vectors of kLanes<ISA> floats (the ISA's own register width: a wider generic vector type is lowered
// through the stack on narrower ISAs, which is what made the old 16-float vectors slow on AVX2). What
// each entry point keeps in registers during the edge loop (checked with objdump: no stack access):
//  * avx512 (32 zmm): 8 zmm = 128 floats of accumulator, 1 zmm coefficient broadcast (+1 for bf16 loads);
//  * avx2 (16 ymm): 8 ymm = 64 floats of accumulator, 1 ymm coefficient (+1 for bf16): 16 ymm of
//    accumulator (128 floats) would leave none for the operands and spill;
//  * baseline (16 xmm, SSE2): 8 xmm = 32 floats of accumulator, 1 xmm coefficient, 1-2 for loads.
// Narrower rows (or row tails) take passes of 4, 2 and 1 vectors, then a scalar tail.
template <Isa I>
constexpr int kLanes = I == Isa::avx512 ? 16 : I == Isa::avx2 ? 8 : 4;
constexpr int kPassVecs = 8;
constexpr int64_t kStreamBytes = int64_t(64) << 20;  // outputs this large bypass the cache when written

template <int W>
struct Vec {  // W floats in one register of the target ISA
  typedef float f __attribute__((vector_size(4 * W)));
  typedef uint16_t u16 __attribute__((vector_size(2 * W)));
  typedef uint32_t u32 __attribute__((vector_size(4 * W)));
};

template <typename idx_t>
struct SpmmArgs {  // idx_t: int32_t or int64_t CSR arrays (every offset computed from them is int64_t)
  const idx_t* indptr;
  const idx_t* indices;
  const void* x;      // [S, H, D] scalar_t
  const float* w;     // [E, H] or null
  const float* ss;    // [S] or null
  const float* ds;    // [R] or null
  const float* bias;  // [H * D] or null
  void* out;          // [R, H, D] scalar_t
  int64_t* arg;       // [R, H, D] (max only)
  int64_t num_edges, H, D;
  bool mean, relu;
  bool stream;  // write float32 output rows with non-temporal stores (64-byte aligned rows only)
};

template <typename T>
DG_INLINE float to_f(T v) {
  return static_cast<float>(v);
}

template <typename scalar_t>
DG_INLINE void prefetch_row(const scalar_t* row, int64_t F) {
  const char* p = reinterpret_cast<const char*>(row);
  const int64_t bytes = std::min<int64_t>(F * static_cast<int64_t>(sizeof(scalar_t)), kPrefetchBytes);
  for (int64_t o = 0; o < bytes; o += 64) __builtin_prefetch(p + o, 0, 3);
}

template <typename scalar_t>
DG_INLINE void axpy(float* __restrict acc, const scalar_t* __restrict xr, float c, int64_t n) {
#pragma omp simd
  for (int64_t f = 0; f < n; ++f) acc[f] += c * to_f(xr[f]);
}

template <typename scalar_t, typename idx_t>
DG_INLINE void epilogue(const SpmmArgs<idx_t>& a, int64_t i, int64_t deg, const float* __restrict acc,
                        scalar_t* __restrict out_row, int64_t F) {
  float scale = a.ds ? a.ds[i] : 1.f;
  if (a.mean && deg > 0) scale /= static_cast<float>(deg);
  const float* bias = a.bias;
  const bool relu = a.relu;
  for (int64_t f = 0; f < F; ++f) {
    float v = acc[f] * scale + (bias ? bias[f] : 0.f);
    if (relu) v = v > 0.f ? v : 0.f;
    out_row[f] = static_cast<scalar_t>(v);
  }
}

template <typename scalar_t, typename idx_t>
DG_INLINE void spmm_rows(const SpmmArgs<idx_t>& a, int64_t r0, int64_t r1, float* __restrict acc) {
  const scalar_t* __restrict x = static_cast<const scalar_t*>(a.x);
  scalar_t* __restrict out = static_cast<scalar_t*>(a.out);
  const idx_t* __restrict indices = a.indices;
  const int64_t H = a.H, D = a.D, F = H * D, E = a.num_edges;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t b = a.indptr[i], en = a.indptr[i + 1];
    std::fill(acc, acc + F, 0.f);
    for (int64_t e = b; e < en; ++e) {
      if (e + kPrefetchEdges < E) prefetch_row(x + static_cast<int64_t>(indices[e + kPrefetchEdges]) * F, F);
      const int64_t j = indices[e];
      const float c = a.ss ? a.ss[j] : 1.f;
      const scalar_t* xr = x + j * F;
      if (a.w == nullptr) {
        axpy(acc, xr, c, F);
      } else if (H == 1) {
        axpy(acc, xr, c * a.w[e], F);
      } else {
        for (int64_t h = 0; h < H; ++h) axpy(acc + h * D, xr + h * D, c * a.w[e * H + h], D);
      }
    }
    epilogue(a, i, en - b, acc, out + i * F, F);
  }
}

// Load W consecutive features as float32 (bfloat16 is the high half of a float32).
template <int W>
DG_INLINE typename Vec<W>::f load_vec(const float* p) {
  typename Vec<W>::f v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}
template <int W>
DG_INLINE typename Vec<W>::f load_vec(const c10::BFloat16* p) {
  typename Vec<W>::u16 h;
  std::memcpy(&h, p, sizeof(h));
  const typename Vec<W>::u32 w = __builtin_convertvector(h, typename Vec<W>::u32) << 16;
  typename Vec<W>::f v;
  std::memcpy(&v, &w, sizeof(v));
  return v;
}

// One pass over the in-edges of row i for features [off, off + W * NV): the accumulator is NV vector
// registers of W floats. Only the first pass over a row prefetches (the whole row, for every pass).
template <typename scalar_t, int W, int NV, typename idx_t>
DG_INLINE void sum_pass(const SpmmArgs<idx_t>& a, int64_t i, int64_t b, int64_t en, int64_t off, bool prefetch,
                        float scale) {
  using V = typename Vec<W>::f;
  const scalar_t* __restrict x = static_cast<const scalar_t*>(a.x);
  const idx_t* __restrict indices = a.indices;
  const int64_t F = a.D, E = a.num_edges;
  V acc[NV];
  for (int k = 0; k < NV; ++k) acc[k] = V{};
  for (int64_t e = b; e < en; ++e) {
    if (prefetch && e + kPrefetchEdges < E) prefetch_row(x + static_cast<int64_t>(indices[e + kPrefetchEdges]) * F, F);
    const int64_t j = indices[e];
    const float c = (a.ss ? a.ss[j] : 1.f) * (a.w ? a.w[e] : 1.f);
    const scalar_t* xr = x + j * F + off;
    for (int k = 0; k < NV; ++k) acc[k] += c * load_vec<W>(xr + W * k);
  }
  scalar_t* out_row = static_cast<scalar_t*>(a.out) + i * F + off;
  const float* bias = a.bias ? a.bias + off : nullptr;
  for (int k = 0; k < NV; ++k) {
    V v = acc[k] * scale;
    if (bias) v += load_vec<W>(bias + W * k);
    if (a.relu) v = v > 0.f ? v : 0.f;
    if constexpr (std::is_same<scalar_t, float>::value) {
#ifdef DG_STREAM
      if (a.stream) {  // the output is far larger than the cache: skip the read-for-ownership
        for (int q = 0; q < W / 4; ++q) {
          __m128 p;
          std::memcpy(&p, reinterpret_cast<const float*>(&v) + 4 * q, sizeof(p));
          _mm_stream_ps(out_row + W * k + 4 * q, p);
        }
        continue;
      }
#endif
      std::memcpy(out_row + W * k, &v, sizeof(v));
    } else {
      for (int q = 0; q < W; ++q) out_row[W * k + q] = static_cast<scalar_t>(v[q]);
    }
  }
}

// The last F % W (< 16) features of row i (a scalar loop over a short accumulator).
template <typename scalar_t, typename idx_t>
DG_INLINE void sum_tail(const SpmmArgs<idx_t>& a, int64_t i, int64_t b, int64_t en, int64_t off,
                        bool prefetch, float scale) {
  const scalar_t* __restrict x = static_cast<const scalar_t*>(a.x);
  const idx_t* __restrict indices = a.indices;
  const int64_t F = a.D, E = a.num_edges, n = F - off;
  float acc[16] = {};
  for (int64_t e = b; e < en; ++e) {
    if (prefetch && e + kPrefetchEdges < E) prefetch_row(x + static_cast<int64_t>(indices[e + kPrefetchEdges]) * F, F);
    const int64_t j = indices[e];
    const float c = (a.ss ? a.ss[j] : 1.f) * (a.w ? a.w[e] : 1.f);
    const scalar_t* xr = x + j * F + off;
    for (int64_t f = 0; f < n; ++f) acc[f] += c * to_f(xr[f]);
  }
  scalar_t* out_row = static_cast<scalar_t*>(a.out) + i * F + off;
  for (int64_t f = 0; f < n; ++f) {
    float v = acc[f] * scale + (a.bias ? a.bias[off + f] : 0.f);
    if (a.relu) v = v > 0.f ? v : 0.f;
    out_row[f] = static_cast<scalar_t>(v);
  }
}

// Sum/mean over rows [r0, r1) when every head shares the edge weight (features folded into one row of
// F = a.D): passes of 8, then 4, 2, 1 native vectors (W = kLanes<I> floats each), then a scalar tail.
template <Isa I, typename scalar_t, typename idx_t>
DG_INLINE void spmm_rows_shared(const SpmmArgs<idx_t>& a, int64_t r0, int64_t r1) {
  constexpr int W = kLanes<I>;
  const int64_t F = a.D;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t b = a.indptr[i], en = a.indptr[i + 1];
    float scale = a.ds ? a.ds[i] : 1.f;
    if (a.mean && en > b) scale /= static_cast<float>(en - b);
    int64_t off = 0;
    for (; off + W * kPassVecs <= F; off += W * kPassVecs) {
      sum_pass<scalar_t, W, kPassVecs>(a, i, b, en, off, off == 0, scale);
    }
    if (F - off >= 4 * W) { sum_pass<scalar_t, W, 4>(a, i, b, en, off, off == 0, scale); off += 4 * W; }
    if (F - off >= 2 * W) { sum_pass<scalar_t, W, 2>(a, i, b, en, off, off == 0, scale); off += 2 * W; }
    if (F - off >= W) { sum_pass<scalar_t, W, 1>(a, i, b, en, off, off == 0, scale); off += W; }
    if (off < F) sum_tail<scalar_t>(a, i, b, en, off, off == 0, scale);
  }
}

template <typename scalar_t, typename idx_t>
DG_INLINE void spmm_max_rows(const SpmmArgs<idx_t>& a, int64_t r0, int64_t r1, float* __restrict acc,
                             int64_t* __restrict best) {
  const scalar_t* __restrict x = static_cast<const scalar_t*>(a.x);
  scalar_t* __restrict out = static_cast<scalar_t*>(a.out);
  const idx_t* __restrict indices = a.indices;
  const int64_t H = a.H, D = a.D, F = H * D, E = a.num_edges;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t b = a.indptr[i], en = a.indptr[i + 1];
    std::fill(acc, acc + F, ninf);
    std::fill(best, best + F, int64_t(-1));
    for (int64_t e = b; e < en; ++e) {
      if (e + kPrefetchEdges < E) prefetch_row(x + static_cast<int64_t>(indices[e + kPrefetchEdges]) * F, F);
      const int64_t j = indices[e];
      const float c = a.ss ? a.ss[j] : 1.f;
      const scalar_t* xr = x + j * F;
      for (int64_t h = 0; h < H; ++h) {
        const float ch = a.w ? c * a.w[a.H == 1 ? e : e * H + h] : c;
        float* ah = acc + h * D;
        int64_t* bh = best + h * D;
        const scalar_t* xh = xr + h * D;
        for (int64_t d = 0; d < D; ++d) {
          const float v = ch * to_f(xh[d]);
          const bool take = v > ah[d] || bh[d] < 0;
          ah[d] = take ? v : ah[d];
          bh[d] = take ? e : bh[d];
        }
      }
    }
    if (en == b) std::fill(acc, acc + F, 0.f);
    std::copy(best, best + F, a.arg + i * F);
    epilogue(a, i, en - b, acc, out + i * F, F);
  }
}

// One entry point per ISA (isa.h), each the templates above inlined under its target.
#define DG_SPMM_ENTRIES(SUFFIX, TARGET, ISA)                                                              \
  template <typename scalar_t, typename idx_t>                                                         \
  TARGET void spmm_rows_##SUFFIX(const SpmmArgs<idx_t>& a, int64_t r0, int64_t r1, float* acc) {         \
    if (a.H == 1) spmm_rows_shared<ISA, scalar_t>(a, r0, r1); else spmm_rows<scalar_t>(a, r0, r1, acc);  \
  }                                                                                                     \
  template <typename scalar_t, typename idx_t>                                                         \
  TARGET void spmm_max_rows_##SUFFIX(const SpmmArgs<idx_t>& a, int64_t r0, int64_t r1, float* acc,       \
                                     int64_t* best) {                                                   \
    spmm_max_rows<scalar_t>(a, r0, r1, acc, best);                                                      \
  }
DG_SPMM_ENTRIES(avx512, DG_TARGET_AVX512, Isa::avx512)
DG_SPMM_ENTRIES(avx2, DG_TARGET_AVX2, Isa::avx2)
DG_SPMM_ENTRIES(baseline, , Isa::baseline)
#undef DG_SPMM_ENTRIES

template <typename scalar_t, typename idx_t>
void spmm_rows_isa(Isa isa, const SpmmArgs<idx_t>& a, int64_t r0, int64_t r1, float* acc) {
  if (isa == Isa::avx512) spmm_rows_avx512<scalar_t>(a, r0, r1, acc);
  else if (isa == Isa::avx2) spmm_rows_avx2<scalar_t>(a, r0, r1, acc);
  else spmm_rows_baseline<scalar_t>(a, r0, r1, acc);
}

template <typename scalar_t, typename idx_t>
void spmm_max_rows_isa(Isa isa, const SpmmArgs<idx_t>& a, int64_t r0, int64_t r1, float* acc, int64_t* best) {
  if (isa == Isa::avx512) spmm_max_rows_avx512<scalar_t>(a, r0, r1, acc, best);
  else if (isa == Isa::avx2) spmm_max_rows_avx2<scalar_t>(a, r0, r1, acc, best);
  else spmm_max_rows_baseline<scalar_t>(a, r0, r1, acc, best);
}

// Row boundaries of `chunks` pieces of roughly equal cost (edges + 1 per row), for dynamic scheduling.
template <typename idx_t>
std::vector<int64_t> balanced_chunks(const idx_t* indptr, int64_t rows, int64_t chunks) {
  chunks = std::max<int64_t>(1, std::min<int64_t>(chunks, rows));
  std::vector<int64_t> bounds(chunks + 1, rows);
  bounds[0] = 0;
  const double total = static_cast<double>(indptr[rows] + rows);
  int64_t i = 0;
  for (int64_t k = 1; k < chunks; ++k) {
    const double target = total * static_cast<double>(k) / static_cast<double>(chunks);
    int64_t lo = i, hi = rows;  // first row whose prefix cost reaches target
    while (lo < hi) {
      const int64_t mid = lo + (hi - lo) / 2;
      if (static_cast<double>(indptr[mid] + mid) < target) lo = mid + 1; else hi = mid;
    }
    bounds[k] = i = lo;
  }
  return bounds;
}

// Run body(thread_scratch, r0, r1) over balanced row chunks on torch's thread count.
template <typename idx_t, typename Body>
void parallel_rows(const idx_t* indptr, int64_t rows, int64_t scratch, const Body& body) {
  const int nt = std::max(1, at::get_num_threads());
  const std::vector<int64_t> bounds = balanced_chunks(indptr, rows, static_cast<int64_t>(nt) * 32);
  const int64_t chunks = static_cast<int64_t>(bounds.size()) - 1;
#pragma omp parallel num_threads(nt)
  {
    std::vector<float> acc(std::max<int64_t>(scratch, 1));
    std::vector<int64_t> best(std::max<int64_t>(scratch, 1));
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; ++c) body(acc.data(), best.data(), bounds[c], bounds[c + 1]);
  }
}

using distgnn::new_output;  // output.h: huge-page-advised kernel outputs

const float* opt_f32(const c10::optional<torch::Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<float>() : nullptr;
}

// The CSR's index type: int32 or int64, the same for indptr and indices (kernels/csr.py picks int32
// when the row count, source count and edge count all fit). Every offset is computed in int64_t.
void check_index(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.scalar_type() == torch::kInt32 || t.scalar_type() == torch::kInt64, name,
              " must be int32 or int64, got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

void check_csr(const torch::Tensor& indptr, const torch::Tensor& indices) {
  check_index(indptr, "CSR indptr");
  check_index(indices, "CSR indices");
  TORCH_CHECK(indptr.scalar_type() == indices.scalar_type(), "CSR indptr and indices must share a dtype, got ",
              indptr.scalar_type(), " and ", indices.scalar_type());
}

// Call f(idx_t{}) with the index type of `t` (checked to be int32 or int64).
template <typename F>
decltype(auto) with_index_type(const torch::Tensor& t, F&& f) {
  if (t.scalar_type() == torch::kInt32) return f(int32_t{});
  return f(int64_t{});
}

// Run row_body(i, begin, end) for every row i of `indptr` (its edges are [begin, end)), in parallel.
template <typename RowBody>
void parallel_each_row(const torch::Tensor& indptr, const RowBody& row_body) {
  check_index(indptr, "CSR indptr");
  with_index_type(indptr, [&](auto idx) {
    using idx_t = decltype(idx);
    const idx_t* ip = indptr.data_ptr<idx_t>();
    parallel_rows(ip, indptr.numel() - 1, 0, [&](float*, int64_t*, int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i) row_body(i, static_cast<int64_t>(ip[i]), static_cast<int64_t>(ip[i + 1]));
    });
  });
}

void check_aux(const c10::optional<torch::Tensor>& t, int64_t numel, const char* name) {
  if (!t.has_value() || !t->defined()) return;
  TORCH_CHECK(t->dtype() == torch::kFloat32 && t->is_contiguous(), name, " must be contiguous float32");
  TORCH_CHECK(t->numel() == numel, name, " has ", t->numel(), " elements, expected ", numel);
}

template <typename idx_t>
SpmmArgs<idx_t> make_args(const torch::Tensor& indptr, const torch::Tensor& indices, const torch::Tensor& x,
                          const c10::optional<torch::Tensor>& w, const c10::optional<torch::Tensor>& ss,
                          const c10::optional<torch::Tensor>& ds, const c10::optional<torch::Tensor>& bias,
                          const torch::Tensor& out, bool mean, bool relu) {
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "x must be a contiguous [S, H, D] tensor");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16,
              "x must be float32 or bfloat16");
  const int64_t R = indptr.numel() - 1, E = indices.numel(), H = x.size(1), D = x.size(2);
  const int64_t wh = (w.has_value() && w->defined() && w->dim() == 2) ? w->size(1) : 1;
  TORCH_CHECK(wh == 1 || wh == H, "edge weights must have 1 or H columns");
  check_aux(w, E * wh, "edge_weight");
  check_aux(ss, x.size(0), "src_scale");
  check_aux(ds, R, "dst_scale");
  check_aux(bias, H * D, "bias");
  SpmmArgs<idx_t> a{};
  a.indptr = indptr.data_ptr<idx_t>();
  a.indices = indices.data_ptr<idx_t>();
  a.x = x.data_ptr();
  a.w = opt_f32(w);
  a.ss = opt_f32(ss);
  a.ds = opt_f32(ds);
  a.bias = opt_f32(bias);
  a.out = out.data_ptr();
  a.arg = nullptr;
  a.num_edges = E;
  // Per-head weights index w[e * H + h]; shared weights fold the heads into one feature row.
  a.H = wh == 1 ? 1 : H;
  a.D = wh == 1 ? H * D : D;
  a.mean = mean;
  a.relu = relu;
  const bool aligned = reinterpret_cast<uintptr_t>(a.out) % 64 == 0 && (a.D * 4) % 64 == 0;
  a.stream = a.H == 1 && x.scalar_type() == torch::kFloat32 && aligned &&
             static_cast<int64_t>(out.nbytes()) >= kStreamBytes;
  return a;
}

torch::Tensor spmm(torch::Tensor indptr, torch::Tensor indices, torch::Tensor x,
                   c10::optional<torch::Tensor> w, c10::optional<torch::Tensor> ss,
                   c10::optional<torch::Tensor> ds, c10::optional<torch::Tensor> bias, bool mean, bool relu) {
  check_csr(indptr, indices);
  const int64_t R = indptr.numel() - 1;
  auto out = new_output({R, x.size(1), x.size(2)}, x.options());
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  const Isa isa = distgnn::active_isa();  // outside the parallel region: it may throw
  with_index_type(indptr, [&](auto idx) {
    using idx_t = decltype(idx);
    const SpmmArgs<idx_t> a = make_args<idx_t>(indptr, indices, x, w, ss, ds, bias, out, mean, relu);
    parallel_rows(a.indptr, R, a.H * a.D, [&](float* acc, int64_t*, int64_t r0, int64_t r1) {
      if (bf16) spmm_rows_isa<c10::BFloat16>(isa, a, r0, r1, acc); else spmm_rows_isa<float>(isa, a, r0, r1, acc);
#ifdef DG_STREAM
      if (a.stream) _mm_sfence();  // order the streamed rows before the region's barrier
#endif
    });
  });
  return out;
}

std::tuple<torch::Tensor, torch::Tensor> spmm_max(torch::Tensor indptr, torch::Tensor indices, torch::Tensor x,
                                                  c10::optional<torch::Tensor> w,
                                                  c10::optional<torch::Tensor> ss,
                                                  c10::optional<torch::Tensor> ds,
                                                  c10::optional<torch::Tensor> bias, bool relu) {
  check_csr(indptr, indices);
  const int64_t R = indptr.numel() - 1;
  auto out = new_output({R, x.size(1), x.size(2)}, x.options());
  auto arg = new_output({R, x.size(1), x.size(2)}, x.options().dtype(torch::kInt64));  // edge ids: int64
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  const Isa isa = distgnn::active_isa();
  with_index_type(indptr, [&](auto idx) {
    using idx_t = decltype(idx);
    SpmmArgs<idx_t> a = make_args<idx_t>(indptr, indices, x, w, ss, ds, bias, out, false, relu);
    a.arg = arg.data_ptr<int64_t>();
    parallel_rows(a.indptr, R, a.H * a.D, [&](float* acc, int64_t* best, int64_t r0, int64_t r1) {
      if (bf16) spmm_max_rows_isa<c10::BFloat16>(isa, a, r0, r1, acc, best);
      else spmm_max_rows_isa<float>(isa, a, r0, r1, acc, best);
    });
  });
  return {out, arg};
}

template <typename scalar_t, typename idx_t>
void edge_dot_impl(const torch::Tensor& indptr, const torch::Tensor& indices, const torch::Tensor& a,
                   const torch::Tensor& b, torch::Tensor& out) {
  const int64_t R = indptr.numel() - 1, H = a.size(1), D = a.size(2), F = H * D;
  const idx_t* ip = indptr.data_ptr<idx_t>();
  const idx_t* ix = indices.data_ptr<idx_t>();
  const scalar_t* pa = a.data_ptr<scalar_t>();
  const scalar_t* pb = b.data_ptr<scalar_t>();
  float* po = out.data_ptr<float>();
  parallel_rows(ip, R, 0, [&](float*, int64_t*, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const scalar_t* ar = pa + i * F;
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
        const scalar_t* br = pb + static_cast<int64_t>(ix[e]) * F;
        for (int64_t h = 0; h < H; ++h) {
          float s = 0.f;
#pragma omp simd reduction(+ : s)
          for (int64_t d = 0; d < D; ++d) s += to_f(ar[h * D + d]) * to_f(br[h * D + d]);
          po[e * H + h] = s;
        }
      }
    }
  });
}

// Per-edge, per-head dot product of a[dst] and b[src]: the gradient of a per-edge weight. float32 out.
torch::Tensor edge_dot(torch::Tensor indptr, torch::Tensor indices, torch::Tensor a, torch::Tensor b) {
  check_csr(indptr, indices);
  TORCH_CHECK(a.dim() == 3 && b.dim() == 3 && a.is_contiguous() && b.is_contiguous(), "a, b must be [*, H, D]");
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), "a and b must share a dtype");
  auto out = torch::empty({indices.numel(), a.size(1)}, a.options().dtype(torch::kFloat32));
  with_index_type(indptr, [&](auto idx) {
    using idx_t = decltype(idx);
    if (a.scalar_type() == torch::kBFloat16) edge_dot_impl<c10::BFloat16, idx_t>(indptr, indices, a, b, out);
    else edge_dot_impl<float, idx_t>(indptr, indices, a, b, out);
  });
  return out;
}

// Per-edge a_dst[i] + b_src[j] (float32 [R, H], [S, H] -> [E, H]).
torch::Tensor sddmm(torch::Tensor indptr, torch::Tensor indices, torch::Tensor a, torch::Tensor b) {
  check_csr(indptr, indices);
  TORCH_CHECK(a.dtype() == torch::kFloat32 && b.dtype() == torch::kFloat32, "sddmm inputs must be float32");
  const int64_t R = indptr.numel() - 1, H = a.size(1);
  auto out = torch::empty({indices.numel(), H}, a.options());
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  float* po = out.data_ptr<float>();
  with_index_type(indptr, [&](auto idx) {
    using idx_t = decltype(idx);
    const idx_t* ip = indptr.data_ptr<idx_t>();
    const idx_t* ix = indices.data_ptr<idx_t>();
    parallel_rows(ip, R, 0, [&](float*, int64_t*, int64_t r0, int64_t r1) {
      for (int64_t i = r0; i < r1; ++i)
        for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
          const int64_t j = ix[e];
          for (int64_t h = 0; h < H; ++h) po[e * H + h] = pa[i * H + h] + pb[j * H + h];
        }
    });
  });
  return out;
}

// Softmax of float32 scores [E, H] over the in-edges of each row.
torch::Tensor edge_softmax(torch::Tensor indptr, torch::Tensor scores) {
  TORCH_CHECK(scores.dtype() == torch::kFloat32 && scores.is_contiguous(), "scores must be contiguous float32");
  const int64_t H = scores.size(1);
  auto out = torch::empty_like(scores);
  const float* ps = scores.data_ptr<float>();
  float* po = out.data_ptr<float>();
  parallel_each_row(indptr, [&](int64_t, int64_t b, int64_t en) {
    for (int64_t h = 0; h < H; ++h) {
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t e = b; e < en; ++e) m = std::max(m, ps[e * H + h]);
      float z = 0.f;
      for (int64_t e = b; e < en; ++e) z += (po[e * H + h] = std::exp(ps[e * H + h] - m));
      const float inv = 1.f / z;
      for (int64_t e = b; e < en; ++e) po[e * H + h] *= inv;
    }
  });
  return out;
}

// Gradient of edge_softmax: out * (grad - sum_row(grad * out)), float32 [E, H].
torch::Tensor edge_softmax_backward(torch::Tensor indptr, torch::Tensor out, torch::Tensor grad) {
  TORCH_CHECK(out.dtype() == torch::kFloat32 && grad.dtype() == torch::kFloat32, "inputs must be float32");
  TORCH_CHECK(out.is_contiguous() && grad.is_contiguous(), "inputs must be contiguous");
  const int64_t H = out.size(1);
  auto res = torch::empty_like(out);
  const float* po = out.data_ptr<float>();
  const float* pg = grad.data_ptr<float>();
  float* pr = res.data_ptr<float>();
  parallel_each_row(indptr, [&](int64_t, int64_t b, int64_t en) {
    for (int64_t h = 0; h < H; ++h) {
      float s = 0.f;
      for (int64_t e = b; e < en; ++e) s += po[e * H + h] * pg[e * H + h];
      for (int64_t e = b; e < en; ++e) pr[e * H + h] = po[e * H + h] * (pg[e * H + h] - s);
    }
  });
  return res;
}

}  // namespace

// dropout.cpp
torch::Tensor dropout(torch::Tensor x, int64_t seed, int64_t threshold, double scale, bool relu,
                      std::optional<torch::Tensor> bias, std::optional<torch::Tensor> keys);
torch::Tensor positive_scale(torch::Tensor out, torch::Tensor grad, double scale);
std::tuple<torch::Tensor, torch::Tensor> dropout_bits(torch::Tensor x, int64_t seed, int64_t threshold,
                                                      double scale, bool relu, std::optional<torch::Tensor> bias,
                                                      std::optional<torch::Tensor> keys);
torch::Tensor masked_scale(torch::Tensor grad, torch::Tensor bits, double scale);

// isa.h: the ISA the kernels run, for the Python side (kernels/isa.py) and the benchmarks.
std::vector<std::string> supported_isas() {
  std::vector<std::string> names;
  for (auto isa : {distgnn::Isa::avx512, distgnn::Isa::avx2, distgnn::Isa::baseline}) {
    if (distgnn::isa_supported(isa)) names.emplace_back(distgnn::isa_name(isa));
  }
  return names;
}

// `like` gives the dtype (and device: CPU) of the result.
torch::Tensor pooled_empty(std::vector<int64_t> shape, const torch::Tensor& like) {
  TORCH_CHECK(like.device().is_cpu(), "pooled_empty: CPU tensors only");
  return new_output(shape, like.options());
}

std::vector<int64_t> pool_stats() {
  auto& pool = distgnn::output_pool();
  std::lock_guard<std::mutex> lock(pool.mutex);
  return {static_cast<int64_t>(pool.idle_bytes), static_cast<int64_t>(pool.live_bytes),
          static_cast<int64_t>(pool.live_peak), static_cast<int64_t>(pool.limit),
          static_cast<int64_t>(pool.fresh), static_cast<int64_t>(pool.released)};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "distgnn CPU aggregation kernels";
  m.def("spmm", &spmm, "fused CSR sum/mean aggregation");
  m.def("spmm_max", &spmm_max, "fused CSR max aggregation (returns out, argmax edge id)");
  m.def("edge_dot", &edge_dot, "per-edge per-head dot product");
  m.def("sddmm", &sddmm, "per-edge a_dst[i] + b_src[j]");
  m.def("edge_softmax", &edge_softmax, "softmax over the in-edges of each row");
  m.def("edge_softmax_backward", &edge_softmax_backward, "gradient of edge_softmax");
  m.def("dropout", &dropout, "counter-based dropout (mask from seed and element index), optionally of relu(x)");
  m.def("isa", [] { return std::string(distgnn::isa_name(distgnn::active_isa())); },
        "the ISA the kernels run (DISTGNN_CPU_ISA if set, else the best this CPU supports)");
  m.def("set_isa", &distgnn::set_isa, "force the kernels' ISA: avx512, avx2 or baseline (must be supported)");
  m.def("supported_isas", &supported_isas, "the ISAs this CPU can run, best first");
  m.def("positive_scale", &positive_scale, "out > 0 ? grad * scale : 0 (relu + dropout backward)");
  m.def("dropout_bits", &dropout_bits, "dropout and its keep mask as int64 bits, one word per 64 elements");
  m.def("masked_scale", &masked_scale, "bit i of the mask ? grad * scale : 0 (plain dropout backward)");
  m.def("pooled_empty", &pooled_empty, "an uninitialised CPU tensor, large ones from the output pool (output.h)");
  m.def("pool_trim", [](int64_t spare) { return static_cast<int64_t>(distgnn::output_pool().trim(spare)); },
        "once per epoch: free idle buffers the epoch did not reuse; the idle limit follows what epochs "
        "need, within what the pool holds plus `spare` bytes");
  m.def("pool_stats", &pool_stats, "the output pool's idle, live, live-peak, idle-limit, fresh and released bytes");
}
