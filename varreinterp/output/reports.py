"""The report folder of a `reanalyze` run: run.json, changes.tsv and patients/<id>.tsv, staged
whole and renamed into place, never overwriting a report that was delivered; noted in the store
before the rename, so that a folder published by a run killed before it was recorded is removed
by the next run (which reports its changes again) instead of being delivered twice."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from varreinterp.atomic import DIR_MODE, FILE_MODE, work_committed
from varreinterp.errors import EnvironmentIOError, StoreError, UsageError
from varreinterp.output.formats import tsv_text
from varreinterp.provenance import Provenance

if TYPE_CHECKING:
    import pandas as pd

    from varreinterp.changes import Priority
    from varreinterp.cohort import Patient
    from varreinterp.reanalyze import ReanalysisResult
    from varreinterp.store import Snapshot, Store

RUN_SCHEMA_VERSION = 1
PENDING_SCHEMA_VERSION = 1

log = logging.getLogger("varreinterp")


def patient_file_name(patient_id: str, suffix: str = ".tsv") -> str:
    """A readable, filesystem-safe file name for a patient's report."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).lstrip(".") or "patient"
    # A file name holds at most 255 bytes: one long sample name failed every night's report
    if safe != patient_id or len(safe) > _MAX_NAME:
        safe = safe[:_MAX_NAME] + "-" + hashlib.sha256(patient_id.encode()).hexdigest()[:8]
    return safe + suffix


_MAX_NAME = 200


def _check_out(delivered: set[str], out: Path) -> None:
    """Never overwrite a report. A delivered one's patients were recorded as reviewed and would
    not be reported again; one this store never recorded is another store's or an older
    version's (the folder of this store's run killed before it was recorded is gone already:
    `discard_undelivered` removed it when this run started)."""
    report = out / "run.json"
    if not report.exists():
        return
    run_id = _run_id_of(report)
    if run_id is None or run_id in delivered:
        raise UsageError(f"--out {out} already holds a delivered report; choose a new folder")
    raise UsageError(f"--out {out} already holds a report (run {run_id}) this store never "
                     "recorded as delivered; move it away or choose a new folder")


