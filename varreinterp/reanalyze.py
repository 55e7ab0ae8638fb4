"""The nightly reanalysis: every registered patient's changes since the snapshot it was last
reviewed against, along each lineage it follows, each delivered exactly once.

Rules (each one closes a way an alert was lost or invented):
- a patient moves forward only along its own lineages (same source, same build), never back in
  time unless told (`allow_backwards`), and never onto a release marked suspect unless told;
- every change at every priority is recorded in the report; the listing threshold (each
  patient's: its cohort group's `min_priority` unless `--min-priority` was given, else the
  run's), the panels (`--genes`/`--regions`, a cohort group's) and `pass_only` only shape what
  is listed (terminal, summary, notification, HTML pages): a change they leave out is recorded
  with its `in_panel` and `filter` columns and counted, never used up unseen;
- a gene symbol the user gave that none of the compared snapshots knows stops the run (exit 2)
  before anything is read or recorded;
- a replaced VCF's newly carried and no longer carried alleles are delivered once;
- reanalysis reads the cohort's inverted index, never the VCF: only the row groups that can
  hold a changed key, each checked against its CRC (a damaged index stops the run); a moved or
  deleted VCF is a warning, not a skipped patient; a patient that cannot be reanalyzed is
  listed and the run is partial (exit 6), never silently up to date;
- the report folder is written first (staged, noted in the store, then renamed;
  `output/reports.py`), then the patients are recorded as reviewed (and the note cleared), then
  the run is appended to `runs.jsonl`: a run killed at any moment is redone by the next one,
  which first removes the noted folder of a run never recorded (its changes would be delivered
  twice otherwise). When nothing changed, no folder is written.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import db
from varreinterp.atomic import work_committed
from varreinterp.changes import (
    ChangeKind,
    Priority,
    carried_priority_sql,
    priority_order_sql,
    select_change_columns,
    side_sql,
    snapshot_changes,
)
from varreinterp.cohort import Patient, Registry, now
from varreinterp.cohort_index import HitTask, ScanTask, bins_dir, run_task
from varreinterp.diff import PATIENT_COLUMNS, priority_counts
from varreinterp.engine import EngineChoice, EngineInfo, engine
from varreinterp.errors import (
    ExitCode,
    StoreError,
    UsageError,
    VarreinterpError,
    store_os_error,
)
from varreinterp.history import Key, keys_of, timelines, trusted_series
from varreinterp.matching import key_match_sql
from varreinterp.notify import SkippedPatient
from varreinterp.panels import Panel, check_known_symbols, panel_membership
from varreinterp.provenance import Provenance
from varreinterp.store import Snapshot, Store, read_json

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa

    from varreinterp.notify import RunSummary

log = logging.getLogger("varreinterp")

CHANGE_COLUMNS = ["patient", "lineage", *PATIENT_COLUMNS]
# in_panel: True/False against the patient's panel (the run's --genes/--regions intersected
# with its cohort group's), empty when no panel applies. Last, so positional readers of the
# columns before it are undisturbed.
REANALYZE_COLUMNS = [*CHANGE_COLUMNS, "in_panel"]
PASSING_FILTERS = ("PASS", ".")
RUNS_FILE = "runs.jsonl"
NO_GROUP = "(no group)"  # run.json's min_priority_by_group key for patients in no group
PER_GROUP = "per group"  # run.json's min_priority_listed when the groups' thresholds differ


class TrackState(StrEnum):
    UP_TO_DATE = "up_to_date"
    WAITING = "waiting"  # changes (or a replacement) wait for the next run
    FAILING = "failing"  # cannot be reanalyzed: the reason says why
    OUT_OF_SCOPE = "out_of_scope"  # --to names another lineage


@dataclass
class Track:
    """One patient on one lineage in one run."""

    patient: Patient
    lineage: str
    reviewed: Snapshot | None = None
    target: Snapshot | None = None
    problem: str | None = None
    state: TrackState = TrackState.WAITING

    @property
    def replacement(self) -> bool:
        return self.lineage in self.patient.previous


@dataclass
class Comparison:
    """The patients reanalyzed from one reviewed snapshot to one target."""

    from_snapshot: Snapshot
    to_snapshot: Snapshot
    patients: list[Patient]


@dataclass(frozen=True)
class _Names:
    name: str


@dataclass(frozen=True)
class NotificationView:
    """A reanalysis as notify.ReanalysisLike describes it."""

    run_id: str
    to_snapshot: _Names
    rows: pd.DataFrame
    processed: list[str]
    up_to_date: list[str]
    problems: list[SkippedPatient]
    out_dir: Path | None
    min_priority: str


@dataclass
class ReanalysisResult:
    rows: pd.DataFrame  # every change, every priority
    tracks: list[Track]
    comparisons: list[Comparison]
    min_priority: Priority
    timings: dict[str, float]
    out_dir: Path | None = None
    run_id: str = ""
    # lineage -> allele key -> classification in each snapshot of the lineage (report cards)
    timelines: dict[str, dict[Key, list[dict[str, Any]]]] = field(default_factory=dict)
    series: dict[str, list[Snapshot]] = field(default_factory=dict)
    panels: dict[str, Panel | None] = field(default_factory=dict)  # patient -> its panel
    pass_only: bool = False  # list only calls whose FILTER passed (all are recorded)
    # group -> the listing threshold of its patients (its own min_priority, or the flag's);
    # patients in no group, or in a group not named here, use `min_priority`
    group_priorities: dict[str, Priority] = field(default_factory=dict)
    engine: EngineInfo | None = None  # what read the index (None: nothing to read)
    notification: RunSummary | None = None  # noted before recording; the caller sends it
    index_bytes_read: int = 0
    index_bytes_total: int = 0

    @property
    def failures(self) -> list[Track]:
        return [t for t in self.tracks if t.state is TrackState.FAILING]

    @property
    def processed(self) -> list[Track]:
        return [t for t in self.tracks if t.state is TrackState.WAITING]

    @property
    def up_to_date(self) -> list[Track]:
        return [t for t in self.tracks if t.state is TrackState.UP_TO_DATE]

    def patient_counts(self) -> dict[str, int]:
        """Patients (not patient x lineage pairs): reanalyzed on some lineage, up to date on
        every one it was checked on, out of the scope of --to on every lineage."""
        processed = {t.patient.patient_id for t in self.processed}
        failing = {t.patient.patient_id for t in self.failures}
        current = {t.patient.patient_id for t in self.up_to_date} - processed - failing
        outside = {t.patient.patient_id for t in self.tracks
                   if t.state is TrackState.OUT_OF_SCOPE} - processed - failing - current
        return {"reanalyzed": len(processed), "up_to_date": len(current),
                "out_of_scope": len(outside)}

    @property
    def targets(self) -> list[Snapshot]:
        seen: dict[str, Snapshot] = {}
        for c in self.comparisons:
            seen.setdefault(c.to_snapshot.name, c.to_snapshot)
        return list(seen.values())

    def min_priority_of(self, patient_id: str) -> Priority:
        """The listing threshold of a reanalyzed patient (`min_priority` for anyone else)."""
        return self._thresholds.get(patient_id, self.min_priority)

    @functools.cached_property
    def _thresholds(self) -> dict[str, Priority]:
        return {t.patient.patient_id: self._threshold_of(t.patient.group)
                for t in self.processed}

    def _threshold_of(self, group: str | None) -> Priority:
        return self.group_priorities.get(group, self.min_priority) if group else \
            self.min_priority

    def min_priority_by_group(self) -> dict[str, str]:
        """The threshold of each group of the reanalyzed patients (`NO_GROUP`: those in
        none)."""
        groups = sorted({t.patient.group or NO_GROUP for t in self.processed})
        return {g: self._threshold_of(None if g == NO_GROUP else g).value for g in groups}

    def min_priority_listed(self) -> str:
        """The one threshold of the reanalyzed patients, or "per group" when their groups'
        differ (`min_priority_by_group` then says which)."""
        used = set(self._thresholds.values()) or {self.min_priority}
        return used.pop().value if len(used) == 1 else PER_GROUP

    def _threshold_words(self) -> str:
        listed = self.min_priority_listed()
        if listed != PER_GROUP:
            return listed
        return "the min_priority of each patient's group (" + ", ".join(
            f"{g}: {p}" for g, p in self.min_priority_by_group().items()) + ")"

    def below_threshold(self) -> dict[str, dict[str, int]]:
        """Patient -> priority -> its shown changes below its threshold (recorded, counted,
        not listed)."""
        below = self.shown().drop(index=self.listed().index)
        if not len(below):
            return {}
        out: dict[str, dict[str, int]] = {}
        for (pid, priority), n in below.groupby(["patient", "priority"]).size().items():
            out.setdefault(str(pid), {})[str(priority)] = int(n)
        return out

    def for_notification(self) -> NotificationView:
        """What notify.summary_from_reanalysis reads: the listed rows, patients by id, every
        target. A summary has one threshold: the lowest of the reanalyzed patients'. When the
        groups' thresholds differ, it counts every shown change at or above that one, so that
        'N low' is all the low changes, not only those of the groups that list them."""
        lowest = min(self._thresholds.values(), key=lambda p: p.rank, default=self.min_priority)
        rows = self.listed()
        if len(set(self._thresholds.values()) | {self.min_priority}) > 1:
            shown = self.shown()
            rows = shown[shown["priority"].isin(
                [p.value for p in Priority if p.rank >= lowest.rank])]
        return NotificationView(
            run_id=self.run_id,
            to_snapshot=_Names(", ".join(s.name for s in self.targets) or "(none)"),
            rows=rows,
            processed=sorted({t.patient.patient_id for t in self.processed}),
            up_to_date=sorted({t.patient.patient_id for t in self.up_to_date}
                              - {t.patient.patient_id for t in self.processed}
                              - {t.patient.patient_id for t in self.failures}),
            problems=[SkippedPatient(t.patient.patient_id, t.problem or "failed")
                      for t in self.failures],
            out_dir=self.out_dir,
            min_priority=lowest.value)

    def shown(self) -> pd.DataFrame:
        """The changes inside their patient's panel and, with `pass_only`, of calls whose
        FILTER passed: what the HTML pages show, at every priority."""
        return self._shown

    def listed(self) -> pd.DataFrame:
        """The shown changes at or above their patient's threshold (`min_priority_of`): what
        the terminal, the summary and the notification list."""
        return self._listed

    # Computed once: the report, run.json, the summary and the notification all ask (each a
    # pass over every row: 750,000 at 10,000 exomes).
    @functools.cached_property
    def _shown(self) -> pd.DataFrame:
        keep = _inside(self.rows)
        if self.pass_only:
            keep &= _passes(self.rows)
        return self.rows[keep]

    @functools.cached_property
    def _listed(self) -> pd.DataFrame:
        shown = self._shown
        floors = set(self._thresholds.values()) | {self.min_priority}
        if len(floors) == 1:  # one threshold for all (the common case): one isin
            keep = shown["priority"].isin(
                [p.value for p in Priority if p.rank >= self.min_priority.rank])
            return shown[keep]
        rank = {p.value: p.rank for p in Priority}
        floor = shown["patient"].map({pid: p.rank for pid, p in self._thresholds.items()})
        return shown[shown["priority"].map(rank) >= floor.fillna(self.min_priority.rank)]

    @functools.cached_property
    def outside_panel(self) -> dict[str, int]:
        """Patient -> changes outside its panel (recorded, not listed)."""
        return _per_patient(self.rows[~_inside(self.rows)])

    @functools.cached_property
    def failing_filter(self) -> dict[str, int]:
        """Patient -> changes inside its panel whose call failed FILTER, left out of the
        listing by `pass_only` (recorded, not listed); empty without `pass_only`."""
        if not self.pass_only:
            return {}
        return _per_patient(self.rows[_inside(self.rows) & ~_passes(self.rows)])

    def not_listed(self) -> dict[str, int]:
        """Recorded changes left out of the listing, each counted once, under the first
        reason that applies: outside the panel, then a failed FILTER, then below
        the patient's threshold. With the listed ones they add up to every change."""
        outside = sum(self.outside_panel.values())
        failing = sum(self.failing_filter.values())
        return {"outside_panel": outside, "failing_filter": failing,
                "below_min_priority": len(self.rows) - outside - failing - len(self.listed())}

    def panels_json(self) -> list[dict[str, Any]]:
        """Each distinct panel of the run (provenance) and how many patients it applied to."""
        seen: dict[int, tuple[Panel, int]] = {}
        for panel in self.panels.values():
            if panel is not None:
                _, n = seen.get(id(panel), (panel, 0))
                seen[id(panel)] = (panel, n + 1)
        return [{**panel.to_json(), "patients": n} for panel, n in seen.values()]

    def provenance(self, command: str) -> Provenance:
        roles: list[tuple[str, Snapshot]] = []
        for n, c in enumerate(self.comparisons, start=1):
            roles += [(f"from_{n}", c.from_snapshot), (f"to_{n}", c.to_snapshot)]
        return Provenance.of(command, *roles, facts=[("run_id", self.run_id)])

    def per_patient(self) -> dict[str, int]:
        return _per_patient(self.rows)

    def counts(self) -> dict[str, int]:
        return {p.value: int((self.rows["priority"] == p.value).sum()) for p in Priority}

    def exit_code(self, changes_code: bool) -> ExitCode:
        if self.failures:
            return ExitCode.PARTIAL
        if changes_code and len(self.rows):
            return ExitCode.CHANGES_FOUND
        return ExitCode.OK

    def summary(self) -> str:
        listed = self.listed()
        parts = priority_counts(listed["priority"])
        counts = self.patient_counts()
        targets = ", ".join(s.name for s in self.targets) or "nothing new"
        text = (f"reanalyze to {targets}: {counts['reanalyzed']} patient(s) reanalyzed, "
                f"{counts['up_to_date']} already up to date, "
                f"{len({t.patient.patient_id for t in self.failures})} failing"
                + (f", {counts['out_of_scope']} out of scope (they follow other sources than "
                   "--to)" if counts["out_of_scope"] else "")
                + f"; {len(listed)} change(s) at or above {self._threshold_words()} in "
                f"{listed['patient'].nunique() if len(listed) else 0} patient(s)"
                + (f" ({', '.join(parts)})" if parts else ""))
        kept = " (recorded in the report)" if self.out_dir else ""
        outside, failing = self.outside_panel, self.failing_filter
        if outside:
            text += (f"; {sum(outside.values())} change(s) outside the panels of "
                     f"{len(outside)} patient(s), not listed{kept}")
        if failing:
            text += (f"; {sum(failing.values())} change(s) in calls failing FILTER "
                     f"(--pass-only) in {len(failing)} patient(s), not listed{kept}")
        hidden = self.not_listed()["below_min_priority"]
        if hidden:
            text += f"; {hidden} lower-priority change(s) recorded in the report"
        if self.out_dir:
            text += f"; report in {self.out_dir}"
        elif self.run_id and not len(self.rows):
            text += "; nothing changed: no report folder written"
        return text


