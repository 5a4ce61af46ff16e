"""Stop requests from a scheduler or a user: SLURM (and Snakemake, and `kill`) end a job with
SIGTERM, `sbatch --signal=B:USR1@T` warns T seconds before the time limit, and Ctrl-C sends SIGINT.
A training loop cannot stop safely inside a step, so the handler only records the request; the
loop checks it at each iteration boundary, writes a checkpoint and raises RunInterrupted. A
second Ctrl-C stops at once (KeyboardInterrupt), for someone who cannot wait for the step."""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


class StopRequest:
    """Context manager: while active, SIGTERM / SIGUSR1 / SIGINT set ``self.signal_name`` instead
    of killing the process. Previous handlers are restored on exit. Outside the main thread (where
    Python cannot install handlers) it does nothing."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signal_name: str | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame) -> None:
        if signum == signal.SIGINT and self.signal_name == "SIGINT":
            raise KeyboardInterrupt  # the second Ctrl-C
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
