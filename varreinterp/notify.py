"""Notifications after a `reanalyze` run: a JSON POST to an http(s) hook, or a plain-text mail.

Targets are parsed and checked before the night's work starts (`parse_target`), so a typo in a
cron line fails with exit 2 instead of after hours of work. Sending never raises for a failed
delivery: `send_notifications` returns one `NotifyOutcome` per target and the caller maps a
failure to `ExitCode.NOTIFY_FAILED`.

What leaves the machine is a `RunSummary`: counts, patient ids and paths. Never genotypes or
variant details: a webhook or a mailbox is not where clinical findings belong."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import SplitResult, quote, unquote, urlsplit

from varreinterp import __version__
from varreinterp.errors import UsageError

if TYPE_CHECKING:
    import smtplib
    from email.message import EmailMessage

    import httpx

log = logging.getLogger("varreinterp")

SUMMARY_SCHEMA_VERSION = 1
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_S = 2.0

# Most urgent first. A copy of `varreinterp.changes.Priority`'s values, not an import: changes
# pulls in the database and vocabulary modules, which are not mypy --strict clean and cost
# --help time. Guarded by tests/test_notify.py::test_priorities_mirror_changes.
PRIORITIES: tuple[str, ...] = ("high", "medium", "low")
HIGH = PRIORITIES[0]

# Lists in the mail body stop here; the JSON carries them whole and the report has everything.
TEXT_LIST_LIMIT = 100

# Query parameters whose values are credentials in common webhook URLs: redacted like passwords.
_SECRET_PARAMS = frozenset({"token", "access_token", "api_key", "apikey", "key", "secret",
                            "password", "pass", "sig", "signature", "auth"})
_ADDRESS = re.compile(r"[^@\s<>,;\"']+@[^@\s<>,;\"']+")
_ADDRESS_PARAM = re.compile(r"[?&](?:to|from)=", re.IGNORECASE)
_TRUE, _FALSE = frozenset({"1", "true", "yes", "on"}), frozenset({"0", "false", "no", "off"})


class Scheme(StrEnum):
    HTTPS = "https"
    HTTP = "http"
    SMTP = "smtp"
    SMTPS = "smtps"

    @property
    def is_mail(self) -> bool:
        return self in (Scheme.SMTP, Scheme.SMTPS)

    @property
    def default_port(self) -> int:
        return {Scheme.HTTPS: 443, Scheme.HTTP: 80, Scheme.SMTP: 25, Scheme.SMTPS: 465}[self]


class SmtpParam(StrEnum):
    TO = "to"
    FROM = "from"
    STARTTLS = "starttls"


# ------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class NotifyTarget:
    """One parsed `--notify` URL. `redacted` is the form to show or record; `url` and
    `password` hold secrets and stay out of repr()."""

    scheme: Scheme
    host: str
    port: int
    redacted: str
    url: str = field(repr=False)
    recipients: tuple[str, ...] = ()
    sender: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    starttls: bool = False
    secrets: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __str__(self) -> str:
        return self.redacted

    def scrub(self, text: str) -> str:
        """`text` with every secret of this target replaced by ***."""
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def parse_target(url: str) -> NotifyTarget:
    """Parse and check one notification URL: `https://...`, `http://...`,
    `smtp[s]://[user:password@]host[:port]?to=a@x.org[&to=...][&from=...][&starttls=1]`.

    Raises UsageError naming the (redacted) URL and the reason."""
    shown = _shown(url)

    def bad(reason: str) -> UsageError:
        return UsageError(f"notify target {shown!r}: {reason}")

    if not url.strip():
        raise UsageError("notify target is empty")
    if any(c.isspace() or not c.isprintable() for c in url):
        raise bad("contains whitespace or control characters (percent-encode them)")
    if "://" not in url:
        raise bad("not a URL (use https://..., http://..., smtp://... or smtps://...)")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise bad(str(exc)) from None
    scheme_name = parts.scheme.lower()
    if scheme_name not in set(Scheme):
        raise bad(f"unsupported scheme {scheme_name!r} (use https://, http://, smtp:// or "
                  "smtps://)")
    scheme = Scheme(scheme_name)
    try:
        port = parts.port
    except ValueError:
        raise bad("invalid port (percent-encode / ? # @ in a user or password)") from None
    host = parts.hostname
    if not host:
        raise bad("no host")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if username is not None and (not username or password is None):
        raise bad("credentials must be user:password@ (percent-encode @ : / # in them)")
    secrets = _secret_values(parts, password)
    common: dict[str, Any] = {
        "scheme": scheme, "host": host, "port": port or scheme.default_port, "url": url,
        "redacted": _redact(parts), "username": username, "password": password,
        "secrets": secrets}
    if scheme.is_mail:
        return _mail_target(parts, common, bad)
    if password is not None and scheme is Scheme.HTTP and not _is_loopback(host):
        raise bad("a password over plain http:// would cross the network in clear text "
                  "(use https://)")
    return NotifyTarget(**common)


def redact_url(url: str) -> str:
    """`url` safe to print (`config show`): a password and the values of token-like query
    parameters as ***, as notifications show their targets. When the password holds an
    unencoded '#', '?' or '/' (the parser then splits the URL elsewhere), everything before
    the last '@' is hidden; a URL that does not parse at all gets its secret parameters
    hidden by pattern."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (a password split at '#' or '?' leaves "user:pa" as host:port)
        if parts.password is not None or _shown(url) == url:
            return _redact(parts)
        return _redact(urlsplit(_shown(url)))
    except ValueError:
        pass
    names = "|".join(re.escape(name) for name in sorted(_SECRET_PARAMS))
    return re.sub(rf"([?&](?i:{names})=)[^&#\s]*", r"\1***", _shown(url))


