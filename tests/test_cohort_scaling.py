"""The inverted cohort index (cohort_index.py) and the engine that runs cohort work
(engine.py), through the CLI.

1. Equivalence: one generated cohort and release pair gives the same changes.tsv in-process
   (--workers 1), on a local cluster of 2 worker processes (--workers 2) and on a named
   scheduler; and, over small random cohorts (Hypothesis), in-process reanalysis equals a
   plain-Python oracle computed from the releases and the genotypes written.
2. A worker process that dies in the middle of a task (a worker plugin os._exit()s it on the
   first task of one kind): Dask runs the task again and the report is the single-process one.
3. A scheduler whose workers cannot see the store is refused naming the store (check_store);
   an unreachable or malformed scheduler address ends with one line and its exit code.
4. Migration of a schema-2 store written by the previous version (checked out at /tmp/v2;
   skipped when absent): by `cohort migrate` or any first command; the report equals the old
   version's, and new patients can be added after it; an edited old index file is refused
   (exit 4, store untouched); kill -9 at the migration's commit point leaves a schema-2 store
   that the next command migrates.
5. Integrity: a flipped byte or a truncated bin file stops the run (exit 4) with nothing
   delivered; `cohort verify` finds both; an orphan bin file goes with the next `cohort add`.
6. Lifecycle: `cohort remove` leaves no row of the patient; a replaced VCF's old number stays
   live until its newly / no longer carried alleles are delivered; `cohort compact` leaves one
   file per bin and the same results.
7. Bytes read: a release changing a few keys reads a small part of a multi-row-group index;
   staged bin files are sorted by position (the row-group pruning relies on it).

A LocalCluster costs about 3 s to start here: one is shared by the module (`cluster`), and the
two scheduler-address refusals (a 10 s connect timeout) run in the background from the start.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from builders import STARS_TO_REVIEW, write_clinvar, write_patient
from conftest import ROOT, CliResult, invoke
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive_changes import naive_change

from varreinterp.changes import ChangeKind, Priority
from varreinterp.cohort import Patient, Registry
from varreinterp.cohort_index import BIN_SIZE, ROW_GROUP_ROWS, stage_rows
from varreinterp.errors import UsageError
from varreinterp.store import Store
from varreinterp.vocabulary import classify, review_status

Row = dict[str, Any]
Key = tuple[str, int, str, str]  # bare contig, pos, REF, ALT
Release = dict[Key, tuple[str, int]]  # key -> (CLNSIG, stars)
Carried = dict[str, dict[Key, str]]  # sample -> key -> zygosity
Change = tuple[str, str, int, str, str, str, str, str]  # patient, key, change, priority, zyg

A_DATE, B_DATE = "2024-01-01", "2024-02-01"
A_SNAP, B_SNAP = f"clinvar-GRCh38-{A_DATE}", f"clinvar-GRCh38-{B_DATE}"
CONTIGS = ("1", "2", "X")
SIGS = ("Pathogenic", "Likely_pathogenic", "Uncertain_significance", "Likely_benign",
        "Benign", "Conflicting_classifications_of_pathogenicity", "drug_response")
V2 = Path("/tmp/v2")  # the previous version (schema 2: one index file per patient)


# ------------------------------------------------------------------------------ helpers
def ok(r: CliResult, code: int = 0) -> CliResult:
    assert r.code == code, f"exit {r.code}, expected {code}\nstdout: {r.out[-2000:]}\n" \
                           f"stderr: {r.err[-2000:]}"
    return r


def jsonl(text: str) -> list[Row]:
    return [json.loads(ln) for ln in text.splitlines() if ln.strip()]


def bare(chrom: str) -> str:
    return chrom[3:] if chrom.startswith("chr") else chrom


def report_rows(out: Path) -> list[tuple[str, ...]]:
    """changes.tsv: the header, then the rows sorted (the '#' provenance line names the run
    and its paths: left out). No folder (nothing changed): no rows. The `in_panel` column
    came after the schema-2 version (empty here: no panel) and is left out to compare."""
    if not out.exists():
        return []
    with open(out / "changes.tsv", newline="") as fh:
        assert fh.readline().startswith("#tool=varreinterp ")
        rows = [list(r) for r in csv.reader(fh, delimiter="\t")]
    if "in_panel" in rows[0]:
        i = rows[0].index("in_panel")
        assert all(r[i] == "" for r in rows[1:]), "in_panel set without a panel"
        rows = [r[:i] + r[i + 1:] for r in rows]
    out_rows = [tuple(r) for r in rows]
    return [out_rows[0], *sorted(out_rows[1:])]


def change_set(rows: list[tuple[str, ...]]) -> set[Change]:
    """(patient, contig, pos, ref, alt, change, priority, zygosity) of changes.tsv rows."""
    if not rows:
        return set()
    col = {name: i for i, name in enumerate(rows[0])}
    return {(r[col["patient"]], bare(r[col["chrom"]]), int(r[col["pos"]]), r[col["ref"]],
             r[col["alt"]], r[col["change"]], r[col["priority"]], r[col["zygosity"]])
            for r in rows[1:]}


def dry_run(store: Path) -> set[Change]:
    """What a reanalysis would deliver now, every priority (nothing is recorded)."""
    rows = jsonl(ok(invoke(store, "reanalyze", "--dry-run", "--min-priority", "low",
                           "--format", "json")).out)
    return {(str(r["patient"]), bare(str(r["chrom"])), int(r["pos"]), str(r["ref"]),
             str(r["alt"]), str(r["change"]), str(r["priority"]), str(r["zygosity"]))
            for r in rows if "patient" in r}


def registry(store: Path) -> Row:
    data: Row = json.loads((store / "cohort" / "patients.json").read_text())
    return data


def reviewed(store: Path) -> dict[str, dict[str, str]]:
    return {pid: dict(p["reviewed"]) for pid, p in registry(store)["patients"].items()}


def runs(store: Path) -> list[Row]:
    path = store / "runs.jsonl"
    return jsonl(path.read_text()) if path.exists() else []


def bins(store: Path) -> Path:
    return store / "cohort" / "bins"


def bin_files(store: Path) -> dict[str, int]:
    """Every Parquet file under cohort/bins (name under bins -> size)."""
    root = bins(store)
    return {p.relative_to(root).as_posix(): p.stat().st_size
            for p in sorted(root.rglob("*.parquet"))} if root.is_dir() else {}


def catalog(store: Path) -> dict[str, Row]:
    """Every catalogued index file (rows files, and any companion files beside them)."""
    files: dict[str, Row] = registry(store)["index"]["files"]
    return files


def rows_files(store: Path) -> dict[str, Row]:
    """The catalogued files that hold the index rows (one or more per bin)."""
    return {n: e for n, e in catalog(store).items() if e.get("role", "rows") == "rows"}


def assert_catalog_is_the_disk(store: Path) -> None:
    """Every catalogued file is there at its size, and nothing else is."""
    assert bin_files(store) == {n: int(e["size"]) for n, e in catalog(store).items()}


def assert_one_file_per_bin(store: Path) -> None:
    keys = [(e["key_chrom"], e["bin"]) for e in rows_files(store).values()]
    assert keys and len(keys) == len(set(keys)), sorted(keys)


def rows_per_number(store: Path) -> dict[int, int]:
    """Index rows per patient number, read from every rows file."""
    import duckdb

    files = [str(bins(store) / n) for n in rows_files(store)]
    if not files:
        return {}
    con = duckdb.connect()
    try:
        found = con.execute("SELECT patient, count(*) FROM read_parquet(?, union_by_name = true) "
                            "GROUP BY 1", [files]).fetchall()
    finally:
        con.close()
    return {int(n): int(c) for n, c in found}


def duplicate_rows(store: Path) -> int:
    import duckdb

    files = [str(bins(store) / n) for n in rows_files(store)]
    con = duckdb.connect()
    try:
        return int(con.execute("""
            SELECT count(*) - count(DISTINCT (key_chrom, pos, ref, alt, patient))
            FROM read_parquet(?, union_by_name = true)""", [files]).fetchall()[0][0])
    finally:
        con.close()


def patients(store: Path) -> dict[str, Patient]:
    """The registry of a current-schema store, read by the product (numbers, replacements)."""
    return Registry.load(Store(store)).patients


def previous_numbers(p: Patient) -> set[int]:
    """The numbers of a patient's replaced registrations still live (not yet delivered)."""
    return set(p.numbers) - {p.number}


