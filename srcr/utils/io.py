"""Atomic output: every result file is written to a temporary sibling, then renamed into place.

A killed job therefore never leaves a half-written file behind: either the old file (or none) or the
complete new one exists.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# OSError numbers of a file that cannot be written, whatever the program: one line naming the
# path and the cause, not a traceback
WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.EFBIG: "file too large",
}
# Longest name part of a temporary file: with the dot, mkstemp's 8 characters and ".tmp" it stays
# far below the usual 255-byte limit, whatever the length of the final name
_TMP_STEM = 64


def _tmp_prefix(name: str) -> str:
    if len(name.encode()) <= _TMP_STEM:
        return f".{name}."
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f".{name.encode()[: _TMP_STEM - 9].decode(errors='ignore')}-{digest}."


def write_error(path: str | os.PathLike, e: BaseException):
    """The UserError for a failed write of ``path`` (``e``: OSError, or torch's RuntimeError from a
    full disk), or None if ``e`` is not a write failure."""
    from ..errors import UserError

    path = Path(path)
    if isinstance(e, OSError) and e.errno in WRITE_ERRNOS:
        cause = WRITE_ERRNOS[e.errno]
        if e.errno == errno.ENAMETOOLONG:
            cause += f" ({len(path.name.encode())} bytes; most file systems allow 255)"
        # a folder above that could not be made is worth naming; our own temporary file is not
        where = f" ({e.filename})" if e.filename and Path(e.filename).parent != path.parent else ""
        return UserError(f"{cause} while writing {path}{where}")
    # torch's zip writer reports a full disk as "unexpected pos N vs M" (no path, no errno)
    if isinstance(e, RuntimeError) and any(m in str(e) for m in ("unexpected pos", "write")):
        try:
            free = shutil.disk_usage(path.parent if path.parent.exists() else ".").free
        except OSError:
            free = -1
        cause = "no space left on device" if 0 <= free < 64 << 20 else "the write failed"
        return UserError(
            f"{cause} while writing {path} ({free / 2**20:.1f} MiB free there; "
            f"{str(e).splitlines()[0]})"
        )
    return None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``. A write
    that fails for want of space, permission or a shorter name is a UserError naming ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_tmp_prefix(path.name), suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp)
        yield tmp
        # mkstemp creates the file 0600; a result should get the permissions of any new file
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:
        err = write_error(path, e)
        if err is None:
            raise
        raise err from None
    finally:
        if tmp is not None and tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", **kwargs) -> Iterator[Any]:
    """Open a temporary file for writing; it replaces ``path`` only if the block succeeds."""
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=indent, sort_keys=False, default=_json_default)
        f.write("\n")


def read_json(path: str | os.PathLike, what: str = "result file") -> Any:
    """A JSON file, or a UserError naming the file and, when missing, what writes it."""
    from ..errors import UserError

    path = Path(path)
    if not path.is_file():
        raise UserError(f"missing {what}: {path}")
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    import torch

    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
