"""A training process's life around the training loop: the local launcher and its forkserver, loopback
rendezvous, preflight checks, failure reporting and timeouts, the watchdog, and signal handling."""
