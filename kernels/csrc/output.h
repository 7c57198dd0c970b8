// Output allocation shared by the CPU kernels.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <unordered_map>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace distgnn {

// Large kernel outputs come from a small pool of buffers this process already touched. A fresh large
// allocation is unmapped memory: faulting it in costs more than writing it (measured: 75-180 ms per
// 256 MB with 4 KiB pages; on a VM also the host's fault on first touch), and a training epoch asks for
// the same few sizes again and again. Buffers are 2 MiB aligned and advised onto transparent huge pages
// (only advice: ignored where THP is off). Freed outputs wait in the pool, matched by exact size; at
// most kPoolIdleBytes stay idle, the rest goes back to the system.
constexpr size_t kPoolMinBytes = size_t(4) << 20;   // smaller outputs: plain torch::empty
constexpr size_t kPoolIdleBytes = size_t(1) << 30;  // idle memory the pool may keep
constexpr size_t kHuge = size_t(2) << 20;

struct OutputPool {
  std::mutex mutex;
  std::unordered_multimap<size_t, void*> idle;  // capacity (bytes) -> buffer
  size_t idle_bytes = 0;

  void* take(size_t capacity) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = idle.find(capacity);
    if (it == idle.end()) return nullptr;
    void* p = it->second;
    idle.erase(it);
    idle_bytes -= capacity;
    return p;
  }

  void give(void* p, size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (idle_bytes + capacity <= kPoolIdleBytes) {
        idle.emplace(capacity, p);
        idle_bytes += capacity;
        return;
      }
    }
    std::free(p);
  }
};

inline OutputPool& output_pool() {
  static OutputPool* pool = new OutputPool();  // never destroyed: tensors may outlive static teardown
  return *pool;
}

// An uninitialised tensor for a kernel output (large ones from the pool described above).
inline torch::Tensor new_output(at::IntArrayRef shape, const torch::TensorOptions& opts) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  const size_t nbytes = static_cast<size_t>(numel) * c10::elementSize(c10::typeMetaToScalarType(opts.dtype()));
  if (nbytes < kPoolMinBytes) return torch::empty(shape, opts);
  const size_t capacity = (nbytes + kHuge - 1) / kHuge * kHuge;
  void* p = output_pool().take(capacity);
  if (p == nullptr) {
    p = std::aligned_alloc(kHuge, capacity);
    TORCH_CHECK(p != nullptr, "out of memory allocating a ", capacity, "-byte kernel output");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, capacity, MADV_HUGEPAGE);
#endif
  }
  return torch::from_blob(
      p, shape, [capacity](void* q) { output_pool().give(q, capacity); }, opts);
}

}  // namespace distgnn
