"""The nightly cohort: `cohort add/list/show/remove/status` and `reanalyze`.

* Real files (../shared/data, skipped when absent): the 1000 Genomes 16-sample exome against the
  ClinVar GRCh37 2019-12-02 -> 2023-07-10 pair, and the GIAB HG004/HG006 subsets against the
  MacArthur 2017-02-02 -> 2018-03 pair. What `reanalyze` reports must be exactly what `diff`
  reports for the same VCFs and snapshots, and a second run must report nothing.
* The bundled sample_vcfs against the changes their README lists (medium and high priority).
* Robustness: missing or changed VCFs, the store lock held by another process (and left by a
  dead one), and `kill -9` at any moment of a run on a moderately large generated cohort.
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
from pathlib import Path

import pytest
from conftest import MAPPINGS, SAMPLES, CliResult, invoke, shared

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

# sample_vcfs/README.md, "Expected changes": every medium/high change per patient, as
# (contig without chr, pos, ref, alt, change, priority). Low ones (LP2P, REV1, REV2) and the
# renames (RENAME, NOCLASS, NOSINGLE) must not appear at the default --min-priority medium.
UP1 = ("13", 32332400, "G", "A", "upgrade", "high")
UP2 = ("3", 37025900, "A", "G", "upgrade", "high")
DOWN = ("14", 23415300, "G", "A", "downgrade", "high")
LB2VUS = ("3", 38551200, "T", "C", "upgrade", "medium")  # benign < uncertain: toward pathogenic
VUS2CONF = ("19", 11102700, "C", "T", "conflict", "medium")
CONF2LB = ("7", 117509100, "G", "A", "resolved", "medium")
GONE = ("7", 117590501, "CTG", "C", "gone", "high")
NEW1 = ("17", 43057100, "G", "A", "new", "high")
NEW2 = ("11", 2570700, "A", "AGC", "new", "medium")  # absent -> VUS; nobody carries it
EXPECTED = {
    "PATIENT01": {UP1, DOWN, GONE, NEW1},
    "CHILD01": {UP2, LB2VUS, VUS2CONF, CONF2LB},
    "MOTHER01": {UP1, VUS2CONF, CONF2LB},
    "FATHER01": {DOWN, LB2VUS, CONF2LB},
}
SAMPLE_TOTAL = sum(len(v) for v in EXPECTED.values())  # 14


# ------------------------------------------------------------------------------ helpers
def ok(r: CliResult, code: int = 0) -> CliResult:
    assert r.code == code, f"exit {r.code}, expected {code}\nstdout: {r.out[-2000:]}\n" \
                           f"stderr: {r.err[-2000:]}"
    return r


def parse_tsv(text: str) -> list[dict[str, str | None]]:
    """TSV rows (after any '#' provenance line); empty cells as None."""
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    return [{k: (v if v != "" else None) for k, v in row.items()}
            for row in csv.DictReader(lines, delimiter="\t")]


def read_tsv(path: Path) -> list[dict[str, str | None]]:
    return parse_tsv(path.read_text())


def tsv_rows_sorted(path: Path) -> list[tuple[str, ...]]:
    """Header and sorted rows, after the '#' provenance line (which names the run)."""
    with open(path, newline="") as fh:
        assert fh.readline().startswith("#tool=varreinterp ")
        rows = list(csv.reader(fh, delimiter="\t"))
    return [tuple(rows[0])] + sorted(tuple(r) for r in rows[1:])


def change_key(r: dict, sample_field: str = "sample") -> tuple:
    return (r[sample_field], r["chrom"], int(r["pos"]), r["ref"], r["alt"], r["change"],
            r["priority"], r["before"] or None, r["after"] or None)


def short_key(r: dict) -> tuple:
    chrom = str(r["chrom"])
    chrom = chrom[3:] if chrom.startswith("chr") else chrom
    return (chrom, int(r["pos"]), r["ref"], r["alt"], r["change"], r["priority"])


def by_patient(rows: list[dict]) -> dict[str, set[tuple]]:
    out: dict[str, set[tuple]] = {}
    for r in rows:
        out.setdefault(str(r["patient"]), set()).add(short_key(r))
    return out


def diff_rows(r: CliResult) -> list[dict]:
    ok(r)
    lines = [json.loads(ln) for ln in r.out.splitlines() if ln.strip()]
    assert "provenance" in lines[0]
    assert lines[0]["changes"] == len(lines) - 1
    return lines[1:]


def registry(store: Path) -> dict[str, dict]:
    return json.loads((store / "cohort" / "patients.json").read_text())["patients"]


def reviewed(store: Path) -> dict[str, str]:
    return {pid: p["reviewed_snapshot"] for pid, p in registry(store).items()}


def jsonl(text: str) -> list[dict]:
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def check_report(out: Path) -> dict:
    """A report folder is complete and self-consistent: run.json, changes.tsv, and exactly one
    patients/<file> per patient with changes holding exactly that patient's rows."""
    run = json.loads((out / "run.json").read_text())
    rows = read_tsv(out / "changes.tsv")
    per_patient: dict[str, int] = {}
    for r in rows:
        per_patient[str(r["patient"])] = per_patient.get(str(r["patient"]), 0) + 1
    assert run["schema_version"] == 1
    assert run["changes"]["total"] == len(rows)
    assert run["changes"]["per_patient"] == per_patient
    files = run["changes"]["patient_files"]
    assert set(files) == set(per_patient)
    on_disk = sorted(p.name for p in (out / "patients").iterdir())
    assert on_disk == sorted(Path(f).name for f in files.values()), \
        "patients/ holds files that run.json does not list (or misses some)"
    for pid, rel in files.items():
        mine = read_tsv(out / rel)
        assert {change_key(r) for r in mine} == {change_key(r) for r in rows
                                                 if r["patient"] == pid}
        assert len(mine) == per_patient[pid]
    return run


