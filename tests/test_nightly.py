"""Issue 11, "What was measured": one scenario per case, run through the CLI against the
contract in notes/nightly_semantics.md.

1. patient identity (an id plus a build; duplicate sample names; multi-file all or nothing);
2. newly / no longer carried alleles after `cohort add --replace`, delivered once;
3. changes below --min-priority are delivered (recorded), not used up;
4. a moved or deleted VCF is reanalyzed from the index; a damaged cohort index stops the whole
   run (exit 4, nothing delivered); a patient that really cannot be reanalyzed fails the run
   (exit 6, even under --quiet) and `cohort status` shows it;
5. `snapshot remove` refuses a snapshot patients were reviewed against;
6. partial releases: header-only refused, cut or contig-losing releases stored as suspect (two
   cut in a row both: the yardstick is the last release not suspect) and refused as targets
   until --accept-suspect;
7. lineages: ClinVar VCF, variant_summary and a lab table, two builds: each patient moves only
   along its own lineage and build; `--replace --baseline` of a new lineage follows it;
8. a tampered snapshot (variants.parquet or manifest) is refused and nothing is reviewed;
9. cron: report folder placeholders, no folder when nothing changed, distinct exit codes.

Hand-made releases and patients use tests/builders.py; the sample releases' changes are listed
in sample_vcfs/README.md. Real files (../shared/data) are used where the issue measured them,
skipped when absent.
"""

from __future__ import annotations

import csv
import html
import json
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from builders import (
    LAB_TOML,
    IndexRow,
    index_files,
    rows_files,
    sql_files,
    write_clinvar,
    write_patient,
)
from builders import index_rows as read_index_rows
from conftest import MAPPINGS, SAMPLES, CliResult, invoke, shared

Cli = Callable[..., CliResult]
Row = dict[str, Any]

OLD_VCF = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
NEW_VCF = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
NEWER = "clinvar-GRCh38-2024-09-01"  # third_release(): APC_B Benign -> Uncertain_significance
C38 = "clinvar/GRCh38"
FULL38 = {m.group(1): int(m.group(2)) for m in re.finditer(
    r"##contig=<ID=(\w+),length=(\d+)>", (SAMPLES / "trio.vcf").read_text())}
CONTIGS37 = {"1": 249250621, "13": 115169878, "17": 81195210}

# Sites of the sample releases (sample_vcfs/README.md) used in hand-made patients.
APC_B = "5 112840100 . A G"  # Benign, unchanged between OLD and NEW
MSH2_P = "2 47445600 . TA T"  # Pathogenic, 3 stars
PTEN_LP = "10 87933100 . C T"  # Likely_pathogenic
KCNQ1_VUS = "11 2583500 . A G"  # Uncertain_significance
UP1 = "13 32332400 . G A"  # VUS (OLD) -> Likely_pathogenic (NEW)

# sample_vcfs/README.md "Expected changes", every priority, per patient:
# (contig, pos, ref, alt, change, priority).
EXPECTED_ALL = {
    "PATIENT01": {("13", 32332400, "G", "A", "upgrade", "high"),
                  ("14", 23415300, "G", "A", "downgrade", "high"),
                  ("7", 117590501, "CTG", "C", "gone", "high"),
                  ("17", 43057100, "G", "A", "new", "high"),
                  ("17", 43071000, "A", "G", "review", "low")},
    "CHILD01": {("3", 37025900, "A", "G", "upgrade", "high"),
                ("3", 38551200, "T", "C", "upgrade", "medium"),
                ("19", 11102700, "C", "T", "conflict", "medium"),
                ("7", 117509100, "G", "A", "resolved", "medium"),
                ("17", 7675990, "CA", "C", "reclassified", "low")},
    "MOTHER01": {("13", 32332400, "G", "A", "upgrade", "high"),
                 ("19", 11102700, "C", "T", "conflict", "medium"),
                 ("7", 117509100, "G", "A", "resolved", "medium"),
                 ("19", 11113400, "G", "A", "review", "low")},
    "FATHER01": {("14", 23415300, "G", "A", "downgrade", "high"),
                 ("3", 38551200, "T", "C", "upgrade", "medium"),
                 ("7", 117509100, "G", "A", "resolved", "medium"),
                 ("17", 7675990, "CA", "C", "reclassified", "low")},
}


# ------------------------------------------------------------------------------ helpers
def ok(r: CliResult, code: int = 0) -> CliResult:
    assert r.code == code, f"exit {r.code}, expected {code}\nstdout: {r.out[-2000:]}\n" \
                           f"stderr: {r.err[-2000:]}"
    return r


def jsonl(text: str) -> list[Row]:
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def read_tsv(path: Path) -> list[Row]:
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    return [{k: (v if v != "" else None) for k, v in row.items()}
            for row in csv.DictReader(lines, delimiter="\t")]


def registry(store: Path) -> dict[str, Row]:
    patients: dict[str, Row] = json.loads(
        (store / "cohort" / "patients.json").read_text())["patients"]
    return patients


def registry_bytes(store: Path) -> bytes:
    return (store / "cohort" / "patients.json").read_bytes()


def reviewed(store: Path) -> dict[str, dict[str, str]]:
    return {pid: dict(p["reviewed"]) for pid, p in registry(store).items()}


def runs(store: Path) -> list[Row]:
    path = store / "runs.jsonl"
    return jsonl(path.read_text()) if path.exists() else []


def status(cli: Cli, code: int = 0) -> list[Row]:
    return jsonl(ok(cli("cohort", "status", "--format", "json"), code).out)


def bare(chrom: str) -> str:
    return chrom[3:] if chrom.startswith("chr") else chrom


def change(r: Row) -> tuple[Any, ...]:
    return (bare(str(r["chrom"])), int(r["pos"]), r["ref"], r["alt"], r["change"],
            r["priority"])


def by_patient(rows: list[Row]) -> dict[str, set[tuple[Any, ...]]]:
    out: dict[str, set[tuple[Any, ...]]] = {}
    for r in rows:
        out.setdefault(str(r["patient"]), set()).add(change(r))
    return out


def errors(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("varreinterp: ERROR: ")]


# Registry schema 3 (varreinterp/cohort.py, cohort_index.py): each registration has a patient
# `number`; its carried alleles are rows (key_chrom, pos, ref, alt, patient = that number,
# zygosity, ...) of one inverted index shared by the cohort, Parquet rows files under
# STORE/cohort/bins/<contig digest>/<bin>/, each with its key directory (<name>.keys.parquet)
# beside it, all catalogued (with their sizes) in the registry's `index.files`; `previous` maps
# a lineage to the number last delivered there while a --replace waits to be delivered. Tests
# reach into that layout only through these.
def index_rows(store: Path) -> dict[int, list[IndexRow]]:
    """Every row of the index, read directly from the files, by patient number; the files on
    disk must be exactly the catalogued ones, at their sizes."""
    catalog = json.loads((store / "cohort" / "patients.json").read_text())["index"]["files"]
    assert index_files(store) == {n: e["size"] for n, e in catalog.items()}
    return read_index_rows(store)


def alleles_of(rows: list[IndexRow]) -> set[tuple[str, int, str, str]]:
    return {r[:4] for r in rows}


def site(s: str) -> tuple[str, int, str, str]:
    """A `CHROM POS ID REF ALT` site as an index key."""
    chrom, pos, _, ref, alt = s.split()
    return chrom, int(pos), ref, alt


def index_file_holding(store: Path, key_chrom: str, pos: int) -> Path:
    """An index file with a row at this position (found by reading the files directly)."""
    import duckdb

    con = duckdb.connect()
    try:
        found = con.execute(f"""
            SELECT DISTINCT filename
            FROM read_parquet({sql_files(rows_files(store))}, filename = true)
            WHERE key_chrom = ? AND pos = ? ORDER BY filename""", [key_chrom, pos]).fetchall()
    finally:
        con.close()
    assert found, f"no index row at {key_chrom}:{pos}"
    return Path(found[0][0])


def tmp_leftovers(store: Path) -> list[str]:
    tmp = store / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def calls(*sites: str, gt: str = "0/1") -> list[str]:
    """Patient records at these `CHROM POS ID REF ALT` sites, in contig order."""
    order = {c: i for i, c in enumerate(FULL38)}
    return [f"{s} 50 PASS . GT {gt}" for s in sorted(
        sites, key=lambda s: (order.get(s.split()[0], 99), int(s.split()[1])))]


def patient38(path: Path, samples: list[str], records: list[str]) -> Path:
    return write_patient(path, samples, records, contigs=FULL38,
                         extra_header="##reference=GRCh38")


def patient37(path: Path, samples: list[str], records: list[str]) -> Path:
    return write_patient(path, samples, records, contigs=CONTIGS37,
                         extra_header="##reference=GRCh37")


def third_release(path: Path) -> Path:
    """The 2024-06-02 sample release re-dated 2024-09-01 with one change: APC_B (carried by
    CHILD01 0/1 and MOTHER01 1/1) Benign -> Uncertain_significance (upgrade, medium)."""
    lines = NEW_VCF.read_text().splitlines(keepends=True)
    out = []
    for line in lines:
        if line.startswith("##fileDate="):
            line = "##fileDate=2024-09-01\n"
        elif line.startswith("5\t112840100\t"):
            line = line.replace("CLNSIG=Benign;", "CLNSIG=Uncertain_significance;")
        out.append(line)
    path.write_text("".join(out))
    return path


