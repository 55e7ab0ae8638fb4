"""Issue 13, the lab's routine, through the CLI: `snapshot fetch` from a loopback NCBI mirror,
snapshot selectors wherever a snapshot is named, gene panels and regions on every command that
reports variants (and per cohort group), the config file and its precedence, the stale-release
guard, notifications after `reanalyze` (loopback HTTP hook and aiosmtpd) and the consistency of
the command line itself.

The core modules have their own tests (test_fetch, test_config, test_panels, test_notify); these
pin the wiring. The sample releases and the changes between them are in sample_vcfs/README.md:
with baseline 2024-01-07, PATIENT01, CHILD01, MOTHER01 and FATHER01 each have a high-priority
change in 2024-06-02. Panel expectations come from an oracle: the same command without the
panel, filtered here in plain Python.
"""

from __future__ import annotations

import csv
import email
import email.policy
import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pysam
import pytest
import typer.main
from aiosmtpd.controller import Controller
from builders import LAB_TOML, store_with_sample_releases
from conftest import SAMPLES, CliResult, invoke
from ncbi_mirror import PREFIX, NcbiMirror

from varreinterp.cli import app
from varreinterp.config import KEYS

OLD_VCF = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
NEW_VCF = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
PATIENT = SAMPLES / "patient_single.vcf.gz"
TRIO = SAMPLES / "trio.vcf"
HIGH_PATIENTS = ["CHILD01", "FATHER01", "MOTHER01", "PATIENT01"]
# sample_vcfs/README.md: changes 2024-01-07 -> 2024-06-02 per patient, (contig, pos, gene).
CHANGES = {
    "PATIENT01": {("13", 32332400, "BRCA2"), ("14", 23415300, "MYH7"),
                  ("7", 117590501, "CFTR"), ("17", 43057100, "BRCA1"),
                  ("17", 43071000, "BRCA1")},
    "CHILD01": {("3", 37025900, "MLH1"), ("3", 38551200, "SCN5A"), ("19", 11102700, "LDLR"),
                ("7", 117509100, "CFTR"), ("17", 7675990, "TP53")},
    "MOTHER01": {("13", 32332400, "BRCA2"), ("19", 11102700, "LDLR"),
                 ("7", 117509100, "CFTR"), ("19", 11113400, "LDLR")},
    "FATHER01": {("14", 23415300, "MYH7"), ("3", 38551200, "SCN5A"),
                 ("7", 117509100, "CFTR"), ("17", 7675990, "TP53")},
}
# Genes of the sample releases in / not in the ACMG SF v3.x list (published, not read from
# the list the tool ships, so a wrong shipped list fails here).
ACMG_IN = {"BRCA1", "BRCA2", "MYH7", "MLH1", "TP53", "LDLR", "SCN5A", "KCNQ1", "APC", "MUTYH",
           "PTEN", "MSH2", "HFE", "PCSK9"}
ACMG_OUT = {"CFTR", "CYP2C19", "CFH", "MT-ND5", "APOE", "DMD", "EPM2AIP1"}
LAB = "mylab"
LAB_DATES = [f"2024-03-{day:02d}" for day in range(1, 13)]  # 12 releases: more than 10
STALE_WORD = "stale_after_days"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy",
                   "https_proxy", "all_proxy", "no_proxy")
# Genotype and variant details that must never leave the machine in a notification.
FINDINGS = ["het", "hom", "0/1", "zygosity", "genotype", "32332400", "23415300", "BRCA2", "MYH7",
            "Likely_pathogenic", "Uncertain_significance"]


# ------------------------------------------------------------------------------ helpers
def ok(result: CliResult) -> CliResult:
    assert result.code == 0, f"exit {result.code}\nstderr:\n{result.err}"
    return result


def json_rows(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def data_rows(text: str) -> list[dict[str, Any]]:
    """JSON output without its provenance records (diff writes one first and one last)."""
    return [row for row in json_rows(text) if not isinstance(row.get("provenance"), dict)]


def tsv_rows(path: Path) -> list[dict[str, str]]:
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def provenance(out: str, key: str) -> str:
    """A value of the `#tool=... key=value ...` line heading TSV output."""
    first = out.splitlines()[0]
    assert first.startswith("#"), first
    match = re.search(rf"(?:^#|\s){re.escape(key)}=(\S+)", first)
    assert match, f"no {key}= in {first}"
    return match.group(1)


def stored(store: Path) -> list[str]:
    if not store.exists():
        return []
    return [r["name"] for r in json_rows(ok(invoke(store, "snapshot", "list", "-f", "json")).out)]


def files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def one_error_line(result: CliResult) -> str:
    lines = result.err.strip().splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("varreinterp: error: "), lines[0]
    return lines[0]


def stale_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if STALE_WORD in line]


def outside_count(err: str) -> int:
    """The number a summary line gives as left out by the panel."""
    found = re.findall(r"(\d+) (?:row\(s\) |change\(s\) )?outside", err)
    assert len(found) == 1, f"expected one count of rows outside the panel:\n{err}"
    return int(found[0])


def bare(contig: str) -> str:
    return contig.removeprefix("chr")


def report_folders(store: Path) -> list[Path]:
    reports = store / "reports"
    return sorted(p for p in reports.iterdir() if p.is_dir()) if reports.exists() else []