def add_outcomes(err: str) -> dict[str, str]:
    """cohort add's per-patient lines: patient -> added | unchanged | re-ingested."""
    out = {}
    for pid, what in re.findall(r"patient (\S+) \(sample \S+\): ([^\n]*)", err):
        out[pid] = ("unchanged" if "already registered" in what else
                    "re-ingested" if "re-ingested" in what else
                    "added" if "registered" in what else what)
    return out


def stderr_report_dir(err: str) -> Path:
    marker = "; report in "
    line = next(ln for ln in err.splitlines() if marker in ln)
    return Path(line.split(marker, 1)[1].strip())


# ------------------------------------------------------------------------------ real files
@pytest.fixture(scope="module")
def grch37_store(tmp_path_factory) -> Path:
    old, new = shared(C37_OLD), shared(C37_NEW)
    store = tmp_path_factory.mktemp("c37") / "store"
    ok(invoke(store, "snapshot", "add", old))
    ok(invoke(store, "snapshot", "add", new))
    return store


def test_grch37_cohort_matches_diff_and_reports_once(grch37_store: Path, tmp_path: Path,
                                                     store_dir: Path, cli) -> None:
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
    assert {p["reviewed_snapshot"] for p in patients} == {S37_OLD}
    assert {p["baseline_snapshot"] for p in patients} == {S37_OLD}
    assert {p["source"] for p in patients} == {str(vcf.resolve())}
    shown = json.loads(ok(cli("cohort", "show", "HG00731", "--format", "json")).out)
    assert shown["source_sha256"] == hashlib.sha256(vcf.read_bytes()).hexdigest()
    index = store_dir / "cohort" / "index"
    assert len(list(index.iterdir())) == 16
    before = {p.name: p.stat().st_mtime_ns for p in index.iterdir()}
    reg_before = (store_dir / "cohort" / "patients.json").read_text()

    # Re-adding the same file: a no-op that says so.
    r = ok(cli("cohort", "add", vcf, "--baseline", S37_OLD))
    assert add_outcomes(r.err) == {pid: "unchanged" for pid in added}
    assert {p.name: p.stat().st_mtime_ns for p in index.iterdir()} == before
    assert (store_dir / "cohort" / "patients.json").read_text() == reg_before

    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--to", S37_NEW, "--min-priority", "low", "--out", out))
    expected = diff_rows(cli("diff", vcf, "--from", S37_OLD, "--to", S37_NEW, "--all",
                             "--format", "json"))
    rows = read_tsv(out / "changes.tsv")
    assert {change_key(r) for r in rows} == {change_key(r) for r in expected}
    assert len(rows) == len(expected)
    assert all(r["patient"] == r["sample"] for r in rows)
    assert {(r["from_snapshot"], r["to_snapshot"]) for r in rows} == {(S37_OLD, S37_NEW)}

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
    assert {r["change"] for r in rows} == {"new"}
    assert len(rows) == 4

    run = check_report(out)
    assert run["to_snapshot"] == S37_NEW and run["min_priority"] == "low"
    assert run["patients"] == {"reanalyzed": 16, "up_to_date": 0, "skipped": []}
    per = {s: sum(1 for r in expected if r["sample"] == s) for s in {r["sample"] for r in
                                                                     expected}}
    assert run["changes"]["per_patient"] == per
    assert run["changes"]["total"] == 4
    assert list(run["comparisons"]) == [f"{S37_OLD}->{S37_NEW}"]
    cmp = run["comparisons"][f"{S37_OLD}->{S37_NEW}"]
    assert cmp["from_snapshot"]["snapshot"] == S37_OLD
    assert cmp["to_snapshot"]["snapshot"] == S37_NEW
    assert cmp["assembly"] == "GRCh37"
    assert {"check_patients_s", "total_s"} <= set(run["timings"])
    for rel in run["changes"]["patient_files"].values():
        assert (out / rel).is_file()
    assert set(reviewed(store_dir).values()) == {S37_NEW}

    # The next night: nothing new, all 16 up to date.
    out2 = tmp_path / "OUT2"
    r = ok(cli("reanalyze", "--to", S37_NEW, "--min-priority", "low", "--out", out2,
               "--exit-code"))
    run2 = check_report(out2)
    assert run2["patients"] == {"reanalyzed": 0, "up_to_date": 16, "skipped": []}
    assert run2["changes"]["total"] == 0
    assert read_tsv(out2 / "changes.tsv") == []
    status = jsonl(ok(cli("cohort", "status", "--format", "json",
                          "--min-priority", "low")).out)
    assert len(status) == 16
    assert {(s["reviewed_snapshot"], s["newest_snapshot"], s["waiting_changes"])
            for s in status} == {(S37_NEW, S37_NEW, 0)}


