"""The nightly cohort: `cohort add/list/show/remove/status` and `reanalyze`
(contract: notes/nightly_semantics.md).

* Real files (../shared/data, skipped when absent): the 1000 Genomes 16-sample exome against the
  ClinVar GRCh37 2019-12-02 -> 2023-07-10 pair, and the GIAB HG004/HG006 subsets against the
  MacArthur 2017-02-02 -> 2018-03 pair. What `reanalyze` records must be exactly what
  `diff --all` reports for the same VCFs and snapshots (every priority), and a second run must
  deliver nothing (no report folder, one runs.jsonl line).
* The bundled sample_vcfs against the changes their README lists, at every priority.
* Robustness: missing, moved or changed VCFs (the cohort index is used; a changed file is
  refused without --replace), a missing or damaged cohort index (exit 4, nothing delivered),
  the store lock held by another process (and left by a dead one), a failure between the report
  folder and the registry, and `kill -9` at any moment of a run on a moderately large generated
  cohort.
"""

from __future__ import annotations

import csv
import gc
import hashlib
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from builders import (
    KEYS_SUFFIX,
    IndexRow,
    bins_dir,
    index_files,
    index_rows,
    rows_files,
    sql_files,
)
from conftest import MAPPINGS, SAMPLES, CliResult, invoke, shared

Cli = Callable[..., CliResult]
Row = dict[str, Any]
Key = tuple[Any, ...]

C37_OLD = "clinvar/GRCh37/clinvar_20191202.chr1_949k-977k.vcf.gz"
C37_NEW = "clinvar/GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz"
S37_OLD, S37_NEW = "clinvar-GRCh37-2019-12-02", "clinvar-GRCh37-2023-07-10"
KGENOMES = "patients/GRCh37/1kg_exome.16_samples.vcf"
MAC17 = "clinvar/custom_format/macarthur_clinvar_alleles.b38.release20170202.vcf"
MAC18 = "clinvar/custom_format/macarthur_clinvar_alleles.b38.release201803.vcf"
M_OLD, M_NEW = "macarthur-GRCh38-2017-02-02", "macarthur-GRCh38-2018-03-01"
GIAB = {"HG004": "patients/GRCh38/HG004.giab.chr1_0.6-1.3Mb.vcf.gz",
        "HG006": "patients/GRCh38/HG006.giab.chr1_0.6-1.3Mb.vcf.gz"}

OLD_VCF = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
NEW_VCF = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
LINEAGE = "clinvar/GRCh38"

# sample_vcfs/README.md, "Expected changes": every change per patient, as (contig without chr,
# pos, ref, alt, change, priority). The renames (RENAME, NOCLASS, NOSINGLE) are no change at all.
UP1 = ("13", 32332400, "G", "A", "upgrade", "high")
UP2 = ("3", 37025900, "A", "G", "upgrade", "high")
DOWN = ("14", 23415300, "G", "A", "downgrade", "high")
LB2VUS = ("3", 38551200, "T", "C", "upgrade", "medium")  # benign < uncertain: toward pathogenic
VUS2CONF = ("19", 11102700, "C", "T", "conflict", "medium")
CONF2LB = ("7", 117509100, "G", "A", "resolved", "medium")
GONE = ("7", 117590501, "CTG", "C", "gone", "high")
NEW1 = ("17", 43057100, "G", "A", "new", "high")
NEW2 = ("11", 2570700, "A", "AGC", "new", "medium")  # absent -> VUS; nobody carries it
LP2P = ("17", 7675990, "CA", "C", "reclassified", "low")  # within the pathogenic tier
REV1 = ("17", 43071000, "A", "G", "review", "low")  # 1 -> 3 stars (PATIENT01, FILTER=LowQual)
REV2 = ("19", 11113400, "G", "A", "review", "low")  # 1 -> 2 stars (CHILD01's ./1 is no call:
#                                                      this tool's half-call policy, test_annotate)
EXPECTED = {  # medium and high: what the terminal lists at the default --min-priority medium
    "PATIENT01": {UP1, DOWN, GONE, NEW1},
    "CHILD01": {UP2, LB2VUS, VUS2CONF, CONF2LB},
    "MOTHER01": {UP1, VUS2CONF, CONF2LB},
    "FATHER01": {DOWN, LB2VUS, CONF2LB},
}
LOW = {"PATIENT01": {REV1}, "CHILD01": {LP2P}, "MOTHER01": {REV2}, "FATHER01": {LP2P}}
EXPECTED_ALL = {p: EXPECTED[p] | LOW[p] for p in EXPECTED}  # what every report records
SAMPLE_TOTAL = sum(len(v) for v in EXPECTED.values())  # 14
SAMPLE_ALL = sum(len(v) for v in EXPECTED_ALL.values())  # 18


# ------------------------------------------------------------------------------ helpers
def ok(r: CliResult, code: int = 0) -> CliResult:
    assert r.code == code, f"exit {r.code}, expected {code}\nstdout: {r.out[-2000:]}\n" \
                           f"stderr: {r.err[-2000:]}"
    return r


