"""`report`: one patient's changes between two snapshots, with what a counselor needs to read
them (HGVS, consequence, conflicts, last evaluated, FILTER) and each changed variant's
classification across every snapshot of the lineage; the HTML itself is written by
output/patient_reports.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from varreinterp import db
from varreinterp.changes import Priority
from varreinterp.diff import ReclassificationReport, diff_patients
from varreinterp.errors import UsageError
from varreinterp.history import Key, key_of, timelines, trusted_series
from varreinterp.matching import prepare_inputs
from varreinterp.panels import Panel
from varreinterp.store import Snapshot, Store, release_order


@dataclass
class ReportData:
    changes: ReclassificationReport  # every priority, one sample
    sample: str
    source: Path
    series: list[Snapshot]  # the lineage's snapshots, oldest first: the timelines' points
    timelines: dict[Key, list[dict[str, Any]]]


def report_data(store: Store, vcf: Path, from_name: str, to_name: str, workdir: Path, *,
                sample: str | None = None, reference_path: Path | None = None,
                pass_only: bool = False, cross_lineage: bool = False,
                accept_suspect: bool = False, panel: Panel | None = None) -> ReportData:
    """Everything one patient's report shows: a VCF with several samples needs `sample`."""
    header = prepare_inputs([vcf], workdir, assembly=None, what="", samples=None,
                            reference_path=None).headers[0]
    if sample is None:
        if len(header.samples) != 1:
            raise UsageError(f"{vcf} holds {len(header.samples)} samples "
                             f"({', '.join(header.samples[:10])}): choose one with --sample")
        sample = header.samples[0]
    elif sample not in header.samples:
        raise UsageError(f"--sample {sample}: not in {vcf} (samples: "
                         f"{', '.join(header.samples[:10])})")
    changes = diff_patients(store, [vcf], from_name, to_name, workdir, samples=[sample],
                            reference_path=reference_path, min_priority=Priority.LOW,
                            cross_lineage=cross_lineage, accept_suspect=accept_suspect,
                            pass_only=pass_only).restrict(panel)
    b = changes.to_snapshot
    series = trusted_series(store, b.lineage, keep=(changes.from_snapshot.name, b.name))
    if changes.from_snapshot.name not in {s.name for s in series}:
        series = sorted([changes.from_snapshot, *series], key=lambda s: release_order(s.manifest))
    keys = [key_of(r) for r in changes.rows.to_dict(orient="records")]
    con = db.connect(workdir)
    try:
        found = timelines(con, series, keys)
    finally:
        con.close()
    return ReportData(changes, sample, vcf, series, found)