def _shown(url: str) -> str:
    """The URL for an error message, before it is known to parse: everything up to the last
    '@' before the addresses (to=, from=) is hidden, even when an unencoded '#', '?', '/' or '='
    in a password would make the URL parser split it elsewhere. May hide too much, never a
    password."""
    scheme, sep, rest = url.partition("://")
    addresses = _ADDRESS_PARAM.search(rest)
    at = rest.rfind("@", 0, addresses.start() if addresses else len(rest))
    if not sep or at < 0 or ":" not in rest[:at]:
        return url
    return f"{scheme}://***@{rest[at + 1:]}"


def parse_targets(urls: Sequence[str]) -> list[NotifyTarget]:
    """Every URL parsed; all the problems reported together in one UsageError."""
    targets, problems = [], []
    for url in urls:
        try:
            targets.append(parse_target(url))
        except UsageError as exc:
            problems.append(exc.one_line())
    if problems:
        raise UsageError("; ".join(problems))
    return targets


def _mail_target(parts: SplitResult, common: dict[str, Any],
                 bad: Callable[[str], UsageError]) -> NotifyTarget:
    if parts.path not in ("", "/"):
        raise bad(f"unexpected path {parts.path!r} (recipients go in ?to=...)")
    if parts.fragment:
        raise bad("unexpected '#...' (percent-encode '#' in a password as %23)")
    values: dict[SmtpParam, list[str]] = {p: [] for p in SmtpParam}
    for key, value in _query_pairs(parts.query, bad):
        if key not in set(SmtpParam):
            raise bad(f"unknown parameter {key!r} (known: {', '.join(SmtpParam)})")
        values[SmtpParam(key)].append(value)
    recipients = tuple(a.strip() for v in values[SmtpParam.TO] for a in v.split(",") if a.strip())
    if not recipients:
        raise bad("no recipient (add ?to=name@example.org)")
    for address in recipients:
        if not _ADDRESS.fullmatch(address):
            raise bad(f"invalid recipient address {address!r}")
    senders = values[SmtpParam.FROM]
    if len(senders) > 1 or (senders and not _ADDRESS.fullmatch(senders[0])):
        raise bad("from= must be given once, as one address")
    starttls = _flag(values[SmtpParam.STARTTLS], bad)
    scheme: Scheme = common["scheme"]
    if starttls and scheme is Scheme.SMTPS:
        raise bad("starttls=1 with smtps:// (smtps is TLS already: use one or the other)")
    if (common["password"] is not None and scheme is Scheme.SMTP and not starttls
            and not _is_loopback(common["host"])):
        raise bad("AUTH without TLS would send the password in clear text (add starttls=1 "
                  "or use smtps://)")
    return NotifyTarget(**common, recipients=recipients,
                        sender=senders[0] if senders else None, starttls=starttls)


def _query_pairs(query: str, bad: Callable[[str], UsageError]) -> list[tuple[str, str]]:
    """Unlike parse_qsl this keeps '+' (valid in addresses: lab+alerts@x.org) as '+'."""
    pairs = []
    for item in query.split("&"):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq:
            raise bad(f"parameter {unquote(key)!r} has no value")
        pairs.append((unquote(key).lower(), unquote(value)))
    return pairs