def _run_id_of(report: Path) -> str | None:
    """The run id a run.json names (None: no file, or not one of ours)."""
    try:
        run_id = json.loads(report.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        return None
    return run_id if isinstance(run_id, str) else None


# ------------------------------------------------------------------------------ delivery note
# The folder is published before its patients are recorded as reviewed: the other order would
# lose the alerts of a run killed in between. The one killed after the rename (the registry
# write takes 2.7 s at 10,000 patients) left a complete-looking folder that the next run
# delivered again under a new run id. So the folder about to be published is noted in the
# store first, the note is cleared once the run is recorded, and the next run removes a noted
# folder whose run was never recorded. Removed, not renamed aside: any copy left beside the
# delivered reports (patient data) is one a reader or an import script can take for a report.
@dataclass(frozen=True)
class PendingReport:
    """The report folder a run is about to publish. A folder of its own is removed whole;
    `merged`: the run adds `files` (relative paths) to a folder that already existed, of which
    `replaced` were there before (removed only once the merge is known finished: its run.json
    is the run's) and `patients/` too unless `made_patients_dir`."""

    run_id: str
    folder: Path
    merged: bool = False
    files: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    made_patients_dir: bool = False

    def to_json(self, root: Path) -> dict[str, Any]:
        """A folder inside the store (`root`) is noted relative to it: a store that is moved
        or restored elsewhere must not act on the old place."""
        inside = self.folder.is_relative_to(root.absolute())
        return {"schema_version": PENDING_SCHEMA_VERSION, "run_id": self.run_id,
                "folder": str(self.folder.relative_to(root.absolute()) if inside
                              else self.folder),
                "merged": self.merged, "files": list(self.files),
                "replaced": list(self.replaced), "made_patients_dir": self.made_patients_dir}

    @classmethod
    def from_json(cls, path: Path, data: object, root: Path) -> PendingReport:
        if not isinstance(data, dict) or data.get("schema_version") != PENDING_SCHEMA_VERSION:
            raise StoreError(f"{path}: unreadable pending-report note (schema version)")
        run_id, folder, merged = data.get("run_id"), data.get("folder"), data.get("merged")
        files, replaced = data.get("files"), data.get("replaced")
        made = data.get("made_patients_dir")
        if not (isinstance(run_id, str) and run_id and isinstance(folder, str)
                and folder and ".." not in Path(folder).parts
                and isinstance(merged, bool) and isinstance(made, bool)
                and _report_files(files) and _report_files(replaced)):
            raise StoreError(f"{path}: unreadable pending-report note (malformed fields)")
        return cls(run_id, root.absolute() / folder, merged, tuple(files), tuple(replaced),
                   made)


def _report_files(names: object) -> TypeGuard[list[str]]:
    """Only the files a report folder holds: nothing a damaged note could point elsewhere."""
    if not isinstance(names, list):
        return False
    return all(isinstance(n, str) and (n in ("run.json", "changes.tsv") or (
        n.startswith("patients/") and "/" not in n[9:] and n[9:] not in ("", ".", "..")))
        for n in names)


def pending_path(store: Store) -> Path:
    return store.root / "cohort" / "pending_report.json"


def _pending(run_id: str, out: Path, stage: Path) -> PendingReport:
    folder = out.absolute()  # the next run may start elsewhere
    if not out.exists():
        return PendingReport(run_id, folder)
    files = ["changes.tsv", *(f"patients/{f.name}" for f in sorted((stage / "patients")
                                                                   .iterdir())), "run.json"]
    return PendingReport(run_id, folder, True, tuple(files),
                         tuple(f for f in files if (out / f).exists()),
                         not (out / "patients").exists())


def _note_pending(store: Store, note: PendingReport) -> None:
    """Note, durably (file and folder synced), the folder about to be published."""
    from varreinterp.atomic import write_json_atomic

    path = pending_path(store)
    write_json_atomic(path, note.to_json(store.root))
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clear_pending_report(store: Store) -> None:
    """The run is recorded: its folder is delivered, nothing is pending. A note left in place
    only costs the next run a look (its run is recorded), so a failure here is a warning."""
    path = pending_path(store)
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("%s: cannot remove the pending-report note (%s); the next run will",
                    path, exc.strerror or exc)


def discard_undelivered(store: Store, delivered: Collection[str]) -> Path | None:
    """At the start of a run, under the store lock: the folder a run published and was killed
    (or failed) before recording is not delivered, and this run reports its changes again, so
    it is removed, with a warning: a folder of its own whole (its run.json still that run's),
    in a folder that already existed only the files it added. Returns the folder cleaned up
    (None: nothing pending, or nothing of that run's to remove)."""
    path = pending_path(store)
    if not path.exists():
        return None
    from varreinterp.store import read_json

    note = PendingReport.from_json(path, read_json(path, "pending-report note"), store.root)
    done = None
    try:
        if note.run_id not in delivered:
            done = _remove_merged(note) if note.merged else _remove_folder(store, note)
        if not note.folder.is_relative_to(store.root.absolute()):
            _remove_dead_stages(note.folder.parent)  # that run's staging, if it was killed
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, exc.filename or note.folder) from exc
    if done is not None:
        log.warning("report %s of run %s was published, but the run was killed or failed "
                    "before its patients were recorded as reviewed: removed %s; its changes "
                    "are reported again by this run", note.folder, note.run_id, done)
    clear_pending_report(store)
    return note.folder if done is not None else None


