"""Downloading ClinVar releases (varreinterp.fetch) from a loopback NCBI-like server: resolving
latest/dated releases, md5 verification, resume with Range, retries, timeouts, redirects,
proxies and CA bundles. Never touches the internet."""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from conftest import shared
from ncbi_mirror import FaultKind, NcbiMirror, standard_mirror

from varreinterp.errors import (
    ExitCode,
    InputError,
    LockHeldError,
    NetworkError,
    UsageError,
)
from varreinterp.fetch import (
    FetchOptions,
    ReleaseKind,
    RemoteRelease,
    download_release,
    fetch_release,
    latest_vcf,
    listing_links,
    parse_md5,
    resolve_release,
)

FAST = FetchOptions(timeout=5, attempts=3, backoff=0.01)
ONCE = FetchOptions(timeout=5, attempts=1)
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
                   "http_proxy", "https_proxy", "all_proxy", "no_proxy")
OLD = "vcf_GRCh37/clinvar_20191202.vcf.gz"
OLD_SOURCE = "GRCh37/clinvar_20191202.chr1_949k-977k.vcf.gz"


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy set in the developer's shell would route the loopback requests through it."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def clinvar() -> Path:
    return shared("clinvar")


@pytest.fixture
def mirror(tmp_path: Path, clinvar: Path) -> Iterator[NcbiMirror]:
    with standard_mirror(tmp_path / "mirror", clinvar) as served:
        yield served
    assert not served.errors, served.errors[0]


def old_release(mirror: NcbiMirror) -> RemoteRelease:
    return resolve_release(mirror.base_url, "GRCh37", "2019-12-02", ReleaseKind.VCF, options=FAST)


def ranges(mirror: NcbiMirror, rel: str) -> list[str | None]:
    return [r.headers.get("range") for r in mirror.requests_for(rel)]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- resolving and the happy path ---


def test_latest_vcf_comes_from_the_listing_and_downloads_verified(
        mirror: NcbiMirror, clinvar: Path, tmp_path: Path) -> None:
    remote = resolve_release(mirror.base_url, "GRCh37", "latest", ReleaseKind.VCF, options=FAST)
    # clinvar.vcf.gz and the newer clinvar_20200106_papu.vcf.gz are listed too
    assert remote.release_date == date(2019, 12, 2)
    assert remote.url == mirror.url(OLD)
    assert remote.md5_url == mirror.url(OLD + ".md5")
    seen: list[tuple[int, int | None]] = []
    fetched = download_release(remote, tmp_path / "dl", options=FAST,
                               progress=lambda done, total: seen.append((done, total)))
    source = (clinvar / OLD_SOURCE).read_bytes()
    assert fetched.path == tmp_path / "dl" / "clinvar_20191202.vcf.gz"
    assert fetched.path.read_bytes() == source
    assert fetched.md5 == hashlib.md5(source).hexdigest()
    assert (fetched.size, fetched.verified, fetched.resumed, fetched.reused) == \
        (len(source), True, False, False)
    assert fetched.tbi_path is None  # the server has none: not an error
    assert sorted(p.name for p in (tmp_path / "dl").iterdir()) == ["clinvar_20191202.vcf.gz"]
    assert seen[0] == (0, len(source)) and seen[-1] == (len(source), len(source))
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_dated_release_found_in_archive_folder_with_its_index(
        mirror: NcbiMirror, clinvar: Path, tmp_path: Path) -> None:
    remote = resolve_release(mirror.base_url, "GRCh37", "2023-07-10", ReleaseKind.VCF, options=FAST)
    assert remote.url == mirror.url("vcf_GRCh37/archive_2.0/2023/clinvar_20230710.vcf.gz")
    assert [r.path for r in mirror.requests if r.method == "HEAD"] == [
        "/pub/clinvar/vcf_GRCh37/clinvar_20230710.vcf.gz",
        "/pub/clinvar/vcf_GRCh37/weekly/clinvar_20230710.vcf.gz",
        "/pub/clinvar/vcf_GRCh37/archive_2.0/2023/clinvar_20230710.vcf.gz"]
    fetched = download_release(remote, tmp_path, options=FAST)
    assert fetched.path.read_bytes() == \
        (clinvar / "GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz").read_bytes()
    assert fetched.tbi_path == tmp_path / "clinvar_20230710.vcf.gz.tbi"
    assert fetched.tbi_path.read_bytes() == \
        (clinvar / "GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz.tbi").read_bytes()


