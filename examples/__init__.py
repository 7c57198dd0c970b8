"""Runnable examples: models of your own, given to ``distgnn train --model examples.<file>:build``."""