def bgzip_releases(folder: Path) -> dict[str, Path]:
    """The two sample releases bgzipped as NCBI publishes them, by release date."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for source, day in ((OLD_VCF, "2024-01-07"), (NEW_VCF, "2024-06-02")):
        target = folder / f"clinvar_{day.replace('-', '')}.vcf.gz"
        pysam.tabix_compress(str(source), str(target), force=True)
        out[day] = target
    return out


def ncbi_path(day: str) -> str:
    return f"vcf_GRCh38/clinvar_{day.replace('-', '')}.vcf.gz"


def serve(mirror: NcbiMirror, releases: dict[str, Path]) -> None:
    for day, path in releases.items():
        mirror.add(ncbi_path(day), path)


def lab_table(path: Path, number: int) -> Path:
    """Release `number` of a lab table: each has distinct content (a row of its own)."""
    rows = [("13", 32332400, "G", "A", "VUS" if number % 2 else "LP", "BRCA2"),
            ("14", 23415300, "G", "A", "P", "MYH7"),
            ("1", 1_000_000 + number, "A", "G", "LB", f"GENE{number}")]
    path.write_text("chrom\tpos\tref\talt\tclass\treview\tgene\n" + "".join(
        f"{c}\t{p}\t{r}\t{a}\t{k}\tcriteria_provided,_single_submitter\t{g}\n"
        for c, p, r, a, k, g in rows))
    return path


# ------------------------------------------------------------------------------ loopback hook
@dataclass
class Post:
    path: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HookServer(ThreadingHTTPServer):
    """Answers every POST with 200 and keeps it."""

    daemon_threads = False  # server_close() joins handler threads: nothing outlives a test

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _HookHandler)
        self.posts: list[Post] = []
        self.thread = threading.Thread(target=self.serve_forever,
                                       kwargs={"poll_interval": 0.05})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"

    def start(self) -> HookServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join()


class _HookHandler(BaseHTTPRequestHandler):
    server: HookServer

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.posts.append(Post(self.path, body))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (base signature)
        pass


@pytest.fixture
def hook() -> Iterator[HookServer]:
    server = HookServer().start()
    yield server
    server.stop()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """Bound but not listening: connections are refused and nobody else takes the port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


# ------------------------------------------------------------------------------ loopback SMTP
@dataclass
class Inbox:
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), message))
        return "250 OK"


class _LoopbackController(Controller):
    """Binds port 0; the real port is read back before aiosmtpd's readiness probe."""

    def _trigger_server(self) -> None:
        sockets = getattr(self.server, "sockets", None)
        assert sockets
        self.port = sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]  # aiosmtpd is untyped


@pytest.fixture
def mailserver() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    controller = _LoopbackController(inbox, hostname="127.0.0.1", port=0,
                                     server_hostname="mail.test")
    controller.start()
    yield inbox, int(controller.port)
    controller.stop()


# ------------------------------------------------------------------------------ stores
@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy of the developer's shell would route loopback requests elsewhere."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return bgzip_releases(tmp_path_factory.mktemp("releases"))


@pytest.fixture
def mirror(tmp_path: Path, releases: dict[str, Path]) -> Iterator[NcbiMirror]:
    with NcbiMirror(tmp_path / "mirror") as served:
        serve(served, releases)
        yield served
    assert not served.errors, served.errors[0]


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return store_with_sample_releases(tmp_path_factory.mktemp("base") / "store")


@pytest.fixture(scope="module")
def base_cohort(tmp_path_factory: pytest.TempPathFactory, base_store: Path) -> Path:
    store = tmp_path_factory.mktemp("cohort") / "store"
    shutil.copytree(base_store, store)
    ok(invoke(store, "cohort", "add", PATIENT, TRIO, "--baseline", "2024-01-07"))
    return store


@pytest.fixture(scope="module")
def base_lab(tmp_path_factory: pytest.TempPathFactory, base_store: Path) -> Path:
    """Two lineages of GRCh38: ClinVar (2 releases) and a lab table (12 releases)."""
    folder = tmp_path_factory.mktemp("lab")
    store = folder / "store"
    shutil.copytree(base_store, store)
    mapping = folder / "mylab.toml"
    mapping.write_text(LAB_TOML)
    for number, day in enumerate(LAB_DATES, start=1):
        ok(invoke(store, "snapshot", "add", lab_table(folder / f"lab_{number}.tsv", number),
                  "--mapping", mapping, "--assembly", "GRCh38", "--release-date", day))
    return store


