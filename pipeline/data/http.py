"""Resumable HTTP downloads: what can recover (timeouts, dropped connections, 429/5xx answers)
is retried within bounds, what cannot (a refused connection, an unknown host) fails at once."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

from pipeline.errors import causes, fail

CHUNK = 1 << 16  # download block: small enough that a cut transfer keeps most of its bytes


def _session(retries: int):  # -> requests.Session
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    # 429/5xx answers and broken reads are retried by urllib3 with exponential backoff;
    # connection failures by download_url(), which tells a refused connection from a slow one.
    retry = Retry(total=retries, connect=0, read=retries, status=retries,
                  backoff_factor=float(os.environ.get("RNNBENCH_BACKOFF", "0.5")),
                  status_forcelist=(429, 500, 502, 503, 504), allowed_methods=("GET",),
                  raise_on_status=False)
    session = requests.Session()
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def permanent_failure(err: BaseException) -> str | None:
    """Why a connection can never succeed as asked (refused: nothing listens there; the host
    name does not resolve), found anywhere in the exception's chain; None if it may recover."""
    for e in causes(err):
        if isinstance(e, ConnectionRefusedError):
            return "connection refused (nothing listens at that address)"
        if type(e).__name__ == "NameResolutionError" or isinstance(e, socket.gaierror):
            return "host name not found"
    return None


def download_url(url: str, partial: Path, retries: int) -> None:
    """Download `url` into `partial`, resuming from its current size when the server allows."""
    import requests
    from tqdm import tqdm

    session = _session(retries)
    waited = 0.0
    for attempt in range(retries + 1):
        have = partial.stat().st_size if partial.exists() else 0
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            with session.get(url, headers=headers, stream=True, timeout=(10, 60)) as resp:
                if resp.status_code == 416:  # we already hold every byte
                    return
                if resp.status_code >= 400:
                    fail(f"{url}: HTTP {resp.status_code} {resp.reason}")
                resumed = resp.status_code == 206
                mode = "ab" if resumed else "wb"
                total = int(resp.headers.get("Content-Length", 0)) + (have if resumed else 0)
                with open(partial, mode) as out, tqdm(
                        total=total or None, initial=have if resumed else 0, unit="B",
                        unit_scale=True, desc=url.rsplit("/", 1)[-1][:40],
                        disable=not sys.stderr.isatty()) as bar:
                    for block in resp.iter_content(CHUNK):
                        out.write(block)
                        bar.update(len(block))
                if total and partial.stat().st_size < total:
                    raise requests.ConnectionError("transfer ended early")
                return
        except (requests.ConnectionError, requests.Timeout,
                requests.exceptions.ChunkedEncodingError) as err:
            if why := permanent_failure(err):  # retrying cannot help: say so at once
                fail(f"{url}: {why} (not retried)")
            if attempt == retries:
                fail(f"{url}: unreachable after {retries + 1} attempts over {waited:.0f} s "
                     f"({type(err).__name__})")
            pause = min(10.0, float(os.environ.get("RNNBENCH_BACKOFF", "0.5")) * 2**attempt)
            time.sleep(pause)
            waited += pause
