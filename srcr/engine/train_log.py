"""The training log, RUN_DIR/log.jsonl: one JSON object per logged iteration, written by rank 0.

On resume the file is cut back to the checkpoint's iteration (lines beyond it, and a torn last line
from a killed process, are dropped), so a resumed run's log equals an uninterrupted one's.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..utils.io import write_text


def read_log(path: str | Path) -> list[dict]:
    """The well-formed records of a log file (a torn or corrupt line is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("iteration"), int):
            records.append(rec)
    return records


def _clean(value: Any) -> Any:
    # JSON has no NaN/inf; keep the file strictly parseable
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class JsonlLog:
    def __init__(self, path: str | Path, resume_iteration: int = 0):
        self.path = Path(path)
        kept = [r for r in read_log(self.path) if r["iteration"] <= resume_iteration]
        if self.path.exists() or kept:
            write_text(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        self._f = open(self.path, "a")

    def write(self, record: dict) -> None:
        self._f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()

    def __enter__(self) -> JsonlLog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