def _remove_folder(store: Store, note: PendingReport) -> str | None:
    out = note.folder
    if out.is_symlink() or not out.is_dir() or _run_id_of(out / "run.json") != note.run_id:
        return None  # never published, or no longer that run's
    inside = out.resolve().is_relative_to(store.root.resolve())
    # Out of the way at once (one rename): an interrupted removal leaves a staging name
    # that the next run cleans (tmp/ under the lock; `_remove_dead_stages` beside the folder).
    trash = Path(tempfile.mkdtemp(prefix=f"{_STAGE}-{os.getpid()}-",
                                  dir=store.tmp_dir if inside else out.parent))
    os.rename(out, trash / "old")
    shutil.rmtree(trash, ignore_errors=True)
    return "the folder"


def _remove_merged(note: PendingReport) -> str | None:
    out = note.folder
    if not out.is_dir():
        return None  # (a folder no more: nothing of that run's can be in it)
    finished = _run_id_of(out / "run.json") == note.run_id
    removed = 0
    for name in note.files:  # run.json last: a removal cut short is redone next time
        if not finished and (name == "run.json" or name in note.replaced):
            continue
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()
            removed += 1
    if note.made_patients_dir:
        with contextlib.suppress(OSError):  # (not empty: someone else's files are there)
            (out / "patients").rmdir()
    return f"the {removed} file(s) it added to that existing folder" if removed else None


def _write_tsv(path: Path, frame: pd.DataFrame, columns: list[str], prov: Provenance) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(prov.tsv_line() + "\n")
        fh.write(tsv_text(frame[columns]))
    os.chmod(path, FILE_MODE)


def _write_tsvs(folder: Path, frame: pd.DataFrame, columns: list[str],
                prov: Provenance) -> None:
    """changes.tsv, and patients/<id>.tsv for every patient cut from the same rendering of
    the whole table (one pandas call instead of one per patient: a thousand patients took 7 s
    the other way, and rendering the table twice 5 s more at 10,000)."""
    text = tsv_text(frame[columns])
    with open(folder / "changes.tsv", "w", encoding="utf-8") as fh:
        fh.write(prov.tsv_line() + "\n")
        fh.write(text)
    os.chmod(folder / "changes.tsv", FILE_MODE)
    lines = text.split("\n")[:-1]
    positions = frame.groupby("patient", sort=True).indices
    patients = folder / "patients"
    if len(lines) != len(frame) + 1:  # a value spanning lines (quoted): the slow, sure way
        for pid, idx in positions.items():
            _write_tsv(patients / patient_file_name(str(pid)), frame.iloc[idx], columns,
                       prov.with_facts(("patient", str(pid))))
        return
    for pid, idx in positions.items():
        path = patients / patient_file_name(str(pid))
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(prov.with_facts(("patient", str(pid))).tsv_line() + "\n" + lines[0] + "\n")
            fh.writelines(lines[i + 1] + "\n" for i in idx)
        os.chmod(path, FILE_MODE)


@dataclass(frozen=True)
class _Page:
    """Everything one patient's HTML page needs (picklable: pages render in worker
    processes when there are many). `columns` holds its listed change rows column-wise
    (plain Python values: cheap to pickle, no DataFrame per page)."""

    path: Path
    patient_id: str
    sample: str
    source_file: str
    columns: dict[str, list[Any]]
    hidden: dict[str, int]  # priority -> shown changes below the patient's threshold
    from_snapshot: Snapshot
    to_snapshot: Snapshot
    timelines: dict[Any, Any]
    min_priority: Priority
    prov: Provenance
    notes: list[str]

    def records(self) -> list[dict[str, Any]]:
        from varreinterp.output.formats import column_records

        return column_records(self.columns)


@dataclass(frozen=True)
class _RunFacts:
    """What every page of a run looks up, computed once (per patient, the panel counts over
    all rows and a scan of every patient and timeline made 10,000 pages take minutes)."""

    snapshots: dict[str, Snapshot]
    patients: dict[str, Patient]
    outside: dict[str, int]
    failing: dict[str, int]

    @classmethod
    def of(cls, result: ReanalysisResult) -> _RunFacts:
        return cls({s.name: s for c in result.comparisons
                    for s in (c.from_snapshot, c.to_snapshot)},
                   {p.patient_id: p for c in reversed(result.comparisons) for p in c.patients},
                   result.outside_panel, result.failing_filter)


