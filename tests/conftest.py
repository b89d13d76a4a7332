"""Shared test fixtures: the data mirror, a loopback HTTP file server."""

from __future__ import annotations

import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared_mirror() -> Path:
    """The offline mirror of the real data sets (../shared/data here; $FROMSCRATCH_MIRROR).

    Skipped where there is none, except in CI, where a missing mirror is a failure.
    """
    candidates = [os.environ.get("FROMSCRATCH_MIRROR"), ROOT.parent / "shared" / "data"]
    for c in candidates:
        if c and (Path(c) / "SHA256SUMS").is_file():
            return Path(c)
    if os.environ.get("CI"):
        pytest.fail("no data mirror: set FROMSCRATCH_MIRROR")
    pytest.skip("no data mirror (set FROMSCRATCH_MIRROR)")


class FileServer:
    """Serves a folder over HTTP on 127.0.0.1 (port 0), with Range support and fault modes.

    `requests` records (path, Range header) of each request. Fault modes:
    `truncate_after` closes each response after that many body bytes (while announcing the
    full length); `ignore_range` answers Range requests with the whole file (200).
    """

    def __init__(self, root: Path):
        self.root = root
        self.requests: list[tuple[str, str | None]] = []
        self.truncate_after: int | None = None
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                range_header = self.headers.get("Range")
                server.requests.append((self.path, range_header))
                path = server.root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                if range_header and not server.ignore_range:
                    start = int(range_header.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.truncate_after is not None:
                    body = body[: server.truncate_after]
                self.wfile.write(body)
                self.wfile.flush()
                if server.truncate_after is not None:
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    with FileServer(root) as server:
        yield server