def test_giab_macarthur_cohort_matches_diff(tmp_path: Path, store_dir: Path, cli) -> None:
    mac17, mac18 = shared(MAC17), shared(MAC18)
    vcfs = {s: shared(p) for s, p in GIAB.items()}
    mapping = MAPPINGS / "macarthur-vcf.toml"
    for path in (mac17, mac18):
        ok(cli("snapshot", "add", path, "--format", "table", "--mapping", mapping,
               "--assembly", "GRCh38"))
    names = [s["name"] for s in jsonl(ok(cli("snapshot", "list", "--format", "json")).out)]
    assert names == [M_OLD, M_NEW]
    ok(cli("cohort", "add", *vcfs.values(), "--baseline", M_OLD))
    status = jsonl(ok(cli("cohort", "status", "--format", "json", "--min-priority", "low")).out)
    waiting = {s["patient"]: s["waiting_changes"] for s in status}
    assert set(waiting) == {"HG004", "HG006"}

    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--min-priority", "low", "--out", out))  # default --to: newest
    expected = diff_rows(cli("diff", *vcfs.values(), "--from", M_OLD, "--to", M_NEW, "--all",
                             "--format", "json"))
    rows = read_tsv(out / "changes.tsv")
    assert {change_key(r) for r in rows} == {change_key(r) for r in expected}
    assert len(rows) == len(expected) > 0
    assert {r["sample"] for r in rows} == {"HG004", "HG006"}
    run = check_report(out)
    assert run["to_snapshot"] == M_NEW
    assert run["patients"] == {"reanalyzed": 2, "up_to_date": 0, "skipped": []}
    per = {s: sum(1 for r in expected if r["sample"] == s) for s in ("HG004", "HG006")}
    assert run["changes"]["per_patient"] == per
    assert waiting == per  # status (before the run) announced exactly these
    assert set(reviewed(store_dir).values()) == {M_NEW}

    out2 = tmp_path / "OUT2"
    ok(cli("reanalyze", "--min-priority", "low", "--out", out2, "--exit-code"))
    run2 = check_report(out2)
    assert run2["patients"] == {"reanalyzed": 0, "up_to_date": 2, "skipped": []}
    assert run2["changes"]["total"] == 0