def _flag(values: list[str], bad: Callable[[str], UsageError]) -> bool:
    if not values:
        return False
    if len(values) > 1:
        raise bad("starttls= given more than once")
    value = values[0].lower()
    if value not in _TRUE | _FALSE:
        raise bad(f"starttls={values[0]!r} is not a yes/no value (use starttls=1)")
    return value in _TRUE


def _is_loopback(host: str) -> bool:
    """Credentials in clear text are accepted only where they never leave this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _secret_values(parts: SplitResult, password: str | None) -> tuple[str, ...]:
    found = set()
    if password:
        found |= {password, parts.password or password, quote(password, safe="")}
    for item in parts.query.split("&"):
        key, _, value = item.partition("=")
        if unquote(key).lower() in _SECRET_PARAMS and value:
            found |= {value, unquote(value)}
    return tuple(sorted(found))


def _redact(parts: SplitResult) -> str:
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username}:***@{netloc.rpartition('@')[2]}"
    items = []
    for item in parts.query.split("&") if parts.query else []:
        key, eq, _ = item.partition("=")
        items.append(f"{key}=***" if eq and unquote(key).lower() in _SECRET_PARAMS else item)
    return parts._replace(netloc=netloc, query="&".join(items)).geturl()


# ------------------------------------------------------------------------------ summary
@dataclass(frozen=True)
class SkippedPatient:
    patient_id: str
    problem: str


@dataclass(frozen=True)
class RunSummary:
    """What a notification says about a run. Counts are per priority, most urgent first;
    a priority below `min_priority` was not computed and is None, never a made-up 0."""

    run_id: str
    finished_at: datetime
    tool_version: str
    to_snapshot: str
    min_priority: str
    counts: Mapping[str, int | None]
    high_priority_patients: tuple[str, ...]
    patients_with_changes: int
    patients_reanalyzed: int
    patients_up_to_date: int
    skipped: tuple[SkippedPatient, ...]
    report_path: str | None

    def __post_init__(self) -> None:
        # A wrong summary is a bug of the caller: fail loudly rather than notify nonsense.
        if self.min_priority not in PRIORITIES:
            raise ValueError(f"RunSummary: unknown min_priority {self.min_priority!r}")
        if set(self.counts) != set(PRIORITIES):
            raise ValueError(f"RunSummary: counts needs exactly {PRIORITIES}, got "
                             f"{tuple(self.counts)}")
        counted = PRIORITIES[:PRIORITIES.index(self.min_priority) + 1]
        for priority in PRIORITIES:
            value = self.counts[priority]
            if (value is None) == (priority in counted) or (value is not None and value < 0):
                raise ValueError(f"RunSummary: count for {priority!r} is {value!r} with "
                                 f"min_priority {self.min_priority!r}")
        if self.finished_at.tzinfo is None:
            raise ValueError("RunSummary: finished_at must be timezone-aware")
        frozen = MappingProxyType({p: self.counts[p] for p in PRIORITIES})
        object.__setattr__(self, "counts", frozen)

    @property
    def total_changes(self) -> int:
        return sum(v for v in self.counts.values() if v is not None)

    def as_dict(self) -> dict[str, object]:
        return {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "event": "reanalyze.finished",
            "tool": "varreinterp",
            "tool_version": self.tool_version,
            "run_id": self.run_id,
            "finished_at": _iso(self.finished_at),
            "to_snapshot": self.to_snapshot,
            "min_priority": self.min_priority,
            "changes": {"total": self.total_changes, **self.counts},
            "patients": {
                "reanalyzed": self.patients_reanalyzed,
                "up_to_date": self.patients_up_to_date,
                "with_changes": self.patients_with_changes,
                "high_priority": list(self.high_priority_patients),
                "skipped": [asdict(s) for s in self.skipped],
            },
            "report_path": self.report_path,
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunSummary:
        """The summary `as_dict` wrote (a notification noted before it was sent). Raises
        KeyError, TypeError or ValueError for anything else."""
        changes, patients = data["changes"], data["patients"]
        return cls(
            run_id=str(data["run_id"]),
            finished_at=datetime.fromisoformat(str(data["finished_at"])),
            tool_version=str(data["tool_version"]), to_snapshot=str(data["to_snapshot"]),
            min_priority=str(data["min_priority"]),
            counts={p: changes[p] for p in PRIORITIES},
            high_priority_patients=tuple(str(p) for p in patients["high_priority"]),
            patients_with_changes=int(patients["with_changes"]),
            patients_reanalyzed=int(patients["reanalyzed"]),
            patients_up_to_date=int(patients["up_to_date"]),
            skipped=tuple(SkippedPatient(str(s["patient_id"]), str(s["problem"]))
                          for s in patients["skipped"]),
            report_path=None if data["report_path"] is None else str(data["report_path"]))

    def subject(self) -> str:
        n_high = len(self.high_priority_patients)
        text = (f"varreinterp run {self.run_id}: {n_high} patient(s) with high-priority "
                "changes")
        if self.skipped:
            text += f", {len(self.skipped)} not reanalyzed"
        return _printable(text)

    def to_text(self) -> str:
        lines = [
            f"varreinterp reanalyze run {self.run_id}",
            "",
            f"Finished:        {_iso(self.finished_at)}",
            f"Tool version:    {self.tool_version}",
            f"Snapshot:        {self.to_snapshot}",
            f"Changes:         {self.total_changes} at or above {self.min_priority} priority",
        ]
        for priority, count in self.counts.items():
            shown = count if count is not None else f"not counted (below {self.min_priority})"
            lines.append(f"  {priority + ':':<8}       {shown}")
        lines += [
            f"Patients:        {self.patients_reanalyzed} reanalyzed, "
            f"{self.patients_up_to_date} already up to date, "
            f"{self.patients_with_changes} with changes",
            "",
            f"Patients with high-priority changes ({len(self.high_priority_patients)}):",
            *_listing(self.high_priority_patients),
            "",
            f"Patients that could not be reanalyzed ({len(self.skipped)}):",
            *_listing([f"{s.patient_id}: {s.problem}" for s in self.skipped]),
            "",
            f"Report: {self.report_path if self.report_path is not None else '(none written)'}",
            "",
            "Variant details are in the report only; notifications never carry them.",
        ]
        return "\n".join(_printable(line) for line in lines) + "\n"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _printable(text: str) -> str:
    """Ids come from users: a newline in one must not forge a line (or a mail header)."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _listing(items: Sequence[str]) -> list[str]:
    if not items:
        return ["  (none)"]
    shown = [f"  {item}" for item in items[:TEXT_LIST_LIMIT]]
    if len(items) > TEXT_LIST_LIMIT:
        shown.append(f"  ... and {len(items) - TEXT_LIST_LIMIT} more (see the report)")
    return shown