# What a card and its timeline read (patient_reports.card and lineage_key).
CARD_COLUMNS = ("lineage", "chrom", "pos", "ref", "alt", "change", "priority", "gene", "hgvs",
                "consequence", "conditions", "before", "after", "tier_before", "tier_after",
                "stars_before", "stars_after", "review_before", "review_after",
                "conflicts_before", "conflicts_after", "last_evaluated", "zygosity", "filter",
                "variation_id")


def _pages(folder: Path, result: ReanalysisResult, prov: Provenance,
           facts: _RunFacts) -> list[_Page]:
    """One page per patient with change rows: its changes inside its panel (and, with
    --pass-only, of calls that passed FILTER) at or above its own threshold, against
    the first comparison it was part of (a patient following two lineages gets one note per
    other comparison); notes count the changes left out, which its TSV holds."""
    import numpy as np

    from varreinterp.assembly import normalize_contig
    from varreinterp.output.formats import column_values

    rows = result.rows
    pairs: dict[str, list[tuple[str, str, str]]] = {}
    for pid, a, b, lin in rows[["patient", "from_snapshot", "to_snapshot", "lineage"]] \
            .drop_duplicates().itertuples(index=False):
        pairs.setdefault(str(pid), []).append((str(a), str(b), str(lin)))
    below = result.below_threshold()
    listed = result.listed().sort_values("patient", kind="stable")
    columns = {c: column_values(listed[c]) for c in CARD_COLUMNS if c in listed.columns}
    patients = listed["patient"].to_numpy()
    contig = {c: normalize_contig(str(c)) for c in listed["chrom"].unique()}
    pages = []
    for pid in sorted(pairs):
        start, end = np.searchsorted(patients, pid, "left"), np.searchsorted(patients, pid,
                                                                              "right")
        mine = {c: v[start:end] for c, v in columns.items()}
        notes = [f"Also compared: {x} -> {y} ({lin})." for x, y, lin in pairs[pid][1:]]
        notes += _left_out_notes(pid, result, facts)
        a, b, _ = pairs[pid][0]
        # each card's timeline from its own row's lineage
        timelines = {}
        for lin, c, p, r, x in zip(mine["lineage"], mine["chrom"], mine["pos"], mine["ref"],
                                   mine["alt"], strict=True):
            key = (contig[c], int(p), str(r), str(x))
            known = result.timelines.get(str(lin), {})
            if key in known:
                timelines[(str(lin), key)] = known[key]
        patient = facts.patients[pid]
        pages.append(_Page(folder / patient_file_name(pid, ".html"), pid, patient.sample,
                           Path(patient.source).name, mine,
                           below.get(pid, {}), facts.snapshots[a], facts.snapshots[b],
                           timelines, result.min_priority_of(pid),
                           prov.with_facts(("patient", pid)), notes))
    return pages


def _left_out_notes(patient_id: str, result: ReanalysisResult, facts: _RunFacts) -> list[str]:
    notes = []
    outside = facts.outside.get(patient_id, 0)
    if outside:
        panel = result.panels.get(patient_id)
        where = f" ({panel.summary()})" if panel is not None else ""
        notes.append(f"{outside} change(s) outside this patient's panel{where} are not shown "
                     "here; the TSV report lists every change.")
    failing = facts.failing.get(patient_id, 0)
    if failing:
        notes.append(f"{failing} change(s) in calls that failed FILTER are not shown here "
                     "(--pass-only); the TSV report lists every change.")
    return notes