def all_numbers(store: Path) -> set[int]:
    return {n for p in patients(store).values() for n in p.numbers}


def assert_index_matches_registry(store: Path) -> None:
    """Each current registration has exactly its alleles in the index, once each."""
    counts = rows_per_number(store)
    for pid, p in patients(store).items():
        assert counts.get(p.number, 0) == p.alleles, (pid, p.number, counts.get(p.number))
    assert duplicate_rows(store) == 0


def tmp_leftovers(store: Path) -> list[str]:
    """Work and staging folders left in the store (a finished command leaves none)."""
    tmp = store / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def flip_byte(path: Path, offset: int) -> int:
    data = bytearray(path.read_bytes())
    original = data[offset]
    data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    return original


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def current_cli(store: Path, *args: str | Path, **kwargs: Any) -> subprocess.Popen[str]:
    """This version's CLI in a process of its own."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "varreinterp", "--store", str(store),
                             *[str(a) for a in args]], env=env, cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


# ------------------------------------------------------------------------------ generated data
@dataclass
class Cohort:
    """Two releases and the patients' VCFs, with what each sample carries (the oracle's
    input, written independently of the product's reader)."""

    a: Release
    b: Release
    files: list[list[str]]  # VCF lines (records) per file
    samples: list[list[str]]
    carried: Carried = field(default_factory=dict)


def genotype_file(rng: random.Random, samples: list[str], sites: list[tuple[str, int]],
                  multi: bool, carried: Carried) -> list[str]:
    """Records at about half the sites (one or two ALTs), a GT per sample; what each sample
    carries goes into `carried` (an ALT index in a fully called GT; hom when both)."""
    lines = []
    for contig, pos in sites:
        if rng.random() < 0.5:
            continue
        alts = rng.sample("CGT", 2 if multi and rng.random() < 0.25 else 1)
        gts = []
        for sample in samples:
            roll = rng.random()
            if roll < 0.15:
                gt = "./."
            elif roll < 0.3:
                gt = "0/0"
            else:
                i, j = sorted(rng.randint(0, len(alts)) for _ in range(2))
                if i == j == 0:
                    j = 1
                gt = f"{i}/{j}"
                for k in {i, j} - {0}:
                    carried.setdefault(sample, {})[(contig, pos, "A", alts[k - 1])] = \
                        "hom" if i == j else "het"
            gts.append(gt)
        lines.append(f"chr{contig} {pos} . A {','.join(alts)} 50 PASS . GT {' '.join(gts)}")
    return lines