# ------------------------------------------------------------------------------ planning
def plan(store: Store, registry: Registry, *, to: str | None = None,
         allow_backwards: bool = False, accept_suspect: bool = False) -> list[Track]:
    """Decide, for every patient and lineage it follows, what this run compares."""
    target_for: dict[str, Snapshot | None] = {}
    explicit = store.use(to) if to else None
    if explicit is not None:
        _refuse_suspect(explicit, accept_suspect)
    broken = store.broken_lineages()
    tracks = []
    for p in sorted(registry.patients.values(), key=lambda p: p.patient_id):
        for lineage in sorted(p.reviewed):
            track = Track(p, lineage)
            tracks.append(track)
            if explicit is not None and explicit.lineage != lineage:
                track.state = TrackState.OUT_OF_SCOPE
                track.problem = (f"follows {lineage}, not {explicit.lineage} of --to "
                                 f"{explicit.name}")
                continue
            if lineage in broken or "*" in broken:
                track.state = TrackState.FAILING
                track.problem = (f"a snapshot of lineage {lineage} cannot be read "
                                 f"({broken.get(lineage) or broken['*']})")
                continue
            if lineage not in target_for:
                target_for[lineage] = explicit or _newest(store, lineage)
            _plan_track(store, track, target_for[lineage], allow_backwards)
    # A suspect newest release stops the run only when someone would move onto it: patients
    # already reviewed against it (an earlier --accept-suspect) are simply up to date.
    for track in tracks:
        if track.state is TrackState.WAITING and track.target is not None and \
                track.reviewed is not None and track.target.name != track.reviewed.name:
            _refuse_suspect(track.target, accept_suspect)
    return tracks