def _render_pages(pages: list[_Page]) -> int:
    """Write the pages (a task for a worker process); returns how many."""
    from varreinterp.output.html_report import render_html
    from varreinterp.output.patient_reports import lineage_key, patient_report

    for page in pages:
        report = patient_report(patient_id=page.patient_id, sample=page.sample,
                                source_file=page.source_file, rows=page.records(),
                                from_snapshot=page.from_snapshot, to_snapshot=page.to_snapshot,
                                timelines=page.timelines, min_priority=page.min_priority,
                                prov=page.prov, notes=page.notes, hidden=page.hidden,
                                timeline_key=lineage_key)
        page.path.write_text(render_html(report), encoding="utf-8")
        os.chmod(page.path, FILE_MODE)
    return len(pages)


PARALLEL_PAGES = 200  # from this many pages on, they render on every core


def _ignore_interrupts() -> None:
    """In a page worker: Ctrl-C reaches the whole process group, and the parent alone
    decides (it cancels what is pending and removes the staged folder)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _start_page_worker(parent: int) -> None:
    """A page worker's initializer: interrupts are its parent's to handle, and it dies with
    its parent. Deaf to SIGTERM, it would otherwise outlive a parent killed with SIGKILL (or
    by the OOM killer) for good, blocked on a queue nobody writes to any more (and keeping
    multiprocessing's resource tracker alive too)."""
    _ignore_interrupts()
    if not _kill_with_parent():
        import threading

        threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                         name="varreinterp-parent-watch").start()
    if os.getppid() != parent:  # the parent died before the above was in place
        os._exit(1)


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _kill_with_parent() -> bool:
    """Linux: the kernel sends this process SIGKILL when the thread that started it ends
    (its parent's pool lives and dies on one thread, inside `_rendering`). False elsewhere,
    or when prctl cannot be called."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    import signal

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
        return int(prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    """The portable fallback: an orphan is adopted by another process (init or a subreaper),
    so its parent id changes; checked every second."""
    import time

    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


@contextlib.contextmanager
def _rendering(pages: list[_Page]) -> Iterator[None]:
    """Render the pages, on every core when there are many, while the caller's block writes
    the rest of the folder; all are written when the block ends."""
    if len(pages) < PARALLEL_PAGES or (os.cpu_count() or 1) < 2:
        _render_pages(pages)
        yield
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = min(os.cpu_count() or 1, 8)
    chunks = [pages[i::workers * 4] for i in range(workers * 4)]
    # spawn, not fork: the parent holds DuckDB's threads
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_start_page_worker,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_render_pages, chunk) for chunk in chunks]
        try:
            yield
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        done = sum(f.result() for f in futures)
    if done != len(pages):
        raise RuntimeError(f"rendered {done} of {len(pages)} patient pages")


def write_report_folder(store: Store, delivered: set[str], result: ReanalysisResult,
                        out: Path | None, prov: Provenance) -> Path:
    """Stage the whole report folder, then rename it into place (run.json written last)."""
    try:
        return _write_report_folder(store, delivered, result, out, prov)
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, out or store.root / "reports") from exc


def expand_placeholders(out: Path, result: ReanalysisResult) -> Path:
    """`{date}`, `{snapshot}` and `{run_id}` in a report folder path, so one cron line gives a
    new folder per night (`/data/reports/{date}-{run_id}`)."""
    text = str(out)
    if "{" not in text:
        return out
    values = {"date": datetime.now(UTC).strftime("%Y-%m-%d"), "run_id": result.run_id,
              "snapshot": "+".join(s.name for s in result.targets) or "none"}
    try:
        return Path(text.format(**values))
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"--report-dir {out}: unknown placeholder {exc} (use {{date}}, "
                         "{snapshot} or {run_id})") from None


_STAGE = ".report.stage"  # + -<pid>-<random>: a report being written


def _remove_dead_stages(folder: Path) -> None:
    """Staging folders of killed runs beside the reports (they hold patient data): a dated
    report name differs every night, so they are found by the pid of their writer."""
    from varreinterp.store import owner_alive

    for leftover in folder.glob(".*.stage-*"):
        ours = leftover.name.startswith(f"{_STAGE}-")
        if not ours or not owner_alive(leftover.name, _STAGE):  # (not ours: older versions')
            shutil.rmtree(leftover, ignore_errors=True)


def _write_report_folder(store: Store, delivered: set[str], result: ReanalysisResult,
                         out: Path | None, prov: Provenance) -> Path:
    from varreinterp.reanalyze import REANALYZE_COLUMNS

    if out is None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        targets = result.targets
        suffix = f"-{targets[0].name}" if len(targets) == 1 else ""
        out = store.root / "reports" / f"{stamp}{suffix}-{result.run_id}"
    else:
        out = expand_placeholders(out, result)
    _check_out(delivered, out)
    out.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    # Staged in the store's tmp/ (cleaned under the lock) when the report lives in the store;
    # beside a custom folder otherwise, so the final rename stays on one file system.
    inside = out.resolve().is_relative_to(store.root.resolve())
    if not inside:
        _remove_dead_stages(out.parent)
    stage = Path(tempfile.mkdtemp(prefix=f"{_STAGE}-{os.getpid()}-",
                                  dir=store.tmp_dir if inside else out.parent))
    try:
        (stage / "patients").mkdir(mode=DIR_MODE)
        rows = result.rows
        cols = REANALYZE_COLUMNS
        with _rendering(_pages(stage / "patients", result, prov, _RunFacts.of(result))):
            _write_tsvs(stage, rows, cols, prov)
        per_patient = result.per_patient()
        report: dict[str, Any] = {
            "schema_version": RUN_SCHEMA_VERSION, "run_id": result.run_id,
            "tool": "varreinterp", "tool_version": prov.tool_version,
            "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "targets": [s.name for s in result.targets],
            "min_priority_listed": result.min_priority_listed(),
            "min_priority_by_group": result.min_priority_by_group(),
            "provenance": prov.to_json(),
            "engine": result.engine.to_json() if result.engine else None,
            "index_bytes": {"read": result.index_bytes_read,
                            "total": result.index_bytes_total},
            "comparisons": {
                f"{c.from_snapshot.name}->{c.to_snapshot.name}": {
                    **Provenance.of(prov.command, ("from_snapshot", c.from_snapshot),
                                    ("to_snapshot", c.to_snapshot)).to_json(),
                    "patients": sorted(p.patient_id for p in c.patients)}
                for c in result.comparisons},
            "patients": {
                **result.patient_counts(),
                "failing": [{"patient": t.patient.patient_id, "lineage": t.lineage,
                             "problem": t.problem} for t in result.failures]},
            "changes": {"total": len(rows), "listed": len(result.listed()),
                        "by_priority": result.counts(),
                        "per_patient": per_patient,
                        "patient_files": {pid: "patients/" + patient_file_name(pid)
                                          for pid in per_patient},
                        "patient_reports": {pid: "patients/" + patient_file_name(pid, ".html")
                                            for pid in per_patient}},
            "pass_only": result.pass_only,
            "panels": result.panels_json(),
            # Recorded above, left out of the listing: each change once, under the first
            # reason (panel, then FILTER, then priority); per patient for the first two.
            "not_listed": result.not_listed(),
            "outside_panel": result.outside_panel,
            "failing_filter": result.failing_filter,
            "timings": result.timings,
        }
        with open(stage / "run.json", "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, sort_keys=True, default=str)
        os.chmod(stage / "run.json", FILE_MODE)
        # The delivery and the registry write after it complete whatever signal comes (a
        # delivered report that is not recorded would be delivered again).
        work_committed()
        _note_pending(store, _pending(result.run_id, out, stage))
        if not out.exists():
            os.rename(stage, out)
        else:  # an existing folder with no report (_check_out): add our files, nothing else
            (out / "patients").mkdir(exist_ok=True, mode=DIR_MODE)
            for f in sorted((stage / "patients").iterdir()):
                os.replace(f, out / "patients" / f.name)
            os.replace(stage / "changes.tsv", out / "changes.tsv")
            os.replace(stage / "run.json", out / "run.json")
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out