class _Problem(Protocol):
    @property
    def patient_id(self) -> str: ...

    @property
    def problem(self) -> str: ...


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class ReanalysisLike(Protocol):
    """The parts of `reanalyze.ReanalysisResult` a summary reads (a Protocol, not an import:
    that module pulls duckdb and pandas)."""

    @property
    def run_id(self) -> str: ...

    @property
    def to_snapshot(self) -> _Named: ...

    @property
    def rows(self) -> Any: ...  # pandas DataFrame with `patient` and `priority` columns

    @property
    def processed(self) -> Sequence[str]: ...

    @property
    def up_to_date(self) -> Sequence[str]: ...

    @property
    def problems(self) -> Sequence[_Problem]: ...

    @property
    def out_dir(self) -> Any: ...  # Path | None

    @property
    def min_priority(self) -> str: ...  # a changes.Priority (a StrEnum)


def summary_from_reanalysis(result: ReanalysisLike, *, finished_at: datetime | None = None,
                            tool_version: str = __version__) -> RunSummary:
    """The summary of a delivered reanalysis: only the `patient` and `priority` columns of its
    rows are read, so no genotype or variant field can reach a notification."""
    if not result.run_id:
        raise ValueError("reanalysis result has no run id (a dry run): nothing to notify")
    min_priority = str(result.min_priority)
    counted = PRIORITIES[:PRIORITIES.index(min_priority) + 1] if min_priority in PRIORITIES \
        else ()
    counts: dict[str, int | None] = {p: (0 if p in counted else None) for p in PRIORITIES}
    patients, high = set(), set()
    for patient, priority in zip(result.rows["patient"], result.rows["priority"], strict=True):
        patient, priority = str(patient), str(priority)
        current = counts.get(priority)
        if current is None:
            raise ValueError(f"reanalysis row of {patient!r} has priority {priority!r}, "
                             f"not counted at min_priority {min_priority!r}")
        counts[priority] = current + 1
        patients.add(patient)
        if priority == HIGH:
            high.add(patient)
    return RunSummary(
        run_id=result.run_id, finished_at=finished_at or datetime.now(UTC),
        tool_version=tool_version, to_snapshot=result.to_snapshot.name,
        min_priority=min_priority, counts=counts,
        high_priority_patients=tuple(sorted(high)), patients_with_changes=len(patients),
        patients_reanalyzed=len(result.processed), patients_up_to_date=len(result.up_to_date),
        skipped=tuple(SkippedPatient(p.patient_id, p.problem) for p in result.problems),
        report_path=str(result.out_dir) if result.out_dir is not None else None)


