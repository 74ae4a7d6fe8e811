"""Is the process that left something behind (a staging folder, a RUNNING MLflow run, a STARTED
Dagster run holding a pool slot) alive?

Only answerable for processes of this host; callers leave other hosts' leftovers alone.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def this_host() -> str:
    return socket.gethostname()


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (state is [0], start time is [19]); None when
    there is no such process or no /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    """Whether a process with this id exists on this host and has not exited (a zombie, killed
    but not yet reaped by its parent, is dead). pid 0 or less: unknown, so not."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    stat = _stat(pid)
    return stat is None or stat[0] not in ("Z", "X")


def process_identity(pid: int | None = None) -> str:
    """`host:pid:start` for a process: the start time (clock ticks since boot, from /proc) tells
    a reused pid from the original one."""
    pid = pid or os.getpid()
    stat = _stat(pid)
    return f"{this_host()}:{pid}:{stat[19] if stat else ''}"


def identity_alive(identity: str) -> bool | None:
    """Whether the process of `process_identity` output still runs: None for another host's
    (or an unreadable) identity, which cannot be judged from here."""
    rest = identity.split(":")
    if len(rest) < 3 or not rest[-2].isdigit():
        return None
    host, pid, start = ":".join(rest[:-2]), int(rest[-2]), rest[-1]
    if host != this_host():
        return None
    if not alive(pid):
        return False
    stat = _stat(pid)
    return not (start and stat and stat[19] != start)
