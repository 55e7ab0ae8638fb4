"""Download a ClinVar release from NCBI's public layout (or a mirror of it), safely.

`resolve_release` turns (assembly, "latest" or a date, kind) into the URLs of one release file;
`download_release` fetches it into a folder. The download resumes `<name>.part` with HTTP Range,
retries transient failures with backoff, checks the published md5 and only then renames the file
into place, so a killed run leaves at most a `.part` that the next run resumes. Importing the file
into the store is the caller's business.

NCBI layout (https://ftp.ncbi.nlm.nih.gov/pub/clinvar/):
  vcf_GRCh38/clinvar_YYYYMMDD.vcf.gz (+ .md5, .tbi), older ones in weekly/ and archive_2.0/YYYY/
  tab_delimited/variant_summary.txt.gz (+ .md5): the newest, rewritten in place every week
  tab_delimited/archive/[YYYY/]variant_summary_YYYY-MM.txt.gz: monthly archives
"""

from __future__ import annotations

import hashlib
import html
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, TypeVar
from urllib.parse import unquote, urljoin, urlsplit

from varreinterp import __version__
from varreinterp.assembly import Assembly
from varreinterp.errors import (
    EnvironmentIOError,
    InputError,
    LockHeldError,
    NetworkError,
    UsageError,
)

if TYPE_CHECKING:
    import ssl

    import httpx

log = logging.getLogger("varreinterp")

DEFAULT_MIRROR = "https://ftp.ncbi.nlm.nih.gov/pub/clinvar/"

Progress = Callable[[int, int | None], None]
"""progress(done_bytes, total_bytes or None when the server does not say)."""

_T = TypeVar("_T")
_CHUNK = 1 << 20
# Transient answers worth another try; any other 4xx will not change by asking again.
_RETRY_STATUSES = frozenset({408, 425, 429})
_GONE = frozenset({404, 410})
_VCF_NAME = re.compile(r"^clinvar_(\d{8})\.vcf\.gz$")  # not clinvar.vcf.gz, not *_papu.vcf.gz
_HREF = re.compile(r"""<a\s[^>]*?href\s*=\s*["']([^"']+)["']""", re.IGNORECASE)
# Apache ("2024-11-11 10:23") and nginx ("11-Nov-2024 10:23") index dates, on the link's line.
_LISTING_ROW = re.compile(
    r"""href\s*=\s*["']([^"']+)["'][^\n]*?(\d{4}-\d{2}-\d{2}|\d{2}-[A-Za-z]{3}-\d{4})""",
    re.IGNORECASE)
_MD5_PLAIN = re.compile(r"^([0-9a-fA-F]{32})(?:\s|$)")
_MD5_BSD = re.compile(r"^MD5 \(.*\) = ([0-9a-fA-F]{32})$")
_DAY = re.compile(r"^(\d{4})-?(\d{2})-?(\d{2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{2})(?:-(\d{2}))?$")
_CONTENT_RANGE = re.compile(r"^bytes\s+(\d+)-(\d+)/(\d+|\*)$")


class ReleaseKind(StrEnum):
    VCF = "vcf"
    VARIANT_SUMMARY = "variant-summary"


@dataclass(frozen=True)
class FetchOptions:
    """How to talk to the server. Proxies come from HTTPS_PROXY/HTTP_PROXY/ALL_PROXY/NO_PROXY
    and, without `ca_bundle`, the CA certificates from SSL_CERT_FILE/SSL_CERT_DIR, both only
    while `trust_env` holds (httpx's rules); `proxy` overrides the environment's proxies."""

    timeout: float = 60.0  # seconds without progress (connect, read, write) before a try fails
    attempts: int = 5  # tries per request, the first included
    backoff: float = 2.0  # seconds before the first retry; doubles each time
    max_backoff: float = 120.0
    ca_bundle: Path | None = None
    trust_env: bool = True
    proxy: str | None = None
    require_md5: bool = True  # False: a release without a published .md5 is kept unverified

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise UsageError(f"download attempts must be at least 1, not {self.attempts}")
        if self.timeout <= 0:
            raise UsageError(f"download timeout must be positive, not {self.timeout}")
        if self.backoff < 0 or self.max_backoff < 0:
            raise UsageError("download backoff must not be negative")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed try number `attempt` (1-based)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class RemoteRelease:
    kind: ReleaseKind
    assembly: Assembly  # variant_summary holds both builds; this is the one to import
    release_date: date
    url: str
    md5_url: str
    tbi_url: str | None  # VCF only; may be absent on the server
    file_name: str  # the name in the download folder (dated even for variant_summary.txt.gz)


