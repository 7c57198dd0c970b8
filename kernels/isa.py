"""Which x86 instruction set the CPU kernels run: ``DISTGNN_CPU_ISA=avx512|avx2|baseline`` or the best one.

The C++ kernels are compiled once per ISA (csrc/isa.h) and pick the entry point at each call: by default
the best this CPU supports, or the one ``DISTGNN_CPU_ISA`` names (so the AVX2 path can be measured on an
AVX-512 machine). A request the CPU cannot run, or an unknown name, is an error, never a silent fallback.
This module answers from the CPU's flags without building the extension, so ``distgnn`` and the benchmarks
can print the choice at start-up; the extension checks the same thing again (``__builtin_cpu_supports``).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path

from distgnn.errors import DistGNNError

ENV_VAR = "DISTGNN_CPU_ISA"
ISAS = ("avx512", "avx2", "baseline")  # best first
# The x86-64 micro-architecture levels the entry points are compiled for (v4, v3), as /proc/cpuinfo flags.
_REQUIRED = {
    "avx512": {"avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl", "avx2", "fma", "bmi2"},
    "avx2": {"avx", "avx2", "bmi1", "bmi2", "f16c", "fma", "movbe", "abm", "xsave"},
    "baseline": set(),
}


@functools.cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first CPU in /proc/cpuinfo; empty where there is none."""
    model, flags = platform.processor() or "unknown CPU", frozenset()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == (platform.processor() or "unknown CPU"):
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_model() -> str:
    """The CPU's model name (e.g. ``AMD EPYC``)."""
    return _cpuinfo()[0]


def supported() -> list[str]:
    """The ISAs this CPU can run, best first (``baseline`` always; the vector ones on x86-64 only)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return ["baseline"]
    flags = _cpuinfo()[1]
    return [isa for isa in ISAS if _REQUIRED[isa] <= flags]


def chosen() -> str:
    """The ISA the kernels run: ``DISTGNN_CPU_ISA`` if set (checked), else the best supported one."""
    want = os.environ.get(ENV_VAR, "").strip()
    can = supported()
    if not want:
        return can[0]
    if want not in ISAS:
        raise DistGNNError(f"{ENV_VAR}={want!r} is not an ISA: choose {', '.join(ISAS)}")
    if want not in can:
        raise DistGNNError(
            f"{ENV_VAR}={want} cannot run on this CPU ({cpu_model()}): it supports {', '.join(can)}"
        )
    return want


def describe() -> str:
    """One line for logs and benchmark headers: ISA, how it was chosen, CPU model."""
    how = f"forced by {ENV_VAR}" if os.environ.get(ENV_VAR, "").strip() else "best supported"
    return f"CPU kernels: {chosen()} ({how}; {cpu_model()}; supports {', '.join(supported())})"
