"""GPU tests: everything under ``-m gpu`` needs a CUDA device and is skipped without one.

The kernel helpers of tests/kernels (named graphs, per-element tolerances) are shared with them.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kernels"))
