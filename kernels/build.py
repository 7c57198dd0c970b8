"""Build the C++ kernels ahead of training: ``python -m distgnn.kernels.build``.

Compiling takes about a minute; doing it here (``make install`` runs this, ``distgnn train --nproc``
calls :func:`prebuild` in the launching process, ``launch/*`` scripts run this before their workers)
keeps it out of the first epoch and stops P workers from compiling the same thing at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

from distgnn.kernels import cache as kernel_cache
from distgnn.kernels.select import ENV_VAR


def needs_cpu_kernels(kernel: str) -> bool:
    """Whether workers asked for ``kernel`` will run the C++ kernels on this machine."""
    if kernel == "auto":
        kernel = os.environ.get(ENV_VAR, "").strip() or "auto"
    if kernel == "cpu":
        return True
    return kernel == "auto" and not torch.cuda.is_available()


def prebuild(kernel: str) -> None:
    """Build the extension now if ``kernel`` will use it; a build failure is reported by the workers."""
    if needs_cpu_kernels(kernel) and not kernel_cache.library_path().is_file():
        from distgnn.kernels import cpu  # imported on use: it loads torch._dynamo (seconds of CPU)

        cpu.is_available()  # prints the "compiling" line; an error is remembered and re-raised by workers


def main(argv: list[str] | None = None) -> int:
    from distgnn.kernels import cpu

    parser = argparse.ArgumentParser(
        prog="python -m distgnn.kernels.build",
        description=f"Compile the C++/OpenMP kernels into the cache (${cpu.CACHE_ENV} overrides where).",
    )
    parser.add_argument("--quiet", action="store_true", help="print nothing on success")
    args = parser.parse_args(argv)
    cached = cpu.is_built()
    t0 = time.perf_counter()
    error = cpu.build_error()
    if error:
        print(f"distgnn.kernels.build: error: {error}", file=sys.stderr)
        return 1
    if not args.quiet:
        how = "already built" if cached else f"built in {time.perf_counter() - t0:.0f} s"
        print(f"distgnn.kernels: CPU kernels {how}: {cpu.library_path()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