def parse_tsv(text: str) -> list[Row]:
    """TSV rows (after any '#' provenance line); empty cells as None."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    return [{k: (v if v != "" else None) for k, v in row.items()}
            for row in csv.DictReader(lines, delimiter="\t")]


def read_tsv(path: Path) -> list[Row]:
    return parse_tsv(path.read_text())


def tsv_rows_sorted(path: Path) -> list[tuple[str, ...]]:
    """Header and sorted rows, after the '#' provenance line (which names the run)."""
    with open(path, newline="") as fh:
        assert fh.readline().startswith("#tool=varreinterp ")
        rows = list(csv.reader(fh, delimiter="\t"))
    return [tuple(rows[0])] + sorted(tuple(r) for r in rows[1:])


def change_key(r: Row, sample_field: str = "sample") -> Key:
    return (r[sample_field], r["chrom"], int(r["pos"]), r["ref"], r["alt"], r["change"],
            r["priority"], r["before"] or None, r["after"] or None)


def short_key(r: Row) -> Key:
    chrom = str(r["chrom"])
    chrom = chrom[3:] if chrom.startswith("chr") else chrom
    return (chrom, int(r["pos"]), r["ref"], r["alt"], r["change"], r["priority"])


def by_patient(rows: list[Row]) -> dict[str, set[Key]]:
    out: dict[str, set[Key]] = {}
    for r in rows:
        out.setdefault(str(r["patient"]), set()).add(short_key(r))
    return out


def only(expected: dict[str, set[Key]], *patients: str) -> dict[str, set[Key]]:
    return {p: expected[p] for p in patients}


def diff_rows(r: CliResult) -> list[Row]:
    ok(r)
    lines = [json.loads(ln) for ln in r.out.splitlines() if ln.strip()]
    assert "provenance" in lines[0]
    assert lines[0]["changes"] == len(lines) - 1
    return lines[1:]


def registry(store: Path) -> dict[str, Row]:
    patients: dict[str, Row] = json.loads(
        (store / "cohort" / "patients.json").read_text())["patients"]
    return patients


def reviewed(store: Path) -> dict[str, dict[str, str]]:
    """patient -> {lineage: the snapshot it was last reviewed against}."""
    return {pid: dict(p["reviewed"]) for pid, p in registry(store).items()}


def reviewed_on(store: Path, lineage: str = LINEAGE) -> dict[str, str]:
    return {pid: r[lineage] for pid, r in reviewed(store).items()}


def runs(store: Path) -> list[Row]:
    path = store / "runs.jsonl"
    return jsonl(path.read_text()) if path.exists() else []


def jsonl(text: str) -> list[Row]:
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def check_report(out: Path) -> Row:
    """A report folder is complete and self-consistent: run.json, changes.tsv, and exactly one
    patients/<file>.tsv per patient with changes holding exactly that patient's rows (plus the
    per-patient pages run.json lists, when it lists any)."""
    run: Row = json.loads((out / "run.json").read_text())
    rows = read_tsv(out / "changes.tsv")
    per_patient: dict[str, int] = {}
    for r in rows:
        per_patient[str(r["patient"])] = per_patient.get(str(r["patient"]), 0) + 1
    assert run["schema_version"] == 1
    assert run["changes"]["total"] == len(rows) > 0, "a report folder without a change"
    assert run["changes"]["per_patient"] == per_patient
    assert sum(run["changes"]["by_priority"].values()) == len(rows)
    for prio, n in run["changes"]["by_priority"].items():
        assert n == sum(1 for r in rows if r["priority"] == prio)
    files = run["changes"]["patient_files"]
    assert set(files) == set(per_patient)
    listed = set(files.values()) | set(run["changes"].get("patient_reports", {}).values())
    on_disk = {f"patients/{p.name}" for p in (out / "patients").iterdir()}
    assert on_disk == listed, "patients/ holds files that run.json does not list (or misses some)"
    for pid, rel in files.items():
        mine = read_tsv(out / rel)
        assert {change_key(r) for r in mine} == {change_key(r) for r in rows
                                                 if r["patient"] == pid}
        assert len(mine) == per_patient[pid]
    return run


def add_outcomes(err: str) -> dict[str, str]:
    """cohort add's per-patient lines: patient -> added | unchanged | relocated | replaced |
    followed."""
    out = {}
    for pid, what in re.findall(r"patient (\S+) \(sample \S+\): ([^\n]*)", err):
        out[pid] = ("unchanged" if "already registered with this file" in what else
                    "relocated" if "source path updated" in what else
                    "replaced" if "re-registered from a new file" in what else
                    "followed" if "now also follows" in what else
                    "added" if "registered" in what else what)
    return out


# Registry schema 3 (varreinterp/cohort.py, cohort_index.py): each registration has a patient
# `number`, and its carried alleles are rows (key_chrom, pos, ref, alt, patient = that number,
# zygosity, filter, chrom) of one inverted index shared by the whole cohort: Parquet "rows"
# files under STORE/cohort/bins/<contig digest>/<bin>/, each with its key directory beside it
# (<name>.keys.parquet: each distinct pos, ref, alt and the row group `rg` holding it), all
# catalogued in the registry's `index.files` (role, size and a CRC32 per byte span). While a
# --replace waits to be delivered, `previous` maps a lineage to the number last delivered
# there. Tests reach into that layout only through these.
def index_mtimes(store: Path) -> dict[str, int]:
    return {name: (bins_dir(store) / name).stat().st_mtime_ns for name in index_files(store)}


def catalog(store: Path) -> dict[str, Row]:
    """The registry's catalog of index files: name -> {name, role, key_chrom, bin, rows,
    size, spans}."""
    files: dict[str, Row] = json.loads(
        (store / "cohort" / "patients.json").read_text())["index"]["files"]
    return files


def patient_rows(store: Path, patient: str, lineage: str | None = None) -> list[IndexRow]:
    """The index rows of a patient's current registration or, with `lineage`, of the
    registration still waiting there for its replacement to be delivered."""
    entry = registry(store)[patient]
    number = entry["previous"][lineage] if lineage else entry["number"]
    return index_rows(store).get(int(number), [])


def assert_key_directory(rows_file: Path) -> None:
    """The key directory beside a rows file lists each of its keys once per row group holding
    it, and nothing else: a key left out is a change a run would never look for."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(rows_file)
    held = set()
    for i in range(pf.metadata.num_row_groups):
        cols = pf.read_row_group(i, columns=["pos", "ref", "alt"]).to_pydict()
        held |= {(p, r, a, i) for p, r, a in zip(cols["pos"], cols["ref"], cols["alt"],
                                                 strict=True)}
    keys = pq.read_table(str(rows_file).removesuffix(".parquet") + KEYS_SUFFIX).to_pydict()
    listed = list(zip(keys["pos"], keys["ref"], keys["alt"], keys["rg"], strict=True))
    assert sorted(listed) == sorted(held), f"{rows_file}: key directory differs from its rows"


def assert_index_consistent(store: Path) -> dict[int, list[IndexRow]]:
    """The catalog and the disk agree: every catalogued file is there at its size with each
    byte span matching its CRC32, no other file is (an orphan), each rows file has its key
    directory listing exactly its keys; every registered patient's current registration has
    exactly its `alleles` rows, and each registration still pending delivery (`previous`) has
    rows. Returns the rows by patient number."""
    cat = catalog(store)
    assert index_files(store) == {name: e["size"] for name, e in cat.items()}, \
        "index files on disk and the registry's catalog differ"
    for name, entry in cat.items():
        data = (bins_dir(store) / name).read_bytes()
        assert [[s, e, zlib.crc32(data[s:e])] for s, e, _ in entry["spans"]] == \
            entry["spans"], f"{name}: a span fails its catalogued CRC32"
        assert entry["spans"][0][0] == 0 and entry["spans"][-1][1] == len(data)
        keys = name.removesuffix(".parquet") + KEYS_SUFFIX
        assert entry["role"] == ("keys" if name.endswith(KEYS_SUFFIX) else "rows"), name
        if entry["role"] == "rows":
            assert cat[keys]["role"] == "keys", f"{name} has no key directory"
            assert_key_directory(bins_dir(store) / name)
    rows = index_rows(store)
    for pid, p in registry(store).items():
        assert len(rows.get(p["number"], [])) == p["alleles"], \
            f"patient {pid}: {p['alleles']} alleles registered, index rows differ"
        for lineage, number in p["previous"].items():
            assert rows.get(number), f"patient {pid}: rows pending delivery on {lineage} gone"
    return rows


def stderr_report_dir(err: str) -> Path:
    marker = "; report in "
    line = next(ln for ln in err.splitlines() if marker in ln)
    return Path(line.split(marker, 1)[1].strip())


def assert_nothing_delivered(r: CliResult, store: Path, out: Path | None = None) -> Row:
    """A run with nothing to deliver: no report folder, the summary says so, and the run is
    still one runs.jsonl line (report null). Returns that line."""
    assert "nothing changed: no report folder written" in r.err, r.err
    if out is not None:
        assert not out.exists(), f"{out} written although nothing changed"
    last = runs(store)[-1]
    assert last["report"] is None and last["changes"] == {"high": 0, "medium": 0, "low": 0}
    assert last["exit_code"] == r.code
    return last


# ------------------------------------------------------------------------------ real files
@pytest.fixture(scope="module")
def grch37_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    old, new = shared(C37_OLD), shared(C37_NEW)
    store = tmp_path_factory.mktemp("c37") / "store"
    ok(invoke(store, "snapshot", "add", old))
    ok(invoke(store, "snapshot", "add", new))
    return store