def _newest(store: Store, lineage: str) -> Snapshot | None:
    series = store.lineage(lineage)
    return store.use(series[-1].name) if series else None


def _refuse_suspect(snap: Snapshot, accept_suspect: bool) -> None:
    if snap.manifest.suspect and not accept_suspect:
        raise StoreError(f"snapshot {snap.name} is marked suspect ({snap.manifest.suspect}): "
                         "not used as a target; check the release, then rerun with "
                         "--accept-suspect (or remove it)")


def _plan_track(store: Store, track: Track, target: Snapshot | None,
                allow_backwards: bool) -> None:
    p, lineage = track.patient, track.lineage
    reviewed_name = p.reviewed[lineage]
    if target is None:
        track.state, track.problem = TrackState.FAILING, f"no stored snapshot of {lineage}"
        return
    if not store.exists(reviewed_name):
        track.state = TrackState.FAILING
        track.problem = f"last reviewed snapshot {reviewed_name} is no longer stored"
        return
    track.reviewed, track.target = store.use(reviewed_name), target
    if (target.manifest.release_date or "") < (track.reviewed.manifest.release_date or "") \
            and not allow_backwards:
        track.state = TrackState.FAILING
        track.problem = (f"target {target.name} ({target.manifest.release_date}) is older than "
                         f"the reviewed {reviewed_name} ({track.reviewed.manifest.release_date})"
                         "; going back in time needs --allow-backwards")
        return
    if target.name == reviewed_name and not track.replacement:
        track.state = TrackState.UP_TO_DATE
        return
    if not Path(p.source).is_file():
        log.warning("patient %s: VCF %s is missing; reanalyzed from the cohort index",
                    p.patient_id, p.source)


