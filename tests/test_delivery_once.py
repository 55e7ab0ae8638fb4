"""Each change in exactly one delivered report folder, whenever `reanalyze` dies; and no page
worker outlives a killed run.

The folder is published (renamed into place) before its patients are recorded as reviewed:
at-least-once, since the other order loses the alerts of a run killed in between. What makes
it exactly once is the note the run leaves in the store just before the rename
(`cohort/pending_report.json`, cleared once the run is recorded): the next run removes the
noted folder of a run the registry never recorded, with a warning, and reports its changes
again. Here the run dies (os._exit in a subprocess: no `finally`, no handler, as kill -9) at
each step (before the note, after the note, after the rename, after the registry write), for
each kind of folder (the store's default, `-o .../{date}-{run_id}`, a fixed `-o` path, an
existing folder of the user's), and the next run must leave exactly one delivered folder with
every change, never removing anything the tool did not write.

Page workers ignore SIGINT and SIGTERM (the parent decides): killed with SIGKILL, the parent
used to leave them (and multiprocessing's resource tracker) running for good.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, CliResult, invoke

OLD_VCF = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
NEW_VCF = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
CHANGES = 18  # sample_vcfs/README.md: every change of the four patients, at every priority
NOTE = Path("cohort") / "pending_report.json"
CRASH = 9  # the exit status of the injected os._exit
STEPS = ["before_note", "after_note", "after_rename", "after_record"]
MODES = ["default", "run_id", "fixed", "existing"]
USER_FILE = "lab-notes.txt"  # in the existing folder of the user's (and its patients/)

# Runs the CLI with one step of reanalyze replaced by a crash. Spawned page workers import
# this file again (as __mp_main__), so a patched page renderer is theirs too.
DRIVER = textwrap.dedent('''
    import os
    import time

    import varreinterp.output.reports as reports
    import varreinterp.reanalyze as core

    STEP = os.environ["DELIVERY_TEST_STEP"]


    def crash(*args, **kwargs):
        os._exit(9)


    def then_crash(real):
        def call(*args, **kwargs):
            real(*args, **kwargs)
            os._exit(9)
        return call


    def slow_pages(pages):
        time.sleep(120)


    if STEP == "before_note":
        reports._note_pending = crash
    elif STEP == "after_note":
        reports._note_pending = then_crash(reports._note_pending)
    elif STEP == "after_rename":
        core._record_reviewed = crash
    elif STEP == "after_record":
        reports.clear_pending_report = crash
    elif STEP == "slow_pages":
        reports.PARALLEL_PAGES = 1
        reports._render_pages = slow_pages

    if __name__ == "__main__":
        from varreinterp.entry import main

        raise SystemExit(main())
''')


def ok(r: CliResult, code: int = 0) -> CliResult:
    assert r.code == code, f"exit {r.code}, expected {code}; stderr: {r.err[-2000:]}"
    return r


def change_rows(folder: Path) -> list[tuple[str, ...]]:
    """The header and rows of a report's changes.tsv, sorted (after the provenance line,
    which names the run)."""
    with open(folder / "changes.tsv", newline="") as fh:
        assert fh.readline().startswith("#tool=varreinterp ")
        rows = list(csv.reader(fh, delimiter="\t"))
    return [tuple(rows[0]), *sorted(tuple(r) for r in rows[1:])]


def registry(store: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((store / "cohort" / "patients.json").read_text())
    return data


def delivered_runs(store: Path) -> list[str]:
    runs = registry(store)["delivered_runs"]
    assert isinstance(runs, list)
    return [str(r) for r in runs]


def reviewed(store: Path) -> set[str]:
    patients = registry(store)["patients"]
    assert isinstance(patients, dict)
    return {name for p in patients.values() for name in p["reviewed"].values()}


def run_log(store: Path) -> list[dict[str, object]]:
    path = store / "runs.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def reports_in(*parents: Path) -> dict[Path, str | None]:
    """Every folder holding a run.json under these parents (or being one), with its run id;
    not the hidden staging folders (`stages`)."""
    found: dict[Path, str | None] = {}
    for parent in parents:
        for run in [parent / "run.json", *parent.glob("*/run.json")]:
            if run.is_file() and not run.parent.name.startswith("."):
                found[run.parent] = json.loads(run.read_text()).get("run_id")
    return found


def stages(*parents: Path) -> list[str]:
    return sorted(p.name for parent in parents if parent.is_dir()
                  for p in parent.iterdir() if ".stage-" in p.name)


def warnings_in(err: str) -> list[str]:
    """The warnings of a run, but the stale-release one (the sample releases are old) and the
    stale lock's (the crashed run held the lock)."""
    return [ln for ln in err.splitlines() if "WARNING" in ln and "stale_after_days" not in ln
            and "taking over stale lock" not in ln]