def test_grch37_cohort_matches_diff_and_reports_once(grch37_store: Path, tmp_path: Path,
                                                     store_dir: Path, cli: Cli) -> None:
    shutil.copytree(grch37_store, store_dir)
    vcf = tmp_path / "1kg_exome.16_samples.vcf"
    shutil.copy(shared(KGENOMES), vcf)

    r = ok(cli("cohort", "add", vcf, "--baseline", S37_OLD))
    added = add_outcomes(r.err)
    assert len(added) == 16 and set(added.values()) == {"added"}
    patients = jsonl(ok(cli("cohort", "list", "--format", "json")).out)
    assert len(patients) == 16
    samples = {p["patient"] for p in patients}
    assert {p["sample"] for p in patients} == samples
    assert {p["assembly"] for p in patients} == {"GRCh37"}
    assert {p["reviewed"] for p in patients} == {f"clinvar/GRCh37: {S37_OLD}"}
    assert {p["source"] for p in patients} == {str(vcf.resolve())}
    assert {p["baseline_snapshot"] for p in registry(store_dir).values()} == {S37_OLD}
    shown = json.loads(ok(cli("cohort", "show", "HG00731", "--format", "json")).out)
    assert shown["source_sha256"] == hashlib.sha256(vcf.read_bytes()).hexdigest()
    assert shown["reviewed"] == {"clinvar/GRCh37": S37_OLD}
    # One index for the cohort, every file catalogued with its size and checksums; each of
    # the 16 patients has its own number and exactly its registered alleles as rows.
    indexed = assert_index_consistent(store_dir)
    numbers = {pid: p["number"] for pid, p in registry(store_dir).items()}
    assert len(set(numbers.values())) == 16 and set(indexed) == set(numbers.values())
    assert shown["number"] == numbers["HG00731"] and shown["previous"] == {}
    assert len(indexed[shown["number"]]) == shown["alleles"] > 0
    assert "all checksums match" in ok(cli("cohort", "verify")).err
    before = index_mtimes(store_dir)
    reg_before = (store_dir / "cohort" / "patients.json").read_text()

    # Re-adding the same file: a no-op that says so.
    r = ok(cli("cohort", "add", vcf, "--baseline", S37_OLD))
    assert add_outcomes(r.err) == {pid: "unchanged" for pid in added}
    assert index_mtimes(store_dir) == before
    assert (store_dir / "cohort" / "patients.json").read_text() == reg_before

    # The default --min-priority (medium) only shapes the listing: every priority is recorded.
    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--to", S37_NEW, "--out", out))
    expected = diff_rows(cli("diff", vcf, "--from", S37_OLD, "--to", S37_NEW, "--all",
                             "--format", "json"))
    rows = read_tsv(out / "changes.tsv")
    assert {change_key(r) for r in rows} == {change_key(r) for r in expected}
    assert len(rows) == len(expected)
    assert all(r["patient"] == r["sample"] for r in rows)
    assert {(r["lineage"], r["from_snapshot"], r["to_snapshot"]) for r in rows} == {
        ("clinvar/GRCh37", S37_OLD, S37_NEW)}

    # Independent check from the data README: only 2 of the VCF's variants are in the 2023
    # file, both outside the 2019 file's window, so each carrier has exactly one `new`.
    carriers: dict[int, set[str]] = {}
    with open(vcf) as fh:
        for line in fh:
            if line.startswith("#CHROM"):
                names = line.rstrip("\n").split("\t")[9:]
            elif not line.startswith("#"):
                f = line.rstrip("\n").split("\t")
                if int(f[1]) in (874734, 878314):
                    gts = [g.split(":")[0].replace("|", "/").split("/") for g in f[9:]]
                    carriers[int(f[1])] = {n for n, gt in zip(names, gts, strict=True) if "1" in gt}
    assert {(r["sample"], int(r["pos"])) for r in rows} == {
        (s, pos) for pos, who in carriers.items() for s in who}
    # ... and the index rows at those two positions are exactly those carriers'.
    for pos, who in carriers.items():
        assert {n for n, found in indexed.items() if any(x[1] == pos for x in found)} == {
            numbers[s] for s in who}, pos
    assert {r["change"] for r in rows} == {"new"}
    assert len(rows) == 4

    run = check_report(out)
    assert run["targets"] == [S37_NEW] and run["min_priority_listed"] == "medium"
    assert run["patients"] == {"reanalyzed": 16, "up_to_date": 0, "out_of_scope": 0,
                               "failing": []}
    per = {s: sum(1 for r in expected if r["sample"] == s) for s in {r["sample"] for r in
                                                                     expected}}
    assert run["changes"]["per_patient"] == per
    assert run["changes"]["total"] == 4
    assert list(run["comparisons"]) == [f"{S37_OLD}->{S37_NEW}"]
    cmp = run["comparisons"][f"{S37_OLD}->{S37_NEW}"]
    assert cmp["from_snapshot"]["snapshot"] == S37_OLD
    assert cmp["to_snapshot"]["snapshot"] == S37_NEW
    assert cmp["from_snapshot"]["lineage"] == cmp["to_snapshot"]["lineage"] == "clinvar/GRCh37"
    assert cmp["assembly"] == "GRCh37"
    assert cmp["patients"] == sorted(samples)
    assert {"plan_s", "total_s"} <= set(run["timings"])
    assert set(reviewed_on(store_dir, "clinvar/GRCh37").values()) == {S37_NEW}
    log = runs(store_dir)
    assert len(log) == 1
    assert log[0]["run_id"] == run["run_id"] and log[0]["report"] == str(out)
    assert log[0]["exit_code"] == 0 and log[0]["changes"] == run["changes"]["by_priority"]
    assert log[0]["comparisons"] == [{"from": S37_OLD, "to": S37_NEW,
                                      "lineage": "clinvar/GRCh37", "patients": 16}]

    # The next night: nothing new, all 16 up to date, no report folder, one more log line.
    out2 = tmp_path / "OUT2"
    r = ok(cli("reanalyze", "--to", S37_NEW, "--out", out2, "--exit-code"))
    last = assert_nothing_delivered(r, store_dir, out2)
    assert last["patients"] == {"reanalyzed": 0, "up_to_date": 16, "out_of_scope": 0,
                                "failing": []}
    assert len(runs(store_dir)) == 2
    status = jsonl(ok(cli("cohort", "status", "--format", "json")).out)
    assert len(status) == 16
    assert {(s["lineage"], s["reviewed_snapshot"], s["target_snapshot"], s["state"], s["high"],
             s["medium"], s["low"]) for s in status} == {
        ("clinvar/GRCh37", S37_NEW, S37_NEW, "up_to_date", 0, 0, 0)}