def generate(rng: random.Random, samples: list[list[str]], sites: list[tuple[str, int]],
             multi: bool = True) -> Cohort:
    """Release A classifies ~60% of the alleles at `sites`; B drops, reclassifies, re-stars
    or adds some; one VCF per list of `samples`."""
    alleles = [(c, p, "A", alt) for c, p in sites for alt in "CGT"]
    a: Release = {k: (rng.choice(SIGS), rng.randint(0, 4)) for k in alleles
                  if rng.random() < 0.6} or {alleles[0]: ("Benign", 1)}
    b: Release = {}
    for k in alleles:
        roll = rng.random()
        if k in a:
            sig, stars = a[k]
            if roll < 0.08:
                continue  # gone
            if roll < 0.4:
                sig = rng.choice(SIGS)
            elif roll < 0.5:
                stars = rng.randint(0, 4)
            b[k] = (sig, stars)
        elif roll < 0.1:
            b[k] = (rng.choice(SIGS), rng.randint(0, 4))
    b = b or dict(a)
    cohort = Cohort(a, b, [], samples)
    for names in samples:
        cohort.files.append(genotype_file(rng, names, sites, multi, cohort.carried))
    return cohort


def sorted_sites(sites: set[tuple[str, int]]) -> list[tuple[str, int]]:
    return sorted(sites, key=lambda s: (CONTIGS.index(s[0]), s[1]))


def write_release(path: Path, release: Release, date: str) -> Path:
    records = [(c, p, r, alt, sig, stars, "GENE" + c, None)
               for (c, p, r, alt), (sig, stars) in sorted(
                   release.items(), key=lambda kv: (CONTIGS.index(kv[0][0]), kv[0][1:]))]
    return write_clinvar(path, records, date=date)


def write_vcf(path: Path, samples: list[str], lines: list[str]) -> Path:
    return write_patient(path, samples, lines, extra_header="##reference=GRCh38")


def write_cohort(cohort: Cohort, folder: Path) -> tuple[Path, Path, list[Path]]:
    folder.mkdir(parents=True, exist_ok=True)
    a = write_release(folder / "a.vcf", cohort.a, A_DATE)
    b = write_release(folder / "b.vcf", cohort.b, B_DATE)
    vcfs = [write_vcf(folder / f"cohort{n}.vcf", names, lines)
            for n, (names, lines) in enumerate(zip(cohort.samples, cohort.files, strict=True))]
    return a, b, vcfs


def state(release: Release) -> dict[Key, tuple[str, str, int | None, str | None]]:
    out: dict[Key, tuple[str, str, int | None, str | None]] = {}
    for key, (sig, stars) in release.items():
        c = classify(sig)
        r = review_status(STARS_TO_REVIEW[stars])
        out[key] = (c.term, c.tier.value, r.stars, r.term)
    return out


def oracle(carried: Carried, a: Release, b: Release) -> set[Change]:
    """Every change a reanalysis A -> B must deliver: naive_change per carried allele."""
    sa, sb = state(a), state(b)
    out = set()
    for sample, keys in carried.items():
        for key, zygosity in keys.items():
            found = naive_change(sa.get(key), sb.get(key))
            if found:
                out.add((sample, *key, found[0].value, found[1].value, zygosity))
    return out


def replacement_oracle(patient: str, old: dict[Key, str], new: dict[Key, str],
                       a: Release) -> set[Change]:
    """newly carried (priority as for `new`) and no longer carried (low), among the keys
    release A classifies."""
    sa = state(a)
    out = set()
    for key in new.keys() - old.keys():
        if key in sa:
            found = naive_change(None, sa[key])
            assert found is not None
            out.add((patient, *key, ChangeKind.NEWLY_CARRIED.value, found[1].value, new[key]))
    for key in old.keys() - new.keys():
        if key in sa:
            out.add((patient, *key, ChangeKind.NO_LONGER_CARRIED.value, Priority.LOW.value,
                     old[key]))
    return out


