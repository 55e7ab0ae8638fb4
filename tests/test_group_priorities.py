"""A cohort group's own `min_priority` (config `[groups.NAME] min_priority`) is its patients'
listing threshold on `reanalyze`, and every count shows every priority.

Regressions of two defects found by the tester (/tmp/hunt-cohort/repro):
- group_min_priority.sh: reanalyze used one run-wide threshold, so a group asking for its low
  changes got them only counted, and its patients were marked reviewed with those changes
  never listed. Precedence now: an explicit --min-priority for everyone, else the patient's
  group's, else the global setting (environment or file), else medium.
- html_counts.sh: the HTML summary printed 0 for priorities below the threshold ("Medium: 0"
  with 3 medium changes); it now shows the true count, marked "(not listed)".

One hand-made pair of GRCh38 releases and three patients carrying the same four changed
sites: G1 in group `lowgrp` (min_priority low), H1 in group `plain` (no min_priority of its
own), N1 in no group.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from builders import write_clinvar, write_patient
from conftest import CliResult, invoke
from loopback import Hook, serving

A, B = "clinvar-GRCh38-2024-01-01", "clinvar-GRCh38-2024-03-01"
# (chrom, pos, ref, alt, CLNSIG in A, stars in A, CLNSIG in B, stars in B) -> priority
SITES = [
    ("chr1", 1000, "A", "G", "Uncertain_significance", 1, "Pathogenic", 1),  # high
    ("chr1", 2000, "C", "T", "Uncertain_significance", 1, "Benign", 1),  # medium
    ("chr1", 3000, "G", "A", "Pathogenic", 0, "Likely_pathogenic", 1),  # low (within tier)
    ("chr1", 4000, "T", "C", "Benign", 1, "Benign", 3),  # low (review only)
]
PRIORITIES = {1000: "high", 2000: "medium", 3000: "low", 4000: "low"}
EVERY = {1000, 2000, 3000, 4000}
AT_OR_ABOVE_MEDIUM = {1000, 2000}
CONFIG = """{top}
[panels.all]
genes = ["GENE1"]

[groups.lowgrp]
panel = "all"
min_priority = "low"

[groups.plain]
panel = "all"
"""
MEMBERS = {"G1": "lowgrp", "H1": "plain", "N1": None}


def ok(r: CliResult, code: int = 0) -> CliResult:
    assert r.code == code, f"exit {r.code}, expected {code}\nstdout: {r.out[-2000:]}\n" \
                           f"stderr: {r.err[-2000:]}"
    return r


def read_tsv(path: Path) -> list[dict[str, str]]:
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"), strict=True)) for ln in lines[1:]]


def listed(text: str) -> dict[str, set[int]]:
    """Patient -> positions of the rows a `--format json` reanalysis listed."""
    out: dict[str, set[int]] = {}
    for line in text.splitlines():
        row = json.loads(line)
        out.setdefault(str(row["patient"]), set()).add(int(row["pos"]))
    return out


def page_text(path: Path) -> str:
    """The visible text of an HTML page, whitespace collapsed."""
    text = re.sub(r"<style.*?</style>", " ", path.read_text(), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", text)).split())


def counts_line(path: Path) -> str:
    text = page_text(path)
    start = text.index("High:")
    return text[start:text.index("Showing", start)].strip()


def cards(path: Path) -> int:
    return len(re.findall(r'<article class="card ', path.read_text()))


# ------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding releases A and B and the three registered patients (copied per test:
    a reanalysis moves them)."""
    root = tmp_path_factory.mktemp("groups")
    write_config(root / "config.toml")
    store = root / "store"
    for name, date, first in (("a.vcf", "2024-01-01", True), ("b.vcf", "2024-03-01", False)):
        records = [(c, p, r, x, s1 if first else s2, n1 if first else n2, "GENE1", "Disease")
                   for c, p, r, x, s1, n1, s2, n2 in SITES]
        ok(invoke(store, "snapshot", "add", write_clinvar(root / name, records, date=date)))
    calls = [f"{c} {p} . {r} {x} 50 PASS . GT 0/1" for c, p, r, x, *_ in SITES]
    for pid, group in MEMBERS.items():
        vcf = write_patient(root / f"{pid}.vcf", [pid], calls,
                            extra_header="##reference=GRCh38")
        ok(invoke(store, "--config", root / "config.toml", "cohort", "add", vcf,
                  "--baseline", A, *(["--group", group] if group else [])))
    return root