# ------------------------------------------------------------------------------ sending
@dataclass(frozen=True)
class NotifyOutcome:
    """What happened to one target; `target` is redacted, safe to record in run.json."""

    target: str
    ok: bool
    attempts: int
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class _Attempt:
    error: str | None = None  # None: delivered
    retry: bool = False


def check_retry_settings(*, timeout: float, attempts: int, backoff: float) -> None:
    """Raise UsageError for settings that cannot work (call it before the run starts)."""
    if not timeout > 0:
        raise UsageError(f"notify timeout must be > 0 seconds, got {timeout}")
    if attempts < 1:
        raise UsageError(f"notify attempts must be at least 1, got {attempts}")
    if not backoff >= 0:
        raise UsageError(f"notify backoff must be >= 0 seconds, got {backoff}")


def send_notifications(targets: Sequence[NotifyTarget], summary: RunSummary, *,
                       timeout: float = DEFAULT_TIMEOUT_S, attempts: int = DEFAULT_ATTEMPTS,
                       backoff: float = DEFAULT_BACKOFF_S) -> list[NotifyOutcome]:
    """Send `summary` to every target, in order; one outcome per target.

    `timeout` bounds each network operation (connect, each read or write) of one attempt;
    a failed attempt that may succeed later (connection error, timeout, HTTP 5xx/408/429,
    SMTP 4xx) is retried up to `attempts` in all, waiting backoff, 2*backoff, 4*backoff...
    A failed delivery never raises; only invalid settings do (UsageError)."""
    check_retry_settings(timeout=timeout, attempts=attempts, backoff=backoff)
    outcomes = []
    for target in targets:
        send = _mail if target.scheme.is_mail else _post
        try:
            outcomes.append(send(target, summary, timeout, attempts, backoff))
        except Exception as exc:  # no attempt could be made (e.g. SSL_CERT_FILE unreadable)
            error = target.scrub(" ".join(f"could not start: {_describe(exc)}".split()))
            outcomes.append(NotifyOutcome(target.redacted, ok=False, attempts=0, error=error))
    return outcomes


def _describe(exc: Exception) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, OSError) and exc.filename is None:
        # ssl reports an unreadable CA file without its name; these variables are the usual cause.
        names = [f"{v}={os.environ[v]}" for v in ("SSL_CERT_FILE", "SSL_CERT_DIR")
                 if os.environ.get(v)]
        text += f" (check {', '.join(names)})" if names else ""
    return text


def _deliver(target: NotifyTarget, once: Callable[[], _Attempt], attempts: int,
             backoff: float) -> NotifyOutcome:
    attempt, n = _Attempt(), 0
    for n in range(1, attempts + 1):
        try:
            attempt = once()
        except Exception as exc:  # the contract is "never raises": a bug becomes an outcome
            attempt = _Attempt(f"unexpected {_describe(exc)}", retry=False)
        if attempt.error is None:
            return NotifyOutcome(target.redacted, ok=True, attempts=n)
        if not attempt.retry or n == attempts:
            break
        delay = backoff * 2 ** (n - 1)
        log.info("notify %s: attempt %d/%d failed (%s); retrying in %.1f s", target.redacted,
                 n, attempts, target.scrub(attempt.error), delay)
        time.sleep(delay)
    error = " ".join(target.scrub(attempt.error or "failed").split())
    return NotifyOutcome(target.redacted, ok=False, attempts=n, error=error)


def _post(target: NotifyTarget, summary: RunSummary, timeout: float, attempts: int,
          backoff: float) -> NotifyOutcome:
    import httpx

    body = summary.to_json().encode()
    headers = {"Content-Type": "application/json; charset=utf-8",
               "User-Agent": f"varreinterp/{__version__}",
               # Lets a receiver drop the duplicate of a retried POST it did process.
               "Idempotency-Key": summary.run_id}
    # Redirects are not followed: a POST redirected is usually a GET somewhere else.
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        return _deliver(target, lambda: _post_once(client, target.url, body, headers, timeout),
                        attempts, backoff)