# ------------------------------------------------------------------------------ fixtures
@dataclass
class Dataset:
    cohort: Cohort
    a: Path
    b: Path
    vcfs: list[Path]
    replacement: Path  # P1 re-sequenced
    replacement_carried: dict[Key, str]
    snapshots: Path  # a store holding releases A and B, no cohort (copy it)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """10 patients (7 single-sample VCFs and a trio) over 120 sites spread across the 20 Mb
    bins of 3 contigs; 2 releases with about a third of the keys reclassified."""
    rng = random.Random(20240601)
    root = tmp_path_factory.mktemp("data")
    sites: set[tuple[str, int]] = set()
    while len(sites) < 120:
        sites.add((rng.choice(CONTIGS), rng.randrange(10_000, 150_000_000)))
    ordered = sorted_sites(sites)
    samples = [[f"P{i}"] for i in range(7)] + [["P7", "P8", "P9"]]
    cohort = generate(rng, samples, ordered)
    a, b, vcfs = write_cohort(cohort, root)
    replaced: Carried = {}
    lines = genotype_file(rng, ["P1"], ordered, True, replaced)
    replacement = write_vcf(root / "P1.resequenced.vcf", ["P1"], lines)
    store = root / "snapshots"
    ok(invoke(store, "snapshot", "add", a))
    ok(invoke(store, "snapshot", "add", b))
    return Dataset(cohort, a, b, vcfs, replacement, replaced.get("P1", {}), store)


@dataclass
class Reference:
    added: Path  # the cohort registered in-process, not yet reanalyzed (copy it)
    rows: list[tuple[str, ...]]  # its in-process report


@pytest.fixture(scope="module")
def reference(data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Reference:
    root = tmp_path_factory.mktemp("reference")
    added, done = root / "added", root / "done"
    shutil.copytree(data.snapshots, added)
    ok(invoke(added, "cohort", "add", *data.vcfs, "--baseline", A_SNAP, "--workers", "1"))
    shutil.copytree(added, done)
    ok(invoke(done, "reanalyze", "--workers", "1", "--out", root / "out"))
    rows = report_rows(root / "out")
    assert len(rows) > 50  # enough changes for every bin task to matter
    return Reference(added, rows)


@dataclass
class Cluster:
    address: str
    client: Any


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    """One LocalCluster of 2 worker processes for the tests that name a scheduler."""
    from distributed import Client, LocalCluster

    lc = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,  # type: ignore[no-untyped-call]
                      dashboard_address=None, host="127.0.0.1",
                      silence_logs=logging.CRITICAL)
    with lc, Client(lc, set_as_default=False) as client:  # type: ignore[no-untyped-call]
        yield Cluster(str(lc.scheduler_address), client)


@dataclass
class Background:
    proc: subprocess.Popen[str]
    store: Path
    address: str


@pytest.fixture(scope="module")
def refusals(data: Dataset, tmp_path_factory: pytest.TempPathFactory
             ) -> Iterator[dict[str, Background]]:
    """`cohort add --scheduler` at a closed port and at a malformed address, each in a
    process of its own, started early: Dask retries a connection for its whole 10 s timeout
    (and a malformed address left a client that waits 20 s at exit), which then overlaps
    other tests."""
    started = {}
    for name, address in (("unreachable", f"tcp://127.0.0.1:{closed_port()}"),
                          ("malformed", "nonsense://scheduler:8786")):
        store = tmp_path_factory.mktemp(name) / "store"
        shutil.copytree(data.snapshots, store)
        proc = current_cli(store, "cohort", "add", data.vcfs[0], "--baseline", A_SNAP,
                           "--scheduler", address)
        started[name] = Background(proc, store, address)
    yield started
    for b in started.values():
        if b.proc.poll() is None:
            b.proc.kill()
        b.proc.communicate()


def finished(b: Background) -> tuple[int, str, str]:
    out, err = b.proc.communicate(timeout=90)
    return b.proc.returncode, out, err


# ------------------------------------------------------------------------------ 1. equivalence
@pytest.mark.usefixtures("refusals")  # started now, checked later (section 3)
def test_local_cluster_of_two_workers_reports_what_one_process_does(
        data: Dataset, reference: Reference, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(data.snapshots, store)
    ok(invoke(store, "cohort", "add", *data.vcfs, "--baseline", A_SNAP, "--workers", "2"))
    assert {p: r["alleles"] for p, r in registry(store)["patients"].items()} == \
        {p: r["alleles"] for p, r in registry(reference.added)["patients"].items()}
    assert_index_matches_registry(store)
    assert_catalog_is_the_disk(store)

    status = jsonl(ok(invoke(store, "cohort", "status", "--format", "json")).out)
    files = bin_files(store)
    assert {(r["index_engine"], r["index_workers"], r["index_files"], r["index_bytes"])
            for r in status} == {("local-cluster", 2, len(rows_files(store)),
                                  sum(files.values()))}
    ref_status = jsonl(ok(invoke(reference.added, "cohort", "status", "--format", "json")).out)
    assert {(r["index_engine"], r["index_workers"]) for r in ref_status} == {("in-process", 1)}

    out = tmp_path / "out"
    ok(invoke(store, "reanalyze", "--workers", "2", "--out", out))
    assert report_rows(out) == reference.rows
    run = json.loads((out / "run.json").read_text())
    assert run["engine"] == {"engine": "local-cluster", "workers": 2, "scheduler": None}
    assert runs(store)[-1]["engine"] == run["engine"]
    assert runs(store)[-1]["index_bytes"] == run["index_bytes"]
    assert 0 < run["index_bytes"]["read"] <= run["index_bytes"]["total"] == sum(files.values())


def test_reference_report_is_what_the_oracle_computes(data: Dataset,
                                                      reference: Reference) -> None:
    c = data.cohort
    assert change_set(reference.rows) == oracle(c.carried, c.a, c.b)


SETTINGS = settings(max_examples=8, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(rng=st.randoms(use_true_random=False),
       layout=st.lists(st.integers(1, 3), min_size=1, max_size=3),
       n_sites=st.integers(1, 8))
def test_in_process_reanalysis_equals_the_oracle(rng: random.Random, layout: list[int],
                                                 n_sites: int) -> None:
    sites = sorted_sites({(rng.choice(CONTIGS), rng.choice((10_000, 10_001, 45_000_000)))
                          for _ in range(n_sites)})
    names = iter(f"S{i}" for i in range(sum(layout)))
    cohort = generate(rng, [[next(names) for _ in range(n)] for n in layout], sites)
    with tempfile.TemporaryDirectory(prefix="vri-scaling-") as tmp:
        d = Path(tmp)
        a, b, vcfs = write_cohort(cohort, d / "in")
        store = d / "store"
        ok(invoke(store, "snapshot", "add", a))
        ok(invoke(store, "snapshot", "add", b))
        ok(invoke(store, "cohort", "add", *vcfs, "--baseline", A_SNAP))
        # A generated release may hold fewer records than the one before (suspect).
        ok(invoke(store, "reanalyze", "--accept-suspect", "--out", d / "out"))
        assert change_set(report_rows(d / "out")) == oracle(cohort.carried, cohort.a, cohort.b)
        assert set(reviewed(store)) == {s for names_ in cohort.samples for s in names_}
        assert all(r == {"clinvar/GRCh38": B_SNAP} for r in reviewed(store).values())


def test_named_scheduler_reports_what_one_process_does(cluster: Cluster, data: Dataset,
                                                       reference: Reference,
                                                       tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(data.snapshots, store)
    ok(invoke(store, "cohort", "add", *data.vcfs, "--baseline", A_SNAP,
              "--scheduler", cluster.address))
    ok(invoke(store, "reanalyze", "--scheduler", cluster.address, "--out", tmp_path / "out"))
    assert report_rows(tmp_path / "out") == reference.rows
    engine = {"engine": "dask", "workers": 2, "scheduler": cluster.address}
    assert json.loads((tmp_path / "out" / "run.json").read_text())["engine"] == engine
    assert registry(store)["engine"] == engine
    assert not list((store / "tmp").glob("engine-probe-*"))


# ------------------------------------------------------------------------------ 2. a worker dies
def kill_once(marker: Path, prefix: str, moment: str) -> Any:
    """A worker plugin that kills its worker process (os._exit) at the start or the end of the
    first task whose key starts with `prefix`, across the cluster (the marker file says it
    happened). Defined in a function so that cloudpickle ships the class by value."""
    from distributed import WorkerPlugin

    class KillOnce(WorkerPlugin):
        def __init__(self) -> None:
            self.marker, self.prefix, self.moment = str(marker), prefix, moment

        def transition(self, key: Any, start: Any, finish: Any, **kwargs: Any) -> None:
            if not str(key).startswith(self.prefix):
                return
            at_start = self.moment == "start" and finish == "executing"
            # Finished, its output staged, its result not yet sent: the result is lost.
            at_end = self.moment == "end" and start == "executing" and finish == "memory"
            if not (at_start or at_end):
                return
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # killed once already (a restarted worker gets the plugin again)
            os._exit(1)

    return KillOnce()


@pytest.mark.parametrize("command, task, moment", [
    ("cohort add", "index_batch", "start"),
    ("cohort add", "index_batch", "end"),
    ("reanalyze", "run_task", "start"),
])
def test_a_worker_killed_mid_task_is_retried_and_the_report_is_unchanged(
        cluster: Cluster, data: Dataset, reference: Reference, tmp_path: Path, command: str,
        task: str, moment: str) -> None:
    cluster.client.wait_for_workers(2, timeout=60)
    marker = tmp_path / "killed"
    cluster.client.register_plugin(kill_once(marker, task, moment), name="kill-once")
    store, out = tmp_path / "store", tmp_path / "out"
    try:
        if command == "cohort add":
            shutil.copytree(data.snapshots, store)
            ok(invoke(store, "cohort", "add", *data.vcfs, "--baseline", A_SNAP,
                      "--scheduler", cluster.address))
            assert marker.exists(), "no worker was killed"
            assert_index_matches_registry(store)
            assert_catalog_is_the_disk(store)
            ok(invoke(store, "reanalyze", "--workers", "1", "--out", out))
        else:
            shutil.copytree(reference.added, store)
            ok(invoke(store, "reanalyze", "--scheduler", cluster.address, "--out", out))
            assert marker.exists(), "no worker was killed"
    finally:
        cluster.client.unregister_worker_plugin("kill-once")
        cluster.client.wait_for_workers(2, timeout=60)
    assert report_rows(out) == reference.rows
    assert tmp_leftovers(store) == []


# ------------------------------------------------------------------------------ 3. refusals
class _Workers:
    """A stand-in for a distributed.Client: `run` answers per worker address, the blind ones
    (a file system that does not hold the store) with None."""

    def __init__(self, seeing: list[str], blind: list[str]) -> None:
        self.seeing, self.blind = seeing, blind

    def run(self, fn: Callable[[str], str | None], path: str) -> dict[str, str | None]:
        answers: dict[str, str | None] = {a: fn(path) for a in self.seeing}
        answers.update({a: None for a in self.blind})
        return answers


def test_workers_that_cannot_see_the_store_are_refused_naming_it(tmp_path: Path) -> None:
    from varreinterp.engine import check_store

    store = tmp_path / "store"
    check_store(_Workers(["tcp://10.0.0.1:1"], []), store)  # a shared file system: accepted
    with pytest.raises(UsageError) as refused:
        check_store(_Workers(["tcp://10.0.0.1:1"], ["tcp://10.0.0.2:2"]), store)
    message = refused.value.one_line()
    assert str(store) in message and "tcp://10.0.0.2:2" in message, message
    assert "tcp://10.0.0.1:1" not in message
    assert "\n" not in str(refused.value)
    assert not list((store / "tmp").glob("engine-probe-*"))  # the probe is removed


def assert_nothing_registered(store: Path) -> None:
    assert not (store / "cohort" / "patients.json").exists()
    assert not bin_files(store)
    assert tmp_leftovers(store) == []


def test_unreachable_scheduler_exits_74_with_one_line(
        refusals: dict[str, Background]) -> None:
    b = refusals["unreachable"]
    code, out, err = finished(b)
    line = one_line(err)
    assert (code, out) == (74, ""), err
    assert b.address in line and "scheduler" in line, line
    assert_nothing_registered(b.store)


def test_malformed_scheduler_address_is_a_usage_error(refusals: dict[str, Background]) -> None:
    b = refusals["malformed"]
    code, out, err = finished(b)
    line = one_line(err)
    assert (code, out) == (2, ""), err
    assert b.address in line and "internal error" not in line, line
    assert_nothing_registered(b.store)


# ------------------------------------------------------------------------------ 4. migration
def old_cli(store: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    """The previous version. It runs from a folder outside the project, or `python -m` would
    import this version from the current directory."""
    env = {**os.environ, "PYTHONPATH": str(V2)}
    r = subprocess.run([sys.executable, "-m", "varreinterp", "--store", str(store),
                        *[str(a) for a in args]], env=env, cwd=store.parent, text=True,
                       capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r


@dataclass
class OldStore:
    store: Path  # schema 2, P1 replaced and not yet reanalyzed (copy it)
    rows: list[tuple[str, ...]]  # what the previous version reports for it
    index_rows: dict[str, int]  # old index file name -> rows


@pytest.fixture(scope="module")
def v2_store(data: Dataset, tmp_path_factory: pytest.TempPathFactory) -> OldStore:
    import pyarrow.parquet as pq

    if not (V2 / "varreinterp" / "cohort.py").is_file():
        pytest.skip(f"the previous version is not checked out at {V2}")
    root = tmp_path_factory.mktemp("v2")
    store = root / "store"
    old_cli(store, "snapshot", "add", data.a)
    old_cli(store, "snapshot", "add", data.b)
    old_cli(store, "cohort", "add", *data.vcfs, "--baseline", A_SNAP)
    old_cli(store, "cohort", "add", data.replacement, "--replace")
    reg = registry(store)
    assert reg["schema_version"] == 2
    p1 = reg["patients"]["P1"]
    assert p1["previous_index_file"] and p1["replacement_pending"]
    shutil.copytree(store, root / "old-run")
    old_cli(root / "old-run", "reanalyze", "--out", root / "old-out")
    index = store / "cohort" / "index"
    return OldStore(store, report_rows(root / "old-out"),
                    {p.name: pq.read_metadata(p).num_rows for p in index.iterdir()})


def tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_migrated(store: Path, old: OldStore, old_registry: Row) -> None:
    """Schema 3, the old index folder gone, every old index file's rows under the number its
    registration got, and the replaced VCF's previous file under a live number of its own
    while its replacement waits to be delivered."""
    assert registry(store)["schema_version"] == 3
    assert not (store / "cohort" / "index").exists()
    assert_catalog_is_the_disk(store)
    counts = rows_per_number(store)
    migrated = patients(store)
    assert set(migrated) == set(old_registry["patients"])
    for pid, p in migrated.items():
        before = old_registry["patients"][pid]
        assert counts.get(p.number, 0) == old.index_rows[before["index_file"]], pid
        assert p.reviewed == before["reviewed"] and p.source == before["source"], pid
        if before["replacement_pending"]:
            assert p.replacement_pending == before["replacement_pending"], pid
            (previous,) = previous_numbers(p)
            assert counts.get(previous, 0) == \
                old.index_rows[before["previous_index_file"]], pid
        else:
            assert previous_numbers(p) == set(), pid
    assert duplicate_rows(store) == 0


@pytest.mark.parametrize("first", [("cohort", "migrate"), ("cohort", "status", "--format", "json"),
                                   ("reanalyze",)], ids=["migrate", "status", "reanalyze"])
def test_schema_2_store_is_migrated_and_reports_what_the_old_version_does(
        v2_store: OldStore, tmp_path: Path, first: tuple[str, ...]) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    shutil.copytree(v2_store.store, store)
    old_registry = registry(store)
    extra = ("--out", str(out)) if first == ("reanalyze",) else ()
    r = invoke(store, *first, *extra)
    assert registry(store)["schema_version"] == 3, r.err
    if first != ("reanalyze",):
        assert_migrated(store, v2_store, old_registry)
        ok(r)
        ok(invoke(store, "cohort", "verify"))
        r = invoke(store, "reanalyze", "--out", out)
    assert not (store / "cohort" / "index").exists()
    ok(r)
    assert report_rows(out) == v2_store.rows
    assert previous_numbers(patients(store)["P1"]) == set()


def test_a_migrated_store_takes_new_patients(data: Dataset, v2_store: OldStore,
                                             tmp_path: Path) -> None:
    """Bins then hold files of both versions: a newcomer carrying what P0 carries gets P0's
    changes, everyone else what the old version reported."""
    store, out = tmp_path / "store", tmp_path / "out"
    shutil.copytree(v2_store.store, store)
    ok(invoke(store, "cohort", "migrate"))
    newcomer = write_vcf(tmp_path / "new.vcf", ["NEW1"], data.cohort.files[0])
    ok(invoke(store, "cohort", "add", newcomer, "--baseline", A_SNAP))
    assert_index_matches_registry(store)
    header = v2_store.rows[0]
    col = {name: i for i, name in enumerate(header)}
    copied = [tuple("NEW1" if i in (col["patient"], col["sample"]) else v
                    for i, v in enumerate(r)) for r in v2_store.rows[1:] if r[0] == "P0"]
    assert copied
    ok(invoke(store, "reanalyze", "--out", out))
    assert report_rows(out) == [header, *sorted(v2_store.rows[1:] + copied)]
    ok(invoke(store, "cohort", "compact"))
    assert_one_file_per_bin(store)
    assert_index_matches_registry(store)


def test_schema_2_store_with_an_edited_index_file_is_not_migrated(v2_store: OldStore,
                                                                  tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(v2_store.store, store)
    edited = sorted((store / "cohort" / "index").iterdir())[1]
    flip_byte(edited, edited.stat().st_size // 2)
    before = tree(store / "cohort")
    for command in (("cohort", "migrate"), ("cohort", "status"), ("reanalyze",)):
        r = ok(invoke(store, *command), 4)
        line = one_line(r.err)
        assert str(edited) in line and "checksum" in line, line
        assert tree(store / "cohort") == before  # still schema 2, no bin file left
        assert registry(store)["schema_version"] == 2


KILL_AT_COMMIT = """
import os, signal, sys
from varreinterp import cohort