@dataclass(frozen=True)
class FetchedFile:
    remote: RemoteRelease
    path: Path
    md5: str
    size: int
    verified: bool  # False only with require_md5=False and no .md5 on the server
    resumed: bool  # some bytes came from an earlier try or run (HTTP Range)
    reused: bool  # the verified file was already in the folder: nothing was downloaded
    tbi_path: Path | None


def resolve_release(
    mirror: str = DEFAULT_MIRROR,
    assembly: Assembly | str = Assembly.GRCh38,
    release: str = "latest",
    kind: ReleaseKind = ReleaseKind.VCF,
    *,
    options: FetchOptions | None = None,
) -> RemoteRelease:
    """Find one release on the server. `release` is "latest" or YYYY-MM-DD (VCF, also YYYYMMDD)
    or YYYY-MM[-DD] (variant_summary: the monthly archive). A dated release the server does not
    have raises UsageError; an unreachable server NetworkError."""
    base = _base_url(mirror)
    build = _assembly(assembly)
    options = options or FetchOptions()
    day = None if release == "latest" else _release_date(release, kind)
    with make_client(options) as client:
        if kind is ReleaseKind.VCF:
            return _resolve_vcf(client, base, build, day, options)
        return _resolve_summary(client, base, build, day, options)


def download_release(
    remote: RemoteRelease,
    download_dir: Path,
    *,
    options: FetchOptions | None = None,
    progress: Progress | None = None,
) -> FetchedFile:
    """Fetch `remote` into `download_dir`, verified against its .md5, and its .tbi when the
    server has one. Resumes `<name>.part` left by an interrupted run."""
    options = options or FetchOptions()
    _make_dir(download_dir)
    final = download_dir / remote.file_name
    with make_client(options) as client:
        expected = _expected_md5(client, remote, options)
        if expected is not None and final.is_file() and _md5_of(final) == expected:
            log.info("%s: already downloaded and verified", final)
            digest, resumed, reused = expected, False, True
        else:
            digest, resumed = _download_verified(client, remote.url, final, expected, options,
                                                 progress)
            reused = False
        tbi = None
        if remote.tbi_url is not None:
            tbi = _download_index(client, remote.tbi_url, Path(f"{final}.tbi"), options,
                                  keep_existing=reused)
    return FetchedFile(remote=remote, path=final, md5=digest, size=final.stat().st_size,
                       verified=expected is not None, resumed=resumed, reused=reused,
                       tbi_path=tbi)


def fetch_release(
    download_dir: Path,
    *,
    mirror: str = DEFAULT_MIRROR,
    assembly: Assembly | str = Assembly.GRCh38,
    release: str = "latest",
    kind: ReleaseKind = ReleaseKind.VCF,
    options: FetchOptions | None = None,
    progress: Progress | None = None,
) -> FetchedFile:
    """`resolve_release` then `download_release`."""
    remote = resolve_release(mirror, assembly, release, kind, options=options)
    return download_release(remote, download_dir, options=options, progress=progress)


def make_client(options: FetchOptions) -> httpx.Client:
    """The one place the HTTP client is configured (proxies, CA certificates, redirects)."""
    import httpx

    return httpx.Client(
        timeout=httpx.Timeout(options.timeout),
        follow_redirects=True,
        trust_env=options.trust_env,
        verify=_ssl_verify(options),
        proxy=options.proxy,
        # identity: Range offsets and the md5 are about the file's bytes, not a re-encoding
        headers={"User-Agent": f"varreinterp/{__version__}", "Accept-Encoding": "identity"},
    )


def listing_links(page: str, page_url: str) -> dict[str, str]:
    """File name -> absolute URL for each file linked from an Apache/nginx index page."""
    links: dict[str, str] = {}
    for href in _HREF.findall(page):
        href = html.unescape(href)
        parts = urlsplit(href)
        if parts.query or parts.fragment or parts.path.endswith("/"):
            continue  # column-sort links, folders
        name = unquote(PurePosixPath(parts.path).name)
        if name:
            links[name] = urljoin(page_url, href)
    return links