def test_giab_macarthur_cohort_matches_diff(tmp_path: Path, store_dir: Path, cli: Cli) -> None:
    mac17, mac18 = shared(MAC17), shared(MAC18)
    vcfs = {s: shared(p) for s, p in GIAB.items()}
    mapping = MAPPINGS / "macarthur-vcf.toml"
    for path in (mac17, mac18):
        ok(cli("snapshot", "add", path, "--format", "table", "--mapping", mapping,
               "--assembly", "GRCh38"))
    listed = jsonl(ok(cli("snapshot", "list", "--format", "json")).out)
    assert [s["name"] for s in listed] == [M_OLD, M_NEW]
    assert {s["lineage"] for s in listed} == {"macarthur/GRCh38"}
    # The 2018 file holds 515 alleles against 698 (data README): more than 5% fewer, so it is
    # stored as suspect and used as a target only when accepted.
    assert listed[0]["suspect"] is None
    assert "515" in listed[1]["suspect"] and "698" in listed[1]["suspect"]
    ok(cli("cohort", "add", *vcfs.values(), "--baseline", M_OLD))
    status = jsonl(ok(cli("cohort", "status", "--format", "json")).out)
    assert {(s["state"], s["lineage"], s["target_snapshot"], s["suspect_target"])
            for s in status} == {("waiting", "macarthur/GRCh38", M_NEW, True)}
    waiting = {s["patient"]: s["high"] + s["medium"] + s["low"] for s in status}
    assert set(waiting) == {"HG004", "HG006"}

    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out), 4)
    assert M_NEW in r.err and "--accept-suspect" in r.err and not out.exists()
    assert set(reviewed_on(store_dir, "macarthur/GRCh38").values()) == {M_OLD}
    # Default target: the newest of the lineage.
    ok(cli("reanalyze", "--out", out, "--accept-suspect"))
    expected = diff_rows(cli("diff", *vcfs.values(), "--from", M_OLD, "--to", M_NEW, "--all",
                             "--format", "json", "--accept-suspect"))
    rows = read_tsv(out / "changes.tsv")
    assert {change_key(r) for r in rows} == {change_key(r) for r in expected}
    assert len(rows) == len(expected) > 0
    assert {r["sample"] for r in rows} == {"HG004", "HG006"}
    run = check_report(out)
    assert run["targets"] == [M_NEW]
    assert run["patients"] == {"reanalyzed": 2, "up_to_date": 0, "out_of_scope": 0,
                               "failing": []}
    per = {s: sum(1 for r in expected if r["sample"] == s) for s in ("HG004", "HG006")}
    assert run["changes"]["per_patient"] == per
    assert waiting == per  # status (before the run) announced exactly these, all priorities
    for s in status:
        mine = [r for r in expected if r["sample"] == s["patient"]]
        assert {p: s[p] for p in ("high", "medium", "low")} == {
            p: sum(1 for r in mine if r["priority"] == p) for p in ("high", "medium", "low")}
    assert set(reviewed_on(store_dir, "macarthur/GRCh38").values()) == {M_NEW}

    out2 = tmp_path / "OUT2"
    r = ok(cli("reanalyze", "--out", out2, "--exit-code", "--accept-suspect"))
    last = assert_nothing_delivered(r, store_dir, out2)
    assert last["patients"] == {"reanalyzed": 0, "up_to_date": 2, "out_of_scope": 0,
                                "failing": []}


# ------------------------------------------------------------------------------ sample_vcfs
@pytest.fixture(scope="module")
def sample_snapshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("samples") / "store"
    ok(invoke(store, "snapshot", "add", OLD_VCF))
    ok(invoke(store, "snapshot", "add", NEW_VCF))
    return store


@pytest.fixture
def sample_cohort(sample_snapshots: Path, store_dir: Path, tmp_path: Path, cli: Cli
                  ) -> dict[str, Path]:
    """Both sample VCFs copied into tmp and registered with baseline the older release."""
    shutil.copytree(sample_snapshots, store_dir)
    vcfs = tmp_path / "vcfs"
    vcfs.mkdir()
    single = vcfs / "patient_single.vcf.gz"
    trio = vcfs / "trio.vcf"
    shutil.copy(SAMPLES / "patient_single.vcf.gz", single)
    shutil.copy(SAMPLES / "trio.vcf", trio)
    r = ok(cli("cohort", "add", single, trio, "--baseline", OLD))
    assert add_outcomes(r.err) == {p: "added" for p in EXPECTED}
    return {"single": single, "trio": trio}


def add_trio_record(trio: Path) -> None:
    """Rewrite the VCF with one more record: NEW2 (11:2570700 A>AGC), carried by CHILD01."""
    lines = trio.read_text().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.startswith("12\t"))
    lines.insert(at, "11\t2570700\t.\tA\tAGC\t500\tPASS\t.\tGT:DP:GQ\t0/1:30:90\t0/0:31:92\t"
                     "0/0:32:94\n")
    trio.write_text("".join(lines))


def status_counts(cli: Cli) -> dict[str, tuple[Any, ...]]:
    rows = jsonl(ok(cli("cohort", "status", "--format", "json")).out)
    return {s["patient"]: (s["state"], s["reviewed_snapshot"], s["target_snapshot"], s["high"],
                           s["medium"], s["low"]) for s in rows}


def priorities(changes: set[Key]) -> tuple[int, int, int]:
    high, medium, low = (sum(1 for c in changes if c[5] == p) for p in ("high", "medium", "low"))
    return high, medium, low


def test_sample_reanalyze_reports_readme_changes(sample_cohort: dict[str, Path], store_dir: Path,
                                                 tmp_path: Path, cli: Cli) -> None:
    assert status_counts(cli) == {p: ("waiting", OLD, NEW, *priorities(c))
                                  for p, c in EXPECTED_ALL.items()}
    r = ok(cli("cohort", "status", "--format", "json"))
    assert {s["assembly"] for s in jsonl(r.out)} == {"GRCh38"}
    assert "4 waiting" in r.err

    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out, "--exit-code"), 1)
    rows = read_tsv(out / "changes.tsv")
    assert by_patient(rows) == EXPECTED_ALL
    assert len(rows) == SAMPLE_ALL
    assert {r_["priority"] for r_ in rows} == {"high", "medium", "low"}
    assert {r_["lineage"] for r_ in rows} == {LINEAGE}
    run = check_report(out)
    assert run["min_priority_listed"] == "medium" and run["targets"] == [NEW]
    assert run["patients"] == {"reanalyzed": 4, "up_to_date": 0, "out_of_scope": 0,
                               "failing": []}
    assert run["changes"]["per_patient"] == {p: len(c) for p, c in EXPECTED_ALL.items()}
    assert run["changes"]["by_priority"] == {"high": 7, "medium": 7, "low": 4}
    assert sorted(run["changes"]["patient_files"].values()) == sorted(
        f"patients/{p}.tsv" for p in EXPECTED)
    # The summary lists medium and above, and says the rest is in the report.
    assert "14 change(s) at or above medium" in r.err and "(7 high, 7 medium)" in r.err
    assert "4 lower-priority change(s) recorded in the report" in r.err
    assert set(reviewed_on(store_dir).values()) == {NEW}

    assert status_counts(cli) == {p: ("up_to_date", NEW, NEW, 0, 0, 0) for p in EXPECTED}
    # The rerun delivers nothing: --exit-code 0, no folder, one more runs.jsonl line.
    out2 = tmp_path / "OUT2"
    r = ok(cli("reanalyze", "--out", out2, "--exit-code"), 0)
    last = assert_nothing_delivered(r, store_dir, out2)
    assert last["patients"] == {"reanalyzed": 0, "up_to_date": 4, "out_of_scope": 0,
                                "failing": []}
    assert [x["exit_code"] for x in runs(store_dir)] == [1, 0]


