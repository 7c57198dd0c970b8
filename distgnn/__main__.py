"""`python -m distgnn ...`, the form torchrun starts: `torchrun --nproc_per_node P -m distgnn train ...`."""

import sys

from distgnn.cli import main

sys.exit(main())