@pytest.mark.parametrize("release", ["2021-10-25", "20211025"])
def test_dated_release_found_in_weekly_folder(mirror: NcbiMirror, release: str) -> None:
    remote = resolve_release(mirror.base_url, "GRCh38", release, ReleaseKind.VCF, options=FAST)
    assert remote.url == mirror.url("vcf_GRCh38/weekly/clinvar_20211025.vcf.gz")
    assert remote.release_date == date(2021, 10, 25)


def test_server_refusing_head_is_probed_with_get(mirror: NcbiMirror) -> None:
    mirror.fault(OLD, FaultKind.STATUS, status=405, method="HEAD")
    remote = old_release(mirror)
    assert remote.url == mirror.url(OLD)
    assert [r.method for r in mirror.requests_for(OLD, method=None)] == ["HEAD", "GET"]


def test_unknown_dated_release_is_a_usage_error(mirror: NcbiMirror) -> None:
    with pytest.raises(UsageError) as caught:
        resolve_release(mirror.base_url, "GRCh38", "2023-07-11", ReleaseKind.VCF, options=FAST)
    assert caught.value.exit_code == ExitCode.USAGE
    assert str(caught.value).startswith(
        f"no ClinVar release 2023-07-11 for GRCh38 at {mirror.url('vcf_GRCh38/')}")


@pytest.mark.parametrize("send_last_modified", [True, False])
def test_latest_variant_summary_dated_from_last_modified_or_listing(
        mirror: NcbiMirror, clinvar: Path, tmp_path: Path, send_last_modified: bool) -> None:
    mirror.send_last_modified = send_last_modified
    fetched = fetch_release(tmp_path, mirror=mirror.base_url, assembly="GRCh38",
                            kind=ReleaseKind.VARIANT_SUMMARY, options=FAST)
    assert fetched.remote.release_date == date(2024, 11, 11)
    assert fetched.remote.url == mirror.url("tab_delimited/variant_summary.txt.gz")
    assert fetched.remote.tbi_url is None
    # dated locally so next week's file never resumes this week's .part
    assert fetched.path == tmp_path / "variant_summary_2024-11-11.txt.gz"
    assert fetched.path.read_bytes() == \
        (clinvar / "variant_summary/variant_summary.10_rows.txt.gz").read_bytes()
    assert bool(mirror.requests_for("tab_delimited/")) is not send_last_modified


@pytest.mark.parametrize("release", ["2021-10", "2021-10-25"])
def test_dated_variant_summary_is_the_monthly_archive(mirror: NcbiMirror, release: str) -> None:
    remote = resolve_release(mirror.base_url, "GRCh37", release, ReleaseKind.VARIANT_SUMMARY,
                             options=FAST)
    assert remote.url == mirror.url("tab_delimited/archive/variant_summary_2021-10.txt.gz")
    assert (remote.release_date, remote.file_name) == \
        (date(2021, 10, 1), "variant_summary_2021-10.txt.gz")
    with pytest.raises(UsageError, match="no ClinVar variant_summary release 2020-01 at"):
        resolve_release(mirror.base_url, "GRCh37", "2020-01", ReleaseKind.VARIANT_SUMMARY,
                        options=FAST)


def test_verified_file_already_present_is_reused(mirror: NcbiMirror, tmp_path: Path) -> None:
    remote = old_release(mirror)
    download_release(remote, tmp_path, options=FAST)
    again = download_release(remote, tmp_path, options=FAST)
    assert again.reused and not again.resumed
    assert len(mirror.requests_for(OLD)) == 1