# ------------------------------------------------------------------------------ sample_vcfs
@pytest.fixture(scope="module")
def sample_snapshots(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("samples") / "store"
    ok(invoke(store, "snapshot", "add", OLD_VCF))
    ok(invoke(store, "snapshot", "add", NEW_VCF))
    return store


@pytest.fixture
def sample_cohort(sample_snapshots: Path, store_dir: Path, tmp_path: Path, cli
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


def test_sample_reanalyze_reports_readme_changes(sample_cohort, store_dir: Path,
                                                 tmp_path: Path, cli) -> None:
    status = jsonl(ok(cli("cohort", "status", "--format", "json")).out)
    assert {s["patient"]: s["waiting_changes"] for s in status} == {
        pid: len(ch) for pid, ch in EXPECTED.items()}
    assert {(s["reviewed_snapshot"], s["newest_snapshot"], s["assembly"]) for s in status} == {
        (OLD, NEW, "GRCh38")}
    assert "4 patient(s) on GRCh38" in ok(cli("cohort", "status", "--format", "json")).err

    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out, "--exit-code"), 1)
    rows = read_tsv(out / "changes.tsv")
    assert by_patient(rows) == EXPECTED
    assert len(rows) == SAMPLE_TOTAL
    assert {r_["priority"] for r_ in rows} == {"high", "medium"}
    run = check_report(out)
    assert run["min_priority"] == "medium" and run["to_snapshot"] == NEW
    assert run["patients"] == {"reanalyzed": 4, "up_to_date": 0, "skipped": []}
    assert run["changes"]["per_patient"] == {p: len(c) for p, c in EXPECTED.items()}
    assert sorted(run["changes"]["patient_files"].values()) == sorted(
        f"patients/{p}.tsv" for p in EXPECTED)
    assert "7 high, 7 medium" in r.err
    assert set(reviewed(store_dir).values()) == {NEW}

    status = jsonl(ok(cli("cohort", "status", "--format", "json")).out)
    assert {(s["patient"], s["reviewed_snapshot"], s["waiting_changes"]) for s in status} == {
        (p, NEW, 0) for p in EXPECTED}
    # The rerun reports nothing: --exit-code 0.
    out2 = tmp_path / "OUT2"
    ok(cli("reanalyze", "--out", out2, "--exit-code"), 0)
    assert check_report(out2)["patients"] == {"reanalyzed": 0, "up_to_date": 4, "skipped": []}


