"""Notifications after `reanalyze`: target parsing, the summary (never a genotype or a variant),
HTTP POSTs to a loopback server (retries, 4xx, timeouts, refused connections) and mail through a
loopback aiosmtpd server (recipients, AUTH with the password redacted, STARTTLS, implicit TLS)."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from varreinterp.errors import ExitCode, UsageError
from varreinterp.notify import (
    PRIORITIES,
    TEXT_LIST_LIMIT,
    NotifyOutcome,
    NotifyTarget,
    RunSummary,
    Scheme,
    SkippedPatient,
    check_retry_settings,
    parse_target,
    parse_targets,
    send_notifications,
    summary_from_reanalysis,
)

FAST = {"timeout": 2.0, "attempts": 3, "backoff": 0.01}
# Distinctive variant and genotype values put in the reanalysis rows: none may leave the machine.
SECRET_FINDINGS = ["het", "hom_alt", "41276045", "NM_007294.4:c.5266dupC", "BRCA1", "TTTGGC",
                   "Hereditary breast ovarian cancer", "zygosity", "genotype"]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy in the environment would send loopback requests elsewhere."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy",
                 "all_proxy", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)


def make_summary(**changes: Any) -> RunSummary:
    values: dict[str, Any] = {
        "run_id": "a1b2c3d4e5f6",
        "finished_at": datetime(2025, 3, 4, 2, 15, 0, tzinfo=UTC),
        "tool_version": "0.1.0",
        "to_snapshot": "clinvar-GRCh38-2025-03-02",
        "min_priority": "medium",
        "counts": {"high": 3, "medium": 5, "low": None},
        "high_priority_patients": ("P001", "P007"),
        "patients_with_changes": 4,
        "patients_reanalyzed": 120,
        "patients_up_to_date": 7,
        "skipped": (SkippedPatient("P009", "VCF /data/P009.vcf.gz is missing"),),
        "report_path": "/data/varreinterp/reports/20250304T021500Z-clinvar-a1b2c3",
    }
    values.update(changes)
    return RunSummary(**values)


def reanalysis_rows() -> pd.DataFrame:
    """Rows shaped like cohort.reanalyze's, full of genotype and variant details."""
    base = {"sample": "S", "chrom": "17", "pos": 41276045, "ref": "TTTGGC", "alt": "T",
            "gene": "BRCA1", "change": "upgrade", "before": "Uncertain_significance",
            "after": "Pathogenic", "variation_id": "17661",
            "conditions": "Hereditary breast ovarian cancer", "hgvs": "NM_007294.4:c.5266dupC"}
    rows = [("P001", "high", "het"), ("P001", "medium", "het"), ("P007", "high", "hom_alt"),
            ("P003", "medium", "het"), ("P001", "high", "het")]
    return pd.DataFrame([{**base, "patient": p, "priority": pr, "zygosity": z}
                         for p, pr, z in rows])


def reanalysis_result(rows: pd.DataFrame, min_priority: str = "medium",
                      run_id: str = "r42") -> SimpleNamespace:
    """Duck-typed like reanalyze.ReanalysisResult (building a real one needs a whole store)."""
    return SimpleNamespace(
        run_id=run_id,
        to_snapshot=SimpleNamespace(name="clinvar-GRCh38-2025-03-02"), rows=rows,
        processed=["P001", "P003", "P007", "P008"], up_to_date=["P010"],
        problems=[SimpleNamespace(patient_id="P009", problem="VCF /d/P009.vcf is missing")],
        out_dir=Path("/data/reports/run1"), min_priority=min_priority)


