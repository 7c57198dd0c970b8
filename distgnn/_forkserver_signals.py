"""Imported only as the first preload module of ``distgnn train --nproc``'s forkserver
(:mod:`distgnn.forkserver`): makes that server ignore SIGTERM, as multiprocessing makes it ignore SIGINT.

A SIGTERM sent to the whole process group must stop the launcher and the workers, not the server the
workers were forked from: the launcher learns a worker's exit through it, and reads every worker as
exited (code 255) once it is gone. Each forked worker gets the default SIGTERM back at once (an at-fork
hook). The server still exits when the launcher does (it watches a pipe from it).
"""

import atexit
import os
import signal

signal.signal(signal.SIGTERM, signal.SIG_IGN)
os.register_at_fork(after_in_child=lambda: signal.signal(signal.SIGTERM, signal.SIG_DFL))
atexit.register(os._exit, 0)