# --- verification ---


def test_md5_mismatch_deletes_the_download(mirror: NcbiMirror, clinvar: Path,
                                           tmp_path: Path) -> None:
    source = clinvar / OLD_SOURCE
    mirror.add(OLD, source, md5="0" * 32 + "  clinvar_20191202.vcf.gz\n")
    with pytest.raises(InputError) as caught:
        download_release(old_release(mirror), tmp_path / "dl", options=FAST)
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    assert mirror.url(OLD) in message and "0" * 32 in message
    assert hashlib.md5(source.read_bytes()).hexdigest() in message
    assert list((tmp_path / "dl").iterdir()) == []


def test_missing_md5_refused_unless_allowed(mirror: NcbiMirror, clinvar: Path,
                                            tmp_path: Path) -> None:
    (mirror.root / (OLD + ".md5")).unlink()
    with pytest.raises(InputError, match="no checksum published"):
        download_release(old_release(mirror), tmp_path / "dl", options=FAST)
    loose = FetchOptions(timeout=5, attempts=1, require_md5=False)
    fetched = download_release(old_release(mirror), tmp_path / "dl", options=loose)
    assert not fetched.verified
    assert fetched.path.read_bytes() == (clinvar / OLD_SOURCE).read_bytes()


@pytest.mark.parametrize(("text", "digest"), [
    ("D41D8CD98F00B204E9800998ECF8427E  clinvar_20191202.vcf.gz\n",
     "d41d8cd98f00b204e9800998ecf8427e"),
    ("d41d8cd98f00b204e9800998ecf8427e\n", "d41d8cd98f00b204e9800998ecf8427e"),
    ("MD5 (clinvar.vcf.gz) = d41d8cd98f00b204e9800998ecf8427e", "d41d8cd98f00b204e9800998ecf8427e"),
])
def test_md5_file_forms(text: str, digest: str) -> None:
    assert parse_md5(text, "x.md5") == digest


@pytest.mark.parametrize("text", ["", "<html>404</html>", "d41d8cd98f00b204e9800998ecf842"])
def test_md5_file_garbage_is_refused(text: str) -> None:
    with pytest.raises(InputError, match="x.md5: not an md5 checksum file"):
        parse_md5(text, "x.md5")


# --- interrupted transfers and resume ---


def test_cut_transfer_resumes_with_range_on_the_next_run(
        mirror: NcbiMirror, clinvar: Path, tmp_path: Path) -> None:
    mirror.fault(OLD, FaultKind.CUT, after_bytes=2000)
    remote = old_release(mirror)
    with pytest.raises(NetworkError) as caught:
        download_release(remote, tmp_path, options=ONCE)
    assert caught.value.exit_code == ExitCode.NETWORK
    assert mirror.url(OLD) in str(caught.value)
    part = tmp_path / "clinvar_20191202.vcf.gz.part"
    assert part.stat().st_size == 2000
    assert not (tmp_path / "clinvar_20191202.vcf.gz").exists()

    fetched = download_release(remote, tmp_path, options=ONCE)
    assert ranges(mirror, OLD) == [None, "bytes=2000-"]
    assert fetched.resumed
    assert fetched.path.read_bytes() == (clinvar / OLD_SOURCE).read_bytes()
    assert not part.exists()


def test_cut_transfer_resumes_within_the_same_run(mirror: NcbiMirror, clinvar: Path,
                                                  tmp_path: Path) -> None:
    mirror.fault(OLD, FaultKind.CUT, after_bytes=1500, times=2)
    fetched = download_release(old_release(mirror), tmp_path, options=FAST)
    assert ranges(mirror, OLD) == [None, "bytes=1500-", "bytes=3000-"]
    assert fetched.resumed
    assert fetched.path.read_bytes() == (clinvar / OLD_SOURCE).read_bytes()