# ------------------------------------------------------------------------------ loopback HTTP
SLOW = -1  # a scripted "status": answer only after the test ends (beyond any client timeout)


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _HookServer(ThreadingHTTPServer):
    daemon_threads = False  # server_close() joins the handler threads: nothing outlives a test

    def __init__(self, script: list[int]):
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.script = script
        self.received: list[Received] = []
        self.release = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out and left: expected in the slow-server test

    def next_status(self) -> int:
        # The last scripted status repeats: [500] is "always 500".
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class _HookHandler(BaseHTTPRequestHandler):
    server: _HookServer

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.received.append(Received(self.path, dict(self.headers.items()), body))
        status = self.server.next_status()
        if status == SLOW:
            self.server.release.wait(10)
            status = 200
        reply = b'{"error": "scripted failure"}' if status >= 400 else b"{}"
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output clean


@dataclass
class Hook:
    server: _HookServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    @property
    def received(self) -> list[Received]:
        return self.server.received


@pytest.fixture
def hook() -> Iterator[Callable[..., Hook]]:
    """hook(500, 200): a loopback server answering POSTs with these statuses in turn."""
    started: list[tuple[_HookServer, threading.Thread]] = []

    def start(*script: int) -> Hook:
        server = _HookServer(list(script) or [200])
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        started.append((server, thread))
        return Hook(server)

    yield start
    for server, thread in started:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but not listening: connections are refused, and nobody else can take it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def send_one(url: str, summary: RunSummary | None = None, **settings: Any) -> NotifyOutcome:
    outcomes = send_notifications([parse_target(url)], summary or make_summary(),
                                  **{**FAST, **settings})
    assert len(outcomes) == 1
    return outcomes[0]


def test_post_carries_the_summary_and_no_finding(hook: Callable[..., Hook]) -> None:
    server = hook(200)
    summary = summary_from_reanalysis(reanalysis_result(reanalysis_rows()),
                                      finished_at=datetime(2025, 3, 4, 2, 15, tzinfo=UTC))
    outcome = send_one(server.url, summary)
    assert (outcome.ok, outcome.attempts, outcome.error) == (True, 1, None)
    assert len(server.received) == 1
    got = server.received[0]
    assert got.path == "/hook"
    assert got.headers["Content-Type"].startswith("application/json")
    assert got.headers["Idempotency-Key"] == "r42"
    body = got.json()
    assert body["run_id"] == "r42"
    assert body["finished_at"] == "2025-03-04T02:15:00Z"
    assert body["changes"] == {"total": 5, "high": 3, "medium": 2, "low": None}
    assert body["patients"]["high_priority"] == ["P001", "P007"]
    assert body["patients"]["with_changes"] == 3
    assert body["patients"]["skipped"] == [{"patient_id": "P009",
                                            "problem": "VCF /d/P009.vcf is missing"}]
    assert body["report_path"] == "/data/reports/run1"
    for finding in SECRET_FINDINGS:
        assert finding not in got.body.decode(), finding


def test_5xx_then_2xx_is_retried(hook: Callable[..., Hook]) -> None:
    server = hook(500, 200)
    outcome = send_one(server.url)
    assert (outcome.ok, outcome.attempts) == (True, 2)
    assert len(server.received) == 2
    assert server.received[0].body == server.received[1].body


def test_always_5xx_is_a_failed_outcome_not_an_exception(hook: Callable[..., Hook]) -> None:
    server = hook(500)
    outcome = send_one(server.url, attempts=3)
    assert not outcome.ok
    assert outcome.attempts == 3 and len(server.received) == 3
    assert outcome.error is not None and "HTTP 500" in outcome.error
    assert "scripted failure" in outcome.error  # the server's reason, for whoever debugs it


@pytest.mark.parametrize(("status", "retried", "says"), [
    (400, False, "HTTP 400"), (404, False, "HTTP 404"), (302, False, "not followed"),
    (408, True, "HTTP 408"), (429, True, "HTTP 429"), (503, True, "HTTP 503")])
def test_which_statuses_are_retried(hook: Callable[..., Hook], status: int, retried: bool,
                                    says: str) -> None:
    server = hook(status, 200)
    outcome = send_one(server.url)
    assert outcome.ok is retried
    assert outcome.attempts == len(server.received) == (2 if retried else 1)
    if not retried:
        assert outcome.error is not None and says in outcome.error