def test_dry_run_prints_and_records_nothing(sample_cohort, store_dir: Path, tmp_path: Path,
                                            cli) -> None:
    reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
    r = ok(cli("reanalyze", "--dry-run", "--format", "tsv", "--exit-code"), 1)
    printed = parse_tsv(r.out)
    assert by_patient(printed) == EXPECTED
    assert len(printed) == SAMPLE_TOTAL
    assert (store_dir / "cohort" / "patients.json").read_bytes() == reg_before
    assert not (store_dir / "reports").exists()
    r = ok(cli("reanalyze", "--dry-run", "--format", "json"))
    assert by_patient(jsonl(r.out)) == EXPECTED

    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED
    # And once recorded, a dry run has nothing left to show.
    r = ok(cli("reanalyze", "--dry-run", "--format", "json", "--exit-code"))
    assert jsonl(r.out) == []


def test_default_baseline_is_newest_of_the_assembly(sample_snapshots: Path, store_dir: Path,
                                                    tmp_path: Path, cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(cli("cohort", "add", trio))
    assert set(reviewed(store_dir).values()) == {NEW}
    assert {p["baseline_snapshot"] for p in registry(store_dir).values()} == {NEW}
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out, "--exit-code"))
    run = check_report(out)
    assert run["patients"] == {"reanalyzed": 0, "up_to_date": 3, "skipped": []}


def test_cohort_remove_drops_patient_and_index(sample_cohort, store_dir: Path,
                                               tmp_path: Path, cli) -> None:
    index_file = json.loads(ok(cli("cohort", "show", "CHILD01", "--format", "json")).out)[
        "index_file"]
    index = store_dir / "cohort" / "index"
    assert (index / index_file).is_file()
    assert len(list(index.iterdir())) == 4
    ok(cli("cohort", "remove", "CHILD01"))
    listed = {p["patient"] for p in jsonl(ok(cli("cohort", "list", "--format", "json")).out)}
    assert listed == {"PATIENT01", "MOTHER01", "FATHER01"}
    assert not (index / index_file).exists()
    assert len(list(index.iterdir())) == 3
    ok(cli("cohort", "show", "CHILD01"), 4)
    ok(cli("cohort", "remove", "CHILD01"), 4)
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    assert by_patient(read_tsv(out / "changes.tsv")) == {
        p: c for p, c in EXPECTED.items() if p != "CHILD01"}


def refused_without_leak(cli, *args: str | Path) -> CliResult:
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
                                     tmp_path: Path, cli) -> None:
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
    assert by_patient(rows) == {"MUM": EXPECTED["MOTHER01"]}
    assert {r["sample"] for r in rows} == {"MOTHER01"}
    assert (out / "patients" / "MUM.tsv").is_file()


def test_refused_cohort_add_cleans_up(sample_snapshots: Path, store_dir: Path,
                                      tmp_path: Path, cli) -> None:
    shutil.copytree(sample_snapshots, store_dir)
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)
    ok(refused_without_leak(cli, "cohort", "add", trio, "--sample", "NOPE"), 2)
    ok(refused_without_leak(cli, "cohort", "add", trio, "--patient-id", "FAM1",
                            "--baseline", OLD), 2)
    ok(refused_without_leak(cli, "cohort", "add", tmp_path / "absent.vcf"), 3)
    assert not (store_dir / "cohort" / "patients.json").exists()


def test_cohort_add_refuses_other_build(grch37_store: Path, store_dir: Path, tmp_path: Path,
                                        cli) -> None:
    shutil.copytree(grch37_store, store_dir)
    trio = tmp_path / "trio.vcf"
    shutil.copy(SAMPLES / "trio.vcf", trio)  # ##reference=GRCh38
    r = ok(refused_without_leak(cli, "cohort", "add", trio, "--baseline", S37_OLD), 3)
    assert "GRCh38" in r.err and "GRCh37" in r.err
    assert not (store_dir / "cohort" / "patients.json").exists()


