"""Imported only as the first preload module of ``distgnn train --nproc``'s forkserver
(:mod:`distgnn.runtime.forkserver`), to set up that server process.

- It ignores SIGTERM, as multiprocessing makes it ignore SIGINT: a SIGTERM sent to the whole process
  group must stop the launcher and the workers, not the server the workers were forked from (the
  launcher learns a worker's exit through it, and reads every worker as exited, code 255, once it is
  gone). Each forked worker gets the default SIGTERM back at once (an at-fork hook).
- It exits without the interpreter's teardown once the launcher is gone (it watches a pipe from it):
  tearing down torch, Dynamo and their imports took seconds on a busy machine, while the server still
  held the job's stdout and stderr open. Its forked workers never run atexit handlers (they end with
  ``os._exit``).
"""

import atexit
import os
import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
atexit.register(os._exit, 0)  # registered first, so it runs after every other exit handler
