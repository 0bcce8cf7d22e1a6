"""Atomic writes: an output either appears whole or not at all; and a lock for files that
several processes would create at once."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pipeline.errors import fail


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def one_at_a_time(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path`.lock for the block: processes started together that
    would each create the same new file (a database's tables) take turns."""
    with path.with_name(path.name + ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@contextmanager
def parent_folders(target: Path) -> Iterator[None]:
    """Create `target`'s missing parent folders for the block; if it fails, remove again those
    it created and left empty (a failed download must not leave an empty data/<task>/)."""
    made = []
    for folder in reversed(Path(target).parents):
        if not folder.exists():
            folder.mkdir(exist_ok=True)
            made.append(folder)
    try:
        yield
    except BaseException:
        for folder in reversed(made):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        raise


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a scratch folder beside `target`; on success it replaces `target` in one rename."""
    target = Path(target)
    with parent_folders(target):
        scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        os.chmod(scratch, 0o777 & ~_umask())  # mkdtemp makes it private; outputs are not
        try:
            yield scratch
            if target.exists():
                old = target.with_name(f".{target.name}.old-{os.getpid()}")
                target.rename(old)
                scratch.rename(target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                scratch.rename(target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def atomic_file(target: Path, mode: str = "w") -> Iterator[Any]:
    """Open a temporary file beside `target`, renamed over it only if the block succeeds."""
    target = Path(target)
    with parent_folders(target):
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        os.chmod(tmp, 0o666 & ~_umask())
        try:
            with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
                yield fh
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def write_json(path: Path, data: Any) -> None:
    with atomic_file(path) as fh:
        json.dump(data, fh, indent=2, sort_keys=False)
        fh.write("\n")


def decode_utf8(data: bytes, origin: str) -> str:
    """UTF-8 text (a byte-order mark dropped); a bad byte is one line naming its line."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        fail(f"{origin} line {line}: not valid UTF-8 (byte {data[err.start]:#04x}: "
             f"{err.reason})")


def read_json(path: Path, hint: str = "rerun the step that wrote it") -> Any:
    """A JSON file a stage or job wrote; cut off or garbled, one line naming it and `hint`
    (a missing file stays a FileNotFoundError: callers say what should have made it)."""
    text = decode_utf8(Path(path).read_bytes(), str(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"{path} line {err.lineno}: not valid JSON ({err.msg}); {hint}")


def file_digest(path: Path, algo: str = "sha256", chunk: int = 1 << 20) -> str:
    digest = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def tree_digest(folder: Path) -> str:
    """One sha256 for a folder: its files' relative paths and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(file_digest(path).encode())
    return digest.hexdigest()
