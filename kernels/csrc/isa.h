// Which instruction set the CPU kernels run: one compiled entry point per ISA, chosen at run time.
//
// Every hot loop is compiled three times, as functions with a target attribute: x86-64-v4 (AVX-512),
// x86-64-v3 (AVX2 + FMA) and the baseline (x86-64, SSE2). Unlike target_clones, which picks a clone
// inside the loader and cannot be overridden, the choice is a plain variable read at each kernel call:
//  * by default the best ISA this CPU supports (__builtin_cpu_supports on the x86-64 levels);
//  * DISTGNN_CPU_ISA=avx512|avx2|baseline forces one (read once, at the first kernel call); a request the
//    CPU cannot run, or an unknown name, is an error, never a silent fallback;
//  * set_isa(name) changes it at run time (tests compare the clones bit for bit).
// Per-ISA code paths are template parameters of the hot loops (e.g. register blocking), so each entry
// point is specialised for its own vector width and register file.
#pragma once

#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DG_X86 1
#define DG_TARGET_AVX512 __attribute__((target("arch=x86-64-v4")))
#define DG_TARGET_AVX2 __attribute__((target("arch=x86-64-v3")))
#else
#define DG_TARGET_AVX512
#define DG_TARGET_AVX2
#endif
#define DG_INLINE inline __attribute__((always_inline))

namespace distgnn {

enum class Isa : int { baseline = 0, avx2 = 1, avx512 = 2 };

inline const char* isa_name(Isa isa) {
  return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "baseline";
}

inline bool isa_supported(Isa isa) {
#ifdef DG_X86
  __builtin_cpu_init();
  if (isa == Isa::avx512) return __builtin_cpu_supports("x86-64-v4");
  if (isa == Isa::avx2) return __builtin_cpu_supports("x86-64-v3");
  return true;
#else
  return isa == Isa::baseline;  // other architectures: the portable entry point only
#endif
}

inline Isa best_isa() {
  return isa_supported(Isa::avx512) ? Isa::avx512 : isa_supported(Isa::avx2) ? Isa::avx2 : Isa::baseline;
}

// The ISA called `name`, checked against this CPU; throws std::invalid_argument with a one-line reason.
inline Isa parse_isa(const std::string& name, const char* source) {
  Isa isa;
  if (name == "avx512") isa = Isa::avx512;
  else if (name == "avx2") isa = Isa::avx2;
  else if (name == "baseline") isa = Isa::baseline;
  else {
    throw std::invalid_argument(std::string(source) + "'" + name + "' is not an ISA: choose avx512, avx2, baseline");
  }
  if (!isa_supported(isa)) {
    throw std::invalid_argument(std::string(source) + "'" + name +
                                "' cannot run on this CPU (it supports up to " + isa_name(best_isa()) + ")");
  }
  return isa;
}

inline std::atomic<int>& isa_slot() {
  static std::atomic<int> slot{-1};  // -1: not chosen yet
  return slot;
}

// The ISA kernels run now: DISTGNN_CPU_ISA if set (checked), else the best one.
inline Isa active_isa() {
  int v = isa_slot().load(std::memory_order_relaxed);
  if (v < 0) {
    const char* env = std::getenv("DISTGNN_CPU_ISA");
    const Isa isa = (env && *env) ? parse_isa(env, "DISTGNN_CPU_ISA=") : best_isa();
    v = static_cast<int>(isa);
    isa_slot().store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

inline void set_isa(const std::string& name) { isa_slot().store(static_cast<int>(parse_isa(name, ""))); }

}  // namespace distgnn