# ------------------------------------------------------------------------------ running
PanelFor = Callable[[Patient], Panel | None]


def _no_panel(patient: Patient) -> Panel | None:
    return None


def reanalyze(store: Store, *, to: str | None = None,
              min_priority: Priority = Priority.MEDIUM, out: Path | None = None,
              dry_run: bool = False, command: str = "", allow_backwards: bool = False,
              accept_suspect: bool = False, changes_code: bool = False,
              panel_for: PanelFor = _no_panel, pass_only: bool = False,
              choice: EngineChoice | None = None,
              progress: Callable[[int, int], None] | None = None,
              group_priorities: Mapping[str, Priority] | None = None,
              notify: Sequence[str] = ()) -> ReanalysisResult:
    """Compare every patient not yet reviewed against the newest snapshot of each lineage it
    follows (or `to`) and, unless `dry_run`, deliver the report folder, record the patients
    as reviewed and append the run to runs.jsonl. Every change is recorded; each patient's
    threshold (`group_priorities` of its cohort group, else `min_priority`), `panel_for` (a
    patient's panel) and `pass_only` only decide which are listed. A gene symbol given to a
    panel that no compared snapshot knows is a UsageError, before any work. With `notify`
    (target URLs) and something to tell, the notification is noted in the store before the
    patients are recorded (see `note_notification`); the caller sends it."""
    groups = dict(group_priorities or {})
    if dry_run:
        with store.workdir() as workdir:
            return _reanalyze(store, to, min_priority, out, True, command, workdir,
                              allow_backwards, accept_suspect, changes_code, panel_for,
                              pass_only, choice or EngineChoice(), progress, groups)
    with store.lock("reanalyze"), store.workdir() as workdir:
        return _reanalyze(store, to, min_priority, out, False, command, workdir,
                          allow_backwards, accept_suspect, changes_code, panel_for, pass_only,
                          choice or EngineChoice(), progress, groups, notify)