def write_config(path: Path, top: str = "") -> Path:
    path.write_text(CONFIG.format(top=top))
    return path


@pytest.fixture
def store(base: Path, tmp_path: Path) -> Path:
    shutil.copytree(base / "store", tmp_path / "store")
    return tmp_path / "store"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "config.toml")


@pytest.fixture
def hook() -> Iterator[Hook]:
    with serving() as server:
        yield server


# ------------------------------------------------------------------------------ the listing
def test_the_builders_give_each_priority(store: Path, config: Path) -> None:
    """(Guards the fixture: the sites have the priorities the other tests count on.)"""
    r = ok(invoke(store, "--config", config, "reanalyze", "--dry-run", "-f", "json",
                  "--min-priority", "low"))
    rows = [json.loads(line) for line in r.out.splitlines()]
    assert {(str(x["patient"]), int(x["pos"]), x["priority"]) for x in rows} == {
        (pid, pos, priority) for pid in MEMBERS for pos, priority in PRIORITIES.items()}


def test_a_group_threshold_lists_its_patients_changes_and_counts_the_others(
        store: Path, config: Path, hook: Hook) -> None:
    out = store.parent / "out"
    r = ok(invoke(store, "--config", config, "reanalyze", "-f", "json", "-o", out,
                  "--exit-code", "--notify", hook.url), 1)
    assert listed(r.out) == {"G1": EVERY, "H1": AT_OR_ABOVE_MEDIUM, "N1": AT_OR_ABOVE_MEDIUM}
    assert ("8 change(s) at or above the min_priority of each patient's group ((no group): "
            "medium, lowgrp: low, plain: medium)") in r.err
    assert "4 lower-priority change(s) recorded in the report" in r.err
    # Every change is recorded, listed or not.
    assert {(x["patient"], int(x["pos"])) for x in read_tsv(out / "changes.tsv")} == {
        (pid, pos) for pid in MEMBERS for pos in EVERY}
    for pid in MEMBERS:
        assert {int(x["pos"]) for x in read_tsv(out / "patients" / f"{pid}.tsv")} == EVERY
    run = json.loads((out / "run.json").read_text())
    assert run["min_priority_listed"] == "per group"
    assert run["min_priority_by_group"] == {"(no group)": "medium", "lowgrp": "low",
                                            "plain": "medium"}
    assert run["changes"]["total"] == 12 and run["changes"]["listed"] == 8
    assert run["changes"]["by_priority"] == {"high": 3, "medium": 3, "low": 6}
    assert run["not_listed"] == {"outside_panel": 0, "failing_filter": 0,
                                 "below_min_priority": 4}
    # The notification has one threshold, the lowest (the group's): at it, every low change
    # is counted, not only the group's (which would read "low: 2" while six exist).
    (note,) = [json.loads(b) for b in hook.bodies]
    assert note["min_priority"] == "low"
    assert note["changes"] == {"total": 12, "high": 3, "medium": 3, "low": 6}
    # Delivered once: everyone moved on, nothing is left for the next run.
    r = ok(invoke(store, "--config", config, "reanalyze", "--min-priority", "low",
                  "--exit-code"))
    assert "nothing changed" in r.err