def test_server_ignoring_range_starts_over(mirror: NcbiMirror, clinvar: Path,
                                           tmp_path: Path) -> None:
    remote = old_release(mirror)
    mirror.fault(OLD, FaultKind.CUT, after_bytes=2000)
    with pytest.raises(NetworkError):
        download_release(remote, tmp_path, options=ONCE)
    mirror.fault(OLD, FaultKind.IGNORE_RANGE)
    fetched = download_release(remote, tmp_path, options=ONCE)
    assert ranges(mirror, OLD) == [None, "bytes=2000-"]  # asked, answered 200 with everything
    assert not fetched.resumed
    assert fetched.path.read_bytes() == (clinvar / OLD_SOURCE).read_bytes()


def test_stale_part_is_replaced_by_one_whole_download(mirror: NcbiMirror, clinvar: Path,
                                                      tmp_path: Path) -> None:
    """A .part left by another version of the file: resuming it fails the md5, so the file is
    fetched once more from the start instead of failing the run."""
    (tmp_path / "clinvar_20191202.vcf.gz.part").write_bytes(b"x" * 1000)
    fetched = download_release(old_release(mirror), tmp_path, options=FAST)
    assert ranges(mirror, OLD) == ["bytes=1000-", None]
    assert not fetched.resumed
    assert fetched.path.read_bytes() == (clinvar / OLD_SOURCE).read_bytes()


def test_complete_part_answered_416_is_checked_and_kept(mirror: NcbiMirror, clinvar: Path,
                                                        tmp_path: Path) -> None:
    source = (clinvar / OLD_SOURCE).read_bytes()
    (tmp_path / "clinvar_20191202.vcf.gz.part").write_bytes(source)
    fetched = download_release(old_release(mirror), tmp_path, options=FAST)
    assert ranges(mirror, OLD) == [f"bytes={len(source)}-"]
    assert fetched.resumed
    assert fetched.path.read_bytes() == source


