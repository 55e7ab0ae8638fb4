"""From change rows to the counselor's HTML report: one card per change, most urgent first, each
with the classification timeline of its variant across the lineage's snapshots."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from varreinterp.changes import PRIORITY_ORDER, Priority
from varreinterp.history import key_of
from varreinterp.output.html_report import (
    ChangeCard,
    PatientReport,
    SnapshotRef,
    TimelinePoint,
)

if TYPE_CHECKING:
    from varreinterp.history import Key
    from varreinterp.provenance import Provenance
    from varreinterp.store import Snapshot


def snapshot_ref(snap: Snapshot) -> SnapshotRef:
    m = snap.manifest
    return SnapshotRef(m.name, m.release_date, m.assembly, m.source_kind, m.source_sha256,
                       m.manifest_sha256)


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _text(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


def card(row: Mapping[str, Any], timeline: Sequence[Mapping[str, Any]]) -> ChangeCard:
    return ChangeCard(
        chrom=str(row["chrom"]), pos=int(row["pos"]), ref=str(row["ref"]), alt=str(row["alt"]),
        change=str(row["change"]), priority=str(row["priority"]), gene=_text(row.get("gene")),
        hgvs=_text(row.get("hgvs")), consequence=_text(row.get("consequence")),
        conditions=_text(row.get("conditions")), before=_text(row.get("before")),
        after=_text(row.get("after")), tier_before=_text(row.get("tier_before")),
        tier_after=_text(row.get("tier_after")), stars_before=_int(row.get("stars_before")),
        stars_after=_int(row.get("stars_after")), review_before=_text(row.get("review_before")),
        review_after=_text(row.get("review_after")),
        conflicts=_text(row.get("conflicts_after")) or _text(row.get("conflicts_before")),
        last_evaluated=_text(row.get("last_evaluated")), zygosity=_text(row.get("zygosity")),
        filter=_text(row.get("filter")), variation_id=_text(row.get("variation_id")),
        timeline=tuple(TimelinePoint(str(p["snapshot"]), _text(p["release_date"]),
                                     _text(p["classification"]), _text(p["tier"]),
                                     _int(p["stars"])) for p in timeline))


def lineage_key(row: Mapping[str, Any]) -> tuple[str, Key]:
    """A reanalysis row's timeline: filed under its lineage too, since one patient may follow
    two sources and each card must show its own source's history."""
    return str(row["lineage"]), key_of(row)


def patient_report(*, patient_id: str, sample: str | None, source_file: str | None,
                   rows: Sequence[Mapping[str, Any]], from_snapshot: Snapshot,
                   to_snapshot: Snapshot, timelines: Mapping[Any, Sequence[Mapping[str, Any]]],
                   min_priority: Priority, prov: Provenance, notes: Sequence[str] = (),
                   hidden: int | Mapping[str, int] = 0,
                   timeline_key: Callable[[Mapping[str, Any]], Any] = key_of) -> PatientReport:
    """The report of one patient from its change rows (`formats.frame_records`): the rows at or
    above `min_priority`, most urgent first. The rows below, and those the caller left out
    already (`hidden`: by priority, or only how many), are counted in a note, since the TSV
    beside the report holds them. The summary counts every priority, listed or not (the page
    marks those below `min_priority`): a count of 0 for changes that exist is a wrong answer."""
    rank = {p.value: i for i, p in enumerate(PRIORITY_ORDER)}
    shown = [r for r in rows if Priority(str(r["priority"])).rank >= min_priority.rank]
    shown.sort(key=lambda r: (rank.get(str(r["priority"]), 9), str(r.get("gene") or ""),
                              key_of(r)))
    counts = {p.value: sum(1 for r in rows if r["priority"] == p.value) for p in Priority}
    if isinstance(hidden, Mapping):
        left_out = sum(hidden.values())
        for priority, n in hidden.items():
            counts[Priority(priority).value] += n
    else:
        left_out = int(hidden)
    left_out += len(rows) - len(shown)
    extra = list(notes)
    if left_out:
        extra.append(f"{left_out} lower-priority change(s) (below {min_priority.value}) are "
                     "not shown here: a lower --min-priority shows them (a nightly run's "
                     "changes.tsv lists every change).")
    return PatientReport(
        patient_id=patient_id, sample=sample, source_file=source_file,
        assembly=to_snapshot.manifest.assembly, from_snapshot=snapshot_ref(from_snapshot),
        to_snapshot=snapshot_ref(to_snapshot), min_priority=min_priority.value,
        cards=[card(r, timelines.get(timeline_key(r), ())) for r in shown],
        counts_by_priority=counts, tool_version=prov.tool_version, command=prov.command,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), notes=tuple(extra))
