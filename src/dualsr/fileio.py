"""Atomic file writing, the one way dualsr writes every output (weights, states, images, JSON).

An interrupted or failed write never leaves a half-written file under the final name: data goes
to a hidden temporary file in the same folder, which replaces the target only once complete.
"""
from __future__ import annotations

import os
import socket
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def current_umask() -> int:
    """The process's umask (read by setting and restoring it), for modes of files made via mkstemp/mkdtemp."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _writer_tag() -> str:
    # host and pid in the temporary name: a later writer can tell that its owner is gone
    return f"{socket.gethostname().replace('.', '_')}-{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of writers of `path` on this host that died mid-write (kill -9).

    Only files named by `atomic_write` whose process no longer exists are touched, so a
    concurrent writer's file, or one of another machine sharing the folder, stays.
    """
    path = Path(path)
    host = socket.gethostname().replace(".", "_")
    prefix = f".{path.name}.{host}-"
    removed = []
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        name = entry.name
        if not (name.startswith(prefix) and name.endswith(".part")):
            continue
        pid = name[len(prefix):].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", make_parents: bool = True) -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it replaces `path`, on error it is removed.

    Temporary files that a killed writer of the same `path` left behind are removed first.
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{_writer_tag()}.", suffix=".part")
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; outputs get the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write `data` to `path` atomically."""
    with atomic_write(path) as handle:
        handle.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when empty), for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