def test_dry_run_prints_and_records_nothing(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
    r = ok(cli("reanalyze", "--dry-run", "--format", "tsv", "--exit-code"), 1)
    printed = parse_tsv(r.out)
    assert by_patient(printed) == EXPECTED  # the listing follows --min-priority (medium)
    assert len(printed) == SAMPLE_TOTAL
    r = ok(cli("reanalyze", "--dry-run", "--format", "json", "--min-priority", "low"))
    assert by_patient(jsonl(r.out)) == EXPECTED_ALL
    r = ok(cli("reanalyze", "--dry-run", "--format", "json", "--min-priority", "high"))
    assert by_patient(jsonl(r.out)) == {p: {c for c in ch if c[5] == "high"}
                                        for p, ch in EXPECTED.items()}
    assert (store_dir / "cohort" / "patients.json").read_bytes() == reg_before
    assert not (store_dir / "reports").exists()
    assert runs(store_dir) == [], "a dry run is not a delivered run"

    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED_ALL
    # And once recorded, a dry run has nothing left to show.
    r = ok(cli("reanalyze", "--dry-run", "--format", "json", "--min-priority", "low",
               "--exit-code"))
    assert jsonl(r.out) == []


def test_default_baseline_is_newest_of_the_lineage(sample_snapshots: Path, store_dir: Path,
                                                   tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(cli("cohort", "add", trio))
    assert reviewed(store_dir) == {p: {LINEAGE: NEW} for p in ("CHILD01", "MOTHER01",
                                                               "FATHER01")}
    assert {p["baseline_snapshot"] for p in registry(store_dir).values()} == {NEW}
    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out, "--exit-code"))
    last = assert_nothing_delivered(r, store_dir, out)
    assert last["patients"] == {"reanalyzed": 0, "up_to_date": 3, "out_of_scope": 0,
                                "failing": []}
    assert last["comparisons"] == []


def test_cohort_remove_drops_patient_and_index(sample_cohort: dict[str, Path], store_dir: Path,
                                               tmp_path: Path, cli: Cli) -> None:
    """No genotype of a removed patient stays in the store: `cohort remove` rewrites every bin
    without the rows of its number; the others' rows are untouched."""
    numbers = {pid: p["number"] for pid, p in registry(store_dir).items()}
    rows = assert_index_consistent(store_dir)
    assert set(rows) == set(numbers.values()) and len(rows) == 4
    child = numbers["CHILD01"]
    assert rows[child]
    ok(cli("cohort", "remove", "CHILD01"))
    listed = {p["patient"] for p in jsonl(ok(cli("cohort", "list", "--format", "json")).out)}
    assert listed == {"PATIENT01", "MOTHER01", "FATHER01"}
    after = assert_index_consistent(store_dir)  # the replaced files are gone from disk too
    assert child not in after, "rows of the removed patient are still in the cohort index"
    assert after == {n: found for n, found in rows.items() if n != child}
    ok(cli("cohort", "show", "CHILD01"), 4)
    ok(cli("cohort", "remove", "CHILD01"), 4)
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    assert by_patient(read_tsv(out / "changes.tsv")) == only(
        EXPECTED_ALL, "PATIENT01", "MOTHER01", "FATHER01")
    assert check_report(out)["patients"]["reanalyzed"] == 3