def killed(self, store):
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 the moment the registry would be written

cohort.Registry.save = killed
from varreinterp.entry import main
raise SystemExit(main())
"""


def test_kill_9_before_the_migration_commits_leaves_schema_2_then_migrates(
        v2_store: OldStore, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    shutil.copytree(v2_store.store, store)
    old_registry = registry(store)
    before = tree(store / "cohort" / "index")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-c", KILL_AT_COMMIT, "--store", str(store),
                             "cohort", "migrate"], env=env, cwd=ROOT, text=True,
                            capture_output=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert bin_files(store), "killed before any bin file was written: the window was missed"
    assert registry(store) == old_registry
    assert tree(store / "cohort" / "index") == before

    r = invoke(store, "reanalyze", "--out", out)
    assert registry(store)["schema_version"] == 3, r.err
    assert_catalog_is_the_disk(store)  # the killed run's files are gone
    ok(r)
    assert report_rows(out) == v2_store.rows


# ------------------------------------------------------------------------------ 5. integrity
def entry_holding(store: Path, rows: list[tuple[str, ...]]) -> tuple[Path, Row]:
    """The bin file (and its catalog entry) of a key that changed for a patient."""
    changed = change_set(rows)
    size = int(registry(store)["index"]["bin_size"])
    wanted = {(c[1], c[2] // size) for c in changed}
    for name, entry in sorted(rows_files(store).items()):
        if (bare(entry["key_chrom"]), entry["bin"]) in wanted:
            return bins(store) / name, entry
    raise AssertionError("no bin file holds a changed key")


def assert_nothing_delivered(store: Path, out: Path) -> None:
    assert not out.exists()
    assert all(r == {"clinvar/GRCh38": A_SNAP} for r in reviewed(store).values())
    assert not [r for r in runs(store) if r.get("report")]


def test_flipped_byte_stops_the_run_and_delivers_nothing(reference: Reference,
                                                         tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    shutil.copytree(reference.added, store)
    path, entry = entry_holding(store, reference.rows)
    assert len(entry["spans"]) == 3  # magic, one row group, footer: the row group is read
    start, end, _ = entry["spans"][1]
    offset = (start + end) // 2
    original = flip_byte(path, offset)

    r = ok(invoke(store, "reanalyze", "--out", out), 4)
    line = one_line(r.err)
    assert str(path) in line and "checksum" in line, line
    assert_nothing_delivered(store, out)
    line = one_line(ok(invoke(store, "cohort", "verify"), 4).err)
    assert str(path) in line, line

    data = bytearray(path.read_bytes())
    data[offset] = original
    path.write_bytes(bytes(data))
    ok(invoke(store, "cohort", "verify"))
    ok(invoke(store, "reanalyze", "--out", out))
    assert report_rows(out) == reference.rows


def test_truncated_bin_file_stops_the_run(reference: Reference, tmp_path: Path) -> None:
    store, out = tmp_path / "store", tmp_path / "out"
    shutil.copytree(reference.added, store)
    path, entry = entry_holding(store, reference.rows)
    with open(path, "r+b") as fh:
        fh.truncate(entry["size"] // 2)
    for command in (("reanalyze", "--out", str(out)), ("cohort", "verify")):
        line = one_line(ok(invoke(store, *command), 4).err)
        assert str(path) in line, line
    assert_nothing_delivered(store, out)


def test_orphan_bin_files_are_removed_by_the_next_cohort_add(data: Dataset,
                                                             reference: Reference,
                                                             tmp_path: Path) -> None:
    """Files a killed run left (beside catalogued ones, or in a bin of their own)."""
    store = tmp_path / "store"
    shutil.copytree(reference.added, store)
    some = sorted(rows_files(store))[0]
    beside = bins(store) / Path(some).parent / "20240101T000000-deadbeef-0.parquet"
    alone = bins(store) / "0123456789abcdef" / "00007" / "20240101T000000-deadbeef-1.parquet"
    alone.parent.mkdir(parents=True)
    for orphan in (beside, alone):
        shutil.copy(bins(store) / some, orphan)
    newcomer = write_vcf(tmp_path / "new.vcf", ["NEW1"], data.cohort.files[0])
    ok(invoke(store, "cohort", "add", newcomer, "--baseline", A_SNAP))
    assert not beside.exists() and not alone.parent.exists()
    assert_catalog_is_the_disk(store)
    assert_index_matches_registry(store)
    ok(invoke(store, "cohort", "verify"))


# ------------------------------------------------------------------------------ 6. lifecycle
@pytest.fixture
def batched(data: Dataset, tmp_path: Path) -> Path:
    """The cohort registered in three `cohort add` runs: bins of several files."""
    store = tmp_path / "store"
    shutil.copytree(data.snapshots, store)
    for part in (data.vcfs[:3], data.vcfs[3:6], data.vcfs[6:]):
        ok(invoke(store, "cohort", "add", *part, "--baseline", A_SNAP))
    per_bin = Counter((e["key_chrom"], e["bin"]) for e in rows_files(store).values())
    assert max(per_bin.values()) > 1
    return store


def test_cohort_remove_leaves_no_row_of_the_patient(batched: Path) -> None:
    number = patients(batched)["P4"].number
    assert rows_per_number(batched).get(number)
    ok(invoke(batched, "cohort", "remove", "P4"))
    assert "P4" not in patients(batched)
    assert number not in rows_per_number(batched)
    assert_index_matches_registry(batched)
    assert_catalog_is_the_disk(batched)
    assert_one_file_per_bin(batched)
    ok(invoke(batched, "cohort", "verify"))


def test_replaced_vcf_keeps_its_old_number_until_delivered_and_compact_keeps_results(
        batched: Path, cluster: Cluster, data: Dataset, tmp_path: Path) -> None:
    c = data.cohort
    old_number = patients(batched)["P1"].number
    ok(invoke(batched, "cohort", "add", data.replacement, "--replace"))
    p1 = patients(batched)["P1"]
    assert previous_numbers(p1) == {old_number} and p1.number != old_number
    counts = rows_per_number(batched)
    assert counts.get(old_number, 0) == len(c.carried.get("P1", {}))
    assert counts.get(p1.number, 0) == len(data.replacement_carried)

    carried = {**c.carried, "P1": data.replacement_carried}
    expected = oracle(carried, c.a, c.b) | replacement_oracle(
        "P1", c.carried.get("P1", {}), data.replacement_carried, c.a)
    kinds = {ch[5] for ch in expected if ch[0] == "P1"}
    assert {"newly_carried", "no_longer_carried"} <= kinds
    before = dry_run(batched)
    assert before == expected

    # Compacted on the cluster: one file per bin; the pending replacement's rows are kept.
    ok(invoke(batched, "cohort", "compact", "--scheduler", cluster.address))
    assert_one_file_per_bin(batched)
    assert_catalog_is_the_disk(batched)
    assert rows_per_number(batched).get(old_number, 0) == len(c.carried.get("P1", {}))
    assert dry_run(batched) == before

    out = tmp_path / "out"
    ok(invoke(batched, "reanalyze", "--out", out))
    assert change_set(report_rows(out)) == expected
    assert old_number not in all_numbers(batched)
    assert patients(batched)["P1"].replacement_pending == []

    ok(invoke(batched, "cohort", "compact"))
    assert old_number not in rows_per_number(batched)
    assert_one_file_per_bin(batched)
    assert_index_matches_registry(batched)
    ok(invoke(batched, "reanalyze", "--out", tmp_path / "again"))
    assert not (tmp_path / "again").exists()  # delivered once


# ------------------------------------------------------------------------------ 7. bytes read
def unsorted_files(files: list[Path]) -> list[str]:
    """Files whose rows are not in (pos, ref, alt, patient) order."""
    import pyarrow.parquet as pq

    bad = []
    for path in files:
        t = pq.read_table(path, columns=["pos", "ref", "alt", "patient"])
        rows = list(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))
        if rows != sorted(rows):
            bad.append(path.name)
    return bad


def test_staged_bin_files_are_sorted_by_key(tmp_path: Path) -> None:
    """The row-group pruning of a run relies on each file being sorted by position (the
    module's contract): 600,000 rows over 6 bins, staged by DuckDB at 4 threads (a 4-core
    machine), up to three times (the order was lost in 5 of 5 tries, 1 to 3 files each)."""
    import duckdb

    for attempt in range(3):
        con = duckdb.connect()
        try:
            con.execute("SET threads = 4")
            con.execute(f"""
                CREATE TABLE r AS SELECT CASE WHEN i % 3 = 0 THEN '1' ELSE '2' END AS key_chrom,
                       (hash(i + {attempt}) % 60000000)::BIGINT AS pos, 'A' AS ref,
                       'G' AS alt, (i % 50)::BIGINT AS patient, 'het' AS zygosity,
                       'PASS' AS filter, 'chr1' AS chrom
                FROM range(600000) t(i)""")
            staged = stage_rows(con, "r", tmp_path / f"out{attempt}", BIN_SIZE)
        finally:
            con.close()
        assert len(staged) == 6
        assert unsorted_files([f for _, _, f in staged]) == [], f"attempt {attempt + 1}"


def test_a_release_changing_few_keys_reads_a_small_part_of_the_index(tmp_path: Path) -> None:
    """64 patients carrying 6,000 alleles in one bin (24 row groups) and 1,500 in each of 14
    other bins; the release changes 2 keys of the big bin: the run reads less than that bin's
    rows file, and a small part of the index."""
    import pyarrow.parquet as pq

    rng = random.Random(20240602)
    samples = [f"B{i}" for i in range(64)]
    big = [("1", p) for p in rng.sample(range(10_000, BIN_SIZE - 10_000), 6_000)]
    small = [(c, b * BIN_SIZE + p) for c in ("1", "2") for b in range(1, 8)
             for p in rng.sample(range(10_000, BIN_SIZE - 10_000), 1_500)]
    sites = sorted(big + small, key=lambda s: (s[0], s[1]))
    alts = {s: rng.choice("CGT") for s in sites}
    calls = [" ".join(rng.choice(("0/1", "1/1")) for _ in samples) for _ in range(4_000)]
    lines = [f"chr{c} {p} . A {alts[(c, p)]} 50 PASS . GT {rng.choice(calls)}"
             for c, p in sites]
    vcf = write_vcf(tmp_path / "big.vcf", samples, lines)
    changed = sorted(big)[:2]
    a: Release = {(c, p, "A", alts[(c, p)]): ("Uncertain_significance", 1)
                  for c, p in sites[::400] + changed}
    b = {**a, **{(c, p, "A", alts[(c, p)]): ("Likely_pathogenic", 1) for c, p in changed}}
    store = tmp_path / "store"
    ok(invoke(store, "snapshot", "add", write_release(tmp_path / "a.vcf", a, A_DATE)))
    ok(invoke(store, "snapshot", "add", write_release(tmp_path / "b.vcf", b, B_DATE)))
    ok(invoke(store, "cohort", "add", vcf, "--baseline", A_SNAP))
    sizes = bin_files(store)
    rows = rows_files(store)
    (big_file,) = [n for n, e in rows.items() if (e["key_chrom"], e["bin"]) == ("1", 0)]
    groups = pq.read_metadata(bins(store) / big_file).num_row_groups
    assert groups == -(-len(big) * len(samples) // ROW_GROUP_ROWS) and len(rows) == 15

    out = tmp_path / "out"
    ok(invoke(store, "reanalyze", "--out", out))
    assert len(change_set(report_rows(out))) == 2 * len(samples)
    index_bytes = json.loads((out / "run.json").read_text())["index_bytes"]
    read, total = index_bytes["read"], index_bytes["total"]
    assert total == sum(sizes.values())
    # Fixed costs bound what a small index can show: pyarrow reads the last 64 KB of a file
    # with its footer, whatever row groups are then read.
    assert 0 < read < sizes[big_file], (read, sizes[big_file])
    assert read * 5 < total, (read, total)
    assert runs(store)[-1]["index_bytes"] == index_bytes
