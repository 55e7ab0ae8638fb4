"""A loopback stand-in for NCBI's ClinVar download server, for tests that must not touch the
internet.

It serves a folder at http://127.0.0.1:<port>/pub/clinvar/ the way NCBI's server does: Apache-style
HTML listings for folders (a folder without its trailing slash gets a 301), files with
Content-Length, Last-Modified and byte ranges (206, 416), HEAD. Every request is logged, and
faults can be injected per path: a connection reset, a body cut short, a delay, an error status,
a redirect, a Range ignored. It also answers absolute-form requests (`GET http://host/path`), so
it can stand in as an HTTP proxy: such requests are logged with `proxied=True`.

    with standard_mirror(tmp_path / "mirror", SHARED / "clinvar") as mirror:
        fetch_release(..., mirror=mirror.base_url)
        assert mirror.requests_for("vcf_GRCh37/")[0].method == "GET"
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import io
import os
import socket
import socketserver
import ssl
import struct
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import formatdate
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import quote, unquote, urlsplit

PREFIX = "/pub/clinvar/"
_BLOCK = 16 * 1024


class FaultKind(StrEnum):
    RESET = "reset"  # read the request, then drop the connection with a TCP RST, no answer
    CUT = "cut"  # send the headers and `after_bytes` bytes of the body, then close
    DELAY = "delay"  # wait `seconds` before answering (normally)
    STATUS = "status"  # answer `status` with a short body
    REDIRECT = "redirect"  # answer 302 to `location` (a path under the mirror's base)
    IGNORE_RANGE = "ignore-range"  # answer 200 with the whole file even when a Range was asked


@dataclass
class Fault:
    path: str  # URL path it applies to, e.g. /pub/clinvar/vcf_GRCh37/clinvar_20191202.vcf.gz
    kind: FaultKind
    times: int | None = 1  # requests it still applies to; None: every request
    method: str | None = "GET"  # None: any method
    after_bytes: int = 0
    seconds: float = 0.0
    status: int = 503
    location: str = ""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # the URL path, unquoted
    headers: dict[str, str]  # names lower-cased
    proxied: bool  # asked in absolute form, as of a proxy
    host: str  # the target host[:port] (from the absolute form or the Host header)
    fault: FaultKind | None


@dataclass
class NcbiMirror:
    """Serves `root` at http(s)://127.0.0.1:<port>/pub/clinvar/. Start it with `start()` or
    `with`; `stop()` ends delayed answers at once and joins every handler thread."""

    root: Path
    tls: tuple[Path, Path] | None = None  # (certificate, key) to serve HTTPS
    send_last_modified: bool = True
    requests: list[RecordedRequest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # handler bugs (not clients going away)
    _faults: list[Fault] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: threading.Event = field(default_factory=threading.Event)
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    # --- content ---

    def add(self, rel: str, content: Path | bytes, *, md5: bool | str = True,
            mtime: datetime | None = None) -> Path:
        """Place a file at `rel` (relative to the base), with a `<hex>  <name>` .md5 beside it
        (md5=True), none (False) or the given text (to publish a wrong or odd checksum)."""
        dest = self.root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        data = content.read_bytes() if isinstance(content, Path) else content
        dest.write_bytes(data)
        written = [dest]
        if md5 is not False:
            text = md5 if isinstance(md5, str) else \
                f"{hashlib.md5(data).hexdigest()}  {dest.name}\n"
            md5_path = dest.with_name(dest.name + ".md5")
            md5_path.write_text(text)
            written.append(md5_path)
        if mtime is not None:
            stamp = mtime.timestamp()
            for path in written:
                os.utime(path, (stamp, stamp))
        return dest

    def fault(self, rel: str, kind: FaultKind, *, times: int | None = 1,
              method: str | None = "GET", after_bytes: int = 0, seconds: float = 0.0,
              status: int = 503, location: str = "") -> Fault:
        """Inject a fault for requests of `rel`; `location` (REDIRECT) is relative too."""
        fault = Fault(PREFIX + rel, kind, times, method, after_bytes, seconds, status,
                      PREFIX + location if location else "")
        with self._lock:
            self._faults.append(fault)
        return fault

    # --- addresses and the request log ---

    @property
    def origin(self) -> str:
        if self._server is None:
            raise RuntimeError("the mirror is not started")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def base_url(self) -> str:
        return self.origin + PREFIX

    def url(self, rel: str) -> str:
        return self.base_url + rel

    def requests_for(self, rel: str, method: str | None = "GET") -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests
                    if r.path == PREFIX + rel and (method is None or r.method == method)]

    # --- life cycle ---

    def start(self) -> NcbiMirror:
        self.root.mkdir(parents=True, exist_ok=True)
        server = _Server(self)
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(self.tls[0]), str(self.tls[1]))
            # a failed handshake surfaces as OSError in accept(), which socketserver ignores
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="ncbi-mirror", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the handler threads
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> NcbiMirror:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # --- used by the handler ---

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.path == path and fault.method in (None, method) and fault.times != 0:
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # so server_close() can join them: no thread outlives a test
    block_on_close = True

    def __init__(self, mirror: NcbiMirror) -> None:
        self.mirror = mirror
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host's FQDN, which can stall without DNS
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: object, client_address: object) -> None:
        import traceback

        self.mirror.errors.append(traceback.format_exc())


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: a fault never leaks into the next
    timeout = 10

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (base signature)
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        self._answer(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(head=True)

    def _answer(self, *, head: bool) -> None:
        mirror = self.server.mirror
        proxied = self.path.startswith(("http://", "https://"))
        target = urlsplit(self.path)
        path = unquote(target.path)
        fault = mirror._take_fault(self.command, path)
        mirror._record(RecordedRequest(
            self.command, path, {k.lower(): v for k, v in self.headers.items()}, proxied,
            target.netloc if proxied else self.headers.get("Host", ""),
            fault.kind if fault else None))
        # the client may have given up (a timeout test): nothing left to answer to
        with contextlib.suppress(ConnectionError, TimeoutError):
            self._answer_with(path, head, fault)

    def _answer_with(self, path: str, head: bool, fault: Fault | None) -> None:
        kind = fault.kind if fault else None
        if fault is not None and kind is FaultKind.RESET:
            self._reset()
            return
        if fault is not None and kind is FaultKind.DELAY:
            self.server.mirror._stopping.wait(fault.seconds)
        if fault is not None and kind is FaultKind.STATUS:
            self._short(fault.status, head)
            return
        if fault is not None and kind is FaultKind.REDIRECT:
            self._short(302, head, {"Location": quote(fault.location)})
            return
        local = self._local(path)
        if local is None or not local.exists():
            self._short(404, head)
        elif local.is_dir() and not path.endswith("/"):
            self._short(301, head, {"Location": quote(path + "/")})
        elif local.is_dir():
            self._listing(path, local, head)
        else:
            cut = fault.after_bytes if fault is not None and kind is FaultKind.CUT else None
            self._file(local, head, ignore_range=kind is FaultKind.IGNORE_RANGE, cut=cut)

    def _local(self, path: str) -> Path | None:
        if not path.startswith(PREFIX):
            return None
        root = self.server.mirror.root.resolve()
        local = (root / path[len(PREFIX):]).resolve()
        return local if local.is_relative_to(root) else None

    def _reset(self) -> None:
        # linger 0 makes close() send RST; the stream wrappers must go first or the socket
        # stays open behind them
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.wfile.close()
        self.rfile.close()
        self.connection.close()
        self.close_connection = True
        # http.server still flushes and closes these after the handler returns
        self.wfile, self.rfile = io.BytesIO(), io.BytesIO()

    def _short(self, status: int, head: bool, headers: dict[str, str] | None = None) -> None:
        body = f"<html><body>{status}</body></html>\n".encode()
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _listing(self, path: str, folder: Path, head: bool) -> None:
        rows = ['<a href="?C=N;O=D">Name</a>  <a href="?C=M;O=A">Last modified</a>  '
                '<a href="?C=S;O=A">Size</a>', '<hr><a href="../">Parent Directory</a>']
        for entry in sorted(folder.iterdir()):
            name = entry.name + ("/" if entry.is_dir() else "")
            stamp = datetime.fromtimestamp(entry.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M")
            size = "-" if entry.is_dir() else str(entry.stat().st_size)
            rows.append(f'<a href="{quote(name)}">{html.escape(name)}</a>'
                        f'{" " * max(1, 40 - len(name))}{stamp}  {size:>8}')
        title = f"Index of {html.escape(path.rstrip('/') or '/')}"
        body = (f"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n<html><head>"
                f"<title>{title}</title></head><body><h1>{title}</h1><pre>"
                + "\n".join(rows) + "\n<hr></pre></body></html>\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html;charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _file(self, local: Path, head: bool, *, ignore_range: bool, cut: int | None) -> None:
        data = local.read_bytes()
        size = len(data)
        start, status = 0, 200
        asked = self.headers.get("Range", "")
        if asked and not ignore_range:
            first = asked.removeprefix("bytes=").split("-")[0]
            start = int(first) if first.isdigit() else 0
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(size - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
        if self.server.mirror.send_last_modified:
            self.send_header("Last-Modified", formatdate(local.stat().st_mtime, usegmt=True))
        self.end_headers()
        if head:
            return
        body = data[start:] if cut is None else data[start:start + cut]
        for offset in range(0, len(body), _BLOCK):
            self.wfile.write(body[offset:offset + _BLOCK])
        self.wfile.flush()
        # a CUT answer ends here: the connection closes with fewer bytes than announced


# What `standard_mirror` publishes: relative path -> file under the shared clinvar data folder.
STANDARD_FILES: dict[str, str] = {
    "vcf_GRCh37/clinvar_20191202.vcf.gz": "GRCh37/clinvar_20191202.chr1_949k-977k.vcf.gz",
    "vcf_GRCh37/archive_2.0/2023/clinvar_20230710.vcf.gz":
        "GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz",
    "vcf_GRCh38/clinvar_20241111.vcf.gz":
        "GRCh38/clinvar_20241111.chr1_11_records.ids_replaced.vcf.gz",
    "vcf_GRCh38/weekly/clinvar_20211025.vcf.gz": "GRCh38/clinvar_20211025.2_per_chrom.vcf.gz",
    "tab_delimited/variant_summary.txt.gz": "variant_summary/variant_summary.10_rows.txt.gz",
    "tab_delimited/archive/variant_summary_2021-10.txt.gz":
        "variant_summary/variant_summary.2021_layout.12_rows.txt.gz",
}
# Served without .md5, like NCBI's .tbi files.
STANDARD_INDEXES: dict[str, str] = {
    "vcf_GRCh37/archive_2.0/2023/clinvar_20230710.vcf.gz.tbi":
        "GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz.tbi",
}
# Names "latest" must not pick (NCBI publishes both): the unversioned copy, a newer papu file.
STANDARD_DECOYS: dict[str, str] = {
    "vcf_GRCh37/clinvar.vcf.gz": "GRCh37/clinvar_20191202.chr1_949k-977k.vcf.gz",
    "vcf_GRCh37/clinvar_20200106_papu.vcf.gz": "GRCh37/clinvar_20191202.chr1_949k-977k.vcf.gz",
}
VARIANT_SUMMARY_MODIFIED = datetime(2024, 11, 11, 14, 30, tzinfo=UTC)


def standard_mirror(root: Path, clinvar_data: Path, *, tls: tuple[Path, Path] | None = None
                    ) -> NcbiMirror:
    """A mirror (not started) laid out like NCBI's with the real files from `clinvar_data`
    (../shared/data/clinvar): GRCh37 latest = 2019-12-02 in the main folder, 2023-07-10 (+ .tbi)
    in archive_2.0/2023/; GRCh38 latest = 2024-11-11, 2021-10-25 in weekly/; variant_summary
    latest dated 2024-11-11 (Last-Modified) and the 2021-10 monthly archive."""
    mirror = NcbiMirror(root, tls=tls)
    for rel, source in STANDARD_FILES.items():
        modified = VARIANT_SUMMARY_MODIFIED if rel.startswith("tab_delimited/") else None
        mirror.add(rel, clinvar_data / source, mtime=modified)
    for rel, source in STANDARD_DECOYS.items():
        mirror.add(rel, clinvar_data / source)
    for rel, source in STANDARD_INDEXES.items():
        mirror.add(rel, clinvar_data / source, md5=False)
    return mirror