def refused_without_leak(cli: Cli, *args: str | Path) -> CliResult:
    """Run a command that must be refused; the refusal must not leak the temporary directory
    the VCF was read into (a ResourceWarning when it is garbage-collected)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = cli(*args)
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == [], f"refused `{' '.join(map(str, args))}` leaked: {leaks}"
    return r


def test_patient_id_needs_one_sample(sample_snapshots: Path, store_dir: Path,
                                     tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    with warnings.catch_warnings():  # the leak is test_refused_cohort_add_cleans_up's business
        warnings.simplefilter("ignore", ResourceWarning)
        r = cli("cohort", "add", trio, "--patient-id", "FAM1", "--baseline", OLD)
        gc.collect()
    ok(r, 2)
    assert "--patient-id" in r.err and "--sample" in r.err
    assert not (store_dir / "cohort" / "patients.json").exists() or registry(store_dir) == {}
    ok(cli("cohort", "add", trio, "--patient-id", "MUM", "--sample", "MOTHER01",
           "--baseline", OLD))
    reg = registry(store_dir)
    assert list(reg) == ["MUM"] and reg["MUM"]["sample"] == "MOTHER01"
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    rows = read_tsv(out / "changes.tsv")
    assert by_patient(rows) == {"MUM": EXPECTED_ALL["MOTHER01"]}
    assert {r["sample"] for r in rows} == {"MOTHER01"}
    assert (out / "patients" / "MUM.tsv").is_file()


def test_refused_cohort_add_cleans_up(sample_snapshots: Path, store_dir: Path,
                                      tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(refused_without_leak(cli, "cohort", "add", trio, "--sample", "NOPE"), 2)
    ok(refused_without_leak(cli, "cohort", "add", trio, "--patient-id", "FAM1",
                            "--baseline", OLD), 2)
    ok(refused_without_leak(cli, "cohort", "add", tmp_path / "absent.vcf"), 3)
    assert not (store_dir / "cohort" / "patients.json").exists()
    assert list((store_dir / "tmp").iterdir()) == []


def test_cohort_add_refuses_other_build(grch37_store: Path, store_dir: Path, tmp_path: Path,
                                        cli: Cli) -> None:
    shutil.copytree(grch37_store, store_dir)
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)  # ##reference=GRCh38
    r = ok(refused_without_leak(cli, "cohort", "add", trio, "--baseline", S37_OLD), 3)
    assert "GRCh38" in r.err and "GRCh37" in r.err
    assert not (store_dir / "cohort" / "patients.json").exists()


def test_changed_vcf_is_refused_without_replace_then_delivered_once(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    trio = sample_cohort["trio"]
    reg0 = registry(store_dir)
    numbers0 = {pid: p["number"] for pid, p in reg0.items()}
    rows0 = {pid: patient_rows(store_dir, pid) for pid in EXPECTED}
    add_trio_record(trio)

    # The VCF changed on disk: reanalysis reads the registered index (what was reviewed), so
    # every patient gets its report, the file's new content plays no part yet.
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    assert check_report(out)["patients"] == {"reanalyzed": 4, "up_to_date": 0, "out_of_scope": 0,
                                             "failing": []}
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED_ALL
    assert set(reviewed_on(store_dir).values()) == {NEW}

    # A different file for registered patients: refused (exit 4) without --replace.
    reg_run = registry(store_dir)
    reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
    r = ok(cli("cohort", "add", trio), 4)
    assert "--replace" in r.err and "CHILD01" in r.err
    assert (store_dir / "cohort" / "patients.json").read_bytes() == reg_before

    r = ok(cli("cohort", "add", trio, "--replace"))
    assert add_outcomes(r.err) == {"CHILD01": "replaced", "MOTHER01": "replaced",
                                   "FATHER01": "replaced"}
    reg = registry(store_dir)
    assert reg["CHILD01"]["alleles"] == reg0["CHILD01"]["alleles"] + 1
    assert reg["CHILD01"]["source_sha256"] == hashlib.sha256(trio.read_bytes()).hexdigest()
    indexed = assert_index_consistent(store_dir)
    for pid in ("CHILD01", "MOTHER01", "FATHER01"):
        # The reviewed state is kept; a new registration (number) is indexed, and the
        # delivered one stays live until the replacement's effect has been reported.
        assert reg[pid]["reviewed"] == {LINEAGE: NEW}
        assert reg[pid]["number"] not in numbers0.values()
        assert reg[pid]["previous"] == {LINEAGE: numbers0[pid]}
        assert indexed[numbers0[pid]] == rows0[pid]
    assert indexed[reg["CHILD01"]["number"]] == sorted(
        [*rows0["CHILD01"], ("11", 2570700, "A", "AGC", "het")])
    assert indexed[reg["MOTHER01"]["number"]] == rows0["MOTHER01"]
    assert indexed[reg["FATHER01"]["number"]] == rows0["FATHER01"]
    assert reg["PATIENT01"] == reg_run["PATIENT01"]  # another file: untouched
    # A pending replacement is never "up to date"; only CHILD01's calls changed.
    assert status_counts(cli) == {
        "PATIENT01": ("up_to_date", NEW, NEW, 0, 0, 0),
        "CHILD01": ("waiting", NEW, NEW, 0, 1, 0),
        "MOTHER01": ("waiting", NEW, NEW, 0, 0, 0),
        "FATHER01": ("waiting", NEW, NEW, 0, 0, 0)}
    r = ok(cli("cohort", "add", trio, "--replace"))
    assert add_outcomes(r.err) == {"CHILD01": "unchanged", "MOTHER01": "unchanged",
                                   "FATHER01": "unchanged"}
    assert registry(store_dir) == reg

    out2 = tmp_path / "OUT2"
    ok(cli("reanalyze", "--out", out2, "--exit-code"), 1)
    run2 = check_report(out2)
    assert run2["patients"] == {"reanalyzed": 3, "up_to_date": 1, "out_of_scope": 0,
                                "failing": []}
    rows = read_tsv(out2 / "changes.tsv")
    # NEW2 is a VUS in the reviewed snapshot: newly carried, medium, compared within it.
    assert by_patient(rows) == {"CHILD01": {("11", 2570700, "A", "AGC", "newly_carried",
                                             "medium")}}
    assert (rows[0]["from_snapshot"], rows[0]["to_snapshot"]) == (NEW, NEW)
    assert rows[0]["after"] == "Uncertain_significance" and rows[0]["before"] is None
    reg = registry(store_dir)
    assert all(p["previous"] == {} for p in reg.values())
    # MOTHER01's and FATHER01's calls did not change: their new registration's rows are the
    # retired one's, and stay live (findable) once it is retired, also after a compaction has
    # dropped the retired rows.
    live = {n: indexed[n] for n in (p["number"] for p in reg.values())}
    delivered = assert_index_consistent(store_dir)
    assert {n: delivered.get(n) for n in live} == live
    ok(cli("cohort", "compact"))
    assert assert_index_consistent(store_dir) == live, "live rows lost, or retired rows kept"
    # Delivered once.
    out3 = tmp_path / "OUT3"
    assert_nothing_delivered(ok(cli("reanalyze", "--out", out3, "--exit-code")), store_dir,
                             out3)


def test_moved_vcf_readded_from_new_place(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """Re-adding the same content from its new location updates the source path (no
    re-index, no change of review state) and the run no longer warns about it."""
    reg_before = registry(store_dir)
    index_before = index_mtimes(store_dir)
    moved = tmp_path / "moved"
    moved.mkdir()
    new_trio = moved / "trio.vcf"
    shutil.move(sample_cohort["trio"], new_trio)
    r = ok(cli("cohort", "add", new_trio, "--baseline", OLD))
    assert add_outcomes(r.err) == {"CHILD01": "relocated", "MOTHER01": "relocated",
                                   "FATHER01": "relocated"}
    reg = registry(store_dir)
    assert reg["CHILD01"]["source"] == str(new_trio.resolve())
    assert reg["CHILD01"]["number"] == reg_before["CHILD01"]["number"]
    assert index_mtimes(store_dir) == index_before  # not re-indexed
    assert reg["CHILD01"]["reviewed"] == {LINEAGE: OLD}
    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out))
    run = check_report(out)
    assert run["patients"]["failing"] == []
    assert "is missing" not in r.err, "the relocated VCF is still reported missing"
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED_ALL


def test_reusing_out_keeps_the_recorded_report(sample_snapshots: Path, store_dir: Path,
                                               tmp_path: Path, cli: Cli) -> None:
    """The patients are recorded as reviewed because the report exists: a later run with
    changes, given the same --out, must not destroy that report (or mix two runs in it), and
    must record nobody."""
    shutil.copytree(sample_snapshots, store_dir)
    trio, single = tmp_path / "trio.vcf", tmp_path / "patient_single.vcf.gz"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    shutil.copy(SAMPLES / "patient_single.vcf.gz", single)
    ok(cli("cohort", "add", trio, "--baseline", OLD))
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    first = tsv_rows_sorted(out / "changes.tsv")
    assert len(first) == 1 + sum(len(EXPECTED_ALL[p]) for p in ("CHILD01", "MOTHER01",
                                                                 "FATHER01"))
    first_run = (out / "run.json").read_bytes()

    ok(cli("cohort", "add", single, "--baseline", OLD))
    reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
    r = ok(cli("reanalyze", "--out", out), 2)
    assert str(out) in r.err and "delivered" in r.err
    assert tsv_rows_sorted(out / "changes.tsv") == first, \
        "the second run overwrote the report of changes already recorded as reported"
    assert (out / "run.json").read_bytes() == first_run
    check_report(out)
    assert (store_dir / "cohort" / "patients.json").read_bytes() == reg_before
    assert reviewed_on(store_dir)["PATIENT01"] == OLD

    out2 = tmp_path / "OUT2"
    ok(cli("reanalyze", "--out", out2))
    assert by_patient(read_tsv(out2 / "changes.tsv")) == only(EXPECTED_ALL, "PATIENT01")


def test_failure_after_the_report_folder_is_redone_into_the_same_folder(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A run that dies after its report folder is in place but before the patients are
    recorded: nobody is reviewed, and the next run with the same --out replaces that
    undelivered report whole (same changes, new run id), which is then protected."""
    import varreinterp.reanalyze as core

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated crash before the registry is saved")

    reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
    out = tmp_path / "OUT"
    with monkeypatch.context() as m:
        m.setattr(core, "_record_reviewed", crash)
        ok(cli("reanalyze", "--out", out), 70)
    killed = json.loads((out / "run.json").read_text())["run_id"]
    assert (store_dir / "cohort" / "patients.json").read_bytes() == reg_before
    assert runs(store_dir) == []
    assert list((store_dir / "tmp").iterdir()) == []

    ok(cli("reanalyze", "--out", out))
    run = check_report(out)
    assert run["run_id"] != killed
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED_ALL
    assert set(reviewed_on(store_dir).values()) == {NEW}
    assert [x["run_id"] for x in runs(store_dir)] == [run["run_id"]]
    assert not any(p.name.startswith(f".{out.name}.") for p in tmp_path.iterdir())
    # A new patient's changes never land in the now delivered folder.
    shutil.copy(SAMPLES / "patient_single.vcf.gz", tmp_path / "again.vcf.gz")
    ok(cli("cohort", "add", tmp_path / "again.vcf.gz", "--patient-id", "P2", "--baseline", OLD))
    ok(cli("reanalyze", "--out", out), 2)
    assert check_report(out)["run_id"] == run["run_id"]


# ------------------------------------------------------------------------------ robustness
def test_missing_vcf_is_a_warning_and_the_patient_is_reanalyzed(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    single = sample_cohort["single"]
    shutil.move(single, tmp_path / "archived.vcf.gz")
    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out, "--exit-code"), 1)
    run = check_report(out)
    assert run["patients"] == {"reanalyzed": 4, "up_to_date": 0, "out_of_scope": 0,
                               "failing": []}
    warning = [ln for ln in r.err.splitlines() if "WARNING" in ln and "PATIENT01" in ln]
    assert len(warning) == 1 and "reanalyzed from the cohort index" in warning[0], r.err
    assert str(single.resolve()) in warning[0]
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED_ALL
    assert set(reviewed_on(store_dir).values()) == {NEW}


