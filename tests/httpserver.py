"""A real HTTP file server on 127.0.0.1 for download tests, with scripted misbehaviour."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (path -> bytes) with Range support.

    `cut_once`: paths whose first response stops after half the body (connection dropped).
    `fail_first`: path -> how many 500 answers come before the file.
    `requests`: (path, Range header) of every GET, for assertions.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut_once: set[str] = set()
        self.fail_first: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                path, rng = self.path, self.headers.get("Range")
                server.requests.append((path, rng))
                if server.fail_first.get(path, 0) > 0:
                    server.fail_first[path] -= 1
                    self.send_error(500, "scripted failure")
                    return
                if path not in server.files:
                    self.send_error(404, "Not Found")
                    return
                body, start = server.files[path], 0
                if rng and rng.startswith("bytes="):
                    start = int(rng[6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if path in server.cut_once:
                    server.cut_once.discard(path)
                    self.wfile.write(body[start: start + (len(body) - start) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