# ------------------------------------------------------------------------------ fixtures
@dataclass
class Base:
    store: Path  # two snapshots, four patients reviewed against the older one
    rows: list[tuple[str, ...]]  # what one uninterrupted run delivers
    driver: Path


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Base:
    root = tmp_path_factory.mktemp("delivery")
    store = root / "store"
    ok(invoke(store, "snapshot", "add", OLD_VCF))
    ok(invoke(store, "snapshot", "add", NEW_VCF))
    ok(invoke(store, "cohort", "add", SAMPLES / "trio.vcf", SAMPLES / "patient_single.vcf.gz",
              "--baseline", OLD))
    reference = root / "reference"
    shutil.copytree(store, reference)
    ok(invoke(reference, "reanalyze", "-o", root / "REF"))
    rows = change_rows(root / "REF")
    assert len(rows) == 1 + CHANGES
    driver = root / "crash_driver.py"
    driver.write_text(DRIVER)
    return Base(store, rows, driver)


def driver_command(base: Base, store: Path, args: list[str]) -> list[str]:
    return [sys.executable, str(base.driver), "--store", str(store), *args]


def driver_env(step: str) -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "DELIVERY_TEST_STEP": step,
            "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}


@dataclass
class Case:
    """One store after a run that died at `step`, writing its report to `mode`'s folder."""

    mode: str
    step: str
    work: Path
    store: Path
    out_args: list[str]
    parents: list[Path]  # where report folders of this case can be
    code: int = 0
    err: str = ""


def out_args(mode: str, work: Path) -> list[str]:
    return {"default": [], "run_id": ["-o", str(work / "reports" / "{date}-{run_id}")],
            "fixed": ["-o", str(work / "OUT")], "existing": ["-o", str(work / "OUT")]}[mode]


def new_case(base: Base, root: Path, name: str, mode: str, step: str) -> Case:
    work = root / name
    store = work / "store"
    shutil.copytree(base.store, store)
    if mode == "existing":
        (work / "OUT" / "patients").mkdir(parents=True)
        (work / "OUT" / USER_FILE).write_text("the lab's own file\n")
        (work / "OUT" / "patients" / USER_FILE).write_text("the lab's own file\n")
    parents = {"default": [store / "reports"], "run_id": [work / "reports"],
               "fixed": [work / "OUT"], "existing": [work / "OUT"]}[mode]
    return Case(mode, step, work, store, out_args(mode, work), parents)


SPARE = {"spare-default": "default", "spare-fixed": "fixed"}  # for the tests after the matrix


