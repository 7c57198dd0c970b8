"""Run a command; write its peak RSS (KiB, ``ru_maxrss`` from ``os.wait4``) to the file ``argv[1]``.

``common.run_measured`` starts every measured command through this small launcher. Linux keeps the RSS
high-water mark of the memory a process had before its ``exec`` in its ``ru_maxrss``, so a command
started straight from a benchmark driver holding 1 GB reports at least 1 GB (``/usr/bin/true`` reported
503 MB from a driver holding 500 MB). Started from this launcher (about 10 MB), it reports its own peak.

    python benchmarks/peak_rss.py OUT.txt -- CMD [ARGS...]
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys


def main() -> int:
    out, sep, *cmd = sys.argv[1:]
    if sep != "--" or not cmd:
        raise SystemExit("usage: peak_rss.py OUT.txt -- CMD [ARGS...]")
    proc = subprocess.Popen(cmd)
    for sig in (signal.SIGINT, signal.SIGTERM):  # passed on to the command, whose exit is ours
        signal.signal(sig, lambda s, _f: proc.send_signal(s))
    _, status, rusage = os.wait4(proc.pid, 0)
    with open(out, "w") as f:
        f.write(f"{rusage.ru_maxrss}\n")
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