def _reanalyze(store: Store, to: str | None, min_priority: Priority, out: Path | None,
               dry_run: bool, command: str, workdir: Path, allow_backwards: bool,
               accept_suspect: bool, changes_code: bool,
               panel_for: PanelFor = _no_panel, pass_only: bool = False,
               choice: EngineChoice | None = None,
               progress: Callable[[int, int], None] | None = None,
               group_priorities: dict[str, Priority] | None = None,
               notify: Sequence[str] = ()) -> ReanalysisResult:
    import pandas as pd

    t0 = time.perf_counter()
    choice = choice or EngineChoice()
    registry = Registry.load(store)
    if not dry_run:  # (under the lock) a folder published by a run killed before recording
        from varreinterp.output.reports import discard_undelivered

        discard_undelivered(store, registry.delivered_runs)
    if not registry.patients:
        raise UsageError("the cohort is empty: register patients with `cohort add` first")
    tracks = plan(store, registry, to=to, allow_backwards=allow_backwards,
                  accept_suspect=accept_suspect)
    panels = _check_panels(tracks, panel_for)
    timings = {"plan_s": time.perf_counter() - t0}
    groups: dict[tuple[str, str], list[Track]] = {}
    for t in tracks:
        if t.state is TrackState.WAITING:
            assert t.reviewed is not None and t.target is not None
            groups.setdefault((t.reviewed.name, t.target.name), []).append(t)
    comparisons = []
    con = db.connect(workdir)
    _check_catalog(store, registry)
    reads = _IndexReads(store, registry, con)
    for (a_name, b_name), group in sorted(groups.items()):
        a, b = group[0].reviewed, group[0].target
        assert a is not None and b is not None
        comparisons.append(Comparison(a, b, [t.patient for t in group]))
        t1 = time.perf_counter()
        reads.plan(a, b, group)
        timings[f"{a_name}->{b_name}_s"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    reads.run(choice, progress)
    timings["index_s"] = time.perf_counter() - t1
    frames = reads.frames()
    con.close()
    rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=CHANGE_COLUMNS)
    rows = rows[CHANGE_COLUMNS].assign(in_panel=_in_panel(rows, panels))
    timings["total_s"] = time.perf_counter() - t0
    result = ReanalysisResult(rows, tracks, comparisons, min_priority, timings,
                              panels=panels, pass_only=pass_only,
                              group_priorities=group_priorities or {}, engine=reads.engine,
                              index_bytes_read=reads.bytes_read,
                              index_bytes_total=registry.catalog.total_bytes)
    for t in result.failures:
        log.error("patient %s (%s) not reanalyzed: %s", t.patient.patient_id, t.lineage,
                  t.problem)
    if dry_run:
        return result
    result.run_id = uuid.uuid4().hex[:12]
    if len(rows):
        from varreinterp.output.reports import write_report_folder

        t2 = time.perf_counter()
        _add_timelines(store, workdir, result)
        timings["timelines_s"] = time.perf_counter() - t2

        result.out_dir = write_report_folder(store, set(registry.delivered_runs), result, out,
                                             result.provenance(command))
        registry.delivered_runs.append(result.run_id)
    work_committed()  # (again, when no report was written) recorded whatever signal comes
    if notify and (len(rows) or result.failures):
        result.notification = note_notification(store, result, notify)
    _record_reviewed(store, registry, result)
    if result.out_dir is not None:  # recorded: the folder is delivered
        from varreinterp.output.reports import clear_pending_report

        clear_pending_report(store)
    append_run(store, result, result.exit_code(changes_code))
    return result


def _check_panels(tracks: list[Track], panel_for: PanelFor) -> dict[str, Panel | None]:
    """Each patient's panel (its cohort group's, or the run's), for the patients this run
    compares or finds up to date; a gene symbol given to one of them that none of the
    snapshots they are compared on knows is a UsageError, raised before any work."""
    panels: dict[str, Panel | None] = {}
    snapshots: dict[str, Snapshot] = {}
    for t in tracks:
        if t.state in (TrackState.WAITING, TrackState.UP_TO_DATE):
            assert t.reviewed is not None and t.target is not None
            if t.patient.patient_id not in panels:
                panels[t.patient.patient_id] = panel_for(t.patient)
            snapshots.setdefault(t.reviewed.name, t.reviewed)
            snapshots.setdefault(t.target.name, t.target)
    distinct = {id(p): p for p in panels.values() if p is not None}
    check_known_symbols(distinct.values(), snapshots.values())
    return panels


def _in_panel(rows: pd.DataFrame, panels: dict[str, Panel | None]) -> pd.Series:
    """Per change: inside its patient's panel (True/False), or NA when no panel applies. One
    membership test per distinct panel, over all the rows of its patients."""
    import pandas as pd

    marks = pd.Series(pd.NA, index=rows.index, dtype="boolean")
    by_panel: dict[int, tuple[Panel, list[str]]] = {}
    for pid in rows["patient"].unique():
        panel = panels.get(str(pid))
        if panel is not None:
            by_panel.setdefault(id(panel), (panel, []))[1].append(str(pid))
    for panel, pids in by_panel.values():
        mine = rows[rows["patient"].isin(pids)]
        marks.loc[mine.index] = panel_membership(panel, mine)
    return marks


def _inside(rows: pd.DataFrame) -> pd.Series:
    """Inside the patient's panel, or no panel applies."""
    return rows["in_panel"].fillna(True).astype(bool)


def _passes(rows: pd.DataFrame) -> pd.Series:
    """The call passed FILTER (an index written before FILTER was kept has none: passing)."""
    return rows["filter"].isna() | rows["filter"].isin(PASSING_FILTERS)


def _per_patient(rows: pd.DataFrame) -> dict[str, int]:
    if not len(rows):
        return {}
    return {str(k): int(v) for k, v in rows.groupby("patient").size().items()}


def _add_timelines(store: Store, workdir: Path, result: ReanalysisResult) -> None:
    """Each changed variant's classification across its lineage, for the HTML reports: one
    scan of each snapshot of a lineage for all the run's changed keys."""
    con = db.connect(workdir)
    try:
        for lineage, group in result.rows.groupby("lineage"):
            targets = {str(n) for n in group["to_snapshot"]} | {
                str(n) for n in group["from_snapshot"]}
            series = trusted_series(store, str(lineage), keep=sorted(targets))
            keys = keys_of(group)
            result.series[str(lineage)] = series
            result.timelines[str(lineage)] = timelines(con, series, keys)
    finally:
        con.close()


