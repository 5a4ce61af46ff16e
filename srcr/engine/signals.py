"""Stop requests from a scheduler: SLURM (and Snakemake, and `kill`) end a job with SIGTERM, and
`sbatch --signal=B:USR1@T` warns T seconds before the time limit. A training loop cannot stop
safely inside a step, so the handler only records the request; the loop checks it at each
iteration boundary, writes a checkpoint and raises RunInterrupted."""

from __future__ import annotations

import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopRequest:
    """Context manager: while active, SIGTERM / SIGUSR1 set ``self.signal_name`` instead of killing
    the process. Previous handlers are restored on exit. Outside the main thread (where Python
    cannot install handlers) it does nothing."""

    def __init__(self, signals=STOP_SIGNALS):
        self.signals = tuple(signals)
        self.signal_name: str | None = None
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signal_name is not None

    def _handle(self, signum, frame) -> None:
        self.signal_name = signal.Signals(signum).name

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for s in self.signals:
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        self._previous.clear()