def copy_of(source: Path, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(source, store)
    return store


@pytest.fixture
def store(tmp_path: Path, base_store: Path) -> Path:
    return copy_of(base_store, tmp_path)


@pytest.fixture
def cohort(tmp_path: Path, base_cohort: Path) -> Path:
    return copy_of(base_cohort, tmp_path)


@pytest.fixture
def lab(tmp_path: Path, base_lab: Path) -> Path:
    return copy_of(base_lab, tmp_path)


# ------------------------------------------------------------------------------ 1. fetch
def test_fetch_latest_imports_the_newest_release_named_by_its_date(
        tmp_path: Path, mirror: NcbiMirror) -> None:
    store = tmp_path / "fresh"
    r = ok(invoke(store, "snapshot", "fetch", "--mirror", mirror.base_url))
    assert r.out == ""
    assert f"added snapshot {NEW}" in r.err
    assert stored(store) == [NEW]
    shown = json_rows(ok(invoke(store, "snapshot", "show", NEW, "-f", "json")).out)[0]
    assert (shown["records"], shown["release_date"], shown["source_kind"]) == \
        (43, "2024-06-02", "clinvar-vcf")
    got = [q.path for q in mirror.requests if q.method == "GET"]
    assert PREFIX + ncbi_path("2024-06-02") in got
    assert PREFIX + ncbi_path("2024-06-02") + ".md5" in got
    assert not [p for p in got if "20240107" in p]  # the older release is not downloaded
    assert files_under(store / "downloads") == []


def test_second_fetch_is_a_noop_that_says_so_and_downloads_nothing(
        tmp_path: Path, mirror: NcbiMirror) -> None:
    store = tmp_path / "fresh"
    ok(invoke(store, "snapshot", "fetch", "--mirror", mirror.base_url))
    before = len(mirror.requests)
    r = ok(invoke(store, "snapshot", "fetch", "--mirror", mirror.base_url))
    assert "already stored" in r.err and NEW in r.err
    assert "added snapshot" not in r.err
    asked = [q.path for q in mirror.requests[before:]]
    assert [p for p in asked if not p.endswith("/")] == [], asked  # the listing at most
    assert stored(store) == [NEW]
    assert files_under(store / "downloads") == []


def test_fetch_a_dated_release(tmp_path: Path, mirror: NcbiMirror) -> None:
    store = tmp_path / "fresh"
    r = ok(invoke(store, "snapshot", "fetch", "--mirror", mirror.base_url,
                  "--release", "2024-01-07"))
    assert f"added snapshot {OLD}" in r.err
    assert stored(store) == [OLD]
    assert not [q for q in mirror.requests if "20240602" in q.path and q.method == "GET"]


def test_md5_mismatch_exits_3_and_stores_nothing(tmp_path: Path, mirror: NcbiMirror,
                                                 releases: dict[str, Path]) -> None:
    mirror.add(ncbi_path("2024-06-02"), releases["2024-06-02"],
               md5="0123456789abcdef0123456789abcdef  clinvar_20240602.vcf.gz\n")
    store = tmp_path / "fresh"
    r = invoke(store, "snapshot", "fetch", "--mirror", mirror.base_url)
    assert r.code == 3, r.err
    assert "md5" in one_error_line(r)
    assert r.out == ""
    assert stored(store) == []
    assert files_under(store / "downloads") == []  # not even a .part to resume


def test_missing_dated_release_exits_2(tmp_path: Path, mirror: NcbiMirror) -> None:
    store = tmp_path / "fresh"
    r = invoke(store, "snapshot", "fetch", "--mirror", mirror.base_url, "--release", "2024-02-07")
    assert r.code == 2, r.err
    assert "2024-02-07" in one_error_line(r)
    assert mirror.requests_for(ncbi_path("2024-02-07"), method=None)  # it did ask (404)
    assert stored(store) == []


@pytest.mark.parametrize("where", ["config file", "environment"])
def test_mirror_from_the_config_file_or_the_environment(
        tmp_path: Path, mirror: NcbiMirror, monkeypatch: pytest.MonkeyPatch,
        refused_port: int, where: str) -> None:
    # Anything that is not the mirror goes to a refused proxy: never the internet.
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{refused_port}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    store = tmp_path / "fresh"
    args: list[str | Path] = ["snapshot", "fetch", "--timeout", "5"]
    if where == "config file":
        config = tmp_path / "config.toml"
        config.write_text(f'[fetch]\nmirror = "{mirror.base_url}"\n')
        args = ["--config", config, *args]
    else:
        monkeypatch.setenv("VARREINTERP_MIRROR", mirror.base_url)
    r = ok(invoke(store, *args))
    assert f"added snapshot {NEW}" in r.err
    assert mirror.requests_for(ncbi_path("2024-06-02"))
    assert stored(store) == [NEW]


# ------------------------------------------------------------------------------ 2. selectors
@pytest.mark.parametrize(("selector", "expected"), [
    ("latest", NEW), ("2024-06-02", NEW), ("2024-06", NEW), ("latest:GRCh38", NEW),
    ("previous", OLD), ("2024-01", OLD), (OLD, OLD)])
def test_annotate_snapshot_selectors(store: Path, selector: str, expected: str) -> None:
    r = ok(invoke(store, "annotate", PATIENT, "--snapshot", selector, "-f", "tsv"))
    assert provenance(r.out, "snapshot") == expected


def test_diff_to_defaults_to_the_latest_of_the_from_lineage(lab: Path) -> None:
    r = ok(invoke(lab, "diff", PATIENT, "--from", "2024-01-07", "-f", "tsv"))
    assert (provenance(r.out, "from_snapshot"), provenance(r.out, "to_snapshot")) == (OLD, NEW)
    # The newest snapshot of the store is ClinVar's; --from's lineage is the lab's.
    r = ok(invoke(lab, "diff", PATIENT, "--from", f"{LAB}-GRCh38-2024-03-01", "-f", "tsv"))
    assert provenance(r.out, "to_snapshot") == f"{LAB}-GRCh38-2024-03-12"


def test_snapshot_diff_new_defaults_to_the_latest(lab: Path) -> None:
    r = ok(invoke(lab, "snapshot", "diff", "2024-01", "-f", "tsv"))
    assert (provenance(r.out, "from_snapshot"), provenance(r.out, "to_snapshot")) == (OLD, NEW)
    assert len(r.out.splitlines()) > 2  # a header and changes
    r = ok(invoke(lab, "snapshot", "diff", "2024-03-01", "-f", "tsv"))
    assert provenance(r.out, "to_snapshot") == f"{LAB}-GRCh38-2024-03-12"


def test_selectors_name_snapshots_in_show_and_report(store: Path, tmp_path: Path) -> None:
    shown = json_rows(ok(invoke(store, "snapshot", "show", "previous", "-f", "json")).out)
    assert shown[0]["name"] == OLD
    page = tmp_path / "report.html"
    r = ok(invoke(store, "report", PATIENT, "--from", "2024-01", "--to", "latest", "-o", page))
    assert r.out == ""
    html = page.read_text()
    assert OLD in html and NEW in html


@pytest.mark.parametrize("selector", ["latest", "previous"])
def test_latest_with_two_lineages_of_one_build_is_ambiguous(lab: Path, selector: str) -> None:
    r = invoke(lab, "annotate", PATIENT, "--snapshot", selector, "-f", "tsv")
    assert r.code == 2, r.err
    line = one_error_line(r)
    assert "ambiguous" in line
    assert "clinvar" in line and LAB in line  # the candidates of both lineages
    assert r.out == ""
    # qualifying it resolves it
    r = ok(invoke(lab, "annotate", PATIENT, "--snapshot", "latest:clinvar", "-f", "tsv"))
    assert provenance(r.out, "snapshot") == NEW


def test_an_ambiguous_selector_lists_at_most_ten_candidates(lab: Path) -> None:
    r = invoke(lab, "annotate", PATIENT, "--snapshot", "2024-03", "-f", "tsv")
    assert r.code == 2, r.err
    line = one_error_line(r)
    listed = re.findall(rf"{LAB}-GRCh38-2024-03-\d\d", line)
    assert 1 <= len(listed) <= 10, line
    assert str(len(LAB_DATES) - len(listed)) in line  # says how many more


def test_an_unknown_name_exits_4_listing_at_most_ten(lab: Path) -> None:
    r = invoke(lab, "annotate", PATIENT, "--snapshot", "no-such-release", "-f", "tsv")
    assert r.code == 4, r.err
    line = one_error_line(r)
    assert "no-such-release" in line
    listed = re.findall(r"(?:clinvar|mylab)-GRCh38-\d{4}-\d\d-\d\d", line)
    assert 1 <= len(listed) <= 10, line
    assert r.out == ""


# ------------------------------------------------------------------------------ 3. panels
@dataclass(frozen=True)
class PanelCase:
    name: str
    genes: frozenset[str] | None = None
    bed: str | None = None  # BED text

    def args(self, folder: Path) -> list[str | Path]:
        if self.bed is not None:
            bed = folder / "panel.bed"
            bed.write_text(self.bed)
            return ["--regions", bed]
        if self.name == "acmg-sf":
            return ["--genes", "acmg-sf"]
        assert self.genes is not None
        if self.name == "file":
            genes = folder / "genes.txt"
            genes.write_text("# a lab's panel\n" + "\n".join(sorted(self.genes)) + "\n")
            return ["--genes", genes]
        return ["--genes", ",".join(sorted(self.genes))]

    def contains(self, row: dict[str, Any]) -> bool:
        if self.genes is not None:
            symbols = set(str(row.get("gene") or "").split("|")) - {""}
            unknown = symbols - ACMG_IN - ACMG_OUT
            assert not unknown, f"add {unknown} to ACMG_IN or ACMG_OUT"
            return bool(symbols & self.genes)
        assert self.bed is not None
        start0, span = int(row["pos"]) - 1, max(1, len(str(row["ref"])))
        for line in self.bed.splitlines():
            contig, start, end = line.split("\t")
            if bare(contig) == bare(str(row["chrom"])) and start0 < int(end) \
                    and start0 + span > int(start):
                return True
        return False


PANELS = [
    PanelCase("list", frozenset({"BRCA1", "BRCA2"})),
    PanelCase("file", frozenset({"MYH7", "MLH1", "BRCA2"})),
    PanelCase("acmg-sf", frozenset(ACMG_IN)),
    # the BRCA2 SNV exactly (0-based, half-open) and a stretch of chr17 around BRCA1
    PanelCase("regions", bed="chr13\t32332399\t32332400\n17\t43000000\t43100000\n"),
]
# command -> its arguments (the store is a registered cohort; reanalyze only as a dry run)
ROW_COMMANDS: dict[str, list[str | Path]] = {
    "annotate": ["annotate", PATIENT, "--snapshot", NEW, "-f", "json"],
    "diff": ["diff", PATIENT, "--from", OLD, "--all", "-f", "json"],
    "history": ["history", PATIENT, "-f", "json"],
    "reanalyze": ["reanalyze", "--dry-run", "--min-priority", "low", "-f", "json"],
}


def row_key(row: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(row.get(k)) for k in ("patient", "sample", "chrom", "pos", "ref", "alt",
                                           "snapshot", "change"))


@pytest.fixture(scope="module")
def unpaneled(base_cohort: Path) -> dict[str, list[dict[str, Any]]]:
    """The oracle's input: each command's rows without a panel."""
    return {name: data_rows(ok(invoke(base_cohort, *args)).out)
            for name, args in ROW_COMMANDS.items()}


@pytest.mark.parametrize("case", PANELS, ids=[p.name for p in PANELS])
@pytest.mark.parametrize("command", list(ROW_COMMANDS))
def test_panel_restricts_rows_and_counts_what_it_left_out(
        base_cohort: Path, unpaneled: dict[str, list[dict[str, Any]]], tmp_path: Path,
        command: str, case: PanelCase) -> None:
    everything = unpaneled[command]
    expected = sorted(row_key(r) for r in everything if case.contains(r))
    assert 0 < len(expected) < len(everything)  # the case is a real restriction
    r = ok(invoke(base_cohort, *ROW_COMMANDS[command], *case.args(tmp_path)))
    got = sorted(row_key(row) for row in data_rows(r.out))
    assert got == expected
    assert outside_count(r.err) == len(everything) - len(expected)


@pytest.mark.parametrize("case", PANELS, ids=[p.name for p in PANELS])
def test_panel_on_report(base_cohort: Path, unpaneled: dict[str, list[dict[str, Any]]],
                         tmp_path: Path, case: PanelCase) -> None:
    changes = unpaneled["diff"]  # the same comparison, every priority
    inside = [c for c in changes if case.contains(c)]
    outside = [c for c in changes if not case.contains(c)]
    page = tmp_path / "report.html"
    r = ok(invoke(base_cohort, "report", PATIENT, "--from", OLD, "--all", "-o", page,
                  *case.args(tmp_path)))
    html = page.read_text()
    assert re.search(rf"\b{len(inside)} in all\b", r.err), r.err
    assert f"{len(outside)} change(s) outside" in html
    for change in inside:
        assert str(change["pos"]) in html or f"{int(change['pos']):,}" in html
    for gene in {c["gene"] for c in outside} - {c["gene"] for c in inside}:
        assert gene not in html, gene
    assert outside_count(r.err) == len(outside)  # the summary on stderr says it too


def delivered(row: dict[str, str]) -> tuple[str, str, int]:
    return row["patient"], bare(row["chrom"]), int(row["pos"])


def test_panel_on_a_delivered_reanalysis(cohort: Path) -> None:
    """The panel shapes the listing; the report records every change, marked in_panel (a
    change left out of a delivered report would be used up unseen)."""
    r = ok(invoke(cohort, "reanalyze", "--genes", "BRCA1,BRCA2"))
    folders = report_folders(cohort)
    assert len(folders) == 1
    rows = tsv_rows(folders[0] / "changes.tsv")
    expected = {(p, bare(c), pos) for p, changes in CHANGES.items()
                for c, pos, gene in changes if gene in {"BRCA1", "BRCA2"}}
    every = {(p, bare(c), pos) for p, changes in CHANGES.items() for c, pos, _ in changes}
    assert {delivered(row) for row in rows} == every
    assert {delivered(row) for row in rows if row["in_panel"] == "True"} == expected
    assert {row["in_panel"] for row in rows} == {"True", "False"}
    assert outside_count(r.err) == len(every) - len(expected)


CARDIO_CONFIG = """min_priority = "low"

[panels.cardio]
genes = ["MYH7", "SCN5A"]

[groups.G]
panel = "cardio"
"""


def test_a_config_panel_by_name(store: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CARDIO_CONFIG)
    r = ok(invoke(store, "--config", config, "diff", PATIENT, "--from", OLD, "--genes", "cardio",
                  "-f", "json"))
    assert {(row["gene"], row["pos"]) for row in data_rows(r.out)} == {("MYH7", 23415300)}
    assert outside_count(r.err) == len(CHANGES["PATIENT01"]) - 1


def test_a_cohort_group_panel_restricts_that_group_only(tmp_path: Path, store: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(CARDIO_CONFIG)
    ok(invoke(store, "--config", config, "cohort", "add", TRIO, "--baseline", OLD, "--group",
              "G"))
    ok(invoke(store, "--config", config, "cohort", "add", PATIENT, "--baseline", OLD))
    r = ok(invoke(store, "--config", config, "reanalyze"))
    folders = report_folders(store)
    assert len(folders) == 1
    rows = tsv_rows(folders[0] / "changes.tsv")
    expected = {(p, c, pos) for p, changes in CHANGES.items() for c, pos, gene in changes
                if p == "PATIENT01" or gene in {"MYH7", "SCN5A"}}
    every = {(p, c, pos) for p, changes in CHANGES.items() for c, pos, _ in changes}
    assert {delivered(row) for row in rows} == every  # recorded, not used up
    assert {delivered(row) for row in rows if row["in_panel"] != "False"} == expected
    # PATIENT01 is in no group: no panel applies to it (empty), the trio's is cardio
    assert {row["in_panel"] for row in rows if row["patient"] == "PATIENT01"} == {""}
    assert {row["in_panel"] for row in rows if row["patient"] != "PATIENT01"} == \
        {"True", "False"}
    left_out = sum(1 for p, changes in CHANGES.items() for _, _, gene in changes
                   if p != "PATIENT01" and gene not in {"MYH7", "SCN5A"})
    assert outside_count(r.err) == left_out
    # an unknown group is refused before any work
    r = invoke(store, "--config", config, "cohort", "add", TRIO, "--group", "nosuch")
    assert r.code == 2 and "nosuch" in one_error_line(r)


# ------------------------------------------------------------------------------ 4. config
def show(store: Path | None, *args: str | Path) -> dict[str, dict[str, str]]:
    rows = json_rows(ok(invoke(store, *args, "config", "show", "-f", "json")).out)
    return {row["key"]: row for row in rows}


def test_config_show_lists_every_key_with_value_and_source(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.delenv("VARREINTERP_STALE_AFTER_DAYS")
    config = tmp_path / "config.toml"
    config.write_text('notify = ["http://127.0.0.1:9/hook"]\n\n[fetch]\ntimeout = 12\n')
    rows = show(tmp_path / "s", "--config", config)
    documented = {"store", "min_priority", "stale_after_days", "notify", "fetch.mirror",
                  "fetch.ca_bundle", "fetch.timeout"}
    assert documented | {key.name for key in KEYS} <= set(rows)
    assert all(row["value"] != "" and row["source"] for row in rows.values())
    assert (rows["store"]["value"], rows["store"]["source"]) == (str(tmp_path / "s"), "--store")
    assert (rows["notify"]["value"], rows["notify"]["source"]) == \
        ("http://127.0.0.1:9/hook", f"{config}:1")
    assert (rows["fetch.timeout"]["value"], rows["fetch.timeout"]["source"]) == \
        ("12", f"{config}:4")
    assert (rows["stale_after_days"]["value"], rows["stale_after_days"]["source"]) == \
        ("45", "default")


LAYERS = ["flag", "environment", "file", "default"]


@pytest.mark.parametrize("strongest", LAYERS)
def test_store_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          strongest: str) -> None:
    present = LAYERS[LAYERS.index(strongest):]
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("VARREINTERP_HOME", raising=False)
    config = tmp_path / "config.toml"
    config.write_text(f'# the lab\nstore = "{tmp_path / "file-store"}"\n')
    args: list[str | Path] = []
    if "flag" in present:
        args += ["--store", tmp_path / "flag-store"]
    if "environment" in present:
        monkeypatch.setenv("VARREINTERP_HOME", str(tmp_path / "env-store"))
    if "file" in present:
        args += ["--config", config]
    expected = {"flag": (tmp_path / "flag-store", "--store"),
                "environment": (tmp_path / "env-store", "$VARREINTERP_HOME"),
                "file": (tmp_path / "file-store", f"{config}:2"),
                "default": (tmp_path / "xdg" / "varreinterp", "default")}[strongest]
    row = show(None, *args)["store"]
    assert (row["value"], row["source"]) == (str(expected[0]), expected[1])


@pytest.mark.parametrize("strongest", LAYERS)
def test_min_priority_precedence(store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 strongest: str) -> None:
    present = LAYERS[LAYERS.index(strongest):]
    monkeypatch.delenv("VARREINTERP_MIN_PRIORITY", raising=False)
    config = tmp_path / "config.toml"
    config.write_text('stale_after_days = 1000000\nmin_priority = "low"\n')
    top: list[str | Path] = ["--config", config] if "file" in present else []
    if "environment" in present:
        monkeypatch.setenv("VARREINTERP_MIN_PRIORITY", "high")
    flag = ["--min-priority", "medium"] if "flag" in present else []
    expected = {"flag": "medium", "environment": "high", "file": "low",
                "default": "medium"}[strongest]
    r = ok(invoke(store, *top, "diff", PATIENT, "--from", OLD, "-f", "tsv", *flag))
    assert provenance(r.out, "min_priority") == expected
    # PATIENT01: 4 high changes and 1 low (sample_vcfs/README.md)
    assert len(r.out.splitlines()) - 2 == (5 if expected == "low" else 4)
    if strongest != "flag":
        row = show(store, *top)["min_priority"]
        source = {"environment": "$VARREINTERP_MIN_PRIORITY", "file": f"{config}:2",
                  "default": "default"}[strongest]
        assert (row["value"], row["source"]) == (expected, source)


@pytest.mark.parametrize("command", [["config", "show"], ["reanalyze"]])
def test_unknown_config_key_exits_2_naming_key_file_and_line(
        cohort: Path, tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('min_priority = "low"\n[fetch]\nmirorr = "http://127.0.0.1:9/"\n')
    r = invoke(cohort, "--config", config, *command)
    assert r.code == 2, r.err
    line = one_error_line(r)
    assert f"{config}:3" in line and "fetch.mirorr" in line
    assert not report_folders(cohort)


@pytest.mark.parametrize(("text", "line_no", "key"), [
    ('min_priority = "low"\nstale_after_days = "soon"\n', 2, "stale_after_days"),
    ('store = "/tmp/x"\nmin_priority = 3\n', 2, "min_priority"),
    ('[panels.cardio]\ngenes = "MYH7"\n', 2, "panels.cardio.genes"),
])
def test_wrong_type_in_config_exits_2_naming_key_file_and_line(
        tmp_path: Path, text: str, line_no: int, key: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    r = invoke(tmp_path / "s", "--config", config, "config", "show")
    assert r.code == 2, r.err
    line = one_error_line(r)
    assert f"{config}:{line_no}" in line and key in line


def test_a_missing_config_file_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.toml"
    r = invoke(tmp_path / "s", "--config", missing, "config", "show")
    assert r.code == 2 and str(missing) in one_error_line(r)
    monkeypatch.setenv("VARREINTERP_CONFIG", str(missing))
    r = invoke(tmp_path / "s", "config", "show")
    assert r.code == 2 and str(missing) in one_error_line(r)


# ------------------------------------------------------------------------------ 5. stale guard
@pytest.fixture
def stale_30(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VARREINTERP_STALE_AFTER_DAYS", "30")  # the samples are from 2024


@pytest.mark.parametrize("command", ["annotate", "diff", "report"])
def test_stale_guard_warns_once(store: Path, tmp_path: Path, stale_30: None,
                                command: str) -> None:
    args: dict[str, list[str | Path]] = {
        "annotate": ["annotate", PATIENT, "--snapshot", OLD, "-f", "tsv"],
        "diff": ["diff", PATIENT, "--from", OLD, "-f", "tsv"],
        "report": ["report", PATIENT, "--from", OLD, "-o", tmp_path / "r.html"]}
    r = ok(invoke(store, *args[command]))
    lines = stale_lines(r.err)
    assert len(lines) == 1, r.err
    assert "WARNING" in lines[0] and "clinvar/GRCh38" in lines[0] and NEW in lines[0]


def test_no_stale_warning_within_the_limit(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VARREINTERP_STALE_AFTER_DAYS", "1000000")
    r = ok(invoke(store, "annotate", PATIENT, "--snapshot", OLD, "-f", "tsv"))
    assert stale_lines(r.err) == []


def test_stale_guard_warns_once_per_lineage_on_reanalyze(lab: Path, stale_30: None) -> None:
    ok(invoke(lab, "cohort", "add", TRIO, "--baseline", OLD))
    ok(invoke(lab, "cohort", "add", TRIO, "--baseline", f"{LAB}-GRCh38-2024-03-01"))
    r = ok(invoke(lab, "reanalyze"))
    lines = stale_lines(r.err)
    assert len(lines) == 2, r.err
    assert sorted("clinvar/GRCh38" in line for line in lines) == [False, True]
    assert sum(f"{LAB}/GRCh38" in line for line in lines) == 1


def test_fail_if_stale_exits_7_and_writes_nothing(cohort: Path, stale_30: None,
                                                  hook: HookServer) -> None:
    before = sorted(p.name for p in cohort.iterdir())
    r = invoke(cohort, "reanalyze", "--fail-if-stale", "--exit-code", "--notify", hook.url)
    assert r.code == 7, r.err
    assert r.out == ""
    errors = [line for line in r.err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1 and "stale" in errors[0]
    assert sorted(p.name for p in cohort.iterdir()) == before  # no reports/, no runs.jsonl
    assert report_folders(cohort) == []
    assert not (cohort / "runs.jsonl").exists()
    assert hook.posts == []
    reviewed = {row["patient"]: row["reviewed"]
                for row in json_rows(ok(invoke(cohort, "cohort", "list", "-f", "json")).out)}
    assert reviewed == {p: f"clinvar/GRCh38: {OLD}" for p in HIGH_PATIENTS}


# ------------------------------------------------------------------------------ 6. notifications
def delivered_run(store: Path) -> tuple[Path, dict[str, Any]]:
    folders = report_folders(store)
    assert len(folders) == 1, folders
    return folders[0], json.loads((folders[0] / "run.json").read_text())


def test_notify_posts_one_summary_naming_the_high_priority_patients(
        cohort: Path, hook: HookServer) -> None:
    r = invoke(cohort, "reanalyze", "--notify", hook.url)
    folder, run = delivered_run(cohort)  # the report is delivered whatever happens next
    assert len(hook.posts) == 1, r.err
    body = hook.posts[0].json()
    assert body["patients"]["high_priority"] == HIGH_PATIENTS
    assert (body["changes"]["high"], body["changes"]["medium"]) == (7, 7)
    assert body["run_id"] == run["run_id"]
    assert body["report_path"] == str(folder)
    text = hook.posts[0].body.decode().replace(str(folder), "")
    for finding in FINDINGS:
        assert finding not in text, finding
    assert r.code == 0, r.err
    assert [n["ok"] for n in run["notifications"]] == [True]


def test_notify_by_mail(cohort: Path, mailserver: tuple[Inbox, int]) -> None:
    inbox, port = mailserver
    r = invoke(cohort, "reanalyze", "--notify", f"smtp://127.0.0.1:{port}?to=lab@example.org")
    folder, run = delivered_run(cohort)
    assert len(inbox.messages) == 1, r.err
    recipients, message = inbox.messages[0]
    assert recipients == ["lab@example.org"]
    assert "4 patient(s) with high-priority changes" in str(message["Subject"])
    full = str(message.get_content()).replace("\r\n", "\n")
    body = full.replace(str(folder), "")
    listed = re.findall(r"^\s+([A-Z]+01)$", body, re.M)
    assert listed == HIGH_PATIENTS
    assert run["run_id"] in body and str(folder) in full
    for finding in FINDINGS:
        assert finding not in body, finding
    assert r.code == 0, r.err


def test_a_failed_notification_keeps_the_report_and_exits_8(
        cohort: Path, hook: HookServer, refused_port: int) -> None:
    dead = f"http://127.0.0.1:{refused_port}/hook"
    r = invoke(cohort, "reanalyze", "--notify", dead, "--notify", hook.url)
    folder, run = delivered_run(cohort)
    assert (folder / "changes.tsv").is_file()
    assert len(hook.posts) == 1  # the working target is told all the same
    outcomes = {n["target"]: n for n in run.get("notifications", [])}
    assert outcomes[dead]["ok"] is False and outcomes[dead]["error"]
    assert outcomes[hook.url]["ok"] is True
    assert r.code == 8, r.err
    assert any(dead in line for line in r.err.splitlines() if "ERROR" in line), r.err
    reviewed = {row["reviewed"]
                for row in json_rows(ok(invoke(cohort, "cohort", "list", "-f", "json")).out)}
    assert reviewed == {f"clinvar/GRCh38: {NEW}"}  # delivered, so recorded as reviewed


def test_nothing_changed_sends_nothing(cohort: Path, hook: HookServer) -> None:
    ok(invoke(cohort, "reanalyze"))
    ok(invoke(cohort, "reanalyze", "--exit-code", "--notify", hook.url))
    assert hook.posts == []
    assert len(report_folders(cohort)) == 1


# ------------------------------------------------------------------------------ 7. the CLI
def _commands() -> list[tuple[str, ...]]:
    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        found.append(path)
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()
REPORT_PLACEHOLDERS = {"{date}", "{snapshot}", "{run_id}"}  # documented in reanalyze -o


def test_the_command_tree_is_the_documented_one() -> None:
    assert {("annotate",), ("diff",), ("history",), ("report",), ("reanalyze",),
            ("snapshot", "fetch"), ("snapshot", "diff"), ("cohort", "add"),
            ("config", "show")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=[" ".join(p) or "varreinterp" for p in COMMANDS])
def test_help_has_a_description_an_example_and_no_placeholders(path: tuple[str, ...]) -> None:
    r = invoke(None, *path, "--help")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("Usage: varreinterp")
    assert "{" not in lines[0] and "<" not in lines[0], lines[0]
    description = r.out.split("\n\n")[1].strip()
    assert len(description.split()) >= 3 and not description.startswith("Options"), r.out
    examples = [line.strip() for line in lines
                if re.match(r"\s*Example( \([^)]*\))?: varreinterp ", line)]
    assert examples, f"no 'Example: varreinterp ...' line in\n{r.out}"
    if path:
        assert any(" ".join(path) in e for e in examples), examples
    assert not re.findall(r"<[a-z_]+>", r.out), r.out
    braces = set(re.findall(r"\{[^}]*\}", r.out))
    assert braces <= REPORT_PLACEHOLDERS, braces


# concept -> (canonical spellings every such option carries, spellings that mark the concept)
SPELLINGS = {
    "output": ({"-o", "--output"}, {"-o", "--output", "--out", "--output-file", "--outfile"}),
    "format": ({"--format", "-f"}, {"--format", "-f", "--fmt", "--output-format"}),
    "sample": ({"--sample"}, {"--sample", "--samples", "-s"}),
    "min-priority": ({"--min-priority"}, {"--min-priority", "--min_priority", "--priority",
                                          "--minimum-priority"}),
    "all": ({"--all"}, {"--all", "--show-all", "-a"}),
}


def test_shared_options_are_spelled_the_same_everywhere() -> None:
    root = typer.main.get_command(app)
    wrong = []
    for path in COMMANDS:
        command: Any = root
        for name in path:
            command = command.commands[name]
        for param in command.params:
            opts = set(getattr(param, "opts", [])) | set(getattr(param, "secondary_opts", []))
            for concept, (canonical, markers) in SPELLINGS.items():
                if opts & markers and not canonical <= opts:
                    wrong.append(f"{' '.join(path)}: {sorted(opts)} ({concept})")
    assert wrong == []


def test_reanalyze_out_is_an_alias_of_the_report_folder(cohort: Path, tmp_path: Path) -> None:
    target = tmp_path / "nightly"
    ok(invoke(cohort, "reanalyze", "--out", target))
    assert (target / "run.json").is_file() and (target / "changes.tsv").is_file()
    assert report_folders(cohort) == []


@pytest.mark.parametrize("option", [["--store", "S"], ["--config", "c.toml"], ["--quiet"]])
def test_a_global_option_after_the_command_gets_a_hint(option: list[str]) -> None:
    r = invoke(None, "annotate", PATIENT, *option)
    assert r.code == 2, r.err
    assert r.out == ""
    hints = [line for line in r.err.splitlines() if "hint" in line]
    assert len(hints) == 1, r.err
    assert "global options" in hints[0] and "before the command" in hints[0]
    assert option[0] in hints[0]