def latest_vcf(links: dict[str, str]) -> tuple[date, str] | None:
    """The newest clinvar_YYYYMMDD.vcf.gz among `links` whose .md5 is listed too (NCBI uploads
    the data first: a release without its checksum yet is still being published); the newest of
    all when none has one."""
    dated: list[tuple[date, str]] = []
    for name in links:
        m = _VCF_NAME.match(name)
        day = _parse_compact_day(m.group(1)) if m else None
        if day is not None:
            dated.append((day, name))
    if not dated:
        return None
    dated.sort(reverse=True)
    complete = [(day, name) for day, name in dated if f"{name}.md5" in links]
    if complete and complete[0] != dated[0]:
        log.info("%s has no .md5 yet: taking %s", dated[0][1], complete[0][1])
    day, name = (complete or dated)[0]
    return day, links[name]


def parse_md5(text: str, source: str) -> str:
    """The hex digest from a `<hex>  <name>`, bare `<hex>` or BSD `MD5 (name) = <hex>` file."""
    first = text.strip().splitlines()[0].strip() if text.strip() else ""
    m = _MD5_PLAIN.match(first) or _MD5_BSD.match(first)
    if m is None:
        raise InputError(f"not an md5 checksum file (starts {first[:40]!r})", source)
    return m.group(1).lower()


# --- resolving -------------------------------------------------------------------------------


def _resolve_vcf(client: httpx.Client, base: str, build: Assembly, day: date | None,
                 options: FetchOptions) -> RemoteRelease:
    folder = urljoin(base, f"vcf_{build}/")
    if day is None:
        response = _request(client, "GET", folder, options)
        if response.status_code in _GONE:
            raise UsageError(f"no ClinVar VCF folder for {build} at {folder} "
                             f"(HTTP {response.status_code}): check the mirror URL")
        _check_ok(response, folder)
        found = latest_vcf(listing_links(response.text, str(response.url)))
        if found is None:
            raise InputError("no clinvar_YYYYMMDD.vcf.gz in the folder listing", folder)
        day, url = found
    else:
        name = f"clinvar_{day:%Y%m%d}.vcf.gz"
        where = ["", "weekly/", f"archive_2.0/{day.year}/"]
        url = _first_existing(client, [urljoin(folder, w + name) for w in where], options) or ""
        if not url:
            raise UsageError(f"no ClinVar release {day.isoformat()} for {build} at {folder} "
                             f"(looked in ./, {', '.join(where[1:])})")
    name = PurePosixPath(urlsplit(url).path).name
    return RemoteRelease(ReleaseKind.VCF, build, day, url, f"{url}.md5", f"{url}.tbi", name)


def _resolve_summary(client: httpx.Client, base: str, build: Assembly, day: date | None,
                     options: FetchOptions) -> RemoteRelease:
    folder = urljoin(base, "tab_delimited/")
    if day is None:
        url = urljoin(folder, "variant_summary.txt.gz")
        head = _probe(client, url, options)
        if head is None:
            raise UsageError(f"no variant_summary.txt.gz at {folder}: check the mirror URL")
        day = _last_modified(head) or _date_in_listing(client, folder, url, options)
        if day is None:
            raise InputError("cannot tell the release date: no Last-Modified header and no "
                             "date in the folder listing", url)
        # dated locally: the remote name is reused every week, and a .part of last week's file
        # must not be resumed with this week's bytes
        local = f"variant_summary_{day.isoformat()}.txt.gz"
    else:
        archive = urljoin(folder, "archive/")
        local = f"variant_summary_{day:%Y-%m}.txt.gz"
        # NCBI moved older monthly files into per-year folders
        where = ["", f"{day.year}/"]
        url = _first_existing(client, [urljoin(archive, w + local) for w in where], options) or ""
        if not url:
            raise UsageError(f"no ClinVar variant_summary release {day:%Y-%m} at {archive} "
                             f"(looked in ./, {day.year}/)")
    return RemoteRelease(ReleaseKind.VARIANT_SUMMARY, build, day, url, f"{url}.md5", None, local)


