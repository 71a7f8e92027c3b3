"""The ways a person stops a running robot: Ctrl-C or SIGTERM (graceful: hold, then release), and an e-stop
by signal (SIGUSR1, e.g. `kill -USR1 PID` from another terminal or a hardware button's daemon),
by a file appearing (`touch /tmp/estop`), or by a key. The loop asks `requested()` every cycle;
each check costs microseconds. numpy-free, standard library only.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
from pathlib import Path


class StopSignals:
    """Installed for the duration of a run, as a context manager:

    >>> with StopSignals(estop_file=Path("/tmp/estop"), estop_key=True) as stops:
    ...     while not (reason := stops.requested()):
    ...         ...  # one control cycle
    """

    def __init__(self, estop_file: Path | None = None, estop_key: bool = False) -> None:
        self.estop_file = Path(estop_file) if estop_file is not None else None
        if self.estop_file is not None and self.estop_file.exists():
            raise FileExistsError(f"the e-stop file {self.estop_file} already exists: the e-stop is "
                               "engaged. Remove it once the robot is safe, then start again")
        self.estop_key = estop_key
        self._reason: str | None = None
        self._saved: dict[int, object] = {}
        self._terminal: list | None = None

    def __enter__(self) -> StopSignals:
        # Python delivers signals to the main thread only; elsewhere (a test's thread) the
        # file and key still work.
        if threading.current_thread() is threading.main_thread():
            self._saved[signal.SIGINT] = signal.signal(signal.SIGINT, self._on_interrupt)
            self._saved[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._on_terminate)
            self._saved[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._on_estop_signal)
        if self.estop_key and sys.stdin.isatty():
            import termios
            import tty

            self._terminal = termios.tcgetattr(sys.stdin)
            tty.setcbreak(sys.stdin.fileno())  # a key arrives without Enter
        return self

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._saved.items():
            signal.signal(number, handler)
        if self._terminal is not None:
            import termios

            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, self._terminal)

    def _on_interrupt(self, number: int, frame: object) -> None:
        if self._reason is not None:
            raise KeyboardInterrupt  # a second Ctrl-C while stopping: the user means it
        self._reason = "Ctrl-C"

    def _on_terminate(self, number: int, frame: object) -> None:
        self._reason = self._reason or "terminated (SIGTERM)"  # a service manager stopping us

    def _on_estop_signal(self, number: int, frame: object) -> None:
        self._reason = self._reason or "e-stop (signal SIGUSR1)"

    def trigger(self, reason: str) -> None:
        """Stop from code (another thread, a test)."""
        self._reason = self._reason or reason

    def requested(self) -> str | None:
        """Why the run must stop, or None to go on."""
        if self._reason is None and self.estop_file is not None and self.estop_file.exists():
            self._reason = f"e-stop (file {self.estop_file})"
        if self._reason is None and self._terminal is not None and select.select(
                [sys.stdin], [], [], 0)[0]:
            os.read(sys.stdin.fileno(), 64)
            self._reason = "e-stop (key)"
        return self._reason