def _record_reviewed(store: Store, registry: Registry, result: ReanalysisResult) -> None:
    """Only now, with the report on disk, are these patients recorded as reviewed. A run
    that moves nobody and delivers nothing writes nothing (at 10,000 patients the registry
    write took 2.7 s of a 4 s nothing-changed run); `reviewed_at` is when a patient last
    moved."""
    stamp = now()
    moved = bool(len(result.rows))
    for t in result.processed:
        assert t.target is not None
        p = registry.patients[t.patient.patient_id]
        if p.reviewed.get(t.lineage) == t.target.name and t.lineage not in p.previous:
            continue
        p.reviewed[t.lineage] = t.target.name
        p.reviewed_at = stamp
        # Delivered: the replaced rows of this lineage are dead (a compaction drops them).
        p.previous.pop(t.lineage, None)
        moved = True
    if moved:
        registry.save(store)


def append_run(store: Store, result: ReanalysisResult, code: int) -> None:
    """The append-only log of runs, including those that delivered nothing."""
    entry = {
        "time": now(), "run_id": result.run_id, "exit_code": int(code),
        "comparisons": [{"from": c.from_snapshot.name, "to": c.to_snapshot.name,
                         "lineage": c.to_snapshot.lineage, "patients": len(c.patients)}
                        for c in result.comparisons],
        "patients": {**result.patient_counts(),
                     "failing": [{"patient": t.patient.patient_id, "lineage": t.lineage,
                                  "problem": t.problem} for t in result.failures]},
        "changes": result.counts(),
        "not_listed": result.not_listed(),
        "report": str(result.out_dir) if result.out_dir else None,
        "engine": result.engine.to_json() if result.engine else None,
        "index_bytes": {"read": result.index_bytes_read, "total": result.index_bytes_total},
    }
    _append_log(store, entry)


def _append_log(store: Store, entry: dict[str, Any]) -> None:
    path = store.root / RUNS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(entry, sort_keys=True) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _check_catalog(store: Store, registry: Registry) -> None:
    """Every catalogued index file is there at its size (cheap: a stat each); the bytes are
    checked as they are read."""
    for entry in registry.catalog.files.values():
        path = bins_dir(store.root) / entry.name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise StoreError(f"{path}: cohort index file is missing (restore the store from "
                             "its backup, or re-register the cohort)") from None
        if size != entry.size:
            raise StoreError(f"{path}: cohort index file is {size} bytes, the catalog says "
                             f"{entry.size} (truncated or replaced)")


class _IndexReads:
    """The index reads of a run: per comparison, the changed keys of each bin (one task per
    bin), and for replaced VCFs every row of their old and new numbers; all run on one
    engine, then joined back with the changes."""

    def __init__(self, store: Store, registry: Registry, con: duckdb.DuckDBPyConnection):
        self.store, self.registry, self.con = store, registry, con
        self.tasks: list[HitTask | ScanTask] = []
        self.owner: list[int] = []  # comparison index of each task (-1: replacements)
        self.comparisons: list[tuple[Snapshot, Snapshot, list[Track], str]] = []
        self.results: list[Any] = []
        self.engine: EngineInfo | None = None
        self.bytes_read = 0

    def plan(self, a: Snapshot, b: Snapshot, group: list[Track]) -> None:
        import numpy as np

        k = len(self.comparisons)
        delta = f"delta_{k}"
        self.comparisons.append((a, b, group, delta))
        if a.name == b.name:
            return
        snapshot_changes(self.con, a, b, delta)
        numbers = np.asarray(sorted(t.patient.number for t in group), np.int64)
        files = self.registry.catalog.by_bin()
        size = self.registry.catalog.bin_size
        keys = self.con.sql(f"""
            SELECT chrom AS key_chrom, pos, ref, alt, pos // {size} AS bin FROM {delta}
            ORDER BY key_chrom, bin""").to_arrow_table()
        chroms = keys.column("key_chrom").to_pylist()
        bins = keys.column("bin").to_numpy()
        start = 0
        for end in range(1, len(chroms) + 1):
            if end < len(chroms) and chroms[end] == chroms[start] and bins[end] == bins[start]:
                continue
            here = files.get((chroms[start], int(bins[start])))
            if here:
                pairs = [(f, self.registry.catalog.keys_of(f)) for f in here]
                # take, not slice: a pickled slice carries its parent's whole buffers (the
                # graph of a 10,000-exome run was 410 MB: every bin got every changed key)
                here_keys = keys.take(np.arange(start, end)).drop_columns(["bin"])
                self.tasks.append(HitTask(str(self.store.root), pairs, here_keys, numbers))
                self.owner.append(k)
            start = end

    def run(self, choice: EngineChoice,
            progress: Callable[[int, int], None] | None = None) -> None:
        import numpy as np

        replaced = sorted({n for _, _, group, _ in self.comparisons for t in group
                           if t.replacement
                           for n in (t.patient.number, t.patient.previous[t.lineage])})
        if replaced:
            numbers = np.asarray(replaced, np.int64)
            for files in self.registry.catalog.by_bin().values():
                self.tasks.append(ScanTask(str(self.store.root), files, numbers))
                self.owner.append(-1)
        if not self.tasks:
            return
        work = sum(f.size for t in self.tasks
                   for f in (t.files if isinstance(t, ScanTask) else [r for r, _ in t.files]))
        with engine(choice, len(self.tasks), self.store.root, work) as eng:
            self.results = eng.map(run_task, self.tasks, progress)
            self.engine = eng.info
        self.bytes_read = sum(n for _, n in self.results)
        log.debug("index: %d task(s), %d of %d bytes read", len(self.tasks), self.bytes_read,
                  self.registry.catalog.total_bytes)

    def _rows_of(self, owner: int) -> pa.Table:
        import pyarrow as pa

        from varreinterp.cohort_index import empty_rows

        tables = [r for (r, _), o in zip(self.results, self.owner, strict=True) if o == owner]
        return pa.concat_tables(tables) if tables else empty_rows()

    def frames(self) -> list[pd.DataFrame]:
        import pandas as pd

        out = []
        # (empty when no scan ran: an index with no file at all still has replacements)
        self.con.register("replaced_rows", self._rows_of(-1))
        for k, (a, b, group, delta) in enumerate(self.comparisons):
            frames = []
            if a.name != b.name:
                frames.append(self._changed(k, a, b, group, delta))
            for t in group:
                if t.replacement:
                    frames.append(_replacement_changes(self.con, a, t))
            if not frames:
                continue
            rows = pd.concat(frames, ignore_index=True)
            self.con.register("reanalysis_rows", rows)
            out.append(self.con.execute(f"""
                SELECT * FROM reanalysis_rows
                ORDER BY patient, {priority_order_sql()}, chrom, pos, ref, alt""").df())
            self.con.unregister("reanalysis_rows")
        return out

    def _changed(self, k: int, a: Snapshot, b: Snapshot, group: list[Track],
                 delta: str) -> pd.DataFrame:
        hits = f"hits_{k}"
        self.con.register(hits, self._rows_of(k))
        values = ", ".join(f"({t.patient.number}, {db.quote(t.patient.patient_id)}, "
                           f"{db.quote(t.patient.sample)})" for t in group)
        frame = self.con.execute(f"""
            WITH hit AS (
                SELECT n.patient, n.sample, i.chrom, i.key_chrom, i.pos, i.ref, i.alt,
                       i.zygosity, i.filter, d.* EXCLUDE (chrom, pos, ref, alt)
                FROM {hits} i JOIN {delta} d ON {key_match_sql('d', 'i')}
                JOIN (VALUES {values}) n(number, patient, sample) ON n.number = i.patient)
            SELECT patient, {db.quote(b.lineage)} AS lineage, sample, chrom, pos, ref, alt,
                   zygosity, filter, {select_change_columns(a, b)}
            FROM hit""").df()
        self.con.unregister(hits)
        return frame


