"""Peak resident memory of one process, read from the kernel's high-water mark of its
address space (VmHWM).

`getrusage` is not enough: Linux carries a parent's peak across exec into the child's
`ru_maxrss`, so a worker started from a 4 GB test or launch process reports 4 GB whatever
it does itself. VmHWM starts afresh with the address space exec gives a process.
"""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb(pid: int | str = 'self') -> float | None:
    """Peak resident set of `pid` in MB; None when the process or /proc is not there. For
    this process without /proc (not Linux), the `getrusage` figure, with its caveat."""
    try:
        for line in Path(f'/proc/{pid}/status').read_text().splitlines():
            if line.startswith('VmHWM:'):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    if pid == 'self':
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return None
