"""SIGINT and SIGTERM at random moments of long commands, and kill -9.

Contract (errors.ExitCode, README): an interrupted command exits 130 (SIGINT) or 143 (SIGTERM)
with exactly one stderr line `varreinterp: interrupted` (INFO progress lines aside), leaves the
store exactly as it was (no snapshot, no registered patient, no index file), no output file and
no hidden `.OUT.*` temp file, and an empty `STORE/tmp`. A command that finished before the
signal arrived, or whose signal came after its commit point, exits 0 with a complete, correct
result (test_late_signals.py places the signal on both sides of that point). A folder
`STORE/tmp/work-<pid>-*` left by a kill -9 is reclaimed by the next command.

The moments are stratified random: the measured duration of an uninterrupted run is cut into
five slices and one moment is drawn in each (seed in the assertion messages). Time is counted
from the moment the CLI's signal handlers are installed (read from /proc/PID/status): before
that the interpreter is still importing and a signal cannot be the CLI's to handle.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import SAMPLES, invoke, tsv_lines

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").exists(),
                                reason="reading a process's signal mask needs Linux /proc")

SEED = int(os.environ.get("VARREINTERP_INTERRUPT_SEED", "20240107"))
MOMENTS = 5  # per signal and command
BIG_RECORDS = 400_000  # a ClinVar-format release: `snapshot add` runs for ~1.5 s
PATIENT_RECORDS = 250_000  # every record is at a site of the big release
COHORT_FILES = 30
COHORT_RECORDS = 5_000
SNAPSHOT = "clinvar-GRCh38-2024-01-07"
SMALL = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"  # gives the base store one snapshot
SMALL_NAME = "clinvar-GRCh38-2024-06-02"
SIGNALS: dict[int, int] = {int(signal.SIGINT): 130, int(signal.SIGTERM): 143}
INFO = "varreinterp: INFO: "
CLINVAR_HEAD = """##fileformat=VCFv4.1
##fileDate=2024-01-07
##source=ClinVar
##reference=GRCh38
##INFO=<ID=ALLELEID,Number=1,Type=Integer,Description="the ClinVar Allele ID">
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Aggregate germline classification">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="ClinVar review status">
##INFO=<ID=GENEINFO,Number=1,Type=String,Description="Gene(s) for the variant">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""
CONTIGS = {"chr1": 248956422, "chr2": 242193529, "chr3": 198295559, "chr4": 190214555}
SIGS = ["Pathogenic", "Benign", "Uncertain_significance", "Likely_benign"]


def cli_command() -> list[str]:
    """The installed console script (what cron runs); `python -m` when it is not there."""
    script = Path(sys.executable).with_name("varreinterp")
    return [str(script)] if script.exists() else [sys.executable, "-m", "varreinterp"]