def _replacement_changes(con: duckdb.DuckDBPyConnection, a: Snapshot,
                         track: Track) -> pd.DataFrame:
    """newly_carried (priority by tier, as for `new`) and no_longer_carried (low): the
    difference between the replaced registration's rows and the new one's, among variants
    snapshot `a` classifies."""
    p = track.patient
    new = f"(SELECT * FROM replaced_rows WHERE patient = {p.number})"
    old = f"(SELECT * FROM replaced_rows WHERE patient = {p.previous[track.lineage]})"
    keys = "key_chrom, pos, ref, alt"

    def side(kind: ChangeKind, present: str, absent: str, priority: str,
             before: bool) -> str:
        cls, tier = "a_cls", "a_tier"
        return f"""
            SELECT {db.quote(p.patient_id)} AS patient, {db.quote(track.lineage)} AS lineage,
                   {db.quote(p.sample)} AS sample, x.chrom, x.pos, x.ref, x.alt, x.zygosity,
                   x.filter, a_gene AS gene, {db.quote(kind.value)} AS change,
                   {priority} AS priority,
                   {cls if before else 'NULL'} AS before, {'NULL' if before else cls} AS after,
                   {tier if before else 'NULL'} AS tier_before,
                   {'NULL' if before else tier} AS tier_after,
                   {'a_stars' if before else 'NULL'} AS stars_before,
                   {'NULL' if before else 'a_stars'} AS stars_after,
                   {'a_rev' if before else 'NULL'} AS review_before,
                   {'NULL' if before else 'a_rev'} AS review_after,
                   false AS review_changed, a_vid AS variation_id, a_cond AS conditions,
                   {db.quote(a.name)} AS from_snapshot, {db.quote(a.name)} AS to_snapshot,
                   a_hgvs AS hgvs, a_mc AS consequence, a_conf AS conflicts_before,
                   a_conf AS conflicts_after, a_last AS last_evaluated
            FROM (SELECT * FROM {present} p ANTI JOIN {absent} q USING ({keys})) x
            JOIN {side_sql('a', a)} s ON {key_match_sql('s', 'x')}"""

    return con.execute(
        side(ChangeKind.NEWLY_CARRIED, new, old, carried_priority_sql("a_tier"), False)
        + " UNION ALL "
        + side(ChangeKind.NO_LONGER_CARRIED, old, new, f"'{Priority.LOW.value}'", True)
    ).df()


