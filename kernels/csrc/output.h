// Output allocation shared by the CPU kernels.
#pragma once

#include <torch/extension.h>

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace distgnn {

// Large kernel outputs come from a pool of buffers this process already touched. A fresh large
// allocation is unmapped memory: faulting it in costs more than writing it (measured: 75-180 ms per
// 256 MB with 4 KiB pages; on a VM also the host's fault on first touch: a 512 MB buffer faulted in every
// epoch of a 2M-node graph was most of its system time), and a training epoch asks for the same few
// sizes again and again. Buffers are 2 MiB aligned and advised onto transparent huge pages (only advice:
// ignored where THP is off). A freed buffer waits in the pool, up to an idle limit; the rest goes back to
// the system. A request takes the smallest idle buffer that fits and wastes at most a quarter of it (so
// the rows of the owned nodes, of the halo and of the sent rows, a little different in size, share
// buffers instead of each keeping its own).
//
// The idle limit starts at kPoolIdleBytes. trim(spare), once per epoch: frees what waited through a whole
// epoch without being taken again (sizes the epoch no longer asks for), and raises the limit to the most
// pooled memory that epoch had live at once plus what it had to give back over the limit, so that the
// next epoch keeps it: steady epochs then reuse every large buffer. The limit never exceeds what the pool
// holds plus `spare` (the caller's share of the machine's available memory): where memory is short, the
// pool stops growing and the process faults its buffers in again instead.
constexpr size_t kPoolMinBytes = size_t(4) << 20;   // smaller outputs: plain torch::empty
constexpr size_t kPoolIdleBytes = size_t(1) << 30;  // idle memory the pool may keep before any trim()
constexpr size_t kHuge = size_t(2) << 20;

struct OutputPool {
  struct Idle {
    void* ptr;
    uint64_t stamp;  // the generation (trim count) it was given back in
  };
  std::mutex mutex;
  std::multimap<size_t, Idle> idle;  // capacity (bytes) -> buffer, ordered for the best fit
  size_t idle_bytes = 0;
  size_t limit = kPoolIdleBytes;
  size_t wanted = kPoolIdleBytes;  // what steady epochs need idle: the largest live peak + give-back seen
  size_t live_bytes = 0;  // pooled buffers handed out and not yet given back
  size_t live_peak = 0;   // the most of them at once since the last trim()
  size_t fresh = 0;       // bytes newly allocated (no idle buffer fitted) since the last trim()
  size_t released = 0;    // bytes given back to the system (over the limit) since the last trim()
  uint64_t generation = 0;

  // An idle buffer of at least `capacity` bytes and its real capacity, or {nullptr, capacity} (the caller
  // allocates). Counted live either way.
  std::pair<void*, size_t> take(size_t capacity) {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = idle.lower_bound(capacity);
    if (it == idle.end() || it->first > capacity + capacity / 4) {
      fresh += capacity;
      live_bytes += capacity;
      live_peak = std::max(live_peak, live_bytes);
      return {nullptr, capacity};
    }
    const size_t got = it->first;
    void* p = it->second.ptr;
    idle.erase(it);
    idle_bytes -= got;
    live_bytes += got;
    live_peak = std::max(live_peak, live_bytes);
    return {p, got};
  }

  void give(void* p, size_t capacity) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      live_bytes -= capacity;
      if (idle_bytes + capacity <= limit) {
        idle.emplace(capacity, Idle{p, generation});
        idle_bytes += capacity;
        return;
      }
      released += capacity;
    }
    std::free(p);
  }

  // See above; returns the bytes given back to the system.
  size_t trim(size_t spare) {
    std::vector<void*> drop;
    size_t freed = 0;
    {
      std::lock_guard<std::mutex> lock(mutex);
      wanted = std::max(wanted, live_peak + released);
      limit = std::min(wanted, idle_bytes + spare);
      for (auto it = idle.begin(); it != idle.end();) {
        if (it->second.stamp < generation) {
          drop.push_back(it->second.ptr);
          freed += it->first;
          it = idle.erase(it);
        } else {
          ++it;
        }
      }
      idle_bytes -= freed;
      live_peak = live_bytes;
      fresh = released = 0;
      ++generation;
    }
    for (void* p : drop) std::free(p);
    return freed;
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
  const std::pair<void*, size_t> taken = output_pool().take(capacity);
  void* p = taken.first;
  const size_t got = taken.second;  // an idle buffer may be up to a quarter larger
  if (p == nullptr) {
    p = std::aligned_alloc(kHuge, capacity);
    TORCH_CHECK(p != nullptr, "out of memory allocating a ", capacity, "-byte kernel output");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    madvise(p, capacity, MADV_HUGEPAGE);
#endif
  }
  return torch::from_blob(
      p, shape, [got](void* q) { output_pool().give(q, got); }, opts);
}

}  // namespace distgnn
