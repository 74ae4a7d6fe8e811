"""Is the process that left something behind (a staging folder, a RUNNING MLflow run) alive?

Only answerable for processes of this host; callers leave other hosts' leftovers alone.
"""

from __future__ import annotations

import os
import socket


def this_host() -> str:
    return socket.gethostname()


def alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (pid 0 or less: unknown, so not)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
