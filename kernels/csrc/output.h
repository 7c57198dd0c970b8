// Output allocation shared by the CPU kernels.
#pragma once

#include <torch/extension.h>

#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace distgnn {

// An uninitialised tensor for a kernel output. Large ones are advised onto transparent huge pages before
// the first write: a fresh allocation is unmapped memory, and faulting it in 4 KiB at a time costs more
// than writing it (measured: 75-180 ms per 256 MB). Only advice: ignored where THP is off.
inline torch::Tensor new_output(at::IntArrayRef shape, const torch::TensorOptions& opts) {
  torch::Tensor t = torch::empty(shape, opts);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t begin = reinterpret_cast<uintptr_t>(t.data_ptr());
  const uintptr_t lo = (begin + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t hi = (begin + t.nbytes()) & ~(kHuge - 1);
  if (hi >= lo + 2 * kHuge) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_HUGEPAGE);
#endif
  return t;
}

}  // namespace distgnn