def test_slow_server_times_out_quickly(hook: Callable[..., Hook]) -> None:
    server = hook(SLOW)
    start = time.monotonic()
    outcome = send_one(server.url, timeout=0.3, attempts=2)
    elapsed = time.monotonic() - start
    assert not outcome.ok and outcome.attempts == 2
    assert outcome.error is not None and "timed out after 0.3 s" in outcome.error
    assert elapsed < 3, elapsed


def test_connection_refused_is_retried_then_reported(refused_port: int) -> None:
    start = time.monotonic()
    outcome = send_one(f"http://127.0.0.1:{refused_port}/hook", attempts=2)
    assert not outcome.ok and outcome.attempts == 2
    assert outcome.error is not None and "ConnectError" in outcome.error
    assert time.monotonic() - start < 3


def test_one_outcome_per_target_in_order(hook: Callable[..., Hook], refused_port: int) -> None:
    good = hook(200)
    targets = parse_targets([f"http://127.0.0.1:{refused_port}/x", good.url])
    outcomes = send_notifications(targets, make_summary(), timeout=1, attempts=1, backoff=0)
    assert [o.ok for o in outcomes] == [False, True]
    assert [o.target for o in outcomes] == [t.redacted for t in targets]
    assert len(good.received) == 1


def test_credentials_and_tokens_are_redacted(hook: Callable[..., Hook]) -> None:
    server = hook(500)
    port = server.server.server_address[1]
    url = f"http://lab:pa55word@127.0.0.1:{port}/hook?channel=x&token=tok123"
    outcome = send_one(url, attempts=2)
    assert server.received[0].headers["Authorization"].startswith("Basic ")  # userinfo is used
    assert outcome.target == f"http://lab:***@127.0.0.1:{port}/hook?channel=x&token=***"
    for text in (outcome.target, outcome.error or "", json.dumps(outcome.as_dict()),
                 repr(outcome), repr(parse_target(url)), str(parse_target(url))):
        assert "pa55word" not in text and "tok123" not in text


def test_setup_failure_is_an_outcome(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """httpx reads SSL_CERT_FILE when its client is built: a bad one must not raise."""
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "missing.pem"))
    outcome = send_one("https://127.0.0.1:9/hook")
    assert not outcome.ok and outcome.attempts == 0
    assert outcome.error is not None and outcome.error.startswith("could not start: ")
    assert "missing.pem" in outcome.error


def test_invalid_retry_settings_are_usage_errors() -> None:
    for bad in ({"timeout": 0, "attempts": 1, "backoff": 0},
                {"timeout": 1, "attempts": 0, "backoff": 0},
                {"timeout": 1, "attempts": 1, "backoff": -1}):
        with pytest.raises(UsageError):
            check_retry_settings(**bad)
        with pytest.raises(UsageError):
            send_notifications([], make_summary(), **bad)
    check_retry_settings(timeout=0.1, attempts=1, backoff=0)