# ------------------------------------------------------------------------------ status
def cohort_status(store: Store, min_priority: Priority = Priority.MEDIUM
                  ) -> list[dict[str, Any]]:
    """Each patient's state on each lineage it follows: up to date, waiting (with the changes
    waiting, by priority), or failing with the reason. A store that cannot be read fails here:
    a status never shows zeros for an error."""
    registry = Registry.load(store)
    if not registry.patients:
        return []
    with store.workdir() as workdir:
        result = _reanalyze(store, None, min_priority, None, True, "", workdir, False, True,
                            False)
    waiting: dict[tuple[str, str], dict[str, int]] = {}
    for r in result.rows.to_dict(orient="records"):
        counts = waiting.setdefault((str(r["patient"]), str(r["lineage"])), {})
        counts[str(r["priority"])] = counts.get(str(r["priority"]), 0) + 1
    rows = []
    for t in result.tracks:
        c = waiting.get((t.patient.patient_id, t.lineage), {})
        failing = t.state is TrackState.FAILING
        rows.append({
            "patient": t.patient.patient_id, "sample": t.patient.sample,
            "assembly": t.patient.assembly, "lineage": t.lineage,
            "reviewed_snapshot": t.patient.reviewed[t.lineage],
            "target_snapshot": t.target.name if t.target else None,
            "state": t.state.value,
            **{p.value: (None if failing else c.get(p.value, 0)) for p in reversed(Priority)},
            "suspect_target": bool(t.target and t.target.manifest.suspect),
            "reason": t.problem, "source": t.patient.source})
    return rows


def cohort_index_summary(store: Store) -> dict[str, Any]:
    """The index's size and what last wrote it (engine, workers), for `cohort status`."""
    registry = Registry.load(store)
    engine = registry.engine or {}
    return {"index_files": sum(f.role == "rows" for f in registry.catalog.files.values()),
            "index_bytes": registry.catalog.total_bytes,
            "index_engine": engine.get("engine"), "index_workers": engine.get("workers")}


def record_notifications(store: Store, run_id: str, out_dir: Path | None,
                         outcomes: Sequence[dict[str, Any]]) -> None:
    """What each notification target answered: added to the delivered run.json, and to the
    run log as a line of its own (the log is append-only). The run's notification is then no
    longer pending."""
    from varreinterp.atomic import write_json_atomic

    if out_dir is not None and (out_dir / "run.json").is_file():
        report = json.loads((out_dir / "run.json").read_text())
        report["notifications"] = list(outcomes)
        write_json_atomic(out_dir / "run.json", report)
    _append_log(store, {"time": now(), "run_id": run_id, "notifications": list(outcomes)})
    path = _notification_path(store)
    with contextlib.suppress(OSError, VarreinterpError, AttributeError):
        if read_json(path, "pending notification").get("summary", {}).get("run_id") == run_id:
            path.unlink()


# A run killed (kill -9, a power cut) while it notifies has recorded its patients: the next
# run finds nothing new, so without this note its notification would never be sent.
_NOTIFICATION_FILE = "pending_notification.json"


def _notification_path(store: Store) -> Path:
    return store.root / "cohort" / _NOTIFICATION_FILE


def note_notification(store: Store, result: ReanalysisResult,
                      targets: Sequence[str]) -> RunSummary:
    """Note durably, before the patients are recorded, what this run is about to send and to
    whom (the store is private to its owner, like the configuration the URLs come from)."""
    from varreinterp.atomic import write_json_atomic
    from varreinterp.notify import summary_from_reanalysis

    summary = summary_from_reanalysis(result.for_notification())
    path = _notification_path(store)
    write_json_atomic(path, {"summary": summary.as_dict(), "targets": list(targets)})
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return summary


def notification_noted(store: Store) -> bool:
    return _notification_path(store).exists()


@contextlib.contextmanager
def notifying(store: Store) -> Iterator[None]:
    """One process at a time sends (or re-sends) notifications of this store, from before
    its run notes one until that one is answered: a second run waits here instead of sending
    the first one's again. The kernel drops the lock of a process that dies. The lock is
    taken on the cohort folder itself: no file to create (a failed run leaves the store as it
    was, a full disk included)."""
    import fcntl

    path = _notification_path(store).parent
    if not path.is_dir():  # no cohort: nothing to notify
        yield
        return
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise store_os_error(exc, path, "cannot open the cohort folder") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def pending_notification(store: Store) -> tuple[RunSummary, list[str]] | None:
    """The notification of an earlier run that was noted and never answered (that run was
    killed while notifying), if that run recorded its patients; a note of a run killed before
    recording is dropped: the run is redone, and notifies, in full. A note that cannot be
    read is a StoreError (exit 4): it stands for a notification that may be lost."""
    from varreinterp.notify import RunSummary

    path = _notification_path(store)
    if not path.exists():
        return None
    note = read_json(path, "pending notification")
    try:
        summary = RunSummary.from_dict(note["summary"])
        targets = [str(t) for t in note["targets"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise StoreError(f"{path}: unreadable pending notification ({exc}); look at it, then "
                         "remove it to go on") from exc
    if not _run_recorded(store, summary.run_id):
        path.unlink()
        return None
    return summary, targets


def _run_recorded(store: Store, run_id: str) -> bool:
    """Whether a run recorded its patients: its report folder is in the registry's delivered
    runs (saved with the patients), or the run is in the run log (written after them)."""
    if run_id in Registry.load(store).delivered_runs:
        return True
    path = store.root / RUNS_FILE
    if not path.exists():
        return False
    needle = f'"run_id": {json.dumps(run_id)}'
    with open(path, encoding="utf-8", errors="replace") as fh:
        return any(needle in line and '"exit_code"' in line for line in fh)