def site(i: int) -> tuple[str, int, str, str]:
    """The i-th site shared by the generated release and patients: 4 contigs, 37 bp apart."""
    chrom = f"chr{i % 4 + 1}"
    pos = 10_000 + (i // 4) * 37
    ref = "ACGT"[pos % 4]
    return chrom, pos, ref, "ACGT"[(pos + 1) % 4]


def write_release(path: Path, records: int) -> Path:
    """A bgzipped ClinVar-format release with `records` classified SNVs (bare contigs)."""
    import pysam

    rows = [CLINVAR_HEAD]
    for i in sorted(range(records), key=lambda k: (k % 4, k)):
        chrom, pos, ref, alt = site(i)
        rows.append(f"{chrom[3:]}\t{pos}\t{i + 1}\t{ref}\t{alt}\t.\t.\tALLELEID={i + 1};"
                    f"CLNSIG={SIGS[i % 4]};CLNREVSTAT=criteria_provided,_single_submitter;"
                    f"GENEINFO=G{i % 97}:{i % 97 + 1}\n")
    plain = path.with_suffix("")
    plain.write_text("".join(rows))
    pysam.tabix_compress(str(plain), str(path), force=True)
    plain.unlink()
    return path


def write_patient(path: Path, sample: str, indices: Iterator[int], seed: int) -> Path:
    """A single-sample GRCh38 VCF (chr contigs) carrying the given release sites."""
    rng = random.Random(seed)
    head = ["##fileformat=VCFv4.2", "##reference=GRCh38"]
    head += [f"##contig=<ID={c},length={n}>" for c, n in CONTIGS.items()]
    head += ['##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
             f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{sample}"]
    body = []
    for i in sorted(indices, key=lambda k: (k % 4, k)):
        chrom, pos, ref, alt = site(i)
        body.append(f"{chrom}\t{pos}\t.\t{ref}\t{alt}\t50\tPASS\t.\tGT\t"
                    f"{rng.choice(('0/1', '1/1'))}")
    path.write_text("\n".join(head + body) + "\n")
    return path


def tree(store: Path) -> dict[str, str]:
    """Every file and folder of a store with a digest of its content; the lock file (whose
    content is the current holder) and the contents of tmp/ are checked apart."""
    out: dict[str, str] = {}
    for path in sorted(store.rglob("*")):
        rel = path.relative_to(store).as_posix()
        if rel == "lock" or rel.startswith("tmp/"):
            continue
        out[rel] = ("dir" if path.is_dir()
                    else hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def caught_signals(pid: int) -> int | None:
    """The process's caught-signal mask (SigCgt), or None once it has exited."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("SigCgt:"):
                    return int(line.split()[1], 16)
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def wait_until_handled(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bool:
    """Wait until the CLI has installed its SIGINT and SIGTERM handlers; False when the
    process ended first."""
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        mask = caught_signals(proc.pid)
        if mask is not None and mask & wanted == wanted:
            return True
        time.sleep(0.001)
    raise AssertionError(f"pid {proc.pid} never installed its signal handlers")


@dataclass
class Run:
    code: int
    out: str
    err: str
    seconds: float  # from the handlers' installation to the exit


def run_cli(store: Path, args: Sequence[str | Path], signum: int | None = None,
            delay: float = 0.0) -> Run:
    """The CLI in a subprocess; `signum` sent `delay` seconds after its handlers are up."""
    proc = subprocess.Popen([*cli_command(), "--store", str(store), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.monotonic()
    try:
        if wait_until_handled(proc):
            t0 = time.monotonic()
            if signum is not None:
                time.sleep(delay)
                if proc.poll() is None:
                    proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return Run(proc.returncode, out.decode(), err.decode(), time.monotonic() - t0)


def moments(duration: float, salt: str) -> list[float]:
    """MOMENTS delays spread over `duration`: one random point in each equal slice."""
    rng = random.Random(f"{SEED}-{salt}")
    return [duration * (k + rng.random()) / MOMENTS for k in range(MOMENTS)]


def assert_interrupted(run: Run, signum: int, what: str) -> None:
    assert run.code == SIGNALS[signum], (what, run.code, run.err[-2000:])
    assert run.out == "", what
    others = [line for line in run.err.splitlines() if not line.startswith(INFO)]
    assert others == ["varreinterp: interrupted"], (what, run.err[-2000:])


def assert_tmp_empty(store: Path, what: str) -> None:
    tmp = store / "tmp"
    left = sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []
    assert left == [], f"{what}: leftovers in {tmp}: {left}"


# ------------------------------------------------------------------------------ fixtures
@dataclass
class Setup:
    base: Path
    release: Path
    patient: Path
    cohort_files: list[Path]
    empty_store: Path  # one small snapshot, nothing else
    store: Path  # + the big snapshot
    snapshot_seconds: float
    annotate_seconds: float
    annotate_rows: list[str]
    cohort_seconds: float
    cohort_rows: list[str]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Setup:
    base = tmp_path_factory.mktemp("interrupts")
    release = write_release(base / "clinvar_big.vcf.gz", BIG_RECORDS)
    patient = write_patient(base / "big_patient.vcf", "BIG01", iter(range(PATIENT_RECORDS)), 1)
    cohort_files = [
        write_patient(base / f"p{k:02d}.vcf", f"P{k:02d}",
                      iter(range(k * 1000, k * 1000 + COHORT_RECORDS)), k)
        for k in range(COHORT_FILES)]
    empty_store = base / "empty_store"
    res = invoke(empty_store, "snapshot", "add", SMALL)
    assert res.code == 0, res.err

    # Uninterrupted reference runs, timed as the interrupted ones are.
    store = base / "store"
    shutil.copytree(empty_store, store)
    ref = run_cli(store, ["snapshot", "add", release])
    assert ref.code == 0, ref.err
    snapshot_seconds = ref.seconds
    assert (store / "snapshots" / SNAPSHOT).is_dir()

    out = base / "reference.tsv"
    ref = run_cli(store, ["annotate", patient, "--snapshot", SNAPSHOT, "-f", "tsv", "-o", out])
    assert ref.code == 0, ref.err
    annotate_rows = out.read_text().splitlines()[1:]  # after the provenance line
    assert len(annotate_rows) == PATIENT_RECORDS + 1  # + the column header

    cohort_store = base / "cohort_reference"
    shutil.copytree(store, cohort_store)
    ref = run_cli(cohort_store, ["cohort", "add", *cohort_files, "--baseline", SNAPSHOT])
    assert ref.code == 0, ref.err
    cohort_seconds = ref.seconds
    listed = invoke(cohort_store, "cohort", "list", "-f", "tsv")
    assert listed.code == 0, listed.err
    cohort_rows = sorted(tsv_lines(listed.out)[1:])
    assert len(cohort_rows) == COHORT_FILES
    return Setup(base, release, patient, cohort_files, empty_store, store, snapshot_seconds,
                 _annotate_seconds(store, patient, base), annotate_rows, cohort_seconds,
                 cohort_rows)


def _annotate_seconds(store: Path, patient: Path, base: Path) -> float:
    """A second timed annotate run (the first one also warmed the page cache)."""
    out = base / "timing.tsv"
    run = run_cli(store, ["annotate", patient, "--snapshot", SNAPSHOT, "-f", "tsv", "-o", out])
    assert run.code == 0, run.err
    out.unlink()
    return run.seconds


# ------------------------------------------------------------------------------ signals
@pytest.mark.slow
@pytest.mark.parametrize("signum", list(SIGNALS), ids=["SIGINT", "SIGTERM"])
def test_snapshot_add_interrupted(setup: Setup, tmp_path: Path, signum: int) -> None:
    before = tree(setup.empty_store)
    interrupted = 0
    for n, delay in enumerate(moments(setup.snapshot_seconds, f"add-{signum}")):
        what = f"snapshot add, signal {signum} after {delay:.3f} s (seed {SEED})"
        store = tmp_path / f"s{n}"
        shutil.copytree(setup.empty_store, store)
        run = run_cli(store, ["snapshot", "add", setup.release], signum, delay)
        if run.code == 0:  # finished first: the snapshot must be complete
            assert (store / "snapshots" / SNAPSHOT).is_dir(), what
            shown = invoke(store, "snapshot", "verify")
            assert shown.code == 0, (what, shown.err)
            listed = invoke(store, "snapshot", "list", "-f", "tsv").out
            assert f"\t{BIG_RECORDS}\t" in listed, (what, listed)
        else:
            assert_interrupted(run, signum, what)
            assert tree(store) == before, f"{what}: the store changed"
            interrupted += 1
        assert_tmp_empty(store, what)
    assert interrupted >= MOMENTS // 2 + 1, f"only {interrupted} of {MOMENTS} interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("signum", list(SIGNALS), ids=["SIGINT", "SIGTERM"])
def test_annotate_to_file_interrupted(setup: Setup, tmp_path: Path, signum: int) -> None:
    before = tree(setup.store)
    interrupted = 0
    for n, delay in enumerate(moments(setup.annotate_seconds, f"annotate-{signum}")):
        what = f"annotate -o, signal {signum} after {delay:.3f} s (seed {SEED})"
        folder = tmp_path / f"out{n}"
        folder.mkdir()
        out = folder / "OUT.tsv"
        run = run_cli(setup.store, ["annotate", setup.patient, "--snapshot", SNAPSHOT,
                                    "-f", "tsv", "-o", out], signum, delay)
        if run.code == 0:
            assert out.read_text().splitlines()[1:] == setup.annotate_rows, what
            assert sorted(p.name for p in folder.iterdir()) == ["OUT.tsv"], what
        else:
            assert_interrupted(run, signum, what)
            left = sorted(p.name for p in folder.iterdir())
            assert left == [], f"{what}: output or its hidden temp file left: {left}"
            interrupted += 1
        assert tree(setup.store) == before, f"{what}: the store changed"
        assert_tmp_empty(setup.store, what)
    assert interrupted >= MOMENTS // 2 + 1, f"only {interrupted} of {MOMENTS} interrupted"


@pytest.mark.slow
@pytest.mark.parametrize("signum", list(SIGNALS), ids=["SIGINT", "SIGTERM"])
def test_cohort_add_interrupted(setup: Setup, tmp_path: Path, signum: int) -> None:
    before = tree(setup.store)
    interrupted = 0
    for n, delay in enumerate(moments(setup.cohort_seconds, f"cohort-{signum}")):
        what = f"cohort add, signal {signum} after {delay:.3f} s (seed {SEED})"
        store = tmp_path / f"s{n}"
        shutil.copytree(setup.store, store)
        run = run_cli(store, ["cohort", "add", *setup.cohort_files, "--baseline", SNAPSHOT],
                      signum, delay)
        if run.code == 0:
            listed = invoke(store, "cohort", "list", "-f", "tsv")
            assert sorted(tsv_lines(listed.out)[1:]) == setup.cohort_rows, what
        else:
            assert_interrupted(run, signum, what)
            after = tree(store)
            assert after == before, (
                f"{what}: the store changed; new: {sorted(set(after) - set(before))}")
            listed = invoke(store, "cohort", "list", "-f", "tsv")
            assert listed.code == 0, (what, listed.err)
            assert tsv_lines(listed.out)[1:] == [], f"{what}: patients registered"
            interrupted += 1
        assert_tmp_empty(store, what)
    assert interrupted >= MOMENTS // 2 + 1, f"only {interrupted} of {MOMENTS} interrupted"


# ------------------------------------------------------------------------------ kill -9
def work_folders(store: Path, pid: int) -> list[Path]:
    tmp = store / "tmp"
    return sorted(tmp.glob(f"work-{pid}-*")) if tmp.is_dir() else []


@pytest.fixture(scope="module")
def killed_store(setup: Setup) -> tuple[Path, int]:
    """A store whose tmp/ holds the work folder of an annotate killed by SIGKILL mid-run."""
    store = setup.base / "killed"
    shutil.copytree(setup.store, store)
    proc = subprocess.Popen([*cli_command(), "--store", str(store), "annotate",
                             str(setup.patient), "--snapshot", SNAPSHOT, "-f", "tsv", "-o",
                             str(setup.base / "killed.tsv")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not work_folders(store, proc.pid) and time.monotonic() < deadline:
            assert proc.poll() is None, "annotate ended before its work folder was seen"
            time.sleep(0.002)
        time.sleep(setup.annotate_seconds / 3)  # mid-run: the folder holds the run's files
        proc.kill()
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "annotate finished before the kill"
    assert work_folders(store, proc.pid), "the killed run left no work folder to reclaim"
    return store, proc.pid


NEXT_COMMANDS = {
    "annotate": ["annotate", str(SAMPLES / "trio.vcf"), "--snapshot", SMALL_NAME, "-f", "tsv"],
    "snapshot-add": ["snapshot", "add", str(SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"),
                     "--name", "sample-2024-01-07"],
    "cohort-add": ["cohort", "add", str(SAMPLES / "trio.vcf"), "--baseline", SMALL_NAME],
    "snapshot-list": ["snapshot", "list", "-f", "tsv"],
    "snapshot-show": ["snapshot", "show", SMALL_NAME, "-f", "json"],
    "snapshot-verify": ["snapshot", "verify"],
    "cohort-list": ["cohort", "list", "-f", "tsv"],
}


@pytest.mark.parametrize("command", list(NEXT_COMMANDS))
def test_next_command_reclaims_work_folder_of_killed_run(
        killed_store: tuple[Path, int], tmp_path: Path, command: str) -> None:
    source, pid = killed_store
    store = tmp_path / "store"
    shutil.copytree(source, store)
    assert work_folders(store, pid)
    run = run_cli(store, NEXT_COMMANDS[command])
    assert run.code == 0, run.err
    assert work_folders(store, pid) == [], (
        f"`{command}` left the work folder of killed pid {pid}: "
        f"{[p.name for p in work_folders(store, pid)]}")
    assert_tmp_empty(store, command)


def test_work_folder_of_a_live_run_is_left_alone(setup: Setup, tmp_path: Path) -> None:
    """Reclaiming must not take the folder of a command still running beside us."""
    folder = tmp_path / "out"
    folder.mkdir()
    proc = subprocess.Popen([*cli_command(), "--store", str(setup.store), "annotate",
                             str(setup.patient), "--snapshot", SNAPSHOT, "-f", "tsv", "-o",
                             str(folder / "OUT.tsv")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not work_folders(setup.store, proc.pid) and time.monotonic() < deadline:
            assert proc.poll() is None, "annotate ended before its work folder was seen"
            time.sleep(0.002)
        live = work_folders(setup.store, proc.pid)
        other = run_cli(setup.store, NEXT_COMMANDS["annotate"])
        assert other.code == 0, other.err
        if proc.poll() is None:
            assert work_folders(setup.store, proc.pid) == live
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err.decode()
    assert (folder / "OUT.tsv").read_text().splitlines()[1:] == setup.annotate_rows
    assert_tmp_empty(setup.store, "after both runs")