def _first_existing(client: httpx.Client, urls: list[str], options: FetchOptions) -> str | None:
    for url in urls:
        if _probe(client, url, options) is not None:
            return url
    return None


def _probe(client: httpx.Client, url: str, options: FetchOptions) -> httpx.Response | None:
    """The headers of `url`, or None when the server does not have it."""
    response = _request(client, "HEAD", url, options)
    if response.status_code in (405, 501):  # HEAD not allowed: the headers of a GET will do

        def headers_of_get() -> httpx.Response:
            with client.stream("GET", url) as streamed:
                _raise_if_transient(streamed)
                return streamed

        response = _with_retries(url, options, headers_of_get)
    if response.status_code in _GONE:
        return None
    _check_ok(response, url)
    return response


def _date_in_listing(client: httpx.Client, folder: str, url: str,
                     options: FetchOptions) -> date | None:
    response = _request(client, "GET", folder, options)
    if not response.is_success:
        return None
    name = PurePosixPath(urlsplit(url).path).name
    for href, stamp in _LISTING_ROW.findall(response.text):
        if unquote(PurePosixPath(urlsplit(html.unescape(href)).path).name) == name:
            for pattern in ("%Y-%m-%d", "%d-%b-%Y"):
                try:
                    return datetime.strptime(stamp, pattern).date()
                except ValueError:
                    continue
    return None


def _last_modified(response: httpx.Response) -> date | None:
    from email.utils import parsedate_to_datetime

    value = response.headers.get("Last-Modified")
    if not value:
        return None
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return (stamp.astimezone(UTC) if stamp.tzinfo else stamp).date()


# --- downloading -----------------------------------------------------------------------------


def _expected_md5(client: httpx.Client, remote: RemoteRelease,
                  options: FetchOptions) -> str | None:
    response = _request(client, "GET", remote.md5_url, options)
    if response.status_code in _GONE:
        if options.require_md5:
            raise InputError(f"no checksum published for {remote.url} (HTTP "
                             f"{response.status_code}): refusing an unverified download",
                             remote.md5_url)
        log.warning("%s: no checksum published; the download cannot be verified", remote.url)
        return None
    _check_ok(response, remote.md5_url)
    return parse_md5(response.text, remote.md5_url)


def _download_verified(client: httpx.Client, url: str, final: Path, expected: str | None,
                       options: FetchOptions, progress: Progress | None) -> tuple[str, bool]:
    part = _PartFile(Path(f"{final}.part"))
    try:
        restarted = False
        while True:
            if part.size:
                log.info("%s: resuming from byte %d", url, part.size)
            _transfer_with_retries(client, url, part, options, progress, missing_ok=False)
            digest = part.hexdigest()
            if expected is None or digest == expected:
                resumed = part.resumed
                part.complete(final)
                return digest, resumed
            if part.resumed and not restarted:
                # the resumed bytes may belong to another version of the file (a stale .part)
                # or the server may answer ranges wrongly: one full download tells which
                log.warning("%s: md5 mismatch after resuming; downloading it whole", url)
                part.reset()
                restarted = True
                continue
            part.discard()
            raise InputError(f"md5 mismatch: the server's .md5 says {expected}, the downloaded "
                             f"file has {digest}; the download was deleted", url)
    finally:
        part.close()


def _download_index(client: httpx.Client, url: str, final: Path, options: FetchOptions, *,
                    keep_existing: bool) -> Path | None:
    """The .tbi beside the VCF, or None when the server has none. Never resumed: it has no md5
    and is small, so a fresh copy is the only safe one."""
    if keep_existing and final.is_file():
        return final
    part = _PartFile(Path(f"{final}.part"))
    try:
        part.reset()
        if not _transfer_with_retries(client, url, part, options, None, missing_ok=True):
            part.discard()
            return None
        part.complete(final)
        return final
    finally:
        part.close()


def _transfer_with_retries(client: httpx.Client, url: str, part: _PartFile,
                           options: FetchOptions, progress: Progress | None, *,
                           missing_ok: bool) -> bool:
    """Fill `part` from `url`; False when the server has no such file and `missing_ok`."""
    try:
        _with_retries(url, options, lambda: _transfer_once(client, url, part, progress))
    except _HttpStatusError as exc:
        if missing_ok and exc.status in _GONE:
            return False
        raise NetworkError(f"{url}: {exc.reason}") from None
    return True