# ------------------------------------------------------------------------------ loopback SMTP
@dataclass
class Inbox:
    messages: list[tuple[str, list[str], email.message.EmailMessage]] = field(
        default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 OK"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == ("lab", "s3cr3t!@x"), handled=False)


class _LoopbackController(Controller):
    """Binds port 0 (no race for a free port); the real port is read back before aiosmtpd's
    own readiness probe connects."""

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


@dataclass
class MailServer:
    inbox: Inbox
    port: int


@pytest.fixture
def mailserver() -> Iterator[Callable[..., MailServer]]:
    controllers: list[Controller] = []

    def start(**smtp_options: Any) -> MailServer:
        inbox = Inbox()
        controller = _LoopbackController(
            inbox, hostname="127.0.0.1", port=0, server_hostname="mail.test",
            authenticator=inbox.authenticate, auth_require_tls=False, **smtp_options)
        controller.start()
        controllers.append(controller)
        return MailServer(inbox, controller.port)

    yield start
    for controller in controllers:
        controller.stop()  # stops the loop and joins its thread: no unclosed loop warnings


def test_mail_reaches_every_recipient(mailserver: Callable[..., MailServer]) -> None:
    server = mailserver()
    url = (f"smtp://127.0.0.1:{server.port}?to=lab%2Balerts@example.org&to=head@example.org"
           "&from=varreinterp@lab.example.org")
    outcome = send_one(url)
    assert (outcome.ok, outcome.attempts, outcome.error) == (True, 1, None)
    assert len(server.inbox.messages) == 1
    mail_from, rcpt_tos, message = server.inbox.messages[0]
    assert mail_from == "varreinterp@lab.example.org"
    assert rcpt_tos == ["lab+alerts@example.org", "head@example.org"]
    assert message["To"] == "lab+alerts@example.org, head@example.org"
    assert message["Subject"] == ("varreinterp run a1b2c3d4e5f6: 2 patient(s) with "
                                  "high-priority changes, 1 not reanalyzed")
    body = message.get_content().replace("\r\n", "\n")
    assert "  P001\n  P007\n" in body
    assert "P009: VCF /data/P009.vcf.gz is missing" in body
    assert "low:" in body and "not counted (below medium)" in body
    assert "/data/varreinterp/reports/20250304T021500Z-clinvar-a1b2c3" in body
    assert server.inbox.logins == []


def test_mail_body_carries_no_finding(mailserver: Callable[..., MailServer]) -> None:
    server = mailserver()
    summary = summary_from_reanalysis(reanalysis_result(reanalysis_rows()))
    outcome = send_one(f"smtp://127.0.0.1:{server.port}?to=lab@example.org", summary)
    assert outcome.ok
    raw = server.inbox.messages[0][2].as_string()
    assert "P001" in raw and "P007" in raw
    for finding in SECRET_FINDINGS:
        assert finding not in raw, finding


def test_smtp_auth_and_the_password_stays_secret(mailserver: Callable[..., MailServer]) -> None:
    server = mailserver()
    base = f"127.0.0.1:{server.port}?to=lab@example.org"
    good = send_one(f"smtp://lab:s3cr3t%21%40x@{base}")
    assert good.ok and server.inbox.logins == [("lab", "s3cr3t!@x")]
    assert len(server.inbox.messages) == 1
    bad = send_one(f"smtp://lab:wr0ng%40pw@{base}", attempts=3)
    assert not bad.ok
    assert bad.attempts == 1  # a refused password is not retried
    assert bad.error is not None and "authentication failed: 535" in bad.error
    assert bad.target == f"smtp://lab:***@{base}"
    for outcome in (good, bad):
        text = repr(outcome) + json.dumps(outcome.as_dict())
        for secret in ("s3cr3t", "wr0ng"):
            assert secret not in text


def test_smtp_refused_connection_is_retried(refused_port: int) -> None:
    outcome = send_one(f"smtp://127.0.0.1:{refused_port}?to=lab@example.org", attempts=2)
    assert not outcome.ok and outcome.attempts == 2
    assert outcome.error is not None and "ConnectionRefusedError" in outcome.error


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it via SSL_CERT_FILE)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


