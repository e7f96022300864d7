"""Who owns a trial claim: a process named ``host:pid:start`` (``start``: the process's start
time in clock ticks since boot, from ``/proc``, so a recycled pid is not mistaken for the
owner; ``0`` where ``/proc`` is missing), and whether that process is still alive."""

from __future__ import annotations

import os
import socket


def _start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (None: no such process, or no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after the last ')'
    fields = text[text.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def owner_id(pid: int | None = None) -> str:
    """This process (or ``pid`` on this host) as a claim owner: ``host:pid:start``."""
    pid = os.getpid() if pid is None else int(pid)
    return f"{socket.gethostname()}:{pid}:{_start_ticks(pid) or 0}"


def owner_gone(owner: str) -> bool:
    """Whether ``owner`` is a process of *this* host that no longer runs (its pid is gone or
    now belongs to a process started at another time). Owners on other hosts, or in a form
    not understood, are never said to be gone: their heartbeat decides."""
    host, _, rest = str(owner).rpartition(":")
    host, _, pid_text = host.rpartition(":")
    if host != socket.gethostname():
        return False
    try:
        pid, start = int(pid_text), int(rest)
    except ValueError:
        return False
    if not os.path.isdir("/proc"):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    now = _start_ticks(pid)
    return now is None or (start != 0 and now != start)


__all__ = ["owner_gone", "owner_id"]
