"""Filters shape what `reanalyze` lists, never what it delivers (regression: a panel or
--pass-only used to mark patients reviewed while leaving their other changes out of the report,
so those changes were used up unseen, and a typo such as `--genes BRAC1` used up everything).

Contract pinned here, through the CLI against the sample releases (sample_vcfs/README.md):
- every change is recorded in changes.tsv, patients/<id>.tsv and run.json whatever the panel
  (`--genes` list/file/acmg-sf, `--regions`, a cohort group's panel) or `--pass-only`; the
  `in_panel` column (True/False, empty when no panel applies) and the `filter` column say
  which the listing left out, and run.json and the summary line count them;
- the listing (-f json), the notification and the HTML pages show only in-panel (and, with
  --pass-only, passing) changes; a later run without the filter finds nothing new;
- a gene symbol the user gave that no compared snapshot knows is a usage error (exit 2) naming
  it and the closest known symbol, before anything is recorded; the built-in acmg-sf is exempt.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from builders import store_with_sample_releases
from conftest import SAMPLES, CliResult, invoke, shared
from loopback import Hook, serving

from varreinterp.errors import UsageError
from varreinterp.panels import Panel, check_known_symbols, load_bed, panel_membership
from varreinterp.store import Store

OLD_VCF = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
NEW_VCF = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
PATIENT = SAMPLES / "patient_single.vcf.gz"
TRIO = SAMPLES / "trio.vcf"
PATIENTS = {"PATIENT01", "CHILD01", "MOTHER01", "FATHER01"}
EVERY_CHANGE = 18  # sample_vcfs/README.md, 2024-01-07 -> 2024-06-02, all four patients
LOWQUAL = ("PATIENT01", "17", 43071000)  # BRCA1 review change (low) of a FILTER=LowQual call
Row = dict[str, Any]


# ------------------------------------------------------------------------------ helpers
def ok(r: CliResult, code: int = 0) -> CliResult:
    assert r.code == code, f"exit {r.code}, expected {code}\nstdout: {r.out[-2000:]}\n" \
                           f"stderr: {r.err[-2000:]}"
    return r


def read_tsv(path: Path) -> list[Row]:
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


def listing(out: str) -> list[Row]:
    return [json.loads(ln) for ln in out.splitlines() if ln.strip()]


def bare(contig: str) -> str:
    return contig.removeprefix("chr")


def where(row: Row) -> tuple[str, str, int]:
    return str(row["patient"]), bare(str(row["chrom"])), int(row["pos"])


def without_mark(rows: list[Row]) -> Counter[tuple[tuple[str, str], ...]]:
    """The rows as a multiset, every column but in_panel."""
    return Counter(tuple(sorted((k, v) for k, v in r.items() if k != "in_panel"))
                   for r in rows)


def cards(page: Path) -> int:
    return len(re.findall(r'id="card-\d+"', page.read_text()))


def untouched(store: Path, registry_before: bytes) -> None:
    assert (store / "cohort" / "patients.json").read_bytes() == registry_before
    assert not (store / "reports").exists()
    assert not (store / "runs.jsonl").exists()


@dataclass(frozen=True)
class Filter:
    """A panel as the user writes it, and the same rule in plain Python (the oracle)."""

    name: str
    genes: frozenset[str] | None = None
    bed: str | None = None

    def args(self, folder: Path) -> list[str | Path]:
        out: list[str | Path] = []
        if self.name == "acmg-sf":
            out += ["--genes", "acmg-sf"]
        elif self.name == "file":
            assert self.genes is not None
            genes = folder / "panel genes.txt"  # a space in the path, a header, a comment
            genes.write_text("symbol\n# the lab's list\n" + "\n".join(sorted(self.genes)))
            out += ["--genes", genes]
        elif self.genes is not None:
            out += ["--genes", ",".join(g.lower() for g in sorted(self.genes))]
        if self.bed is not None:
            bed = folder / "panel.bed"
            bed.write_text(self.bed)
            out += ["--regions", bed]
        return out

    def contains(self, row: Row) -> bool:
        if self.genes is not None and not set(str(row["gene"]).split("|")) & self.genes:
            return False
        if self.bed is None:
            return True
        start0, span = int(row["pos"]) - 1, max(1, len(str(row["ref"])))
        return any(bare(c) == bare(str(row["chrom"])) and start0 < int(e)
                   and start0 + span > int(s)
                   for c, s, e in (ln.split("\t") for ln in self.bed.splitlines()))


# Published ACMG SF v3.x genes among the sample releases' changed genes (not read from the
# list the tool ships): CFTR is not on it.
ACMG_CHANGED = frozenset({"BRCA1", "BRCA2", "MYH7", "MLH1", "TP53", "LDLR", "SCN5A"})
FILTERS = [
    Filter("list", frozenset({"BRCA1", "BRCA2"})),
    Filter("file", frozenset({"MYH7", "MLH1", "BRCA2"})),
    Filter("acmg-sf", ACMG_CHANGED),
    # the BRCA2 SNV exactly (0-based, half-open) and a stretch of chr17 around BRCA1 and TP53
    Filter("regions", bed="chr13\t32332399\t32332400\n17\t7000000\t43100000\n"),
    Filter("genes-and-regions", frozenset({"BRCA1", "LDLR"}),
           bed="17\t43000000\t43100000\n19\t11000000\t11200000\n"),
]


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def releases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return store_with_sample_releases(tmp_path_factory.mktemp("releases") / "store")


@pytest.fixture(scope="module")
def base(releases: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("base") / "store"
    shutil.copytree(releases, store)
    ok(invoke(store, "cohort", "add", PATIENT, TRIO, "--baseline", OLD))
    return store


@pytest.fixture(scope="module")
def oracle(base: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Row]:
    """changes.tsv of the same run without any filter."""
    folder = tmp_path_factory.mktemp("oracle")
    store = folder / "store"
    shutil.copytree(base, store)
    ok(invoke(store, "reanalyze", "-o", folder / "out"))
    rows = read_tsv(folder / "out" / "changes.tsv")
    assert len(rows) == EVERY_CHANGE and {r["in_panel"] for r in rows} == {""}
    return rows


@pytest.fixture
def cohort(base: Path, tmp_path: Path) -> Path:
    store = tmp_path / "store"
    shutil.copytree(base, store)
    return store


@pytest.fixture
def hook() -> Iterator[Hook]:
    with serving() as server:
        yield server


def assert_nothing_left(store: Path, *config: str | Path) -> None:
    """The next run without any filter finds nothing: the filtered run delivered it all."""
    r = ok(invoke(store, *config, "reanalyze", "--min-priority", "low"))
    assert "nothing changed" in r.err
    assert all(set(p["reviewed"].values()) == {NEW} for p in json.loads(
        (store / "cohort" / "patients.json").read_text())["patients"].values())


# ------------------------------------------------------------------------------ panels
@pytest.mark.parametrize("panel", FILTERS, ids=[f.name for f in FILTERS])
def test_a_panel_records_every_change_and_lists_only_its_own(
        cohort: Path, oracle: list[Row], tmp_path: Path, hook: Hook, panel: Filter) -> None:
    inside = [r for r in oracle if panel.contains(r)]
    assert 0 < len(inside) < len(oracle)  # a real restriction
    out = tmp_path / "out"
    r = ok(invoke(cohort, "reanalyze", *panel.args(tmp_path), "--min-priority", "low",
                  "-f", "json", "-o", out, "--notify", hook.url))
    rows = read_tsv(out / "changes.tsv")
    # recorded: every change, exactly as without the panel, each marked
    assert without_mark(rows) == without_mark(oracle)
    assert {where(x): x["in_panel"] for x in rows} == \
        {where(x): str(panel.contains(x)) for x in rows}
    per_patient = [x for pid in PATIENTS for x in read_tsv(out / "patients" / f"{pid}.tsv")]
    assert Counter(map(str, per_patient)) == Counter(map(str, rows))
    # listed: the in-panel ones only (terminal, summary, notification, HTML pages)
    assert sorted(map(where, listing(r.out))) == sorted(map(where, inside))
    left_out = Counter(x["patient"] for x in rows if x["in_panel"] == "False")
    assert f"{len(rows) - len(inside)} change(s) outside the panels of {len(left_out)} " \
           "patient(s)" in r.err
    (note,) = [json.loads(b) for b in hook.bodies]
    assert note["changes"]["total"] == len(inside)
    for pid in PATIENTS:
        page = out / "patients" / f"{pid}.html"
        assert cards(page) == sum(1 for x in inside if x["patient"] == pid), pid
        if left_out[pid]:
            assert f"{left_out[pid]} change(s) outside this patient" in page.read_text()
    report = json.loads((out / "run.json").read_text())
    assert report["changes"]["total"] == EVERY_CHANGE
    assert report["changes"]["listed"] == len(inside)
    assert report["outside_panel"] == dict(left_out)
    assert report["not_listed"] == {"outside_panel": len(rows) - len(inside),
                                    "failing_filter": 0, "below_min_priority": 0}
    assert [p["patients"] for p in report["panels"]] == [len(PATIENTS)]
    assert_nothing_left(cohort)


def test_a_panel_with_no_change_inside_still_delivers_everything(cohort: Path,
                                                                tmp_path: Path) -> None:
    """APC is in both releases but none of its variants changed for these patients: every
    change is outside the panel, recorded all the same; --exit-code says a report came."""
    out = tmp_path / "out"
    r = ok(invoke(cohort, "reanalyze", "--genes", "APC", "--exit-code", "-o", out), 1)
    rows = read_tsv(out / "changes.tsv")
    assert len(rows) == EVERY_CHANGE and {x["in_panel"] for x in rows} == {"False"}
    assert "; 0 change(s) at or above medium" in r.err
    assert f"{EVERY_CHANGE} change(s) outside the panels" in r.err
    assert_nothing_left(cohort)


GROUP_CONFIG = """[panels.cardio]
genes = [{genes}]

