"""One `srcr train` process per run folder: RUN_DIR/.srcr-train.lock names its holder (PID, host,
start time) and is held with flock, which the kernel releases when the holder dies. A second
process is refused with the holder's PID and host; a lock left by a dead process on this host is
taken over; one left by another host (whose processes cannot be checked from here) is refused
with the file to remove. The file stays (emptied) after a release: removing it could let two
processes lock two different files of one name."""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..errors import UserError

LOCK_NAME = ".srcr-train.lock"


def _holder(f) -> dict | None:
    f.seek(0)
    text = f.read().strip()
    if not text:
        return None
    try:
        holder = json.loads(text)
    except ValueError:
        return {"pid": "?", "host": "?", "since": "?"}
    return holder if isinstance(holder, dict) else {"pid": "?", "host": "?", "since": "?"}


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError, TypeError):
        return False
    except PermissionError:
        return True
    return True


def _busy(run_dir: Path, path: Path, holder: dict | None, why: str) -> UserError:
    h = holder or {}
    return UserError(
        f"{run_dir} is in use by another srcr train (PID {h.get('pid', '?')} on host "
        f"{h.get('host', '?')}, since {h.get('since', '?')}; lock file {path}): {why}"
    )


def acquire(run_dir: Path):
    """The open, locked lock file of ``run_dir`` (keep it open to hold the lock)."""
    path = Path(run_dir) / LOCK_NAME
    host = socket.gethostname()
    f = open(path, "a+")
    try:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _busy(run_dir, path, _holder(f), "wait for it to finish or stop it") from None
        holder = _holder(f)
        if holder is not None and holder.get("host") != host:
            raise _busy(
                run_dir,
                path,
                holder,
                "another host's process cannot be checked from "
                f"here; if it has ended, remove {path}",
            )
        if holder is not None and holder.get("pid") != os.getpid():
            state = "no longer running" if not _alive(holder.get("pid")) else "holding no lock"
            print(
                f"taking over the lock of {run_dir} from PID {holder.get('pid')} ({state})",
                file=sys.stderr,
            )
        f.seek(0)
        f.truncate()
        f.write(
            json.dumps(
                {"pid": os.getpid(), "host": host, "since": time.strftime("%Y-%m-%dT%H:%M:%S")}
            )
            + "\n"
        )
        f.flush()
        return f
    except BaseException:
        f.close()
        raise


def release(f) -> None:
    f.seek(0)
    f.truncate()
    f.flush()
    fcntl.flock(f, fcntl.LOCK_UN)
    f.close()


class RunLocks:
    """The run folders' locks held by this process (its main rank), released on exit."""

    def __init__(self, ctx=None):
        self.main = ctx is None or ctx.is_main
        self.held: dict[Path, object] = {}

    def take(self, run_dirs) -> None:
        if not self.main:
            return
        for d in run_dirs:
            key = Path(d).resolve()
            if key not in self.held:
                self.held[key] = acquire(Path(d))

    def __enter__(self) -> RunLocks:
        return self

    def __exit__(self, *exc) -> None:
        for f in self.held.values():
            release(f)
        self.held.clear()