def _post_once(client: httpx.Client, url: str, body: bytes, headers: dict[str, str],
               timeout: float) -> _Attempt:
    import httpx

    try:
        response = client.post(url, content=body, headers=headers)
    except httpx.TimeoutException as exc:
        return _Attempt(f"timed out after {timeout:g} s ({type(exc).__name__})", retry=True)
    except httpx.TransportError as exc:
        return _Attempt(f"{type(exc).__name__}: {exc}", retry=True)
    status = response.status_code
    if 200 <= status < 300:
        return _Attempt()
    error = f"HTTP {status} {response.reason_phrase}".rstrip()
    if 300 <= status < 400:
        error += f" to {response.headers.get('location', '?')} (redirects are not followed)"
    elif response.text.strip():
        error += ": " + _printable(" ".join(response.text.split()))[:200]
    return _Attempt(error, retry=status >= 500 or status in (408, 429))


def _mail(target: NotifyTarget, summary: RunSummary, timeout: float, attempts: int,
          backoff: float) -> NotifyOutcome:
    return _deliver(target, lambda: _mail_once(target, _mail_message(target, summary), timeout),
                    attempts, backoff)


def _mail_message(target: NotifyTarget, summary: RunSummary) -> EmailMessage:
    from email.message import EmailMessage
    from email.utils import format_datetime, make_msgid

    sender = target.sender or f"varreinterp@{socket.getfqdn()}"
    message = EmailMessage()
    message["Subject"] = summary.subject()
    message["From"] = sender
    message["To"] = ", ".join(target.recipients)
    message["Date"] = format_datetime(datetime.now(UTC))
    # An explicit domain: make_msgid's default asks DNS for this host's name again.
    message["Message-ID"] = make_msgid(idstring=_printable(summary.run_id),
                                       domain=sender.rpartition("@")[2])
    message.set_content(summary.to_text())
    return message


def _mail_once(target: NotifyTarget, message: EmailMessage, timeout: float) -> _Attempt:
    import smtplib
    import ssl

    try:
        smtp: smtplib.SMTP
        if target.scheme is Scheme.SMTPS:
            smtp = smtplib.SMTP_SSL(target.host, target.port, timeout=timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(target.host, target.port, timeout=timeout)
        with smtp:
            if target.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if target.username is not None and target.password is not None:
                smtp.login(target.username, target.password)
            refused = smtp.send_message(message, from_addr=str(message["From"]),
                                        to_addrs=list(target.recipients))
    except (smtplib.SMTPException, OSError) as exc:
        return _smtp_failure(exc, timeout)
    if refused:
        # Not retried: the accepted recipients would get the mail twice.
        return _Attempt("refused for " + ", ".join(
            f"{rcpt} ({_smtp_reply(code, text)})" for rcpt, (code, text) in refused.items()))
    return _Attempt()


def _smtp_failure(exc: smtplib.SMTPException | OSError, timeout: float) -> _Attempt:
    """Retry what may pass (connection trouble, 4xx replies); not what will fail again."""
    import smtplib
    import ssl

    if isinstance(exc, smtplib.SMTPAuthenticationError):
        return _Attempt(f"authentication failed: {_smtp_reply(exc.smtp_code, exc.smtp_error)}")
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return _Attempt("all recipients refused: " + ", ".join(
            f"{rcpt} ({_smtp_reply(code, text)})" for rcpt, (code, text) in exc.recipients.items()))
    if isinstance(exc, smtplib.SMTPResponseException):  # includes sender refused, connect
        return _Attempt(f"{type(exc).__name__}: {_smtp_reply(exc.smtp_code, exc.smtp_error)}",
                        retry=400 <= exc.smtp_code < 500)
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return _Attempt(f"server disconnected: {exc}", retry=True)
    if isinstance(exc, smtplib.SMTPException):  # e.g. STARTTLS or AUTH not offered
        return _Attempt(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _Attempt(f"TLS certificate not trusted: {exc.verify_message or exc}")
    if isinstance(exc, TimeoutError):
        return _Attempt(f"timed out after {timeout:g} s", retry=True)
    return _Attempt(f"{type(exc).__name__}: {exc}", retry=True)


def _smtp_reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return f"{code} {' '.join(text.split())}"
