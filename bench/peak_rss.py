"""A process's peak resident memory (VmHWM), as every bench child reports it.

Standard library only: :mod:`bench.runners` imports it, and ``bench/quix_peer.py``, a script run
in a side virtualenv outside this package, loads this file by its path.
"""

from __future__ import annotations


def vm_hwm_kib() -> int | None:
    """This process's peak RSS in KiB (``VmHWM`` of ``/proc/self/status``); None off Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None