def test_every_vcf_deleted_still_delivers_everything(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """(Was: every VCF missing exits 3.) The index holds everything reanalysis needs."""
    for path in sample_cohort.values():
        path.unlink()
    r = ok(cli("reanalyze", "--dry-run", "--format", "json", "--min-priority", "low"))
    assert by_patient(jsonl(r.out)) == EXPECTED_ALL
    out = tmp_path / "OUT"
    r = ok(cli("--quiet", "reanalyze", "--out", out, "--exit-code"), 1)
    assert r.err == "", "--quiet prints only errors"
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED_ALL
    assert check_report(out)["patients"]["failing"] == []


def index_file_holding(store: Path, key_chrom: str, pos: int) -> Path:
    """An index file with a row at this position (found by reading the files directly)."""
    import duckdb

    con = duckdb.connect()
    try:
        found = con.execute(f"""
            SELECT DISTINCT filename FROM read_parquet({sql_files(rows_files(store))},
                                                       filename = true)
            WHERE key_chrom = ? AND pos = ? ORDER BY filename""", [key_chrom, pos]).fetchall()
    finally:
        con.close()
    assert found, f"no index row at {key_chrom}:{pos}"
    return Path(found[0][0])


# How the index file holding UP1 (a key every run from OLD to NEW reads) is damaged, and what
# the refusal must say.
DAMAGE = {"deleted": "cohort index file is missing",
          "every-file-deleted": "cohort index file is missing",
          "truncated": "the catalog says",
          "byte-flipped": "fail their checksum",
          "key-directory-deleted": "cohort index file is missing",
          "key-directory-byte-flipped": "fail their checksum"}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_index_stops_the_run_with_exit_4(damage: str, sample_cohort: dict[str, Path],
                                                   store_dir: Path, tmp_path: Path,
                                                   cli: Cli) -> None:
    """(Was: every index missing is partial, exit 6.) One index file holds many patients' rows:
    a missing, truncated or edited file stops the whole run (exit 4, one line naming the file)
    before anything is delivered or anybody is recorded as reviewed; a dry run, `cohort
    status` and `cohort verify` refuse it too (so does a damaged key directory, which says
    where a run looks). Once restored, everything is delivered."""
    path = index_file_holding(store_dir, "13", 32332400)
    if damage.startswith("key-directory"):
        path = Path(str(path).removesuffix(".parquet") + KEYS_SUFFIX)
    saved = tmp_path / "backup"
    shutil.copytree(bins_dir(store_dir), saved)
    data = bytearray(path.read_bytes())
    if damage.endswith("deleted") and damage != "every-file-deleted":
        path.unlink()
    elif damage == "every-file-deleted":
        shutil.rmtree(bins_dir(store_dir))
    elif damage == "truncated":
        path.write_bytes(data[:-1])
    else:  # one byte inside the data (the span after the leading magic)
        start, end, _ = catalog(store_dir)[path.relative_to(bins_dir(store_dir)).as_posix()][
            "spans"][1]
        data[(start + end) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
    out = tmp_path / "OUT"
    for args in (["--quiet", "reanalyze", "--out", out, "--exit-code"],
                 ["reanalyze", "--dry-run", "--format", "json", "--min-priority", "low"],
                 ["cohort", "status", "--format", "json"],
                 ["cohort", "verify"]):
        r = ok(cli(*args), 4)
        assert r.out == "", args
        refused = [ln for ln in r.err.splitlines() if ln.startswith("varreinterp: error: ")]
        assert len(refused) == 1 and DAMAGE[damage] in refused[0], (args, r.err)
        named = path if damage != "every-file-deleted" else bins_dir(store_dir)
        assert str(named) in refused[0], (args, refused)
        if args[0] == "--quiet":
            assert r.err.splitlines() == refused
    assert not out.exists()
    assert (store_dir / "cohort" / "patients.json").read_bytes() == reg_before
    assert set(reviewed_on(store_dir).values()) == {OLD}
    assert [x for x in runs(store_dir) if x["report"] or x["exit_code"] != 4] == []

    if bins_dir(store_dir).exists():
        shutil.rmtree(bins_dir(store_dir))
    shutil.copytree(saved, bins_dir(store_dir))  # restored from the backup
    assert "all checksums match" in ok(cli("cohort", "verify")).err
    ok(cli("reanalyze", "--out", out))
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED_ALL
    assert set(reviewed_on(store_dir).values()) == {NEW}


HOLDER = """
import sys, time
from pathlib import Path
from varreinterp.store import Store
with Store(Path(sys.argv[1])).lock('test'):
    print('locked', flush=True)
    time.sleep(30)
"""


def test_lock_held_exits_5_and_dead_holder_is_taken_over(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
        r = ok(cli("reanalyze", "--out", tmp_path / "OUT"), 5)
        assert f"pid {holder.pid}" in r.err
        assert not (tmp_path / "OUT").exists()
        r = ok(cli("--quiet", "reanalyze", "--exit-code"), 5)
        assert f"pid {holder.pid}" in r.err
        r = ok(cli("cohort", "add", sample_cohort["trio"]), 5)
        assert f"pid {holder.pid}" in r.err
        ok(cli("cohort", "remove", "CHILD01"), 5)
        ok(cli("snapshot", "remove", NEW), 5)
        assert (store_dir / "cohort" / "patients.json").read_bytes() == reg_before
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if holder.stdout:
            holder.stdout.close()

    lock_text = (store_dir / "lock").read_text()
    names_dead = bool(lock_text.strip()) and json.loads(lock_text).get("pid") == holder.pid
    r = ok(cli("reanalyze", "--out", tmp_path / "OUT"))
    assert ("stale" in r.err) == names_dead, r.err
    assert names_dead  # kill -9 leaves the holder's pid in the lock file
    assert str(holder.pid) in r.err
    assert by_patient(read_tsv(tmp_path / "OUT" / "changes.tsv")) == EXPECTED_ALL
    # Released cleanly: the next writer sees no stale lock.
    assert (store_dir / "lock").read_text() == ""
    r = ok(cli("reanalyze", "--out", tmp_path / "OUT2"))
    assert "stale" not in r.err
    assert_nothing_delivered(r, store_dir, tmp_path / "OUT2")


# ------------------------------------------------------------------------------ kill -9
BIG_SAMPLES = 120
BIG_RANDOM_SITES = 2000


def write_big_vcf(path: Path, n_samples: int, n_random: int, seed: int = 20240602) -> None:
    """A GRCh38 multi-sample VCF: every site of both sample ClinVar releases plus random SNVs,
    random genotypes, so every patient has changes and some have many."""
    rng = random.Random(seed)
    sites = set()
    header = []
    for src in (OLD_VCF, NEW_VCF):
        for line in src.read_text().splitlines():
            if line.startswith("##contig") or line.startswith("##reference"):
                if line not in header:
                    header.append(line)
            elif not line.startswith("#"):
                c = line.split("\t", 5)
                sites.add((c[0], int(c[1]), c[3], c[4]))
    chroms = [str(i) for i in range(1, 23)]
    order = {c: i for i, c in enumerate([*chroms, "X", "Y", "MT"])}
    want = len(sites) + n_random
    while len(sites) < want:
        ref = rng.choice("ACGT")
        alt = rng.choice([b for b in "ACGT" if b != ref])
        sites.add((rng.choice(chroms), rng.randrange(100_000, 40_000_000), ref, alt))
    names = [f"S{i:03d}" for i in range(n_samples)]
    with open(path, "w") as fh:
        fh.write("##fileformat=VCFv4.2\n" + "\n".join(header) + "\n")
        fh.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
        fh.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(names)
                 + "\n")
        for chrom, pos, ref, alt in sorted(sites, key=lambda s: (order[s[0]], s[1:])):
            gts = "\t".join(rng.choice(("0/0", "0/1", "0/1", "1/1")) for _ in names)
            fh.write(f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t{gts}\n")


def spawn(store: Path, *args: str | Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "varreinterp", "--store", str(store),
                             *[str(a) for a in args]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen[str]) -> str:
    _, err = proc.communicate(timeout=60)
    return str(err)


@pytest.fixture(scope="module")
def big_cohort(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("big")
    vcf = base / "cohort.vcf"
    write_big_vcf(vcf, BIG_SAMPLES, BIG_RANDOM_SITES)
    store = base / "store"
    ok(invoke(store, "snapshot", "add", OLD_VCF))
    ok(invoke(store, "snapshot", "add", NEW_VCF))
    ok(invoke(store, "cohort", "add", vcf, "--baseline", OLD))
    # The uninterrupted reference run, on a fresh copy, in a subprocess (timed like the others).
    ref_store = base / "ref_store"
    shutil.copytree(store, ref_store)
    t0 = time.perf_counter()
    proc = spawn(ref_store, "reanalyze", "--out", base / "REF")
    err = finish(proc)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, err
    ref = tsv_rows_sorted(base / "REF" / "changes.tsv")
    assert len(ref) > 1000  # a moderately large report: many rows, one file per patient
    assert len(list((base / "REF" / "patients").glob("*.tsv"))) == BIG_SAMPLES
    return {"store": store, "ref": ref, "seconds": seconds, "base": base}


def assert_nothing_recorded_without_report(store: Path, killed_out: Path | None,
                                           ref: list[tuple[str, ...]]) -> bool:
    """After the kill: either nobody is recorded as reviewed, or everybody is and the killed
    run's report exists, complete. Returns whether the killed run got that far."""
    states = {tuple(sorted(r.items())) for r in reviewed(store).values()}
    assert len(states) == 1, f"registry half-updated: {states}"
    if states == {((LINEAGE, OLD),)}:
        return False
    assert states == {((LINEAGE, NEW),)}
    assert killed_out is not None and (killed_out / "run.json").is_file(), \
        "patients recorded as reviewed without their report on disk"
    assert tsv_rows_sorted(killed_out / "changes.tsv") == ref
    run = check_report(killed_out)
    assert run["run_id"] in json.loads((store / "cohort" / "patients.json").read_text())[
        "delivered_runs"]
    return True


def test_kill_9_at_any_moment_then_rerun_gives_complete_report(
        big_cohort: dict[str, Any], tmp_path: Path, cli: Cli) -> None:
    ref, seconds = big_cohort["ref"], big_cohort["seconds"]
    delays = [0.05, 0.5] + [seconds * f for f in (0.6, 0.75, 0.9, 0.97)]
    outcomes = []
    for i, delay in enumerate(delays):
        work = tmp_path / f"k{i}"
        store = work / "store"
        shutil.copytree(big_cohort["store"], store)
        proc = spawn(store, "reanalyze", "--out", work / "OUT1")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        done = assert_nothing_recorded_without_report(store, work / "OUT1", ref)
        outcomes.append((round(delay, 2), proc.returncode, done))
        lock_text = (store / "lock").read_text() if (store / "lock").exists() else ""

        r = ok(cli("reanalyze", "--out", work / "OUT2", store=store))
        if lock_text.strip():
            assert "stale" in r.err
        if done:  # the killed run had finished its job: nothing is delivered twice
            last = assert_nothing_delivered(r, store, work / "OUT2")
            assert last["patients"]["up_to_date"] == BIG_SAMPLES
        else:
            run = check_report(work / "OUT2")
            assert tsv_rows_sorted(work / "OUT2" / "changes.tsv") == ref, f"delay {delay}"
            assert run["patients"] == {"reanalyzed": BIG_SAMPLES, "up_to_date": 0,
                                       "out_of_scope": 0, "failing": []}
        assert set(reviewed_on(store).values()) == {NEW}
        assert list((store / "tmp").iterdir()) == []
    # At least the early kills must really have interrupted the run.
    assert any(rc == -signal.SIGKILL and not done for _, rc, done in outcomes), outcomes


def kill_while_staged(proc: subprocess.Popen[str], staging: Path) -> bool:
    """SIGKILL `proc` the moment a `.stage-` folder appears in `staging`."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if staging.is_dir() and any(".stage-" in p.name for p in staging.iterdir()):
            proc.send_signal(signal.SIGKILL)
            finish(proc)
            return True
        time.sleep(0.0005)
    finish(proc)
    return False


def test_kill_9_while_report_is_staged_leaves_no_leftovers(
        big_cohort: dict[str, Any], tmp_path: Path, cli: Cli) -> None:
    """Killed exactly while the report folder is being written (default folder, under the
    store's reports/): nothing is recorded, and the next run's report is complete with no
    half-written folder left behind in the store."""
    store = tmp_path / "store"
    shutil.copytree(big_cohort["store"], store)
    reports = store / "reports"
    staging = store / "tmp"  # reports inside the store are staged in its tmp/
    caught = kill_while_staged(spawn(store, "reanalyze"), staging)
    assert caught, "the run finished before its report staging could be observed"
    assert set(reviewed_on(store).values()) == {OLD}, "recorded as reviewed without a report"
    complete_before = [p for p in reports.iterdir() if (p / "run.json").is_file()] \
        if reports.exists() else []
    assert complete_before == []

    r = ok(cli("reanalyze", store=store))
    out = stderr_report_dir(r.err)
    assert out.parent == reports
    assert tsv_rows_sorted(out / "changes.tsv") == big_cohort["ref"]
    check_report(out)
    assert set(reviewed_on(store).values()) == {NEW}
    assert list((store / "tmp").iterdir()) == []
    leftovers = sorted(p.name for p in reports.iterdir() if p != out)
    assert leftovers == [], f"half-written report staging left in {reports}: {leftovers}"


def test_kill_9_while_a_dated_report_is_staged_outside_the_store(
        big_cohort: dict[str, Any], tmp_path: Path, cli: Cli) -> None:
    """The cron form `--report-dir /data/reports/{date}-{run_id}`: a report outside the store is
    staged beside its folder. A run killed while staging must not leave its half-written
    (patient data) staging folder there for good: the next run's folder has another name."""
    store = tmp_path / "store"
    shutil.copytree(big_cohort["store"], store)
    reports = tmp_path / "reports"
    reports.mkdir()
    pattern = reports / "{date}-{run_id}"
    caught = kill_while_staged(spawn(store, "reanalyze", "--report-dir", pattern), reports)
    assert caught, "the run finished before its report staging could be observed"
    assert set(reviewed_on(store).values()) == {OLD}

    r = ok(cli("reanalyze", "--report-dir", pattern, store=store))
    out = stderr_report_dir(r.err)
    assert out.parent == reports
    assert tsv_rows_sorted(out / "changes.tsv") == big_cohort["ref"]
    leftovers = sorted(p.name for p in reports.iterdir() if p != out)
    assert leftovers == [], f"half-written report staging left in {reports}: {leftovers}"