@pytest.fixture(scope="module")
def crashed(base: Base, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    """Each store after its crashed run, by name: `MODE-STEP` for every mode and step, and
    the spare ones crashed after the rename (run a few at a time: each takes a second or
    two, mostly imports)."""
    root = tmp_path_factory.mktemp("crashed")
    cases = [new_case(base, root, f"{mode}-{step}", mode, step)
             for mode in MODES for step in STEPS]
    cases += [new_case(base, root, name, mode, "after_rename") for name, mode in SPARE.items()]
    pending = list(cases)
    running: list[tuple[Case, subprocess.Popen[str]]] = []
    try:
        while pending or running:
            while pending and len(running) < 4:
                case = pending.pop()
                proc = subprocess.Popen(
                    driver_command(base, case.store, ["reanalyze", *case.out_args]), cwd=ROOT,
                    env=driver_env(case.step), stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE, text=True)
                running.append((case, proc))
            case, proc = running.pop(0)
            _, case.err = proc.communicate(timeout=120)
            case.code = proc.returncode
    finally:
        for _, proc in running:
            proc.kill()
            proc.communicate()
    return {c.work.name: c for c in cases}


# ------------------------------------------------------------------------------ crashes
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_leaves_exactly_one_delivered_folder(
        base: Base, crashed: dict[str, Case], mode: str, step: str) -> None:
    case = crashed[f"{mode}-{step}"]
    assert case.code == CRASH, f"the injected crash did not happen: {case.err[-2000:]}"
    killed = reports_in(*case.parents)
    # What the crash left: a published folder only from the rename on, recorded only after it.
    assert len(killed) == (1 if step in ("after_rename", "after_record") else 0), killed
    assert (case.store / NOTE).exists() == (step != "before_note")
    assert delivered_runs(case.store) == ([*killed.values()] if step == "after_record" else [])

    rerun = ok(invoke(case.store, "reanalyze", *case.out_args))

    delivered = reports_in(*case.parents)
    assert len(delivered) == 1, f"{mode}/{step}: {len(delivered)} report folders: {delivered}"
    (folder, run_id), = delivered.items()
    assert run_id in delivered_runs(case.store)
    assert change_rows(folder) == base.rows
    assert reviewed(case.store) == {NEW}
    assert not (case.store / NOTE).exists(), "the note outlived the recorded run"
    removal = [w for w in warnings_in(rerun.err) if "reported again" in w]
    if step == "after_record":  # delivered by the killed run: kept, nothing redone
        assert delivered == killed
        assert [r["report"] for r in run_log(case.store)] == [None]
        assert removal == []
    else:
        assert run_id not in killed.values()
        assert [r["run_id"] for r in run_log(case.store)] == [run_id]
    if step == "after_rename":  # the killed run's folder: removed, and said so
        (old_folder, old_id), = killed.items()
        assert len(removal) == 1, rerun.err
        assert str(old_folder) in removal[0] and str(old_id) in removal[0], removal
        assert warnings_in(rerun.err) == removal
    else:
        assert removal == [], rerun.err
    if mode == "existing":  # the user's files, and the one report's: nothing else
        out = case.work / "OUT"
        for mine in (out / USER_FILE, out / "patients" / USER_FILE):
            assert mine.read_text() == "the lab's own file\n"
        run = json.loads((out / "run.json").read_text())["changes"]
        assert sorted(p.name for p in out.iterdir()) == sorted(
            [USER_FILE, "changes.tsv", "patients", "run.json"])
        assert sorted(f"patients/{p.name}" for p in (out / "patients").iterdir()) == sorted(
            [f"patients/{USER_FILE}", *run["patient_files"].values(),
             *run["patient_reports"].values()])
    assert stages(*case.parents, case.work, case.work / "reports") == []
    assert sorted(p.name for p in (case.store / "tmp").iterdir()) == []


def test_a_dry_run_leaves_an_undelivered_folder_to_the_real_run(
        crashed: dict[str, Case], tmp_path: Path) -> None:
    """--dry-run takes no lock and writes nothing: the note and the folder stay as they are
    until a real run. An in-store folder is noted relative to the store: a copy of the store
    cleans its own copy of the folder, never the original's."""
    original = crashed["spare-default"].store
    store = tmp_path / "store"
    shutil.copytree(original, store)
    (killed, killed_id), = reports_in(store / "reports").items()
    note = (store / NOTE).read_bytes()
    dry = ok(invoke(store, "reanalyze", "--dry-run"))
    assert warnings_in(dry.err) == []
    assert (store / NOTE).read_bytes() == note
    assert reports_in(store / "reports") == {killed: killed_id}

    ok(invoke(store, "reanalyze"))
    (_, run_id), = reports_in(store / "reports").items()
    assert run_id != killed_id and run_id in delivered_runs(store)
    assert not (store / NOTE).exists()
    assert reports_in(original / "reports") == {original / "reports" / killed.name: killed_id}


def test_a_noted_folder_that_is_no_longer_the_runs_is_left_alone(
        base: Base, crashed: dict[str, Case]) -> None:
    """After the crash the user moved the published folder away and made another one of
    their own at its place: neither is the tool's to remove."""
    work = crashed["spare-fixed"].work
    store, out = work / "store", work / "OUT"
    assert (store / NOTE).exists() and (out / "run.json").exists()
    archived = work / "archived"
    out.rename(archived)
    out.mkdir()
    (out / USER_FILE).write_text("mine\n")

    rerun = ok(invoke(store, "reanalyze", "-o", out))
    assert [w for w in warnings_in(rerun.err) if "reported again" in w] == []
    assert (out / USER_FILE).read_text() == "mine\n"
    assert (archived / "run.json").is_file() and change_rows(archived) == base.rows
    assert change_rows(out) == base.rows  # the rerun's files, added beside the user's
    assert not (store / NOTE).exists()


def test_a_report_this_store_never_recorded_is_not_overwritten(
        base: Base, tmp_path: Path) -> None:
    """An -o folder holding some other report (another store's, an older version's) with no
    note of this store: refused, untouched (it used to be replaced whole)."""
    store = tmp_path / "store"
    shutil.copytree(base.store, store)
    out = tmp_path / "OUT"
    out.mkdir()
    (out / "run.json").write_text(json.dumps({"run_id": "0123456789ab"}))
    (out / USER_FILE).write_text("mine\n")
    r = ok(invoke(store, "reanalyze", "-o", out), 2)
    assert "0123456789ab" in r.err and "never recorded" in r.err
    assert sorted(p.name for p in out.iterdir()) == [USER_FILE, "run.json"]
    assert reviewed(store) == {OLD}


def test_a_damaged_note_stops_the_run_naming_it(base: Base, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(base.store, store)
    (store / NOTE).write_text(json.dumps({"schema_version": 1, "run_id": "x",
                                          "folder": "../../elsewhere", "merged": False,
                                          "files": [], "replaced": [],
                                          "made_patients_dir": False}))
    r = ok(invoke(store, "reanalyze"), 4)
    assert str(store / NOTE) in r.err and "pending-report note" in r.err
    assert reviewed(store) == {OLD}


# ------------------------------------------------------------------------------ page workers
def is_page_worker(pid: int) -> bool:
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (Linux /proc; zombies count as gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def ignores_sigterm(pid: int) -> bool:
    """Whether the page worker's initializer ran (it ignores SIGTERM from then on)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        return False
    return False


def wait_for(what: str, check: Callable[[], bool], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@dataclass
class KilledRun:
    proc: subprocess.Popen[str]
    started: list[int]  # every child process it had when it was killed
    workers: list[int]  # the page workers among them


@pytest.fixture
def killed_pool_run(base: Base, tmp_path: Path) -> Iterator[KilledRun]:
    """The real `reanalyze` whose pages render (slowly) on worker processes, killed with
    SIGKILL once every worker is up."""
    store = tmp_path / "store"
    shutil.copytree(base.store, store)
    err = tmp_path / "stderr.txt"  # not a pipe: an orphan would hold it open
    with open(err, "w") as fh:
        proc = subprocess.Popen(driver_command(base, store, ["reanalyze", "-o",
                                                             str(tmp_path / "OUT")]),
                                cwd=ROOT, env=driver_env("slow_pages"),
                                stdout=subprocess.DEVNULL, stderr=fh, text=True)
    started: list[int] = []
    try:
        workers = min(os.cpu_count() or 1, 8)

        def pool_up() -> bool:
            assert proc.poll() is None, f"reanalyze ended first: {err.read_text()[-2000:]}"
            return sum(is_page_worker(p) and ignores_sigterm(p)
                       for p in children(proc.pid)) == workers

        wait_for(f"{workers} page workers", pool_up, 60)
        started = children(proc.pid)
        workers_seen = [p for p in started if is_page_worker(p)]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        yield KilledRun(proc, started, workers_seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in started:  # never leave one behind, whatever the test found
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="finds a process's children and signal mask in Linux /proc")
@pytest.mark.skipif((os.cpu_count() or 1) < 2,
                    reason="pages render on worker processes only with two cores or more")
def test_page_workers_die_with_a_killed_parent(killed_pool_run: KilledRun) -> None:
    run = killed_pool_run
    assert run.proc.returncode == -signal.SIGKILL
    assert run.workers, "no page worker was running when the parent was killed"
    started = run.started
    deadline = time.monotonic() + 5  # the fallback (no prctl) looks every second
    while any(alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = [p for p in started if alive(p)]
    assert left == [], f"processes of the killed run still alive after 5 s: {left}"