def test_part_locked_by_another_download_is_refused(mirror: NcbiMirror, tmp_path: Path) -> None:
    part = tmp_path / "clinvar_20191202.vcf.gz.part"
    with open(part, "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(LockHeldError, match="another process is downloading"):
            download_release(old_release(mirror), tmp_path, options=FAST)
    assert mirror.requests_for(OLD) == []


# --- retries and failures ---


def test_connection_reset_is_retried(mirror: NcbiMirror, clinvar: Path, tmp_path: Path) -> None:
    mirror.fault(OLD, FaultKind.RESET, times=2)
    fetched = download_release(old_release(mirror), tmp_path, options=FAST)
    assert len(mirror.requests_for(OLD)) == 3
    assert fetched.path.read_bytes() == (clinvar / OLD_SOURCE).read_bytes()


def test_connection_always_reset_fails_after_the_attempts(mirror: NcbiMirror,
                                                          tmp_path: Path) -> None:
    mirror.fault(OLD, FaultKind.RESET, times=None)
    with pytest.raises(NetworkError) as caught:
        download_release(old_release(mirror), tmp_path / "dl", options=FAST)
    assert str(caught.value).startswith(mirror.url(OLD) + ": ")
    assert "gave up after 3 attempts" in str(caught.value)
    assert len(mirror.requests_for(OLD)) == 3
    assert list((tmp_path / "dl").iterdir()) == []  # an empty .part is not left behind


def test_server_errors_are_retried_then_reported(mirror: NcbiMirror, tmp_path: Path) -> None:
    mirror.fault(OLD, FaultKind.STATUS, status=503, times=2)
    download_release(old_release(mirror), tmp_path / "a", options=FAST)
    mirror.fault(OLD, FaultKind.STATUS, status=500, times=None)
    with pytest.raises(NetworkError, match="HTTP 500 .*gave up after 3 attempts"):
        download_release(old_release(mirror), tmp_path / "b", options=FAST)
    assert len(mirror.requests_for(OLD)) == 3 + 3


def test_forbidden_is_not_retried(mirror: NcbiMirror, tmp_path: Path) -> None:
    mirror.fault(OLD, FaultKind.STATUS, status=403, times=None)
    with pytest.raises(NetworkError, match="HTTP 403"):
        download_release(old_release(mirror), tmp_path, options=FAST)
    assert len(mirror.requests_for(OLD)) == 1


def test_slow_server_hits_the_timeout(mirror: NcbiMirror, tmp_path: Path) -> None:
    remote = old_release(mirror)
    mirror.fault(OLD, FaultKind.DELAY, seconds=5, times=None)
    started = time.monotonic()
    with pytest.raises(NetworkError, match="read timed out .*gave up after 2 attempts"):
        download_release(remote, tmp_path,
                         options=FetchOptions(timeout=0.3, attempts=2, backoff=0.01))
    assert time.monotonic() - started < 3


def test_redirect_is_followed(mirror: NcbiMirror, clinvar: Path, tmp_path: Path) -> None:
    mirror.add("moved/clinvar_20191202.vcf.gz", clinvar / OLD_SOURCE, md5=False)
    mirror.fault(OLD, FaultKind.REDIRECT, location="moved/clinvar_20191202.vcf.gz")
    fetched = download_release(old_release(mirror), tmp_path, options=FAST)
    assert len(mirror.requests_for("moved/clinvar_20191202.vcf.gz")) == 1
    assert fetched.path.read_bytes() == (clinvar / OLD_SOURCE).read_bytes()


def test_unreachable_mirror_is_a_network_error() -> None:
    url = f"http://127.0.0.1:{closed_port()}/pub/clinvar/"
    with pytest.raises(NetworkError, match="cannot connect"):
        resolve_release(url, "GRCh38", "latest", ReleaseKind.VCF, options=ONCE)


# --- proxies and certificates ---


def test_no_proxy_bypasses_a_bogus_proxy(mirror: NcbiMirror,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    bogus = f"http://127.0.0.1:{closed_port()}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.setenv(name, bogus)
    # the proxy really is used while NO_PROXY does not name the host...
    with pytest.raises(NetworkError):
        resolve_release(mirror.base_url, "GRCh37", "latest", ReleaseKind.VCF, options=ONCE)
    assert mirror.requests == []
    # ...and bypassed once it does
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    remote = resolve_release(mirror.base_url, "GRCh37", "latest", ReleaseKind.VCF, options=ONCE)
    assert remote.release_date == date(2019, 12, 2)


@pytest.mark.parametrize("how", ["environment", "option"])
def test_proxy_carries_every_request(mirror: NcbiMirror, clinvar: Path, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    # the mirror also answers as an HTTP proxy; the .invalid host only resolves through it
    if how == "environment":
        monkeypatch.setenv("HTTP_PROXY", mirror.origin)
        options = FAST
    else:
        options = FetchOptions(timeout=5, attempts=3, backoff=0.01, proxy=mirror.origin,
                               trust_env=False)
    fetched = fetch_release(tmp_path, mirror="http://clinvar.invalid/pub/clinvar/",
                            assembly="GRCh37", options=options)
    assert fetched.path.read_bytes() == (clinvar / OLD_SOURCE).read_bytes()
    assert mirror.requests
    assert all(r.proxied and r.host == "clinvar.invalid" for r in mirror.requests)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed: cannot make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_mirror(tmp_path: Path, clinvar: Path,
               certificate: tuple[Path, Path]) -> Iterator[NcbiMirror]:
    with standard_mirror(tmp_path / "mirror", clinvar, tls=certificate) as served:
        yield served
    assert not served.errors, served.errors[0]


def test_ca_bundle_reaches_the_client(tls_mirror: NcbiMirror, certificate: tuple[Path, Path],
                                      tmp_path: Path) -> None:
    assert tls_mirror.base_url.startswith("https://")
    trusting = FetchOptions(timeout=5, attempts=1, ca_bundle=certificate[0])
    fetched = fetch_release(tmp_path, mirror=tls_mirror.base_url, assembly="GRCh37",
                            options=trusting)
    assert fetched.remote.release_date == date(2019, 12, 2)
    # without it the self-signed certificate is refused at once, not retried
    started = time.monotonic()
    with pytest.raises(NetworkError, match="TLS certificate not trusted"):
        resolve_release(tls_mirror.base_url, "GRCh37", "latest", ReleaseKind.VCF,
                        options=FetchOptions(timeout=5, attempts=5, backoff=1, trust_env=False))
    assert time.monotonic() - started < 1


def test_ssl_cert_file_is_honoured_without_a_ca_bundle(
        tls_mirror: NcbiMirror, certificate: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    remote = resolve_release(tls_mirror.base_url, "GRCh37", "latest", ReleaseKind.VCF,
                             options=ONCE)
    assert remote.release_date == date(2019, 12, 2)


def test_unreadable_ca_bundle_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    with pytest.raises(InputError, match=f"{missing}: cannot use as CA bundle"):
        resolve_release("https://127.0.0.1:9/pub/clinvar/", "GRCh38", "latest",
                        options=FetchOptions(ca_bundle=missing))


# --- arguments and listings (no server) ---


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"mirror": "ftp://ftp.ncbi.nlm.nih.gov/pub/clinvar/"}, "invalid mirror URL"),
    ({"assembly": "hg19"}, "invalid assembly 'hg19'"),
    ({"release": "2023-02-30"}, "invalid release '2023-02-30'"),
    ({"release": "2023-07"}, "invalid release '2023-07': use 'latest' or YYYY-MM-DD"),
    ({"release": "July", "kind": ReleaseKind.VARIANT_SUMMARY}, "YYYY-MM or YYYY-MM-DD"),
])
def test_bad_arguments_are_usage_errors(kwargs: dict[str, str], message: str) -> None:
    arguments: dict[str, str] = {"mirror": "http://127.0.0.1:9/", "assembly": "GRCh38",
                                 "release": "latest", **kwargs}
    with pytest.raises(UsageError, match=message):
        resolve_release(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{"attempts": 0}, {"timeout": 0}, {"backoff": -1}])