def _transfer_once(client: httpx.Client, url: str, part: _PartFile,
                   progress: Progress | None) -> None:
    offset = part.size
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    with client.stream("GET", url, headers=headers) as response:
        status = response.status_code
        if status == 416 and offset:
            # the part is at least as long as the file: complete, or stale; the md5 decides
            part.resumed = True
            return
        _raise_if_transient(response)
        if status == 206 and offset:
            start, total = _content_range(response)
            if start != offset:
                part.reset()
                raise _TransientError(f"asked for bytes from {offset}, got from {start}")
            part.resumed = True
        elif status in (200, 206):
            if offset:
                log.info("%s: the server ignored the Range request; starting over", url)
            part.reset()
            total = _content_length(response)
        else:
            raise _HttpStatusError(status, f"HTTP {status} {response.reason_phrase}".strip())
        done = part.size
        if progress is not None:
            progress(done, total)
        # no chunk_size: httpx would hold bytes back to fill a chunk, and lose them if the
        # connection then breaks, so a resumed download would redo them
        for chunk in response.iter_raw():
            part.write(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, total)
        if total is not None and done != total:
            raise _TransientError(f"transfer ended at byte {done} of {total}")


class _PartFile:
    """`<name>.part` under an exclusive lock, with a running md5 of the bytes it holds."""

    def __init__(self, path: Path) -> None:
        import fcntl

        self.path = path
        try:
            self._file: IO[bytes] = open(path, "a+b")  # noqa: SIM115 (closed by close())
        except OSError as exc:
            raise EnvironmentIOError.from_os_error(exc, path) from exc
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise LockHeldError(f"{path}: another process is downloading this file") from None
        self.resumed = False
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        try:
            self._file.seek(0)
            while block := self._file.read(_CHUNK):
                self._md5.update(block)
                self.size += len(block)
        except OSError as exc:
            self._file.close()
            raise EnvironmentIOError.from_os_error(exc, path) from exc

    def write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as exc:
            raise EnvironmentIOError.from_os_error(exc, self.path) from exc
        self._md5.update(data)
        self.size += len(data)

    def reset(self) -> None:
        try:
            self._file.truncate(0)  # "a" mode: the next write lands at the new end, 0
        except OSError as exc:
            raise EnvironmentIOError.from_os_error(exc, self.path) from exc
        self._md5 = hashlib.md5(usedforsecurity=False)
        self.size = 0
        self.resumed = False

    def hexdigest(self) -> str:
        return self._md5.hexdigest()

    def complete(self, final: Path) -> None:
        """Durably rename into place: the final name only ever holds a whole, checked file."""
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            os.replace(self.path, final)
        except OSError as exc:
            raise EnvironmentIOError.from_os_error(exc, final) from exc
        finally:
            self._file.close()

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Keep a non-empty part for the next run to resume; an empty one is just litter."""
        if self._file.closed:
            return
        self._file.close()
        if self.size == 0:
            self.path.unlink(missing_ok=True)


# --- HTTP plumbing ---------------------------------------------------------------------------


class _TransientError(Exception):
    """An answer worth retrying (HTTP 5xx/408/429, a transfer that ended early)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _HttpStatusError(Exception):
    """A final HTTP answer that retrying will not change."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _request(client: httpx.Client, method: str, url: str,
             options: FetchOptions) -> httpx.Response:
    """A HEAD or small GET (listing, md5), retried; the caller interprets the final status."""

    def once() -> httpx.Response:
        response = client.request(method, url)
        _raise_if_transient(response)
        return response

    return _with_retries(url, options, once)


def _with_retries(url: str, options: FetchOptions, action: Callable[[], _T]) -> _T:
    import httpx

    reason = ""
    for attempt in range(1, options.attempts + 1):
        try:
            return action()
        except httpx.TransportError as exc:
            _refuse_certificate_failure(url, exc)
            reason = _describe(exc, options)
        except _TransientError as exc:
            reason = exc.reason
        if attempt < options.attempts:
            delay = options.delay(attempt)
            log.info("%s: %s; retrying in %.1f s (%d/%d)", url, reason, delay, attempt,
                     options.attempts)
            time.sleep(delay)
    raise NetworkError(f"{url}: {reason} (gave up after {options.attempts} attempts)")


def _raise_if_transient(response: httpx.Response) -> None:
    status = response.status_code
    if status >= 500 or status in _RETRY_STATUSES:
        raise _TransientError(f"HTTP {status} {response.reason_phrase}".strip())


def _check_ok(response: httpx.Response, url: str) -> None:
    if not response.is_success:
        raise NetworkError(f"{url}: HTTP {response.status_code} {response.reason_phrase}".strip())


def _describe(exc: httpx.TransportError, options: FetchOptions) -> str:
    import httpx

    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, httpx.TimeoutException):
        stage = type(exc).__name__.removesuffix("Timeout").lower() or "request"
        return f"{stage} timed out (nothing for {options.timeout:g} s)"
    if isinstance(exc, httpx.ProxyError):
        return f"proxy error: {detail}"
    if isinstance(exc, httpx.ConnectError):
        return f"cannot connect: {detail}"
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"transfer interrupted: {detail}"
    return f"connection error: {detail}"


def _refuse_certificate_failure(url: str, exc: BaseException) -> None:
    """A certificate the client does not trust will not become trusted by retrying."""
    import ssl

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            detail = cause.verify_message or str(cause)
            raise NetworkError(f"{url}: TLS certificate not trusted ({detail}); give a CA bundle "
                               "or set SSL_CERT_FILE") from None
        cause = cause.__cause__ or cause.__context__


def _ssl_verify(options: FetchOptions) -> ssl.SSLContext | bool:
    import ssl

    if options.ca_bundle is None:
        return True  # httpx: SSL_CERT_FILE / SSL_CERT_DIR when trust_env, else certifi
    try:
        return ssl.create_default_context(cafile=str(options.ca_bundle))
    except (OSError, ssl.SSLError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise InputError(f"cannot use as CA bundle: {reason}", options.ca_bundle) from None


def _content_range(response: httpx.Response) -> tuple[int, int | None]:
    m = _CONTENT_RANGE.match(response.headers.get("Content-Range", "").strip())
    if m is None:
        raise _TransientError("HTTP 206 without a usable Content-Range header")
    return int(m.group(1)), None if m.group(3) == "*" else int(m.group(3))


def _content_length(response: httpx.Response) -> int | None:
    value = response.headers.get("Content-Length", "")
    return int(value) if value.isdigit() else None


# --- small helpers ---------------------------------------------------------------------------


def _base_url(mirror: str) -> str:
    parts = urlsplit(mirror)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"invalid mirror URL {mirror!r}: expected http(s)://host/path/")
    return mirror if mirror.endswith("/") else f"{mirror}/"


def _assembly(value: Assembly | str) -> Assembly:
    try:
        return Assembly(value)
    except ValueError:
        choices = ", ".join(a.value for a in Assembly)
        raise UsageError(f"invalid assembly {value!r}: use one of {choices}") from None


def _release_date(text: str, kind: ReleaseKind) -> date:
    if kind is ReleaseKind.VCF:
        m = _DAY.match(text)
        day = _date_or_none(int(m.group(1)), int(m.group(2)), int(m.group(3))) if m else None
        if day is None:
            raise UsageError(f"invalid release {text!r}: use 'latest' or YYYY-MM-DD")
        return day
    m = _MONTH.match(text)
    day = _date_or_none(int(m.group(1)), int(m.group(2)), int(m.group(3) or 1)) if m else None
    if day is None:
        raise UsageError(f"invalid release {text!r}: use 'latest', YYYY-MM or YYYY-MM-DD")
    return day.replace(day=1)  # variant_summary archives are monthly


def _date_or_none(year: int, month: int, day: int) -> date | None:
    """The date, or None for an impossible one (2023-02-30)."""
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _parse_compact_day(text: str) -> date | None:
    return _date_or_none(int(text[:4]), int(text[4:6]), int(text[6:8]))


def _make_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, folder) from exc


def _md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with open(path, "rb") as fh:
            while block := fh.read(_CHUNK):
                digest.update(block)
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, path) from exc
    return digest.hexdigest()