def test_group_pages_list_its_low_changes_and_others_count_them(store: Path,
                                                                config: Path) -> None:
    out = store.parent / "out"
    ok(invoke(store, "--config", config, "reanalyze", "-o", out))
    pages = out / "patients"
    assert cards(pages / "G1.html") == 4
    assert counts_line(pages / "G1.html") == "High: 1 Medium: 1 Low: 2"
    assert "at or above low priority" in page_text(pages / "G1.html")
    for pid in ("H1", "N1"):
        assert cards(pages / f"{pid}.html") == 2
        assert counts_line(pages / f"{pid}.html") == "High: 1 Medium: 1 Low: 2 (not listed)"
        assert "2 lower-priority change(s) (below medium)" in page_text(pages / f"{pid}.html")


def test_an_explicit_min_priority_wins_for_every_patient(store: Path, config: Path) -> None:
    r = ok(invoke(store, "--config", config, "reanalyze", "--dry-run", "-f", "json",
                  "--min-priority", "medium"))
    assert listed(r.out) == {pid: AT_OR_ABOVE_MEDIUM for pid in MEMBERS}
    assert "6 change(s) at or above medium in 3 patient(s)" in r.err
    out = store.parent / "out"
    ok(invoke(store, "--config", config, "reanalyze", "--min-priority", "high", "-o", out,
              "--exit-code"), 1)
    run = json.loads((out / "run.json").read_text())
    assert run["min_priority_listed"] == "high"
    assert run["min_priority_by_group"] == {"(no group)": "high", "lowgrp": "high",
                                            "plain": "high"}
    assert run["not_listed"]["below_min_priority"] == 9
    assert counts_line(out / "patients" / "G1.html") == \
        "High: 1 Medium: 1 (not listed) Low: 2 (not listed)"


@pytest.mark.parametrize("where", ["file", "environment"])
def test_the_global_setting_applies_outside_groups_with_their_own(
        store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """A global min_priority (file or $VARREINTERP_MIN_PRIORITY) is the default of patients in
    no group and of groups without their own; a group's own still applies to its patients."""
    if where == "file":
        config = write_config(tmp_path / "config.toml", top='min_priority = "high"\n')
    else:
        config = write_config(tmp_path / "config.toml")
        monkeypatch.setenv("VARREINTERP_MIN_PRIORITY", "high")
    r = ok(invoke(store, "--config", config, "reanalyze", "--dry-run", "-f", "json"))
    assert listed(r.out) == {"G1": EVERY, "H1": {1000}, "N1": {1000}}


def test_without_a_group_threshold_the_run_has_one(store: Path, tmp_path: Path) -> None:
    """The same patients with no group min_priority at all: one threshold, said as before."""
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(top="").replace('min_priority = "low"\n', ""))
    out = tmp_path / "out"
    r = ok(invoke(store, "--config", config, "reanalyze", "-f", "json", "-o", out))
    assert listed(r.out) == {pid: AT_OR_ABOVE_MEDIUM for pid in MEMBERS}
    assert "6 change(s) at or above medium in 3 patient(s)" in r.err
    run = json.loads((out / "run.json").read_text())
    assert run["min_priority_listed"] == "medium"
    assert run["not_listed"]["below_min_priority"] == 6


# ------------------------------------------------------------------------------ report page
def test_the_report_page_counts_every_priority(store: Path, base: Path, tmp_path: Path) -> None:
    page = tmp_path / "N1.html"
    ok(invoke(store, "report", base / "N1.vcf", "--from", A, "--to", B, "--min-priority", "high",
              "-o", page))
    assert counts_line(page) == "High: 1 Medium: 1 (not listed) Low: 2 (not listed)"
    assert cards(page) == 1
    assert re.findall(r'<li class="count [a-z -]+"', page.read_text()) == [
        '<li class="count high"', '<li class="count medium not-listed"',
        '<li class="count low not-listed"']
    ok(invoke(store, "report", base / "N1.vcf", "--from", A, "--to", B, "--all", "-o", page))
    assert counts_line(page) == "High: 1 Medium: 1 Low: 2" and cards(page) == 4