def test_changed_vcf_is_skipped_then_reingested(sample_cohort, store_dir: Path,
                                                tmp_path: Path, cli) -> None:
    trio = sample_cohort["trio"]
    alleles_before = registry(store_dir)["CHILD01"]["alleles"]
    add_trio_record(trio)

    # Until it is re-added, the changed VCF's patients are skipped (and said so); the others run.
    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out))
    run = check_report(out)
    skipped = {s["patient_id"]: s["problem"] for s in run["patients"]["skipped"]}
    assert set(skipped) == {"CHILD01", "MOTHER01", "FATHER01"}
    assert all("changed" in p for p in skipped.values())
    assert run["patients"]["reanalyzed"] == 1
    assert by_patient(read_tsv(out / "changes.tsv")) == {"PATIENT01": EXPECTED["PATIENT01"]}
    for pid in skipped:
        assert pid in r.err
    assert reviewed(store_dir) == {"PATIENT01": NEW, "CHILD01": OLD, "MOTHER01": OLD,
                                   "FATHER01": OLD}

    r = ok(cli("cohort", "add", trio))
    assert add_outcomes(r.err) == {"CHILD01": "re-ingested", "MOTHER01": "re-ingested",
                                   "FATHER01": "re-ingested"}
    reg = registry(store_dir)
    assert reg["CHILD01"]["alleles"] == alleles_before + 1
    assert reg["CHILD01"]["source_sha256"] == hashlib.sha256(trio.read_bytes()).hexdigest()
    # Re-ingesting keeps the snapshot each patient was last reported against.
    assert reviewed(store_dir) == {"PATIENT01": NEW, "CHILD01": OLD, "MOTHER01": OLD,
                                   "FATHER01": OLD}
    r = ok(cli("cohort", "add", trio))
    assert add_outcomes(r.err) == {"CHILD01": "unchanged", "MOTHER01": "unchanged",
                                   "FATHER01": "unchanged"}

    out2 = tmp_path / "OUT2"
    ok(cli("reanalyze", "--out", out2))
    run2 = check_report(out2)
    assert run2["patients"] == {"reanalyzed": 3, "up_to_date": 1, "skipped": []}
    expected = {p: set(c) for p, c in EXPECTED.items() if p != "PATIENT01"}
    expected["CHILD01"].add(NEW2)
    assert by_patient(read_tsv(out2 / "changes.tsv")) == expected


def test_moved_vcf_readded_from_new_place(sample_cohort, store_dir: Path, tmp_path: Path,
                                          cli) -> None:
    """Re-adding the same content from its new location must leave the patients runnable
    once the old location is gone."""
    moved = tmp_path / "moved"
    moved.mkdir()
    new_trio = moved / "trio.vcf"
    shutil.move(sample_cohort["trio"], new_trio)
    ok(cli("cohort", "add", new_trio, "--baseline", OLD))
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    run = check_report(out)
    assert run["patients"]["skipped"] == [], (
        "cohort add from the new location answered 'already registered', yet the patients "
        "still point at the old, deleted file")
    assert by_patient(read_tsv(out / "changes.tsv")) == EXPECTED


def test_reusing_out_keeps_the_recorded_report(sample_cohort, store_dir: Path,
                                               tmp_path: Path, cli) -> None:
    """The patients are recorded as reviewed because the report exists: a later run given the
    same --out must not destroy that report (or leave a mix of two runs in it)."""
    out = tmp_path / "OUT"
    ok(cli("reanalyze", "--out", out))
    first = tsv_rows_sorted(out / "changes.tsv")
    assert len(first) == 1 + SAMPLE_TOTAL
    r = cli("reanalyze", "--out", out)
    assert r.code in (0, 2), r.err
    assert tsv_rows_sorted(out / "changes.tsv") == first, \
        "the second run overwrote the report of changes already recorded as reported"
    check_report(out)