def release_without(path: Path, date: str, drop: Callable[[list[str]], bool]) -> Path:
    """The 2024-06-02 sample release re-dated, without the records `drop` selects."""
    out = []
    for line in NEW_VCF.read_text().splitlines(keepends=True):
        if line.startswith("##fileDate="):
            line = f"##fileDate={date}\n"
        elif not line.startswith("#") and drop(line.split("\t")):
            continue
        out.append(line)
    path.write_text("".join(out))
    return path


@pytest.fixture(scope="module")
def sample_snapshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("samples") / "store"
    ok(invoke(store, "snapshot", "add", OLD_VCF))
    ok(invoke(store, "snapshot", "add", NEW_VCF))
    return store


@pytest.fixture
def sample_cohort(sample_snapshots: Path, store_dir: Path, tmp_path: Path,
                  cli: Cli) -> dict[str, Path]:
    """Both sample VCFs copied into tmp, their 4 patients registered at the older release."""
    shutil.copytree(sample_snapshots, store_dir)
    single, trio = tmp_path / "patient_single.vcf.gz", tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "patient_single.vcf.gz", single)
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(cli("cohort", "add", single, trio, "--baseline", OLD))
    return {"single": single, "trio": trio}


# ------------------------------------------------------------------------------ 1. identity
def test_same_id_on_another_build_is_refused_naming_both(sample_snapshots: Path,
                                                         store_dir: Path, tmp_path: Path,
                                                         cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    site37 = ("13", 32906537, "G", "A")
    write_clinvar(tmp_path / "a37.vcf", [(*site37, "Uncertain_significance", 1, "BRCA2", None)],
                  date="2024-01-01", assembly="GRCh37")
    write_clinvar(tmp_path / "b37.vcf", [(*site37, "Likely_pathogenic", 1, "BRCA2", None)],
                  date="2024-05-01", assembly="GRCh37")
    ok(cli("snapshot", "add", tmp_path / "a37.vcf"))
    ok(cli("snapshot", "add", tmp_path / "b37.vcf"))
    na37 = patient37(tmp_path / "na37.vcf", ["NA12878"], ["13 32906537 . G A 50 PASS . GT 0/1"])
    ok(cli("cohort", "add", na37, "--baseline", "clinvar-GRCh37-2024-01-01"))
    na38 = patient38(tmp_path / "na38.vcf", ["NA12878"], calls(UP1))
    before = registry_bytes(store_dir)
    for extra in ([], ["--replace"], ["--replace", "--baseline", OLD]):
        r = ok(cli("cohort", "add", na38, *extra), 4)
        assert "NA12878" in r.err and "GRCh37" in r.err and "GRCh38" in r.err, r.err
        assert registry_bytes(store_dir) == before
        assert tmp_leftovers(store_dir) == []

    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    run = json.loads((out / "run.json").read_text())
    pair = "clinvar-GRCh37-2024-01-01->clinvar-GRCh37-2024-05-01"
    assert list(run["comparisons"]) == [pair]
    assert run["comparisons"][pair]["assembly"] == "GRCh37"
    assert run["comparisons"][pair]["patients"] == ["NA12878"]
    assert {(r["lineage"], r["change"]) for r in read_tsv(out / "changes.tsv")} == {
        ("clinvar/GRCh37", "upgrade")}
    assert reviewed(store_dir) == {"NA12878": {"clinvar/GRCh37": "clinvar-GRCh37-2024-05-01"}}
    # The GRCh38 sequencing is another patient, under another id.
    ok(cli("cohort", "add", na38, "--patient-id", "NA12878-38", "--baseline", OLD))
    assert registry(store_dir)["NA12878-38"]["assembly"] == "GRCh38"


def test_real_grch38_bcf_does_not_take_over_a_grch37_patient(store_dir: Path, cli: Cli) -> None:
    """The measured case: a GRCh38 BCF whose sample is NA12878 while a GRCh37 NA12878 is
    registered; the next reanalysis compared across builds and backwards in time."""
    giab37 = shared("patients/GRCh37/NA12878.giab.chr20_10.0-10.1Mb.vcf.gz")
    bcf38 = shared("patients/GRCh38/NA12878.platinum.chr21.bcf")
    c37_old = shared("clinvar/GRCh37/clinvar_20191202.chr1_949k-977k.vcf.gz")
    c37_new = shared("clinvar/GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz")
    mac17 = shared("clinvar/custom_format/macarthur_clinvar_alleles.b38.release20170202.vcf")
    ok(cli("snapshot", "add", c37_old))
    ok(cli("snapshot", "add", c37_new))
    ok(cli("snapshot", "add", mac17, "--format", "table", "--mapping",
           MAPPINGS / "macarthur-vcf.toml", "--assembly", "GRCh38"))
    ok(cli("cohort", "add", giab37, "--patient-id", "NA12878",
           "--baseline", "clinvar-GRCh37-2019-12-02"))
    before = registry_bytes(store_dir)
    r = ok(cli("cohort", "add", bcf38), 4)
    assert "NA12878" in r.err and "GRCh37" in r.err and "GRCh38" in r.err, r.err
    assert registry_bytes(store_dir) == before
    ok(cli("reanalyze"))
    assert [c for run in runs(store_dir) for c in run["comparisons"]] == [
        {"from": "clinvar-GRCh37-2019-12-02", "to": "clinvar-GRCh37-2023-07-10",
         "lineage": "clinvar/GRCh37", "patients": 1}]
    assert reviewed(store_dir) == {"NA12878": {"clinvar/GRCh37": "clinvar-GRCh37-2023-07-10"}}


def test_duplicate_sample_names_are_refused(sample_snapshots: Path, store_dir: Path,
                                            tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    dup = patient38(tmp_path / "dup.vcf", ["S1", "S2", "S1"],
                    [f"{UP1} 50 PASS . GT 0/1 0/0 1/1"])
    r = ok(cli("cohort", "add", dup), 3)
    assert "S1" in r.err and str(dup) in r.err
    assert not (store_dir / "cohort" / "patients.json").exists()
    assert tmp_leftovers(store_dir) == []


def test_multi_file_cohort_add_is_all_or_nothing(sample_snapshots: Path, store_dir: Path,
                                                 tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    good = patient38(tmp_path / "good.vcf", ["G1"], calls(UP1))
    broken = tmp_path / "broken.vcf"
    broken.write_text("##fileformat=VCFv4.2\nnot a header\n")
    dup = patient38(tmp_path / "dup.vcf", ["D1", "D1"], [f"{UP1} 50 PASS . GT 0/1 0/1"])
    again = patient38(tmp_path / "again.vcf", ["G1"], calls(UP1, gt="1/1"))

    def nothing_registered() -> None:
        path = store_dir / "cohort" / "patients.json"
        assert not path.exists() or registry(store_dir) == {}
        assert index_files(store_dir) == {}
        assert tmp_leftovers(store_dir) == []

    ok(cli("cohort", "add", good, broken), 3)  # the second file fails
    nothing_registered()
    ok(cli("cohort", "add", good, dup), 3)
    nothing_registered()
    r = ok(cli("cohort", "add", good, again), 2)  # one patient id twice in one add
    assert "G1" in r.err
    nothing_registered()

    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(cli("cohort", "add", trio, "--baseline", OLD))
    before = registry_bytes(store_dir)
    trio.write_text(trio.read_text().replace("\t0/1:24:78\t0/1:35:99\t0/0:46:99",
                                             "\t1/1:24:78\t0/1:35:99\t0/0:46:99"))
    ok(cli("cohort", "add", good, trio), 4)  # trio is another file for registered patients
    assert registry_bytes(store_dir) == before
    assert "G1" not in registry(store_dir)
    ok(cli("cohort", "add", good))
    assert set(registry(store_dir)) == {"G1", "CHILD01", "MOTHER01", "FATHER01"}


# ------------------------------------------------------------------------------ 2. replaced VCFs
def delivered(store: Path) -> list[Row]:
    """Every row of every delivered report (runs.jsonl), in order."""
    rows: list[Row] = []
    for run in runs(store):
        if run["report"]:
            rows += read_tsv(Path(run["report"]) / "changes.tsv")
    return rows


def test_replaced_vcf_delivers_newly_and_no_longer_carried_once(sample_snapshots: Path,
                                                                store_dir: Path,
                                                                tmp_path: Path,
                                                                cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    v1 = patient38(tmp_path / "v1.vcf", ["P1"], calls(APC_B, UP1))
    ok(cli("cohort", "add", v1, "--baseline", OLD))
    ok(cli("reanalyze", "--out", tmp_path / "R1"))
    assert by_patient(read_tsv(tmp_path / "R1" / "changes.tsv")) == {
        "P1": {("13", 32332400, "G", "A", "upgrade", "high")}}

    # Re-sequenced: now carries a Pathogenic and a Likely pathogenic variant (and a VUS), no
    # longer the benign APC variant.
    v2 = patient38(tmp_path / "v2.vcf", ["P1"],
                   calls(MSH2_P, KCNQ1_VUS, UP1) + calls(PTEN_LP, gt="1/1"))
    r = ok(cli("cohort", "add", v2), 4)
    assert "--replace" in r.err
    ok(cli("cohort", "add", v2, "--replace"))
    assert [(s["state"], s["high"], s["medium"], s["low"]) for s in status(cli)] == [
        ("waiting", 2, 1, 1)]
    r = ok(cli("reanalyze", "--out", tmp_path / "R2", "--exit-code"), 1)
    assert "1 patient(s) reanalyzed, 0 already up to date" in r.err
    rows = read_tsv(tmp_path / "R2" / "changes.tsv")
    assert by_patient(rows) == {"P1": {
        ("2", 47445600, "TA", "T", "newly_carried", "high"),
        ("10", 87933100, "C", "T", "newly_carried", "high"),
        ("11", 2583500, "A", "G", "newly_carried", "medium"),
        ("5", 112840100, "A", "G", "no_longer_carried", "low")}}
    assert {(r_["from_snapshot"], r_["to_snapshot"], r_["lineage"]) for r_ in rows} == {
        (NEW, NEW, C38)}
    by_kind = {(r_["pos"], r_["change"]): r_ for r_ in rows}
    assert by_kind[("47445600", "newly_carried")]["after"] == "Pathogenic"
    assert by_kind[("47445600", "newly_carried")]["before"] is None
    assert by_kind[("87933100", "newly_carried")]["zygosity"] == "hom"
    assert by_kind[("112840100", "no_longer_carried")]["before"] == "Benign"
    assert by_kind[("112840100", "no_longer_carried")]["after"] is None
    # Exactly once.
    ok(cli("reanalyze", "--out", tmp_path / "R3", "--exit-code"))
    assert not (tmp_path / "R3").exists()
    assert [(s["state"], s["high"], s["medium"], s["low"]) for s in status(cli)] == [
        ("up_to_date", 0, 0, 0)]


def test_replacing_twice_delivers_against_the_last_delivered_calls(sample_snapshots: Path,
                                                                   store_dir: Path,
                                                                   tmp_path: Path,
                                                                   cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    v1 = patient38(tmp_path / "v1.vcf", ["P1"], calls(APC_B, UP1))
    v2 = patient38(tmp_path / "v2.vcf", ["P1"], calls(APC_B, MSH2_P))
    v3 = patient38(tmp_path / "v3.vcf", ["P1"], calls(MSH2_P, PTEN_LP))
    ok(cli("cohort", "add", v1))  # default baseline: the newest (NEW), up to date
    first = registry(store_dir)["P1"]["number"]
    ok(cli("cohort", "add", v2, "--replace"))
    second = registry(store_dir)["P1"]["number"]
    assert registry(store_dir)["P1"]["previous"] == {C38: first}
    ok(cli("cohort", "add", v3, "--replace"))
    p1 = registry(store_dir)["P1"]
    third = p1["number"]
    # The comparison base stays the delivered registration (v1); v2's was never delivered.
    assert p1["previous"] == {C38: first} and len({first, second, third}) == 3
    rows = index_rows(store_dir)
    assert alleles_of(rows[first]) == {site(APC_B), site(UP1)}
    assert alleles_of(rows[third]) == {site(MSH2_P), site(PTEN_LP)}
    # A compaction now drops v2's rows and must keep both live registrations' rows.
    plain = tmp_path / "uncompacted"
    shutil.copytree(store_dir, plain)
    ok(cli("cohort", "compact"))
    assert index_rows(store_dir) == {first: rows[first], third: rows[third]}
    expected = {"P1": {
        ("2", 47445600, "TA", "T", "newly_carried", "high"),
        ("10", 87933100, "C", "T", "newly_carried", "high"),
        ("5", 112840100, "A", "G", "no_longer_carried", "low"),
        ("13", 32332400, "G", "A", "no_longer_carried", "low")}}
    ok(cli("reanalyze", "--out", tmp_path / "R"))
    assert by_patient(read_tsv(tmp_path / "R" / "changes.tsv")) == expected
    ok(cli("reanalyze", "--out", tmp_path / "R-plain", store=plain))  # v2's rows still there
    assert by_patient(read_tsv(tmp_path / "R-plain" / "changes.tsv")) == expected
    # Delivered: v1's registration is dead too, and only v3's rows survive a compaction.
    assert registry(store_dir)["P1"]["previous"] == {}
    ok(cli("cohort", "compact"))
    assert index_rows(store_dir) == {third: rows[third]}


def test_replacement_before_a_reanalysis_compares_the_new_calls(sample_snapshots: Path,
                                                                store_dir: Path,
                                                                tmp_path: Path,
                                                                cli: Cli) -> None:
    """Replaced while still reviewed at OLD: the new calls are classified as of OLD
    (newly/no longer carried, OLD->OLD) and the release changes OLD->NEW apply to them."""
    shutil.copytree(sample_snapshots, store_dir)
    ok(cli("cohort", "add", patient38(tmp_path / "v1.vcf", ["P1"], calls(APC_B)),
           "--baseline", OLD))
    ok(cli("cohort", "add", patient38(tmp_path / "v2.vcf", ["P1"], calls(MSH2_P, UP1)),
           "--replace"))
    ok(cli("reanalyze", "--out", tmp_path / "R"))
    rows = read_tsv(tmp_path / "R" / "changes.tsv")
    assert {(*change(r), r["from_snapshot"], r["to_snapshot"]) for r in rows} == {
        ("13", 32332400, "G", "A", "upgrade", "high", OLD, NEW),
        ("13", 32332400, "G", "A", "newly_carried", "medium", OLD, OLD),
        ("2", 47445600, "TA", "T", "newly_carried", "high", OLD, OLD),
        ("5", 112840100, "A", "G", "no_longer_carried", "low", OLD, OLD)}
    assert reviewed(store_dir) == {"P1": {C38: NEW}}


def test_replacing_a_multi_sample_vcf_keeps_unchanged_patients_reanalyzable(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """Only CHILD01's calls change in the new trio file, but all three are re-registered:
    MOTHER01's and FATHER01's new registrations hold the same rows as the ones they replace.
    Once the replacement is delivered and the retired rows are compacted away, their rows must
    still be live in the index: at the next release they must still be reanalyzed."""
    trio = sample_cohort["trio"]
    ok(cli("reanalyze", "--out", tmp_path / "R1"))
    before = {pid: index_rows(store_dir)[p["number"]] for pid, p in registry(store_dir).items()}
    lines = trio.read_text().splitlines(keepends=True)
    at = next(i for i, ln in enumerate(lines) if ln.startswith("12\t"))
    lines.insert(at, "11\t2583500\t.\tA\tG\t500\tPASS\t.\tGT:DP:GQ\t0/1:30:90\t0/0:31:92\t"
                     "0/0:32:94\n")  # KCNQ1_VUS, newly carried by CHILD01
    trio.write_text("".join(lines))
    ok(cli("cohort", "add", trio, "--replace"))
    ok(cli("reanalyze", "--out", tmp_path / "R2"))
    assert by_patient(read_tsv(tmp_path / "R2" / "changes.tsv")) == {
        "CHILD01": {("11", 2583500, "A", "G", "newly_carried", "medium")}}
    reg = registry(store_dir)
    assert {pid: p["previous"] for pid, p in reg.items()} == {pid: {} for pid in reg}
    ok(cli("cohort", "compact"))  # the retired registrations' rows are dropped
    rows = index_rows(store_dir)
    assert set(rows) == {p["number"] for p in reg.values()}
    assert {pid: rows[p["number"]] for pid, p in reg.items()} == {
        **before, "CHILD01": sorted([*before["CHILD01"], (*site(KCNQ1_VUS), "het")])}

    ok(cli("snapshot", "add", third_release(tmp_path / "clinvar_20240901.vcf")))
    r = ok(cli("reanalyze", "--out", tmp_path / "R3", "--exit-code"), 1)
    assert errors(r.err) == []
    assert by_patient(read_tsv(tmp_path / "R3" / "changes.tsv")) == {
        "CHILD01": {("5", 112840100, "A", "G", "upgrade", "medium")},
        "MOTHER01": {("5", 112840100, "A", "G", "upgrade", "medium")}}


def test_replacing_a_patient_who_carries_nothing(sample_snapshots: Path, store_dir: Path,
                                                tmp_path: Path, cli: Cli) -> None:
    """Regression (found by test_nightly_stateful.py): the only patient carries nothing, so
    the cohort index has no file at all; a re-called file (other bytes, still nothing carried)
    replaced it. The next run crashed (exit 70: the replaced rows' table did not exist)
    instead of delivering the (empty) replacement and moving on."""
    shutil.copytree(sample_snapshots, store_dir)
    v1 = patient38(tmp_path / "v1.vcf", ["P1"], calls(APC_B, gt="0/0"))
    v2 = patient38(tmp_path / "v2.vcf", ["P1"], calls(APC_B, gt="0/0"))
    v2.write_text(v2.read_text().replace("\t50\t", "\t60\t"))
    ok(cli("cohort", "add", v1, "--baseline", OLD))
    assert registry(store_dir)["P1"]["alleles"] == 0 and index_files(store_dir) == {}
    ok(cli("cohort", "add", v2, "--replace"))
    assert [(s["state"], s["high"], s["medium"], s["low"]) for s in status(cli)] == [
        ("waiting", 0, 0, 0)]
    r = ok(cli("reanalyze", "--exit-code"))
    assert "nothing changed: no report folder written" in r.err
    assert reviewed(store_dir) == {"P1": {C38: NEW}} and registry(store_dir)["P1"]["previous"] == {}


# ------------------------------------------------------------------------------ 3. low priority
def test_changes_below_the_listing_threshold_are_delivered_not_used_up(
        store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    site = ("1", 1000, "A", "G")
    still = ("1", 2000, "C", "T", "Benign", 2, "GENE2", None)
    write_clinvar(tmp_path / "a.vcf", [(*site, "Pathogenic", 0, "GENE1", None), still],
                  date="2024-01-01")
    write_clinvar(tmp_path / "b.vcf", [(*site, "Likely_pathogenic", 1, "GENE1", None), still],
                  date="2024-02-01")
    ok(cli("snapshot", "add", tmp_path / "a.vcf"))
    ok(cli("snapshot", "add", tmp_path / "b.vcf"))
    pat = write_patient(tmp_path / "p.vcf", ["P"], ["chr1 1000 . A G 50 PASS . GT 0/1",
                                                    "chr1 2000 . C T 50 PASS . GT 1/1"],
                        extra_header="##reference=GRCh38")
    ok(cli("cohort", "add", pat, "--baseline", "clinvar-GRCh38-2024-01-01"))
    assert [(s["state"], s["high"], s["medium"], s["low"]) for s in status(cli)] == [
        ("waiting", 0, 0, 1)]
    assert jsonl(ok(cli("reanalyze", "--dry-run", "--format", "json")).out) == []
    listed = jsonl(ok(cli("reanalyze", "--dry-run", "--format", "json", "--min-priority",
                          "low")).out)
    assert [change(r) for r in listed] == [("1", 1000, "A", "G", "reclassified", "low")]

    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out, "--exit-code"), 1)  # default --min-priority medium
    assert "0 change(s) at or above medium" in r.err
    assert "1 lower-priority change(s) recorded in the report" in r.err
    rows = read_tsv(out / "changes.tsv")
    assert [(change(x), x["before"], x["after"], x["stars_before"], x["stars_after"])
            for x in rows] == [(("1", 1000, "A", "G", "reclassified", "low"), "Pathogenic",
                                "Likely_pathogenic", "0", "1")]
    run = json.loads((out / "run.json").read_text())
    assert run["changes"]["by_priority"] == {"high": 0, "medium": 0, "low": 1}
    assert run["changes"]["per_patient"] == {"P": 1}
    assert len(read_tsv(out / run["changes"]["patient_files"]["P"])) == 1
    assert runs(store_dir)[-1]["changes"] == {"high": 0, "medium": 0, "low": 1}
    # Delivered once: a later run listing everything has nothing new.
    r = ok(cli("reanalyze", "--min-priority", "low", "--exit-code"))
    assert "nothing changed: no report folder written" in r.err


# ------------------------------------------------------------------------------ 4. no silent skip
def test_moved_or_deleted_vcf_is_reanalyzed_from_the_index(sample_cohort: dict[str, Path],
                                                           store_dir: Path, tmp_path: Path,
                                                           cli: Cli) -> None:
    waiting = {s["patient"]: (s["state"], s["high"], s["medium"], s["low"])
               for s in status(cli)}
    shutil.move(sample_cohort["single"], tmp_path / "archive.vcf.gz")
    sample_cohort["trio"].unlink()
    # The pending changes are still announced: never zeros because a file moved.
    assert {s["patient"]: (s["state"], s["high"], s["medium"], s["low"])
            for s in status(cli)} == waiting
    assert waiting["PATIENT01"] == ("waiting", 4, 0, 1)
    r = ok(cli("reanalyze", "--dry-run", "--format", "json", "--min-priority", "low"))
    warned = [ln for ln in r.err.splitlines() if "WARNING" in ln]
    assert len(warned) == 4 and all("reanalyzed from the cohort index" in w for w in warned)
    assert by_patient(jsonl(r.out)) == EXPECTED_ALL

    out = tmp_path / "OUT"
    r = ok(cli("--quiet", "reanalyze", "--exit-code", "--out", out), 1)
    assert (r.out, r.err) == ("", "")
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED_ALL
    assert {p: rv[C38] for p, rv in reviewed(store_dir).items()} == {p: NEW
                                                                      for p in EXPECTED_ALL}


def test_a_damaged_cohort_index_stops_the_run_even_quiet(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """(Was: a damaged index fails just its patients, exit 6.) An index file holds many
    patients' rows: an edited one (with CHILD01's rows) and a deleted one (with MOTHER01's)
    stop the whole run with exit 4, under --quiet too (one line naming a damaged file): nothing
    delivered, nobody recorded, `cohort status` refuses rather than show counts, and every
    night fails the same way until the index is restored; never exit 0."""
    edited = index_file_holding(store_dir, "3", 37025900)  # CHILD01's upgrade
    deleted = index_file_holding(store_dir, "19", 11113400)  # MOTHER01's review change
    assert edited != deleted
    edited.write_bytes(edited.read_bytes() + b"\0")
    deleted.unlink()
    before = registry_bytes(store_dir)

    out = tmp_path / "OUT"
    for args in (["--quiet", "reanalyze", "--exit-code", "--out", out],
                 ["--quiet", "reanalyze", "--exit-code"], ["--quiet", "reanalyze"],
                 ["cohort", "status", "--format", "json"], ["cohort", "status"]):
        r = ok(cli(*args), 4)
        assert r.out == "", args
        said = [ln for ln in r.err.splitlines() if ln.startswith("varreinterp: error: ")]
        assert len(said) == 1 and (str(edited) in said[0] or str(deleted) in said[0]), r.err
        if args[0] == "--quiet":
            assert r.err.splitlines() == said
    assert not out.exists() and registry_bytes(store_dir) == before
    assert [x for x in runs(store_dir) if x["report"] or x["exit_code"] != 4] == []
    assert {p: rv[C38] for p, rv in reviewed(store_dir).items()} == {p: OLD
                                                                      for p in EXPECTED_ALL}


def test_a_patient_that_cannot_be_reanalyzed_fails_the_run_even_quiet(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """X was reviewed against NEW, whose folder was then lost (a restore without it): X cannot
    be reanalyzed, the others are (onto a newer release) and their changes delivered, but the
    run exits 6, under --quiet too, and `cohort status` shows X failing without counts."""
    ok(cli("cohort", "add", sample_cohort["single"], "--patient-id", "X", "--baseline", NEW))
    shutil.rmtree(store_dir / "snapshots" / NEW)
    ok(cli("snapshot", "add", third_release(tmp_path / "clinvar_20240901.vcf")))

    out = tmp_path / "OUT"
    r = ok(cli("--quiet", "reanalyze", "--exit-code", "--out", out), 6)
    assert r.out == ""
    errs = errors(r.err)
    assert len(errs) == 1 and r.err.splitlines() == errs, r.err
    assert "patient X " in errs[0] and "not reanalyzed" in errs[0], errs
    assert NEW in errs[0] and "no longer stored" in errs[0], errs
    run = json.loads((out / "run.json").read_text())
    assert [(f["patient"], f["lineage"]) for f in run["patients"]["failing"]] == [("X", C38)]
    apc = ("5", 112840100, "A", "G", "upgrade", "medium")  # OLD -> NEWER adds APC_B's upgrade
    rows = read_tsv(out / "changes.tsv")
    assert by_patient(rows) == {**EXPECTED_ALL, "CHILD01": EXPECTED_ALL["CHILD01"] | {apc},
                                "MOTHER01": EXPECTED_ALL["MOTHER01"] | {apc}}
    assert {(r_["from_snapshot"], r_["to_snapshot"]) for r_ in rows} == {(OLD, NEWER)}
    assert {p: rv[C38] for p, rv in reviewed(store_dir).items()} == {
        **{p: NEWER for p in EXPECTED_ALL}, "X": NEW}
    assert runs(store_dir)[-1]["exit_code"] == 6

    states = {s["patient"]: s for s in status(cli, 6)}
    assert states["X"]["state"] == "failing" and "no longer stored" in states["X"]["reason"]
    assert (states["X"]["high"], states["X"]["medium"], states["X"]["low"]) == (None, None, None)
    assert {states[p]["state"] for p in EXPECTED_ALL} == {"up_to_date"}
    table = ok(cli("cohort", "status", "--format", "tsv"), 6).out
    x_row = next(ln.split("\t") for ln in table.splitlines() if ln.startswith("X\t"))
    assert x_row[5:8] == ["", "", ""], "a failing patient's counts must not read as 0"
    # Still failing the next night, and never exit 0.
    ok(cli("--quiet", "reanalyze", "--exit-code"), 6)
    ok(cli("--quiet", "reanalyze"), 6)


# ------------------------------------------------------------------------------ 5. snapshot remove
def test_snapshot_remove_refuses_a_snapshot_patients_were_reviewed_against(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    for n in (1, 2, 3):  # 7 patients: the message shows the first ids only
        ok(cli("cohort", "add", sample_cohort["single"], "--patient-id", f"X{n}",
               "--baseline", OLD))
    r = ok(cli("snapshot", "remove", OLD), 4)
    assert "7 patient(s)" in r.err and "CHILD01" in r.err and "..." in r.err
    assert "varreinterp reanalyze" in r.err and "cohort remove" in r.err
    ok(cli("snapshot", "verify", OLD))
    assert [s["state"] for s in status(cli)] == ["waiting"] * 7

    ok(cli("reanalyze", "--out", tmp_path / "OUT"))
    ok(cli("snapshot", "remove", OLD))  # now only their baseline, not their reviewed state
    assert [s["name"] for s in jsonl(ok(cli("snapshot", "list", "-f", "json")).out)] == [NEW]
    assert {s["state"] for s in status(cli)} == {"up_to_date"}
    ok(cli("reanalyze", "--exit-code"))
    r = ok(cli("snapshot", "remove", NEW), 4)
    assert "7 patient(s)" in r.err


# ------------------------------------------------------------------------------ 6. partial
def test_header_only_release_is_refused(sample_snapshots: Path, store_dir: Path,
                                        tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    empty = release_without(tmp_path / "clinvar_20240701.vcf", "2024-07-01", lambda f: True)
    r = ok(cli("snapshot", "add", empty), 3)
    assert str(empty) in r.err
    assert [s["name"] for s in jsonl(ok(cli("snapshot", "list", "-f", "json")).out)] == [
        OLD, NEW]
    assert tmp_leftovers(store_dir) == []


@pytest.fixture
def cut_release(sample_snapshots: Path, store_dir: Path, tmp_path: Path,
                cli: Cli) -> dict[str, Path]:
    """OLD stored, patients at OLD, then the 2024-06-02 release cut to its first 18 records."""
    store_dir.mkdir()
    shutil.copytree(sample_snapshots / "snapshots" / OLD, store_dir / "snapshots" / OLD)
    shutil.copy(sample_snapshots / "store.json", store_dir / "store.json")
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(cli("cohort", "add", trio))
    kept: list[int] = []

    def cut(fields: list[str]) -> bool:
        kept.append(1)
        return len(kept) > 18

    cut_vcf = release_without(tmp_path / "clinvar_20240602.vcf", "2024-06-02", cut)
    r = ok(cli("snapshot", "add", cut_vcf))
    assert "SUSPECT" in r.err and NEW in r.err
    return {"trio": trio}


def test_cut_release_is_stored_suspect_and_refused_as_target(cut_release: dict[str, Path],
                                                             store_dir: Path, tmp_path: Path,
                                                             cli: Cli) -> None:
    shown = json.loads(ok(cli("snapshot", "show", NEW, "-f", "json")).out)
    assert shown["records"] == 18
    assert "18" in shown["suspect"] and "42" in shown["suspect"] and OLD in shown["suspect"]
    listing = ok(cli("snapshot", "list", "-f", "tsv")).out
    assert next(ln for ln in listing.splitlines() if ln.startswith(NEW)).split("\t")[
        -1].startswith("SUSPECT: ")
    before = registry_bytes(store_dir)
    for args in (["reanalyze", "--exit-code"], ["reanalyze", "--to", NEW],
                 ["diff", cut_release["trio"], "--from", OLD, "--to", NEW],
                 ["snapshot", "diff", OLD, NEW]):
        r = ok(cli(*args), 4)
        assert NEW in r.err and "18" in r.err and "42" in r.err and "--accept-suspect" in r.err
    assert registry_bytes(store_dir) == before
    assert not (store_dir / "reports").exists()
    assert {(s["target_snapshot"], s["suspect_target"]) for s in status(cli)} == {(NEW, True)}

    ok(cli("diff", cut_release["trio"], "--from", OLD, "--to", NEW, "--accept-suspect"))
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--accept-suspect", "--out", out))
    rows = read_tsv(out / "changes.tsv")
    assert {r["to_snapshot"] for r in rows} == {NEW}
    assert "gone" in {r["change"] for r in rows}  # what the cut dropped reads as gone
    assert {rv[C38] for rv in reviewed(store_dir).values()} == {NEW}


def test_an_accepted_suspect_release_does_not_block_the_next_nights(
        cut_release: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """Once every patient was reanalyzed onto the accepted release, later nights compare
    nothing against it: the cron line (without --accept-suspect) must not fail forever (the
    snapshot cannot be removed either: patients were reviewed against it)."""
    ok(cli("reanalyze", "--accept-suspect", "--out", tmp_path / "OUT"))
    r = ok(cli("reanalyze", "--exit-code"))
    assert "nothing changed" in r.err


def test_a_second_cut_release_in_a_row_is_suspect_too(
        cut_release: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """Two cut releases in a row: the second (the same 18 records, a later date) matches the
    first, suspect one, and passed as 'ok' (then reanalyze delivered what the cut dropped as
    'gone' and moved everyone onto it). It is compared with the last release that is not
    suspect (OLD, 42 records): suspect too, reanalyze refuses it (exit 4) and delivers
    nothing."""
    later = "clinvar-GRCh38-2024-07-01"
    kept: list[int] = []

    def cut(fields: list[str]) -> bool:
        kept.append(1)
        return len(kept) > 18

    again = release_without(tmp_path / "clinvar_20240701.vcf", "2024-07-01", cut)
    r = ok(cli("snapshot", "add", again))
    assert "SUSPECT" in r.err and later in r.err, r.err
    shown = json.loads(ok(cli("snapshot", "show", later, "-f", "json")).out)
    assert shown["records"] == 18 and shown["suspect"] is not None
    assert "18" in shown["suspect"] and "42" in shown["suspect"] and OLD in shown["suspect"]
    assert NEW not in shown["suspect"]  # the first cut release is no yardstick
    listing = {ln.split("\t")[0]: ln.split("\t")[-1]
               for ln in ok(cli("snapshot", "list", "-f", "tsv")).out.splitlines()}
    assert listing[OLD] == "ok" and listing[NEW].startswith("SUSPECT: ")
    assert listing[later].startswith("SUSPECT: ")

    before = registry_bytes(store_dir)
    out = tmp_path / "OUT"
    for args in (["reanalyze", "--exit-code", "--out", out], ["--quiet", "reanalyze"]):
        r = ok(cli(*args), 4)
        assert r.out == "" and later in r.err and "--accept-suspect" in r.err, r.err
    assert not out.exists() and not (store_dir / "reports").exists()
    assert registry_bytes(store_dir) == before
    assert [x for x in runs(store_dir) if x["report"] or x["exit_code"] != 4] == []
    assert {rv[C38] for rv in reviewed(store_dir).values()} == {OLD}
    assert {(s["target_snapshot"], s["suspect_target"]) for s in status(cli)} == {
        (later, True)}


def test_release_losing_a_contig_is_suspect(sample_snapshots: Path, store_dir: Path,
                                            tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    no_mt = release_without(tmp_path / "clinvar_20240801.vcf", "2024-08-01",
                            lambda f: f[0] == "MT")  # 42 records, as many as OLD
    r = ok(cli("snapshot", "add", no_mt))
    assert "SUSPECT" in r.err
    shown = json.loads(ok(cli("snapshot", "show", "clinvar-GRCh38-2024-08-01", "-f",
                              "json")).out)
    assert shown["records"] == 42 and "MT" in shown["suspect"]
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(cli("cohort", "add", trio, "--baseline", OLD))
    ok(cli("reanalyze"), 4)
    assert {rv[C38] for rv in reviewed(store_dir).values()} == {OLD}


def test_max_drop_sets_how_many_fewer_records_are_suspect(sample_snapshots: Path,
                                                          tmp_path: Path, cli: Cli) -> None:
    seventeen: list[int] = []

    def four_of_chr17(fields: list[str]) -> bool:
        if fields[0] == "17" and len(seventeen) < 4:
            seventeen.append(1)
            return True
        return False

    release = release_without(tmp_path / "clinvar_20240801.vcf", "2024-08-01", four_of_chr17)
    name = "clinvar-GRCh38-2024-08-01"
    suspects = {}
    for max_drop in ("5", "10"):
        store = tmp_path / f"store{max_drop}"
        shutil.copytree(sample_snapshots, store)
        r = ok(cli("snapshot", "add", release, "--max-drop", max_drop, store=store))
        suspects[max_drop] = json.loads(ok(cli("snapshot", "show", name, "-f", "json",
                                               store=store)).out)["suspect"]
        assert ("SUSPECT" in r.err) == (suspects[max_drop] is not None)
    assert suspects["10"] is None  # 39 records against 43 (9.3% fewer)
    assert suspects["5"] is not None and "39" in suspects["5"] and "43" in suspects["5"]


# ------------------------------------------------------------------------------ 7. lineages
VS_COLUMNS = ["AlleleID", "GeneSymbol", "ClinicalSignificance", "PhenotypeList", "Assembly",
              "Chromosome", "ReviewStatus", "VariationID", "PositionVCF", "ReferenceAlleleVCF",
              "AlternateAlleleVCF"]
SITE37 = ("13", 32906537, "G", "A")
SITE37B = ("17", 41245466, "G", "A")
LAB38_A, LAB38_B = "mylab-GRCh38-2024-02-01", "mylab-GRCh38-2024-08-01"
LAB37_A, LAB37_B = "mylab-GRCh37-2024-02-01", "mylab-GRCh37-2024-12-01"
VS_A, VS_B = "clinvar-summary-GRCh38-2024-03-01", "clinvar-summary-GRCh38-2024-09-01"
C37_A, C37_B = "clinvar-GRCh37-2024-01-01", "clinvar-GRCh37-2024-05-01"
# patient -> {lineage: (baseline, newest of the lineage)}
TRACKS = {
    **{p: {C38: (OLD, NEW), "mylab/GRCh38": (LAB38_A, LAB38_B)}
       for p in ("CHILD01", "MOTHER01", "FATHER01")},
    "SUMM": {"clinvar-summary/GRCh38": (VS_A, VS_B)},
    "P37": {"clinvar/GRCh37": (C37_A, C37_B), "mylab/GRCh37": (LAB37_A, LAB37_B)},
}


def lab_table(path: Path, rows: list[tuple[str, int, str, str, str]]) -> Path:
    path.write_text("chrom\tpos\tref\talt\tclass\treview\tgene\n" + "".join(
        f"{c}\t{p}\t{r}\t{a}\t{k}\tcriteria_provided,_single_submitter\tG{p}\n"
        for c, p, r, a, k in rows))
    return path


def variant_summary(path: Path, rows: list[tuple[str, int, str, str, str]]) -> Path:
    lines = ["#" + "\t".join(VS_COLUMNS)]
    for i, (c, p, r, a, sig) in enumerate(rows, start=1):
        lines.append("\t".join(map(str, [i, f"G{p}", sig, "not provided", "GRCh38", c,
                                         "criteria provided, single submitter", 5000 + i, p,
                                         r, a])))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def lineage_snapshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ClinVar VCF (GRCh38, GRCh37), variant_summary (GRCh38) and a lab table (GRCh38, GRCh37),
    two releases each. The newest GRCh38 release overall is the variant_summary one, the
    newest of all the GRCh37 lab table: neither may become another lineage's target."""
    base = tmp_path_factory.mktemp("lineages")
    store = base / "store"

    def add(*args: str | Path) -> None:
        ok(invoke(store, "snapshot", "add", *args))

    add(OLD_VCF)
    add(NEW_VCF)
    toml = base / "mylab.toml"
    toml.write_text(LAB_TOML)
    for name, assembly, rows in (
            (LAB38_A, "GRCh38", [("13", 32332400, "G", "A", "VUS"),
                                 ("1", 2300000, "T", "C", "LB")]),
            (LAB38_B, "GRCh38", [("13", 32332400, "G", "A", "P"),
                                 ("1", 2300000, "T", "C", "VUS")]),
            (LAB37_A, "GRCh37", [(*SITE37, "VUS")]),
            (LAB37_B, "GRCh37", [(*SITE37, "LP")])):
        add(lab_table(base / f"{name}.tsv", rows), "--mapping", toml, "--assembly", assembly,
            "--release-date", name[-10:])
    for name, sig in ((VS_A, "Uncertain significance"), (VS_B, "Benign")):
        add(variant_summary(base / f"{name}.txt", [("13", 32332400, "G", "A", sig)]),
            "--release-date", name[-10:])
    write_clinvar(base / "c37a.vcf", [(*SITE37, "Uncertain_significance", 1, "BRCA2", None),
                                      (*SITE37B, "Pathogenic", 1, "BRCA1", None)],
                  date=C37_A[-10:], assembly="GRCh37")
    write_clinvar(base / "c37b.vcf", [(*SITE37, "Likely_benign", 1, "BRCA2", None),
                                      (*SITE37B, "Pathogenic", 2, "BRCA1", None)],
                  date=C37_B[-10:], assembly="GRCh37")
    add(base / "c37a.vcf")
    add(base / "c37b.vcf")
    return store


@pytest.fixture
def lineage_cohort(lineage_snapshots: Path, store_dir: Path, tmp_path: Path,
                   cli: Cli) -> dict[str, Path]:
    shutil.copytree(lineage_snapshots, store_dir)
    trio, single = tmp_path / "trio.vcf", tmp_path / "single.vcf.gz"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    shutil.copy(SAMPLES / "patient_single.vcf.gz", single)
    p37 = patient37(tmp_path / "p37.vcf", ["P37"], [
        "13 32906537 . G A 50 PASS . GT 0/1", "17 41245466 . G A 50 PASS . GT 1/1"])
    ok(cli("cohort", "add", trio, "--baseline", OLD))
    r = ok(cli("cohort", "add", trio, "--baseline", LAB38_A))
    assert r.err.count("now also follows") == 3
    ok(cli("cohort", "add", single, "--patient-id", "SUMM", "--baseline", VS_A))
    ok(cli("cohort", "add", p37, "--baseline", C37_A))
    ok(cli("cohort", "add", p37, "--baseline", LAB37_A))
    return {"trio": trio, "single": single, "p37": p37}


def lineage_of(store: Path) -> dict[str, tuple[str, str]]:
    """snapshot name -> (lineage, assembly), from `snapshot list`."""
    listed = jsonl(invoke(store, "snapshot", "list", "-f", "json").out)
    return {s["name"]: (s["lineage"], s["assembly"]) for s in listed}


def test_several_lineages_need_a_baseline_and_a_patient_follows_several(
        lineage_snapshots: Path, store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    shutil.copytree(lineage_snapshots, store_dir)
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    r = ok(cli("cohort", "add", trio), 2)
    assert all(lin in r.err for lin in (C38, "mylab/GRCh38", "clinvar-summary/GRCh38"))
    assert "--baseline" in r.err
    assert not (store_dir / "cohort" / "patients.json").exists()


def test_each_patient_moves_only_along_its_own_lineage_and_build(
        lineage_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    assert {(s["patient"], s["lineage"]): (s["reviewed_snapshot"], s["target_snapshot"],
                                           s["state"]) for s in status(cli)} == {
        (p, lin): (a, b, "waiting") for p, tracks in TRACKS.items()
        for lin, (a, b) in tracks.items()}
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    rows = read_tsv(out / "changes.tsv")
    where = lineage_of(store_dir)
    builds = {p["patient_id"]: p["assembly"] for p in registry(store_dir).values()}
    for r in rows:
        a, b = TRACKS[str(r["patient"])][str(r["lineage"])]
        assert (r["from_snapshot"], r["to_snapshot"]) == (a, b), r
        assert where[a] == where[b] == (r["lineage"], builds[str(r["patient"])]), r
    # Each (patient, lineage) got exactly what `diff` says between its own pair.
    vcfs = {"SUMM": lineage_cohort["single"], "P37": lineage_cohort["p37"]}
    for pid, tracks in TRACKS.items():
        for lineage, (a, b) in tracks.items():
            sample = "PATIENT01" if pid == "SUMM" else pid
            d = ok(cli("diff", vcfs.get(pid, lineage_cohort["trio"]), "--sample", sample,
                       "--from", a, "--to", b, "--all", "--format", "json"))
            expected = {change(x) for x in jsonl(d.out)[1:]}
            mine = {change(x) for x in rows if x["patient"] == pid and x["lineage"] == lineage}
            assert mine == expected, (pid, lineage)
    assert {r["lineage"] for r in rows} == {lin for t in TRACKS.values() for lin in t}
    run = json.loads((out / "run.json").read_text())
    assert set(run["comparisons"]) == {f"{a}->{b}" for t in TRACKS.values()
                                       for a, b in t.values()}
    for pair, cmp in run["comparisons"].items():
        assert cmp["from_snapshot"]["lineage"] == cmp["to_snapshot"]["lineage"], pair
        assert cmp["from_snapshot"]["assembly"] == cmp["to_snapshot"]["assembly"] \
            == cmp["assembly"], pair
        assert cmp["patients"] == sorted(p for p, t in TRACKS.items()
                                         if any(f"{a}->{b}" == pair for a, b in t.values()))
    assert reviewed(store_dir) == {p: {lin: b for lin, (_, b) in t.items()}
                                   for p, t in TRACKS.items()}
    assert {s["state"] for s in status(cli)} == {"up_to_date"}


def test_run_log_counts_patients_as_the_summary_does(lineage_cohort: dict[str, Path],
                                                     store_dir: Path, cli: Cli) -> None:
    """`patients.up_to_date` (runs.jsonl, run.json) counts patients, like `reanalyzed` and
    like the summary line; the trio patients follow two lineages each."""
    ok(cli("reanalyze"))
    r = ok(cli("reanalyze"))
    assert "0 patient(s) reanalyzed, 5 already up to date" in r.err
    assert runs(store_dir)[-1]["patients"] == {"reanalyzed": 0, "up_to_date": 5, "out_of_scope": 0,
                                               "failing": []}


def test_to_of_another_lineage_leaves_those_patients_out_of_scope(
        lineage_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    before = reviewed(store_dir)
    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--to", LAB37_B, "--out", out, "--exit-code"), 1)
    assert errors(r.err) == []
    run = json.loads((out / "run.json").read_text())
    assert list(run["comparisons"]) == [f"{LAB37_A}->{LAB37_B}"]
    assert run["comparisons"][f"{LAB37_A}->{LAB37_B}"]["patients"] == ["P37"]
    assert run["patients"]["failing"] == []
    assert {r_["lineage"] for r_ in read_tsv(out / "changes.tsv")} == {"mylab/GRCh37"}
    after = reviewed(store_dir)
    assert after["P37"] == {**before["P37"], "mylab/GRCh37": LAB37_B}
    assert {p: v for p, v in after.items() if p != "P37"} == {
        p: v for p, v in before.items() if p != "P37"}
    # --to of the GRCh38 ClinVar lineage: the GRCh37 patient is never moved onto it.
    ok(cli("reanalyze", "--to", NEW))
    assert reviewed(store_dir)["P37"] == after["P37"]
    assert {reviewed(store_dir)[p][C38] for p in ("CHILD01", "MOTHER01", "FATHER01")} == {NEW}


def test_out_of_scope_patients_are_named_on_stderr(lineage_cohort: dict[str, Path],
                                                   store_dir: Path, cli: Cli) -> None:
    """Issue 11, 7: `--to` of another build or lineage is refused for those patients "with a
    clear line": a run that leaves 8 of 9 tracks aside must say so, not only '1 reanalyzed'."""
    r = ok(cli("reanalyze", "--to", LAB37_B))
    assert "1 patient(s) reanalyzed" in r.err and "4 out of scope" in r.err, r.err
    assert runs(store_dir)[-1]["patients"] == {"reanalyzed": 1, "up_to_date": 0,
                                               "out_of_scope": 4, "failing": []}


def test_going_back_in_time_needs_allow_backwards(lineage_cohort: dict[str, Path],
                                                  store_dir: Path, tmp_path: Path,
                                                  cli: Cli) -> None:
    ok(cli("reanalyze"))
    before = registry_bytes(store_dir)
    r = ok(cli("reanalyze", "--to", OLD, "--out", tmp_path / "BACK"), 6)
    errs = errors(r.err)
    assert len(errs) == 3 and all("--allow-backwards" in e for e in errs), r.err
    assert {p for p in ("CHILD01", "MOTHER01", "FATHER01") for e in errs if p in e} == {
        "CHILD01", "MOTHER01", "FATHER01"}
    assert not (tmp_path / "BACK").exists()
    assert registry_bytes(store_dir) == before
    assert runs(store_dir)[-1]["exit_code"] == 6
    ok(cli("reanalyze", "--to", OLD, "--allow-backwards", "--out", tmp_path / "BACK"))
    rows = read_tsv(tmp_path / "BACK" / "changes.tsv")
    assert {(r_["lineage"], r_["from_snapshot"], r_["to_snapshot"]) for r_ in rows} == {
        (C38, NEW, OLD)}
    assert {reviewed(store_dir)[p][C38] for p in ("CHILD01", "MOTHER01", "FATHER01")} == {OLD}


def test_diff_history_and_snapshot_diff_stay_within_one_lineage(
        lineage_cohort: dict[str, Path], store_dir: Path, cli: Cli) -> None:
    trio = lineage_cohort["trio"]
    r = ok(cli("diff", trio, "--from", OLD, "--to", LAB38_B), 2)
    assert C38 in r.err and "mylab/GRCh38" in r.err and "--cross-lineage" in r.err
    ok(cli("diff", trio, "--from", OLD, "--to", LAB38_B, "--cross-lineage"))
    ok(cli("snapshot", "diff", VS_A, NEW), 2)
    ok(cli("snapshot", "diff", VS_A, NEW, "--cross-lineage"))
    r = cli("snapshot", "diff", C37_A, NEW, "--cross-lineage")
    assert r.code != 0 and "GRCh37" in r.err and "GRCh38" in r.err
    r = cli("diff", trio, "--from", C37_A, "--to", C37_B)
    assert r.code != 0 and "GRCh37" in r.err and "GRCh38" in r.err
    # history: one lineage of the VCF's build (default ClinVar when several).
    for source, prefix in ((None, "clinvar-GRCh38-"), ("mylab", "mylab-GRCh38-"),
                           ("clinvar-summary", "clinvar-summary-GRCh38-")):
        extra = ["--source", source] if source else []
        rows = jsonl(ok(cli("history", trio, "--all", "-f", "json", *extra)).out)
        assert rows and {str(x["snapshot"])[:len(prefix)] for x in rows} == {prefix}, source


def test_replace_in_a_store_with_several_lineages_needs_no_baseline(
        lineage_cohort: dict[str, Path], store_dir: Path, cli: Cli) -> None:
    """The baseline only matters for a new patient: re-registering a followed patient from a
    new file (or a moved one) must not ask which lineage it was reported against."""
    trio = lineage_cohort["trio"]
    trio.write_text(trio.read_text().replace("\t0/1:24:78\t0/1:35:99\t0/0:46:99",
                                             "\t1/1:24:78\t0/1:35:99\t0/0:46:99"))
    r = ok(cli("cohort", "add", trio, "--replace"))
    assert r.err.count("re-registered from a new file") == 3
    moved = trio.parent / "moved.vcf"
    shutil.move(trio, moved)
    r = ok(cli("cohort", "add", moved))
    assert r.err.count("source path updated") == 3


def test_a_replacement_is_delivered_once_per_lineage(lineage_snapshots: Path, store_dir: Path,
                                                     tmp_path: Path, cli: Cli) -> None:
    """A patient following two lineages, its replacement delivered on one of them (--to),
    then replaced again: on that lineage, what was already delivered must not come again
    (and what the second file changed must come)."""
    shutil.copytree(lineage_snapshots, store_dir)
    v1 = patient38(tmp_path / "v1.vcf", ["P1"], calls(APC_B))
    v2 = patient38(tmp_path / "v2.vcf", ["P1"], calls(APC_B, MSH2_P))
    v3 = patient38(tmp_path / "v3.vcf", ["P1"], calls(MSH2_P, PTEN_LP))
    ok(cli("cohort", "add", v1, "--baseline", NEW))
    ok(cli("cohort", "add", v1, "--baseline", LAB38_B))
    ok(cli("cohort", "add", v2, "--replace", "--baseline", NEW))
    ok(cli("reanalyze", "--to", NEW))
    ok(cli("cohort", "add", v3, "--replace", "--baseline", NEW))
    ok(cli("reanalyze"))
    got = Counter((r["lineage"], *change(r)) for r in delivered(store_dir))
    expected = Counter([(C38, "2", 47445600, "TA", "T", "newly_carried", "high"),  # v1 -> v2
                        (C38, "10", 87933100, "C", "T", "newly_carried", "high"),  # v2 -> v3
                        (C38, "5", 112840100, "A", "G", "no_longer_carried", "low")])
    mine = Counter({k: n for k, n in got.items() if k[0] == C38})
    assert mine == expected, (f"delivered twice: {sorted(mine - expected)}; "
                              f"never delivered: {sorted(expected - mine)}")


def test_replace_with_a_baseline_of_a_new_lineage_follows_it(
        lineage_snapshots: Path, store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """`cohort add NEW.vcf --replace --baseline <a lineage the patient does not follow>` exited
    0 but the patient never followed that lineage. It follows it from that baseline, with the
    new calls; the replacement (newly carried UP1) is pending only on the lineage it was
    already followed on: nothing was ever delivered on the new one."""
    shutil.copytree(lineage_snapshots, store_dir)
    v1 = patient38(tmp_path / "v1.vcf", ["P1"], calls(APC_B))
    v2 = patient38(tmp_path / "v2.vcf", ["P1"], calls(APC_B, UP1))
    ok(cli("cohort", "add", v1, "--baseline", OLD))
    first = registry(store_dir)["P1"]["number"]
    r = ok(cli("cohort", "add", v2, "--replace", "--baseline", LAB38_A))
    assert "re-registered from a new file" in r.err
    assert "now also follows mylab/GRCh38" in r.err and LAB38_A in r.err, r.err
    p1 = registry(store_dir)["P1"]
    assert p1["reviewed"] == {C38: OLD, "mylab/GRCh38": LAB38_A}
    assert p1["previous"] == {C38: first} and p1["number"] != first
    assert alleles_of(index_rows(store_dir)[p1["number"]]) == {site(APC_B), site(UP1)}
    assert {(s["lineage"], s["reviewed_snapshot"], s["target_snapshot"], s["state"])
            for s in status(cli)} == {(C38, OLD, NEW, "waiting"),
                                      ("mylab/GRCh38", LAB38_A, LAB38_B, "waiting")}

    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    got = Counter((r_["lineage"], *change(r_), r_["from_snapshot"], r_["to_snapshot"])
                  for r_ in read_tsv(out / "changes.tsv"))
    up1 = site(UP1)
    assert got == Counter([
        (C38, *up1, "upgrade", "high", OLD, NEW),  # VUS -> LP
        (C38, *up1, "newly_carried", "medium", OLD, OLD),  # the replacement, on C38 only
        ("mylab/GRCh38", *up1, "upgrade", "high", LAB38_A, LAB38_B)])  # VUS -> P
    p1 = registry(store_dir)["P1"]
    assert p1["reviewed"] == {C38: NEW, "mylab/GRCh38": LAB38_B} and p1["previous"] == {}
    ok(cli("reanalyze", "--exit-code"))


# ------------------------------------------------------------------------------ 8. tampered
def rewrite_hfe_benign(snapshot_dir: Path, tmp_path: Path) -> None:
    """Rewrite variants.parquet (duckdb COPY) so HFE 6:26091500 reads Benign."""
    import duckdb

    parquet = snapshot_dir / "variants.parquet"
    staged = tmp_path / "tampered.parquet"
    con = duckdb.connect()
    try:
        before = con.execute(f"SELECT classification FROM '{parquet}' WHERE pos = 26091500"
                             ).fetchall()
        assert before == [("Pathogenic,_low_penetrance",)]
        con.execute(f"""COPY (SELECT * REPLACE (
                              CASE WHEN pos = 26091500 THEN 'Benign' ELSE classification END
                                  AS classification,
                              CASE WHEN pos = 26091500 THEN 'benign' ELSE tier END AS tier)
                          FROM '{parquet}') TO '{staged}' (FORMAT parquet)""")
    finally:
        con.close()
    shutil.move(staged, parquet)


@pytest.mark.parametrize("which", [NEW, OLD])
def test_tampered_variants_parquet_is_refused_and_nothing_reviewed(
        which: str, sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path,
        cli: Cli) -> None:
    rewrite_hfe_benign(store_dir / "snapshots" / which, tmp_path)
    before = registry_bytes(store_dir)
    folder = str(store_dir / "snapshots" / which)
    r = ok(cli("annotate", sample_cohort["trio"], "--snapshot", which, "-f", "tsv"), 4)
    assert r.out == "" and folder in r.err
    for args in (["reanalyze", "--out", tmp_path / "OUT"], ["reanalyze", "--dry-run"],
                 ["cohort", "status"],
                 ["diff", sample_cohort["trio"], "--from", OLD, "--to", NEW]):
        r = ok(cli(*args), 4)
        assert folder in r.err and "checksum" in r.err, args
    r = ok(cli("snapshot", "verify"), 4)
    assert "variants.parquet" in r.out
    assert registry_bytes(store_dir) == before
    assert not (tmp_path / "OUT").exists() and not (store_dir / "reports").exists()
    other = OLD if which == NEW else NEW  # the intact release is still usable on its own
    ok(cli("annotate", sample_cohort["trio"], "--snapshot", other, "-f", "tsv"))


def test_edited_manifest_is_refused_and_never_reaches_provenance(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    path = store_dir / "snapshots" / NEW / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["release_date"] = "2024-07-02"
    path.write_text(json.dumps(manifest, indent=2))
    before = registry_bytes(store_dir)
    for args in (["reanalyze", "--out", tmp_path / "OUT"],
                 ["annotate", sample_cohort["trio"], "--snapshot", NEW]):
        r = ok(cli(*args), 4)
        assert str(store_dir / "snapshots" / NEW) in r.err and "manifest" in r.err
    assert registry_bytes(store_dir) == before and not (tmp_path / "OUT").exists()
    listed = cli("snapshot", "list", "-f", "tsv")
    assert listed.code in (0, 4), listed.err  # listing a store that holds a damaged snapshot
    assert next(ln for ln in listed.out.splitlines() if ln.startswith(NEW)).endswith(
        "corrupt manifest")


def test_unreadable_manifest_fails_its_lineage_patients(sample_cohort: dict[str, Path],
                                                        store_dir: Path, tmp_path: Path,
                                                        cli: Cli) -> None:
    """A release whose manifest cannot be read at all: choosing the newest readable release
    could silently pick an older one, so the lineage's patients fail (exit 6)."""
    (store_dir / "snapshots" / NEW / "manifest.json").write_text("{")
    before = registry_bytes(store_dir)
    r = ok(cli("--quiet", "reanalyze", "--exit-code", "--out", tmp_path / "OUT"), 6)
    assert len(errors(r.err)) == 4
    assert registry_bytes(store_dir) == before and not (tmp_path / "OUT").exists()
    assert {(s["state"], s["high"]) for s in status(cli, 6)} == {("failing", None)}


# ------------------------------------------------------------------------------ 9. cron
def test_report_dir_placeholders_give_a_new_folder_each_night(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    reports = tmp_path / "reports"
    pattern = reports / "{date}-{run_id}"
    days = {datetime.now(UTC).strftime("%Y-%m-%d")}
    r = ok(cli("--quiet", "reanalyze", "--report-dir", pattern, "--exit-code"), 1)
    days.add(datetime.now(UTC).strftime("%Y-%m-%d"))
    assert r.err == ""
    night1 = runs(store_dir)[-1]
    first = Path(night1["report"])
    assert first.parent == reports and first.name in {f"{d}-{night1['run_id']}" for d in days}
    assert by_patient(read_tsv(first / "changes.tsv")) == EXPECTED_ALL
    snapshot1 = {p.relative_to(first): p.read_bytes() for p in first.rglob("*") if p.is_file()}

    # Night 2: nothing changed: no folder, still a log line.
    ok(cli("--quiet", "reanalyze", "--report-dir", pattern, "--exit-code"), 0)
    assert sorted(reports.iterdir()) == [first]
    assert runs(store_dir)[-1]["report"] is None and len(runs(store_dir)) == 2

    # Night 3: a new release: a new folder; night 1's report untouched.
    ok(cli("snapshot", "add", third_release(tmp_path / "clinvar_20240901.vcf")))
    ok(cli("--quiet", "reanalyze", "--out", pattern, "--exit-code"), 1)  # --out: the alias
    night3 = runs(store_dir)[-1]
    third = Path(night3["report"])
    assert third != first and third.parent == reports and night3["run_id"] in third.name
    assert sorted(reports.iterdir()) == sorted([first, third])
    assert {p.relative_to(first): p.read_bytes() for p in first.rglob("*")
            if p.is_file()} == snapshot1


def test_report_dir_snapshot_placeholder_and_unknown_placeholder(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    before = registry_bytes(store_dir)
    r = ok(cli("reanalyze", "--report-dir", tmp_path / "r-{nope}"), 2)
    assert "{nope}" in r.err or "nope" in r.err
    assert registry_bytes(store_dir) == before
    assert list(tmp_path.glob("r-*")) == []
    ok(cli("reanalyze", "--report-dir", tmp_path / "r-{snapshot}"))
    assert (tmp_path / f"r-{NEW}" / "run.json").is_file()
    # The default folder: STORE/reports/<stamp>-<target>-<run_id>.
    ok(cli("snapshot", "add", third_release(tmp_path / "clinvar_20240901.vcf")))
    ok(cli("reanalyze"))
    last = runs(store_dir)[-1]
    folder = Path(last["report"])
    assert folder.parent == store_dir / "reports"
    assert folder.name.endswith(f"-{NEWER}-{last['run_id']}")


HOLDER = """
import sys, time
from pathlib import Path
from varreinterp.store import Store
with Store(Path(sys.argv[1])).lock('test'):
    print('locked', flush=True)
    time.sleep(30)
"""


def test_exit_codes_tell_changes_failures_and_a_held_lock_apart(
        sample_cohort: dict[str, Path], store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """`reanalyze --exit-code || notify-lab` must tell 1 (changes delivered) from 6 (someone
    could not be reanalyzed), 5 (another run holds the lock) and 4 (the store is damaged),
    under --quiet too."""
    plain = tmp_path / "plain"
    shutil.copytree(store_dir, plain)
    ok(cli("--quiet", "reanalyze", store=plain))  # changes, no --exit-code: 0

    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        r = ok(cli("--quiet", "reanalyze", "--exit-code"), 5)
        assert len(r.err.splitlines()) == 1 and "locked" in r.err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        if holder.stdout:
            holder.stdout.close()

    # A damaged cohort index (a file gone): 4, nothing delivered; restored, the nights go on.
    gone = index_file_holding(store_dir, "13", 32332400)
    kept = gone.read_bytes()
    gone.unlink()
    r = ok(cli("--quiet", "reanalyze", "--exit-code"), 4)
    assert len(r.err.splitlines()) == 1 and str(gone) in r.err
    assert delivered(store_dir) == []
    gone.write_bytes(kept)

    # LAB1 follows a lab table whose only release can no longer be read: 6, while the others'
    # changes are delivered.
    toml = tmp_path / "mylab.toml"
    toml.write_text(LAB_TOML)
    ok(cli("snapshot", "add", lab_table(tmp_path / "lab.tsv", [("13", 32332400, "G", "A", "VUS")]),
           "--mapping", toml, "--assembly", "GRCh38", "--release-date", LAB38_A[-10:]))
    ok(cli("cohort", "add", sample_cohort["single"], "--patient-id", "LAB1",
           "--baseline", LAB38_A))
    (store_dir / "snapshots" / LAB38_A / "manifest.json").write_text("{")
    ok(cli("--quiet", "reanalyze", "--exit-code"), 6)  # others' changes delivered, still 6
    assert set(by_patient(delivered(store_dir))) == set(EXPECTED_ALL)
    ok(cli("--quiet", "reanalyze", "--exit-code"), 6)
    ok(cli("cohort", "remove", "LAB1"))
    ok(cli("--quiet", "reanalyze", "--exit-code"), 0)
    ok(cli("snapshot", "add", third_release(tmp_path / "clinvar_20240901.vcf")))
    ok(cli("--quiet", "reanalyze", "--exit-code"), 1)
    assert [x["exit_code"] for x in runs(store_dir) if x["exit_code"] != 4] == [6, 6, 0, 1]


def test_each_card_shows_the_history_of_its_own_lineage(
        lineage_snapshots: Path, store_dir: Path, tmp_path: Path, cli: Cli) -> None:
    """A patient following ClinVar and a lab table gets one page: every card's timeline holds
    only releases of the lineage its change came from, and a variant both sources changed gets
    each source's history on its own card (never the other's)."""
    shutil.copytree(lineage_snapshots, store_dir)
    # a third lab release classifying a variant CHILD01 carries whose ClinVar entry changed
    ok(cli("snapshot", "add", lab_table(tmp_path / "lab_c.tsv", [
        ("13", 32332400, "G", "A", "P"), ("1", 2300000, "T", "C", "VUS"),
        ("3", 37025900, "A", "G", "P")]),
        "--mapping", lineage_snapshots.parent / "mylab.toml", "--assembly", "GRCh38",
        "--release-date", "2024-10-01"))
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(cli("cohort", "add", trio, "--baseline", OLD))
    ok(cli("cohort", "add", trio, "--baseline", LAB38_A))
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--min-priority", "low", "--out", out))
    rows = read_tsv(out / "changes.tsv")
    where = lineage_of(store_dir)
    names = sorted(where, key=len, reverse=True)  # longest first: no name inside another
    checked = 0
    for pid in ("CHILD01", "MOTHER01", "FATHER01"):
        page = (out / "patients" / f"{pid}.html").read_text()
        cards = []
        for block in page.split('<article class="card ')[1:]:
            loc = re.search(r'<span class="mono">([^<]+:\d+ [^<]+)</span></p>', block)
            shown = {n for n in names if f"<title>{n} (" in block}
            assert loc and shown, block[:300]
            lineages = {where[n][0] for n in shown}
            assert len(lineages) == 1, (pid, loc.group(1), shown)
            cards.append((html.unescape(loc.group(1)), lineages.pop()))
        expected = sorted((f"{r['chrom']}:{r['pos']} {r['ref']}>{r['alt']}", r["lineage"])
                          for r in rows if r["patient"] == pid)
        assert sorted(cards) == expected, pid
        checked += len(cards)
        both = {loc for loc, _ in cards if sum(1 for x, _ in cards if x == loc) > 1}
        assert both or pid != "CHILD01", cards  # ClinVar and the lab changed one variant
        for loc in both:  # the same variant from both sources: two histories
            assert {lin for x, lin in cards if x == loc} == {C38, "mylab/GRCh38"}
    assert checked == len([r for r in rows if r["patient"] in ("CHILD01", "MOTHER01",
                                                                "FATHER01")])
