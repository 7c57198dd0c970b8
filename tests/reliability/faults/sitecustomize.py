"""Test-only fault injection, loaded at interpreter start-up when this folder is on PYTHONPATH.

``DISTGNN_TEST_FAULT=RANK:EPOCH:KIND`` makes the worker process of that rank (RANK set by the launcher)
misbehave when it starts that (0-based) epoch: ``oom`` raises MemoryError, ``cuda-oom`` raises
torch.OutOfMemoryError, ``stop`` SIGSTOPs itself (a peer that hangs without dying), ``kill`` SIGKILLs
itself. ``DISTGNN_TEST_FAULT_LOG`` (a file) receives "pid time" the moment the fault happens.
No product code knows about this: it wraps ``Trainer.local_epoch`` from outside.
"""

import os
import signal
import time

_spec = os.environ.get("DISTGNN_TEST_FAULT")
if _spec:  # RANK is read when an epoch starts: a forked --nproc worker gets it after this file ran
    _rank, _epoch, _kind = _spec.split(":")
    from distgnn import train as _train

    _original = _train.Trainer.local_epoch

    def _faulty_local_epoch(self, epoch):
        if epoch == int(_epoch) and int(os.environ.get("RANK", "-1")) == int(_rank):
            log = os.environ.get("DISTGNN_TEST_FAULT_LOG")
            if log:
                with open(log, "w") as f:
                    f.write(f"{os.getpid()} {time.time()}\n")
            if _kind == "oom":
                raise MemoryError("simulated: cannot allocate 1 GiB")
            if _kind == "cuda-oom":
                import torch

                raise torch.OutOfMemoryError("simulated: CUDA out of memory")
            os.kill(os.getpid(), signal.SIGSTOP if _kind == "stop" else signal.SIGKILL)
        return _original(self, epoch)

    _train.Trainer.local_epoch = _faulty_local_epoch