# ------------------------------------------------------------------------------ robustness
def test_missing_vcf_is_skipped_and_others_run(sample_cohort, store_dir: Path,
                                               tmp_path: Path, cli) -> None:
    single = sample_cohort["single"]
    keep = tmp_path / "keep.vcf.gz"
    shutil.move(single, keep)
    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out))
    run = check_report(out)
    assert run["patients"]["reanalyzed"] == 3
    assert run["patients"]["skipped"] == [
        {"patient_id": "PATIENT01", "problem": f"VCF {single.resolve()} is missing"}]
    assert "PATIENT01" in r.err and "missing" in r.err
    assert "1 skipped" in r.err
    assert by_patient(read_tsv(out / "changes.tsv")) == {
        p: c for p, c in EXPECTED.items() if p != "PATIENT01"}
    assert reviewed(store_dir) == {"PATIENT01": OLD, "CHILD01": NEW, "MOTHER01": NEW,
                                   "FATHER01": NEW}
    # Once the file is back, the skipped patient gets its report (and only it).
    shutil.copy(keep, single)
    out2 = tmp_path / "OUT2"
    ok(cli("reanalyze", "--out", out2))
    assert by_patient(read_tsv(out2 / "changes.tsv")) == {"PATIENT01": EXPECTED["PATIENT01"]}
    assert set(reviewed(store_dir).values()) == {NEW}


def test_every_vcf_missing_exits_3(sample_cohort, store_dir: Path, tmp_path: Path,
                                   cli) -> None:
    reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
    for path in sample_cohort.values():
        path.unlink()
    out = tmp_path / "OUT"
    r = ok(cli("reanalyze", "--out", out), 3)
    assert "missing" in r.err
    assert not out.exists()
    assert (store_dir / "cohort" / "patients.json").read_bytes() == reg_before
    ok(cli("reanalyze", "--dry-run", "--format", "json"), 3)


HOLDER = """
import sys, time
from pathlib import Path
from varreinterp.store import Store
with Store(Path(sys.argv[1])).lock('test'):
    print('locked', flush=True)
    time.sleep(30)
"""


def test_lock_held_exits_5_and_dead_holder_is_taken_over(sample_cohort, store_dir: Path,
                                                         tmp_path: Path, cli) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        reg_before = (store_dir / "cohort" / "patients.json").read_bytes()
        r = ok(cli("reanalyze", "--out", tmp_path / "OUT"), 5)
        assert f"pid {holder.pid}" in r.err
        assert not (tmp_path / "OUT").exists()
        r = ok(cli("cohort", "add", sample_cohort["trio"]), 5)
        assert f"pid {holder.pid}" in r.err
        ok(cli("cohort", "remove", "CHILD01"), 5)
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
    assert by_patient(read_tsv(tmp_path / "OUT" / "changes.tsv")) == EXPECTED
    # Released cleanly: the next writer sees no stale lock.
    assert (store_dir / "lock").read_text() == ""
    r = ok(cli("reanalyze", "--out", tmp_path / "OUT2"))
    assert "stale" not in r.err


# ------------------------------------------------------------------------------ kill -9
BIG_SAMPLES = 150
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


def spawn(store: Path, *args: str | Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "varreinterp", "--store", str(store),
                             *[str(a) for a in args]],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen) -> str:
    _, err = proc.communicate(timeout=60)
    return err


@pytest.fixture(scope="module")
def big_cohort(tmp_path_factory) -> dict:
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
    proc = spawn(ref_store, "reanalyze", "--min-priority", "low", "--out", base / "REF")
    err = finish(proc)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, err
    ref = tsv_rows_sorted(base / "REF" / "changes.tsv")
    assert len(ref) > 1000  # a moderately large report: many rows, one file per patient
    assert len(list((base / "REF" / "patients").iterdir())) == BIG_SAMPLES
    return {"store": store, "ref": ref, "seconds": seconds, "base": base}