def test_bad_options_are_usage_errors(options: dict[str, float]) -> None:
    with pytest.raises(UsageError):
        FetchOptions(**options)  # type: ignore[arg-type]


def test_listing_parsing_nginx_absolute_links_and_decoys() -> None:
    page = """<html><head><title>Index of /pub/clinvar/vcf_GRCh38/</title></head><body><pre>
<a href="../">../</a>
<a href="?C=M;O=A">Last modified</a>
<a href="weekly/">weekly/</a>                                            05-Nov-2024 10:02       -
<a href="clinvar.vcf.gz">clinvar.vcf.gz</a>                               11-Nov-2024 10:02     172M
<a href="/pub/clinvar/vcf_GRCh38/clinvar_20241111.vcf.gz">clinvar_20241111.vcf.gz</a>
<a href="clinvar_20241111.vcf.gz.md5">clinvar_20241111.vcf.gz.md5</a>
<a href="clinvar_20241202.vcf.gz">clinvar_20241202.vcf.gz</a>
<a href="clinvar_20241224_papu.vcf.gz">clinvar_20241224_papu.vcf.gz</a>
<A HREF='clinvar_20239999.vcf.gz'>impossible date</A>
</pre></body></html>"""
    links = listing_links(page, "https://mirror.example/pub/clinvar/vcf_GRCh38/")
    assert "weekly" not in links and "" not in links
    assert links["clinvar_20241111.vcf.gz"] == \
        "https://mirror.example/pub/clinvar/vcf_GRCh38/clinvar_20241111.vcf.gz"
    # 2024-12-02 is newer but its .md5 is not published yet: still being uploaded
    assert latest_vcf(links) == (date(2024, 11, 11), links["clinvar_20241111.vcf.gz"])
    del links["clinvar_20241111.vcf.gz.md5"]
    assert latest_vcf(links) == (date(2024, 12, 2), links["clinvar_20241202.vcf.gz"])
    assert latest_vcf({"clinvar.vcf.gz": "x"}) is None