def _server_context(certificate: tuple[Path, Path]) -> Any:
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_tls_mail(mailserver: Callable[..., MailServer], certificate: tuple[Path, Path],
                  monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    context = _server_context(certificate)
    if mode == "starttls":
        server = mailserver(tls_context=context, require_starttls=True)
        url = f"smtp://lab:s3cr3t%21%40x@127.0.0.1:{server.port}?to=lab@example.org&starttls=1"
    else:
        server = mailserver(ssl_context=context)
        url = f"smtps://lab:s3cr3t%21%40x@127.0.0.1:{server.port}?to=lab@example.org"
    untrusted = send_one(url, attempts=3)
    assert not untrusted.ok and untrusted.attempts == 1  # a bad certificate is not retried
    assert untrusted.error is not None and "certificate not trusted" in untrusted.error
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    outcome = send_one(url)
    assert (outcome.ok, outcome.error) == (True, None)
    assert server.inbox.logins == [("lab", "s3cr3t!@x")]
    assert len(server.inbox.messages) == 1


# ------------------------------------------------------------------------------ parse_target
@pytest.mark.parametrize(("url", "reason"), [
    ("", "empty"),
    ("hooks.example.org/x", "not a URL"),
    ("ftp://files.example.org/x", "unsupported scheme 'ftp'"),
    ("mailto://lab@example.org", "unsupported scheme 'mailto'"),
    ("https:///hook", "no host"),
    ("https://hooks.example.org:99999/x", "invalid port"),
    ("https://hooks.example.org/a b", "whitespace"),
    ("http://lab:pw@hooks.example.org/x", "clear text"),
    ("smtp://mail.example.org", "no recipient"),
    ("smtp://mail.example.org?to=", "no recipient"),
    ("smtp://mail.example.org?to=lab.example.org", "invalid recipient address"),
    ("smtp://mail.example.org?to=a@example.org&too=b@example.org", "unknown parameter 'too'"),
    ("smtp://mail.example.org?to", "has no value"),
    ("smtp://mail.example.org/inbox?to=a@example.org", "unexpected path"),
    ("smtp://mail.example.org?to=a@example.org&from=x&from=y", "from= must be given once"),
    ("smtp://mail.example.org?to=a@example.org&starttls=maybe", "not a yes/no value"),
    ("smtps://mail.example.org?to=a@example.org&starttls=1", "smtps is TLS already"),
    ("smtp://lab:pw@mail.example.org?to=a@example.org", "clear text"),
    ("smtp://lab@mail.example.org?to=a@example.org&starttls=1", "user:password@"),
    ("smtp://lab:p#w@mail.example.org?to=a@example.org", "percent-encode"),
    ("https://lab:p/w@hooks.example.org/x", "percent-encode"),
    ("smtp://lab:p?w=@mail.example.org?to=a@example.org", "percent-encode"),
    ("https://lab:p?w=1@hooks.example.org:8080/x?user=a@example.org", "percent-encode"),
])
def test_bad_targets_are_usage_errors(url: str, reason: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_target(url)
    assert info.value.exit_code == ExitCode.USAGE
    message = info.value.one_line()
    assert reason in message
    for password in (":pw@", "p#w", "p/w", "p?w"):  # passwords are never echoed
        assert password not in message


def test_good_targets() -> None:
    hook = parse_target("HTTPS://hooks.example.org/services/x?token=abc")
    assert (hook.scheme, hook.host, hook.port) == (Scheme.HTTPS, "hooks.example.org", 443)
    assert hook.redacted == "https://hooks.example.org/services/x?token=***"
    mail = parse_target("smtp://relay.example.org?to=a@example.org,b+x@example.org&starttls=yes")
    assert (mail.port, mail.recipients, mail.starttls, mail.sender) == (
        25, ("a@example.org", "b+x@example.org"), True, None)
    tls = parse_target("smtps://u:p%40ss@relay.example.org:2465?to=a@example.org&from=n@x.org")
    assert (tls.port, tls.username, tls.password, tls.sender) == (2465, "u", "p@ss", "n@x.org")
    assert "p%40ss" not in repr(tls) and "p@ss" not in repr(tls)
    local = parse_target("smtp://u:pw@localhost:2525?to=a@example.org")  # loopback: allowed
    assert isinstance(local, NotifyTarget) and local.password == "pw"


def test_parse_targets_reports_every_problem_at_once() -> None:
    with pytest.raises(UsageError) as info:
        parse_targets(["https://ok.example.org/x", "ftp://a/b", "smtp://mail.example.org"])
    message = info.value.one_line()
    assert "ftp" in message and "no recipient" in message
    assert len(parse_targets(["https://ok.example.org/x", "http://127.0.0.1:8/y"])) == 2


# ------------------------------------------------------------------------------ RunSummary
def test_priorities_mirror_changes() -> None:
    from varreinterp.changes import Priority

    assert tuple(p.value for p in sorted(Priority, key=lambda p: -p.rank)) == PRIORITIES


def test_summary_from_reanalysis_counts_what_was_computed() -> None:
    result = reanalysis_result(reanalysis_rows())
    summary = summary_from_reanalysis(result)
    assert summary.run_id == "r42"
    assert dict(summary.counts) == {"high": 3, "medium": 2, "low": None}
    assert summary.high_priority_patients == ("P001", "P007")
    assert (summary.patients_with_changes, summary.patients_reanalyzed,
            summary.patients_up_to_date) == (3, 4, 1)
    assert summary.skipped == (SkippedPatient("P009", "VCF /d/P009.vcf is missing"),)
    assert summary.finished_at.tzinfo is not None
    empty = summary_from_reanalysis(reanalysis_result(reanalysis_rows().iloc[:0], "low"))
    assert dict(empty.counts) == {"high": 0, "medium": 0, "low": 0}
    assert empty.high_priority_patients == () and empty.patients_with_changes == 0


def test_summary_refuses_a_row_below_min_priority() -> None:
    rows = reanalysis_rows()
    rows.loc[0, "priority"] = "low"
    with pytest.raises(ValueError, match="not counted"):
        summary_from_reanalysis(reanalysis_result(rows, "medium"))


def test_a_dry_run_has_nothing_to_notify() -> None:
    with pytest.raises(ValueError, match="dry run"):
        summary_from_reanalysis(reanalysis_result(reanalysis_rows(), run_id=""))


@pytest.mark.parametrize("changes", [
    {"counts": {"high": 1, "medium": 2}},  # a priority missing
    {"counts": {"high": 1, "medium": 2, "low": 0}},  # low was not computed at medium: not 0
    {"counts": {"high": 1, "medium": None, "low": None}},  # medium was computed
    {"counts": {"high": -1, "medium": 0, "low": None}},
    {"min_priority": "urgent"},
    {"finished_at": datetime(2025, 3, 4, 2, 15)},  # naive: which time zone?
])
def test_summary_rejects_inconsistent_values(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_summary(**changes)


def test_summary_json_and_text() -> None:
    summary = make_summary(finished_at=datetime(2025, 3, 4, 3, 15, tzinfo=timezone(
        timedelta(hours=1))))
    body = json.loads(summary.to_json())
    assert body["finished_at"] == "2025-03-04T02:15:00Z"
    assert body["schema_version"] == 1 and body["tool_version"] == "0.1.0"
    assert body["changes"] == {"total": 8, "high": 3, "medium": 5, "low": None}
    text = summary.to_text()
    assert "run a1b2c3d4e5f6" in text and "2025-03-04T02:15:00Z" in text
    assert "8 at or above medium priority" in text
    assert "120 reanalyzed, 7 already up to date, 4 with changes" in text


def test_text_lists_are_capped_and_ids_cannot_forge_lines() -> None:
    many = tuple(f"P{i:04d}" for i in range(TEXT_LIST_LIMIT + 5))
    summary = make_summary(high_priority_patients=("P\nSubject: forged", *many),
                           skipped=())
    text = summary.to_text()
    assert "\nSubject: forged" not in text and "P?Subject: forged" in text
    assert f"P{TEXT_LIST_LIMIT - 2:04d}" in text and f"P{TEXT_LIST_LIMIT:04d}" not in text
    assert "... and 6 more (see the report)" in text
    assert "could not be reanalyzed (0):\n  (none)" in text
    assert len(json.loads(summary.to_json())["patients"]["high_priority"]) == len(many) + 1
    assert "\n" not in summary.subject()