def assert_nothing_recorded_without_report(store: Path, killed_out: Path | None,
                                           ref: list[tuple[str, ...]]) -> bool:
    """After the kill: either nobody is recorded as reviewed, or everybody is and the killed
    run's report exists, complete. Returns whether the killed run got that far."""
    states = set(reviewed(store).values())
    assert len(states) == 1, f"registry half-updated: {states}"
    if states == {OLD}:
        return False
    assert states == {NEW}
    assert killed_out is not None and (killed_out / "run.json").is_file(), \
        "patients recorded as reviewed without their report on disk"
    assert tsv_rows_sorted(killed_out / "changes.tsv") == ref
    check_report(killed_out)
    return True


def test_kill_9_at_any_moment_then_rerun_gives_complete_report(big_cohort, tmp_path: Path,
                                                               cli) -> None:
    ref, seconds = big_cohort["ref"], big_cohort["seconds"]
    delays = [0.05, 0.2, 0.5] + [seconds * f for f in (0.6, 0.7, 0.8, 0.9, 0.97)]
    outcomes = []
    for i, delay in enumerate(delays):
        work = tmp_path / f"k{i}"
        store = work / "store"
        shutil.copytree(big_cohort["store"], store)
        proc = spawn(store, "reanalyze", "--min-priority", "low", "--out", work / "OUT1")
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        finish(proc)
        done = assert_nothing_recorded_without_report(store, work / "OUT1", ref)
        outcomes.append((round(delay, 2), proc.returncode, done))
        lock_text = (store / "lock").read_text() if (store / "lock").exists() else ""

        r = ok(cli("reanalyze", "--min-priority", "low", "--out", work / "OUT2", store=store))
        if lock_text.strip():
            assert "stale" in r.err
        run = check_report(work / "OUT2")
        if done:  # the killed run had finished its job: nothing is reported twice
            assert run["changes"]["total"] == 0
            assert run["patients"]["up_to_date"] == BIG_SAMPLES
        else:
            assert tsv_rows_sorted(work / "OUT2" / "changes.tsv") == ref, f"delay {delay}"
            assert run["patients"] == {"reanalyzed": BIG_SAMPLES, "up_to_date": 0,
                                       "skipped": []}
        assert set(reviewed(store).values()) == {NEW}
        assert list((store / "tmp").iterdir()) == []
    # At least the early kills must really have interrupted the run.
    assert any(rc == -signal.SIGKILL and not done for _, rc, done in outcomes), outcomes


def test_kill_9_while_report_is_staged_leaves_no_leftovers(big_cohort, tmp_path: Path,
                                                           cli) -> None:
    """Killed exactly while the report folder is being written (default --out, under the
    store's reports/): nothing is recorded, and the next run's report is complete with no
    half-written folder left behind in the store."""
    store = tmp_path / "store"
    shutil.copytree(big_cohort["store"], store)
    reports = store / "reports"
    staging = store / "tmp"  # reports inside the store are staged in its tmp/
    proc = spawn(store, "reanalyze", "--min-priority", "low")
    caught = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if staging.is_dir() and any(".stage-" in p.name for p in staging.iterdir()):
            proc.send_signal(signal.SIGKILL)
            caught = True
            break
        time.sleep(0.0005)
    finish(proc)
    assert caught, "the run finished before its report staging could be observed"
    assert set(reviewed(store).values()) == {OLD}, "recorded as reviewed without a report"
    complete_before = [p for p in reports.iterdir() if (p / "run.json").is_file()]
    assert complete_before == []

    r = ok(cli("reanalyze", "--min-priority", "low", store=store))
    out = stderr_report_dir(r.err)
    assert out.parent == reports
    assert tsv_rows_sorted(out / "changes.tsv") == big_cohort["ref"]
    check_report(out)
    assert set(reviewed(store).values()) == {NEW}
    assert list((store / "tmp").iterdir()) == []
    leftovers = sorted(p.name for p in reports.iterdir() if p != out)
    assert leftovers == [], f"half-written report staging left in {reports}: {leftovers}"
