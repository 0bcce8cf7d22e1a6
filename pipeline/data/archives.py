"""Reading and extracting tar/zip archives safely.

Every member name is checked before anything is read or written: absolute paths, `..`
components and links (symbolic or hard) and device files are refused, so no archive can write
or point outside its target folder.
"""

from __future__ import annotations

import io
import posixpath
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

from pipeline.errors import fail
from pipeline.files import atomic_dir


def _safe_name(archive: Path, name: str) -> str:
    clean = posixpath.normpath(name.replace("\\", "/"))
    if clean.startswith("/") or clean == ".." or clean.startswith("../") or ":" in clean[:2]:
        fail(f"{archive}: member {name!r} escapes the target folder; refusing the archive")
    return clean


_BROKEN = (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, zlib.error)


def _broken(archive: Path, err: BaseException) -> NoReturn:
    fail(f"{archive}: truncated or corrupt archive ({' '.join(str(err).split())})")


class _CheckedMember(io.RawIOBase):
    """A member's data, whose read errors are the archive's: a truncated .tar.gz shows only
    when a member is read, in whichever reader reads it."""

    def __init__(self, archive: Path, fh: IO[bytes]):
        self.archive, self.fh = archive, fh

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            return self.fh.readinto(buffer)  # type: ignore[attr-defined]
        except _BROKEN as err:
            _broken(self.archive, err)


def _checked(archive: Path, fh: IO[bytes]) -> IO[bytes]:
    return io.BufferedReader(_CheckedMember(archive, fh))


def members(archive: Path) -> Iterator[tuple[str, IO[bytes]]]:
    """Yield (name, file object) for each regular file, after checking every member."""
    archive = Path(archive)
    if not (zipfile.is_zipfile(archive) or tarfile.is_tarfile(archive)):
        fail(f"{archive}: not a zip or tar archive (truncated or corrupt?)")
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                for info in infos:
                    if stat.S_ISLNK(info.external_attr >> 16):
                        fail(f"{archive}: member {info.filename!r} is a link; refusing the archive")
                    _safe_name(archive, info.filename)
                for info in infos:
                    if not info.is_dir():
                        with zf.open(info) as fh:
                            yield _safe_name(archive, info.filename), _checked(archive, fh)
            return
        with tarfile.open(archive) as tf:
            for info in tf:  # streaming: checked one by one, before each is read
                if info.issym() or info.islnk():
                    fail(f"{archive}: member {info.name!r} is a link; refusing the archive")
                if not (info.isfile() or info.isdir()):
                    fail(f"{archive}: member {info.name!r} is not a regular file; refusing")
                name = _safe_name(archive, info.name)
                if info.isfile():
                    fh = tf.extractfile(info)
                    if fh is not None:
                        yield name, _checked(archive, fh)
    except _BROKEN as err:
        _broken(archive, err)


def read_member(archive: Path, member: str) -> bytes:
    for name, fh in members(archive):
        if name == member:
            return fh.read()
    fail(f"{archive}: no member {member!r}")


def extract(archive: Path, dest: Path) -> Path:
    """Extract the regular files into `dest`; a refused or broken archive leaves no `dest`."""
    with atomic_dir(dest) as scratch:
        for name, fh in members(archive):
            target = scratch / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "wb") as out:
                shutil.copyfileobj(fh, out)
    return dest