[groups.heart]
panel = "cardio"
"""


def test_a_group_panel_marks_its_patients_and_leaves_the_others_unmarked(
        releases: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(releases, store)
    config = tmp_path / "config.toml"
    config.write_text(GROUP_CONFIG.format(genes='"MYH7", "SCN5A"'))
    ok(invoke(store, "--config", config, "cohort", "add", TRIO, "--baseline", OLD,
              "--group", "heart"))
    ok(invoke(store, "--config", config, "cohort", "add", PATIENT, "--baseline", OLD))
    out = tmp_path / "out"
    ok(invoke(store, "--config", config, "reanalyze", "-o", out))
    rows = read_tsv(out / "changes.tsv")
    assert len(rows) == EVERY_CHANGE
    marks = {where(x): x["in_panel"] for x in rows}
    assert {m for (pid, _, _), m in marks.items() if pid == "PATIENT01"} == {""}
    assert {k for k, m in marks.items() if m == "True"} == \
        {(x["patient"], bare(x["chrom"]), int(x["pos"])) for x in rows
         if x["patient"] != "PATIENT01" and x["gene"] in {"MYH7", "SCN5A"}}
    report = json.loads((out / "run.json").read_text())
    assert [(p["name"], p["patients"]) for p in report["panels"]] == [("cardio", 3)]
    # (the group's panel still applies, so list everything else on the command line)
    assert_nothing_left(store, "--config", config)


# ------------------------------------------------------------------------------ --pass-only
def test_pass_only_records_the_failed_call_and_lists_the_rest(
        cohort: Path, oracle: list[Row], tmp_path: Path, hook: Hook) -> None:
    out = tmp_path / "out"
    r = ok(invoke(cohort, "reanalyze", "--pass-only", "--min-priority", "low", "-f", "json",
                  "-o", out, "--notify", hook.url))
    rows = read_tsv(out / "changes.tsv")
    assert without_mark(rows) == without_mark(oracle)
    failed = [x for x in rows if x["filter"] not in ("PASS", ".", "")]
    assert [(where(x), x["filter"]) for x in failed] == [(LOWQUAL, "LowQual")]
    assert LOWQUAL in {where(x) for x in read_tsv(out / "patients" / "PATIENT01.tsv")}
    listed = listing(r.out)
    assert len(listed) == EVERY_CHANGE - 1 and LOWQUAL not in set(map(where, listed))
    assert "1 change(s) in calls failing FILTER (--pass-only) in 1 patient(s)" in r.err
    assert f"{EVERY_CHANGE - 1} change(s) at or above low" in r.err
    report = json.loads((out / "run.json").read_text())
    assert report["pass_only"] is True
    assert report["failing_filter"] == {"PATIENT01": 1}
    assert report["not_listed"] == {"outside_panel": 0, "failing_filter": 1,
                                    "below_min_priority": 0}
    assert report["changes"]["total"] == EVERY_CHANGE
    assert report["changes"]["per_patient"]["PATIENT01"] == 5
    (note,) = [json.loads(b) for b in hook.bodies]
    assert note["changes"]["total"] == EVERY_CHANGE - 1 and note["changes"]["low"] == 3
    page = out / "patients" / "PATIENT01.html"
    assert cards(page) == 4
    assert "1 change(s) in calls that failed FILTER are not shown here" in page.read_text()
    assert_nothing_left(cohort)


def test_panel_filter_and_priority_count_each_change_once(cohort: Path,
                                                          tmp_path: Path) -> None:
    """BRCA1 (a PASS high change and the LowQual low one) at --min-priority high with
    --pass-only: listed + outside panel + failing FILTER + below priority = every change."""
    out = tmp_path / "out"
    r = ok(invoke(cohort, "reanalyze", "--genes", "BRCA1", "--pass-only", "--min-priority",
                  "high", "-f", "json", "-o", out))
    assert [where(x) for x in listing(r.out)] == [("PATIENT01", "17", 43057100)]
    report = json.loads((out / "run.json").read_text())
    assert report["not_listed"] == {"outside_panel": EVERY_CHANGE - 2, "failing_filter": 1,
                                    "below_min_priority": 0}
    assert sum(report["not_listed"].values()) + report["changes"]["listed"] == EVERY_CHANGE
    rows = read_tsv(out / "changes.tsv")
    assert len(rows) == EVERY_CHANGE
    assert {(where(x), x["filter"]) for x in rows if x["in_panel"] == "True"} == \
        {(("PATIENT01", "17", 43057100), "PASS"), (LOWQUAL, "LowQual")}
    assert_nothing_left(cohort)


def test_a_dry_run_lists_like_a_real_run_and_records_nothing(cohort: Path) -> None:
    before = (cohort / "cohort" / "patients.json").read_bytes()
    r = ok(invoke(cohort, "reanalyze", "--dry-run", "--genes", "BRCA2", "--pass-only",
                  "--min-priority", "low", "-f", "json"))
    assert sorted(map(where, listing(r.out))) == [("MOTHER01", "13", 32332400),
                                                   ("PATIENT01", "13", 32332400)]
    assert {x["in_panel"] for x in listing(r.out)} == {True}
    assert f"{EVERY_CHANGE - 2} change(s) outside the panels of 4 patient(s), not listed" \
        in r.err
    assert "recorded in the report" not in r.err  # nothing was
    untouched(cohort, before)


# ------------------------------------------------------------------------------ unknown symbols
@pytest.mark.parametrize(("how", "named"), [
    ("list", "BRAC1 (--genes; did you mean BRCA1?)"),
    ("one-of-two", "BRAC1 (--genes; did you mean BRCA1?)"),
    ("file", "BRAC1 (genes file "),
    ("config-panel", "BRAC1 (panel cardio; did you mean BRCA1?)"),
    ("group-panel", "SCN5X (panel cardio; did you mean SCN5A?)"),
], ids=["list", "one-of-two", "file", "config-panel", "group-panel"])
def test_an_unknown_symbol_is_refused_before_anything_is_recorded(
        cohort: Path, releases: Path, tmp_path: Path, how: str, named: str) -> None:
    config = tmp_path / "config.toml"
    genes_file = tmp_path / "genes.txt"
    genes_file.write_text("BRCA2\nBRAC1\n")
    config.write_text(GROUP_CONFIG.format(
        genes='"MYH7", "SCN5X"' if how == "group-panel" else '"BRCA2", "BRAC1"'))
    options: dict[str, list[str | Path]] = {
        "list": ["--genes", "BRAC1"], "one-of-two": ["--genes", "BRCA2,BRAC1"],
        "file": ["--genes", genes_file], "config-panel": ["--genes", "cardio"],
        "group-panel": []}
    args = options[how]
    if how == "group-panel":  # a patient of the group must be in the run
        cohort = tmp_path / "grouped"
        shutil.copytree(releases, cohort)
        ok(invoke(cohort, "--config", config, "cohort", "add", TRIO, "--baseline", OLD,
                  "--group", "heart"))
    before = (cohort / "cohort" / "patients.json").read_bytes()
    for dry in ([], ["--dry-run"]):
        r = invoke(cohort, "--config", config, "reanalyze", *args, *dry)
        assert r.code == 2, r.err
        (line,) = r.err.strip().splitlines()
        assert line.startswith("varreinterp: error: unknown gene symbol ") and named in line
        assert OLD in line and NEW in line  # the snapshots it looked in
        assert re.findall(r"(\S+) \((?:--genes|genes file|panel)", line) == [named.split()[0]]
        assert r.out == ""
        untouched(cohort, before)


def test_symbols_are_checked_when_everyone_is_up_to_date(cohort: Path) -> None:
    ok(invoke(cohort, "reanalyze"))
    before = (cohort / "cohort" / "patients.json").read_bytes()
    r = invoke(cohort, "reanalyze", "--genes", "BRCA1,ZZZQQQ9")
    assert r.code == 2, r.err
    assert "ZZZQQQ9 (--genes)" in r.err and "did you mean" not in r.err  # nothing near
    assert (cohort / "cohort" / "patients.json").read_bytes() == before


@pytest.mark.parametrize("genes", ["acmg-sf", "brca1", "EPM2AIP1", "MLH1,MT-ND5"])
def test_known_and_built_in_symbols_pass(cohort: Path, genes: str) -> None:
    """acmg-sf names genes no sample release holds (exempt); case does not matter; a symbol
    only seen inside a multi-gene field (MLH1|EPM2AIP1) is known."""
    ok(invoke(cohort, "reanalyze", "--dry-run", "--genes", genes))


def test_regions_alone_need_no_symbol_check(cohort: Path, tmp_path: Path) -> None:
    bed = tmp_path / "nowhere.bed"
    bed.write_text("22\t1\t2\n")  # no sample variant there: every change outside
    r = ok(invoke(cohort, "reanalyze", "--regions", bed, "--dry-run"))
    assert f"{EVERY_CHANGE} change(s) outside the panels" in r.err


# ------------------------------------------------------------------------------ core helpers
def test_panel_membership_agrees_with_contains(tmp_path: Path) -> None:
    bed = tmp_path / "r.bed"
    bed.write_text("chr17\t43071000\t43071001\n13\t100\t200\n")
    regions = load_bed(bed)
    genes = Panel("g", "genes", frozenset({"BRCA1", "EPM2AIP1"}))
    variants: list[tuple[str, int, str, str | None]] = [
        ("17", 43071000, "A", "BRCA1"), ("chr17", 43071001, "A", "brca1"),
        ("13", 100, "GA", None), ("13", 101, "A", "X;Y"), ("3", 36993550, "C", "MLH1|EPM2AIP1"),
        ("17", 43071000, "A", "BRCA2")]
    frame = pd.DataFrame(variants, columns=["chrom", "pos", "ref", "gene"],
                         index=[10, 11, 12, 13, 14, 15])
    for panel in (regions, genes, regions.intersect(genes)):
        got = panel_membership(panel, frame)
        assert list(got.index) == list(frame.index)
        expected = [panel.contains(*v) for v in variants]
        assert list(got) == expected and 0 < sum(expected) < len(variants)
    assert len(panel_membership(genes, frame.iloc[:0])) == 0


def test_check_known_symbols_on_real_clinvar_releases(tmp_path: Path) -> None:
    """The shared helper the other --genes commands can call: real GRCh37 ClinVar windows
    (GENEINFO `SYMBOL:ID|...`) around ISG15/AGRN."""
    releases = [shared("clinvar/GRCh37/clinvar_20191202.chr1_949k-977k.vcf.gz"),
                shared("clinvar/GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz")]
    root = tmp_path / "store"
    for release in releases:
        ok(invoke(root, "snapshot", "add", release))
    store = Store(root)
    snaps = [store.use(s.name) for s in store.lineage("clinvar/GRCh37")]
    assert len(snaps) == 2
    from varreinterp.panels import acmg_sf, parse_genes_option

    check_known_symbols([parse_genes_option("agrn,ISG15"), acmg_sf(), None], snaps)
    with pytest.raises(UsageError, match=r"AGNR \(--genes; did you mean AGRN\?\)") as caught:
        check_known_symbols([parse_genes_option("AGRN,AGNR")], snaps)
    assert "AGRN," not in str(caught.value)
    check_known_symbols([parse_genes_option("AGNR")], [])  # nothing compared: nothing to check


# ------------------------------------------------------------------------------ page rendering
def test_pages_rendered_in_worker_processes_equal_pages_rendered_here(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large runs render their pages in spawned worker processes while this process writes
    the TSVs; the pages must be those the in-process path writes, for every patient, and a
    panel's notes must survive the trip."""
    import multiprocessing

    from varreinterp.output import reports

    contexts: list[str] = []
    real_context = multiprocessing.get_context
    monkeypatch.setattr(multiprocessing, "get_context",
                        lambda method=None: contexts.append(str(method)) or real_context(method))
    folders = {}
    for mode, threshold in (("here", 10**9), ("workers", 1)):
        store = tmp_path / mode / "store"
        shutil.copytree(base, store)
        monkeypatch.setattr(reports, "PARALLEL_PAGES", threshold)
        monkeypatch.setattr(reports.os, "cpu_count", lambda: 2)
        out = tmp_path / mode / "out"
        ok(invoke(store, "reanalyze", "--genes", "BRCA1,BRCA2,TP53", "--min-priority", "medium",
                  "-o", out))
        folders[mode] = out
        assert contexts == ([] if mode == "here" else ["spawn"])  # the path under test ran

    def page(folder: Path, pid: str) -> str:
        text = (folder / "patients" / f"{pid}.html").read_text()
        text = re.sub(r"<th>Generated</th><td>[^<]*", "", text)
        return text.replace(str(folder.parent), "RUN")  # the command names store and -o

    for pid in PATIENTS:
        assert page(folders["here"], pid) == page(folders["workers"], pid), pid
        assert (folders["here"] / "patients" / f"{pid}.tsv").read_text().split("\n", 1)[1] \
            == (folders["workers"] / "patients" / f"{pid}.tsv").read_text().split("\n", 1)[1]
    assert sum(cards(folders["workers"] / "patients" / f"{pid}.html") for pid in PATIENTS) > 0
