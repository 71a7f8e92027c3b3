"""Real-time scheduling for the control loop where the OS grants it: SCHED_FIFO priority and
pinning to one CPU. Standard library only."""

from __future__ import annotations

import os
from collections.abc import Callable


def request_realtime(priority: int | None, cpu: int | None) -> tuple[str, Callable[[], None]]:
    """Ask for SCHED_FIFO at `priority` and pinning to `cpu` where the OS allows; where it does
    not (no privilege, another OS), carry on with normal scheduling. Returns what was granted
    and a function that restores the process as it was."""
    granted, undo = [], []
    if cpu is not None:
        try:
            before = os.sched_getaffinity(0)
            os.sched_setaffinity(0, {cpu})
            granted.append(f"pinned to CPU {cpu}")
            undo.append(lambda: os.sched_setaffinity(0, before))
        except (AttributeError, OSError, ValueError) as error:
            granted.append(f"CPU pinning not allowed ({_why(error)})")
    if priority is not None:
        try:
            policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
            granted.append(f"SCHED_FIFO priority {priority}")
            undo.append(lambda: os.sched_setscheduler(0, policy, param))
        except (AttributeError, OSError, ValueError) as error:
            granted.append(f"real-time priority not allowed ({_why(error)}), normal scheduling")

    def restore() -> None:
        for step in reversed(undo):
            try:
                step()
            except OSError:
                pass

    return "; ".join(granted) or "normal scheduling", restore


def _why(error: BaseException) -> str:
    return getattr(error, "strerror", None) or type(error).__name__
