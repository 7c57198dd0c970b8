// distgnn CPU aggregation kernels: fused CSR gSpMM (sum/mean/max), SDDMM, edge softmax, edge dot.
//
// Row-parallel over destinations with OpenMP using torch's thread count. Rows are cut into chunks of
// equal work (edges + rows) and handed out dynamically, so a power-law degree distribution does not leave
// a thread idle. The feature loop is contiguous and vectorised by the compiler; the hot loops are
// compiled for AVX-512 / AVX2 / baseline with target_clones and picked at load time (safe to cache and
// ship, unlike -march=native). The next rows to gather are software-prefetched, because a gather of
// random rows is latency-bound and the hardware prefetcher cannot guess them. Accumulation is float32
// for float32 and bfloat16 features; source/destination scaling, bias and ReLU are fused.

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DG_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define DG_CLONES
#endif
#define DG_INLINE inline __attribute__((always_inline))

namespace {

constexpr int64_t kPrefetchEdges = 8;     // how many edges ahead to prefetch source rows
constexpr int64_t kPrefetchBytes = 1024;  // at most this much of each row (the rest streams)

struct SpmmArgs {
  const int64_t* indptr;
  const int64_t* indices;
  const void* x;      // [S, H, D] scalar_t
  const float* w;     // [E, H] or null
  const float* ss;    // [S] or null
  const float* ds;    // [R] or null
  const float* bias;  // [H * D] or null
  void* out;          // [R, H, D] scalar_t
  int64_t* arg;       // [R, H, D] (max only)
  int64_t num_edges, H, D;
  bool mean, relu;
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

template <typename scalar_t>
DG_INLINE void epilogue(const SpmmArgs& a, int64_t i, int64_t deg, const float* __restrict acc,
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

template <typename scalar_t>
DG_INLINE void spmm_rows(const SpmmArgs& a, int64_t r0, int64_t r1, float* __restrict acc) {
  const scalar_t* __restrict x = static_cast<const scalar_t*>(a.x);
  scalar_t* __restrict out = static_cast<scalar_t*>(a.out);
  const int64_t* __restrict indices = a.indices;
  const int64_t H = a.H, D = a.D, F = H * D, E = a.num_edges;
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t b = a.indptr[i], en = a.indptr[i + 1];
    std::fill(acc, acc + F, 0.f);
    for (int64_t e = b; e < en; ++e) {
      if (e + kPrefetchEdges < E) prefetch_row(x + indices[e + kPrefetchEdges] * F, F);
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

template <typename scalar_t>
DG_INLINE void spmm_max_rows(const SpmmArgs& a, int64_t r0, int64_t r1, float* __restrict acc,
                             int64_t* __restrict best) {
  const scalar_t* __restrict x = static_cast<const scalar_t*>(a.x);
  scalar_t* __restrict out = static_cast<scalar_t*>(a.out);
  const int64_t* __restrict indices = a.indices;
  const int64_t H = a.H, D = a.D, F = H * D, E = a.num_edges;
  const float ninf = -std::numeric_limits<float>::infinity();
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t b = a.indptr[i], en = a.indptr[i + 1];
    std::fill(acc, acc + F, ninf);
    std::fill(best, best + F, int64_t(-1));
    for (int64_t e = b; e < en; ++e) {
      if (e + kPrefetchEdges < E) prefetch_row(x + indices[e + kPrefetchEdges] * F, F);
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

DG_CLONES void spmm_rows_f32(const SpmmArgs& a, int64_t r0, int64_t r1, float* acc) {
  spmm_rows<float>(a, r0, r1, acc);
}
DG_CLONES void spmm_rows_bf16(const SpmmArgs& a, int64_t r0, int64_t r1, float* acc) {
  spmm_rows<c10::BFloat16>(a, r0, r1, acc);
}
DG_CLONES void spmm_max_rows_f32(const SpmmArgs& a, int64_t r0, int64_t r1, float* acc, int64_t* best) {
  spmm_max_rows<float>(a, r0, r1, acc, best);
}
DG_CLONES void spmm_max_rows_bf16(const SpmmArgs& a, int64_t r0, int64_t r1, float* acc, int64_t* best) {
  spmm_max_rows<c10::BFloat16>(a, r0, r1, acc, best);
}

// Row boundaries of `chunks` pieces of roughly equal cost (edges + 1 per row), for dynamic scheduling.
std::vector<int64_t> balanced_chunks(const int64_t* indptr, int64_t rows, int64_t chunks) {
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
template <typename Body>
void parallel_rows(const int64_t* indptr, int64_t rows, int64_t scratch, const Body& body) {
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

const float* opt_f32(const c10::optional<torch::Tensor>& t) {
  return t.has_value() && t->defined() ? t->data_ptr<float>() : nullptr;
}

void check_csr(const torch::Tensor& indptr, const torch::Tensor& indices) {
  TORCH_CHECK(indptr.dtype() == torch::kInt64 && indices.dtype() == torch::kInt64, "CSR must be int64");
  TORCH_CHECK(indptr.is_contiguous() && indices.is_contiguous(), "CSR must be contiguous");
}

void check_aux(const c10::optional<torch::Tensor>& t, int64_t numel, const char* name) {
  if (!t.has_value() || !t->defined()) return;
  TORCH_CHECK(t->dtype() == torch::kFloat32 && t->is_contiguous(), name, " must be contiguous float32");
  TORCH_CHECK(t->numel() == numel, name, " has ", t->numel(), " elements, expected ", numel);
}

SpmmArgs make_args(const torch::Tensor& indptr, const torch::Tensor& indices, const torch::Tensor& x,
                   const c10::optional<torch::Tensor>& w, const c10::optional<torch::Tensor>& ss,
                   const c10::optional<torch::Tensor>& ds, const c10::optional<torch::Tensor>& bias,
                   const torch::Tensor& out, bool mean, bool relu) {
  check_csr(indptr, indices);
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
  SpmmArgs a{};
  a.indptr = indptr.data_ptr<int64_t>();
  a.indices = indices.data_ptr<int64_t>();
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
  return a;
}

torch::Tensor spmm(torch::Tensor indptr, torch::Tensor indices, torch::Tensor x,
                   c10::optional<torch::Tensor> w, c10::optional<torch::Tensor> ss,
                   c10::optional<torch::Tensor> ds, c10::optional<torch::Tensor> bias, bool mean, bool relu) {
  const int64_t R = indptr.numel() - 1;
  auto out = torch::empty({R, x.size(1), x.size(2)}, x.options());
  const SpmmArgs a = make_args(indptr, indices, x, w, ss, ds, bias, out, mean, relu);
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  parallel_rows(a.indptr, R, a.H * a.D, [&](float* acc, int64_t*, int64_t r0, int64_t r1) {
    if (bf16) spmm_rows_bf16(a, r0, r1, acc); else spmm_rows_f32(a, r0, r1, acc);
  });
  return out;
}

std::tuple<torch::Tensor, torch::Tensor> spmm_max(torch::Tensor indptr, torch::Tensor indices, torch::Tensor x,
                                                  c10::optional<torch::Tensor> w,
                                                  c10::optional<torch::Tensor> ss,
                                                  c10::optional<torch::Tensor> ds,
                                                  c10::optional<torch::Tensor> bias, bool relu) {
  const int64_t R = indptr.numel() - 1;
  auto out = torch::empty({R, x.size(1), x.size(2)}, x.options());
  auto arg = torch::empty({R, x.size(1), x.size(2)}, x.options().dtype(torch::kInt64));
  SpmmArgs a = make_args(indptr, indices, x, w, ss, ds, bias, out, false, relu);
  a.arg = arg.data_ptr<int64_t>();
  const bool bf16 = x.scalar_type() == torch::kBFloat16;
  parallel_rows(a.indptr, R, a.H * a.D, [&](float* acc, int64_t* best, int64_t r0, int64_t r1) {
    if (bf16) spmm_max_rows_bf16(a, r0, r1, acc, best); else spmm_max_rows_f32(a, r0, r1, acc, best);
  });
  return {out, arg};
}

template <typename scalar_t>
void edge_dot_impl(const torch::Tensor& indptr, const torch::Tensor& indices, const torch::Tensor& a,
                   const torch::Tensor& b, torch::Tensor& out) {
  const int64_t R = indptr.numel() - 1, H = a.size(1), D = a.size(2), F = H * D;
  const int64_t* ip = indptr.data_ptr<int64_t>();
  const int64_t* ix = indices.data_ptr<int64_t>();
  const scalar_t* pa = a.data_ptr<scalar_t>();
  const scalar_t* pb = b.data_ptr<scalar_t>();
  float* po = out.data_ptr<float>();
  parallel_rows(ip, R, 0, [&](float*, int64_t*, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const scalar_t* ar = pa + i * F;
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e) {
        const scalar_t* br = pb + ix[e] * F;
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
  if (a.scalar_type() == torch::kBFloat16) edge_dot_impl<c10::BFloat16>(indptr, indices, a, b, out);
  else edge_dot_impl<float>(indptr, indices, a, b, out);
  return out;
}

// Per-edge a_dst[i] + b_src[j] (float32 [R, H], [S, H] -> [E, H]).
torch::Tensor sddmm(torch::Tensor indptr, torch::Tensor indices, torch::Tensor a, torch::Tensor b) {
  check_csr(indptr, indices);
  TORCH_CHECK(a.dtype() == torch::kFloat32 && b.dtype() == torch::kFloat32, "sddmm inputs must be float32");
  const int64_t R = indptr.numel() - 1, H = a.size(1);
  auto out = torch::empty({indices.numel(), H}, a.options());
  const int64_t* ip = indptr.data_ptr<int64_t>();
  const int64_t* ix = indices.data_ptr<int64_t>();
  const float* pa = a.data_ptr<float>();
  const float* pb = b.data_ptr<float>();
  float* po = out.data_ptr<float>();
  parallel_rows(ip, R, 0, [&](float*, int64_t*, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i)
      for (int64_t e = ip[i]; e < ip[i + 1]; ++e)
        for (int64_t h = 0; h < H; ++h) po[e * H + h] = pa[i * H + h] + pb[ix[e] * H + h];
  });
  return out;
}

// Softmax of float32 scores [E, H] over the in-edges of each row.
torch::Tensor edge_softmax(torch::Tensor indptr, torch::Tensor scores) {
  TORCH_CHECK(scores.dtype() == torch::kFloat32 && scores.is_contiguous(), "scores must be contiguous float32");
  const int64_t R = indptr.numel() - 1, H = scores.size(1);
  auto out = torch::empty_like(scores);
  const int64_t* ip = indptr.data_ptr<int64_t>();
  const float* ps = scores.data_ptr<float>();
  float* po = out.data_ptr<float>();
  parallel_rows(ip, R, 0, [&](float*, int64_t*, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t b = ip[i], en = ip[i + 1];
      for (int64_t h = 0; h < H; ++h) {
        float m = -std::numeric_limits<float>::infinity();
        for (int64_t e = b; e < en; ++e) m = std::max(m, ps[e * H + h]);
        float z = 0.f;
        for (int64_t e = b; e < en; ++e) z += (po[e * H + h] = std::exp(ps[e * H + h] - m));
        const float inv = 1.f / z;
        for (int64_t e = b; e < en; ++e) po[e * H + h] *= inv;
      }
    }
  });
  return out;
}

// Gradient of edge_softmax: out * (grad - sum_row(grad * out)), float32 [E, H].
torch::Tensor edge_softmax_backward(torch::Tensor indptr, torch::Tensor out, torch::Tensor grad) {
  TORCH_CHECK(out.dtype() == torch::kFloat32 && grad.dtype() == torch::kFloat32, "inputs must be float32");
  TORCH_CHECK(out.is_contiguous() && grad.is_contiguous(), "inputs must be contiguous");
  const int64_t R = indptr.numel() - 1, H = out.size(1);
  auto res = torch::empty_like(out);
  const int64_t* ip = indptr.data_ptr<int64_t>();
  const float* po = out.data_ptr<float>();
  const float* pg = grad.data_ptr<float>();
  float* pr = res.data_ptr<float>();
  parallel_rows(ip, R, 0, [&](float*, int64_t*, int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      const int64_t b = ip[i], en = ip[i + 1];
      for (int64_t h = 0; h < H; ++h) {
        float s = 0.f;
        for (int64_t e = b; e < en; ++e) s += po[e * H + h] * pg[e * H + h];
        for (int64_t e = b; e < en; ++e) pr[e * H + h] = po[e * H + h] * (pg[e * H + h] - s);
      }
    }
  });
  return res;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "distgnn CPU aggregation kernels";
  m.def("spmm", &spmm, "fused CSR sum/mean aggregation");
  m.def("spmm_max", &spmm_max, "fused CSR max aggregation (returns out, argmax edge id)");
  m.def("edge_dot", &edge_dot, "per-edge per-head dot product");
  m.def("sddmm", &sddmm, "per-edge a_dst[i] + b_src[j]");
  m.def("edge_softmax", &edge_softmax, "softmax over the in-edges of each row");
  m.def("edge_softmax_backward", &edge_softmax_backward, "gradient of edge_softmax");
}
