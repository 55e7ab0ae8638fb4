"""The report folder of a `reanalyze` run: run.json, changes.tsv and patients/<id>.tsv, staged
whole and renamed into place, never overwriting a report that was delivered."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp.atomic import DIR_MODE, FILE_MODE
from varreinterp.errors import EnvironmentIOError, UsageError
from varreinterp.provenance import Provenance

if TYPE_CHECKING:
    import pandas as pd

    from varreinterp.reanalyze import ReanalysisResult
    from varreinterp.store import Store

RUN_SCHEMA_VERSION = 1


def patient_file_name(patient_id: str, suffix: str = ".tsv") -> str:
    """A readable, filesystem-safe file name for a patient's report."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", patient_id).lstrip(".") or "patient"
    if safe != patient_id:
        safe += "-" + hashlib.sha256(patient_id.encode()).hexdigest()[:8]
    return safe + suffix


def _check_out(delivered: set[str], out: Path) -> None:
    """Never overwrite a report that was delivered: its patients were recorded as reviewed and
    would not be reported again. A report of a run killed before it was recorded is redone."""
    report = out / "run.json"
    if not report.exists():
        return
    try:
        run_id = json.loads(report.read_text()).get("run_id")
    except (OSError, ValueError, AttributeError):
        run_id = None
    if run_id is None or run_id in delivered:
        raise UsageError(f"--out {out} already holds a delivered report; choose a new folder")


def _write_tsv(path: Path, frame: pd.DataFrame, columns: list[str], prov: Provenance) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(prov.tsv_line() + "\n")
        frame[columns].to_csv(fh, sep="\t", index=False, na_rep="", lineterminator="\n")
    os.chmod(path, FILE_MODE)


def _write_html(path: Path, patient_id: str, rows: pd.DataFrame, result: ReanalysisResult,
                prov: Provenance) -> None:
    """The counselor's page of one patient: its changes at or above the run's listing
    priority, against the first comparison it was part of (a patient following two lineages
    gets one note per other comparison)."""
    from varreinterp.output.html_report import render_html
    from varreinterp.output.patient_reports import patient_report

    pairs = list(dict.fromkeys(zip(rows["from_snapshot"], rows["to_snapshot"], rows["lineage"],
                                   strict=True)))
    snaps = {s.name: s for c in result.comparisons for s in (c.from_snapshot, c.to_snapshot)}
    a, b, lineage = pairs[0]
    patient = next(p for c in result.comparisons for p in c.patients
                   if p.patient_id == patient_id)
    notes = [f"Also compared: {x} -> {y} ({lin})." for x, y, lin in pairs[1:]]
    timelines = {k: v for lin in {p[2] for p in pairs}
                 for k, v in result.timelines.get(str(lin), {}).items()}
    page = patient_report(patient_id=patient_id, sample=patient.sample,
                          source_file=Path(patient.source).name, rows=rows,
                          from_snapshot=snaps[str(a)], to_snapshot=snaps[str(b)],
                          timelines=timelines, min_priority=result.min_priority,
                          prov=prov.with_facts(("patient", patient_id)), notes=notes)
    path.write_text(render_html(page), encoding="utf-8")
    os.chmod(path, FILE_MODE)


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
        _write_tsv(stage / "changes.tsv", rows, cols, prov)
        per_patient = result.per_patient()
        for pid, group in rows.groupby("patient", sort=True):
            _write_tsv(stage / "patients" / patient_file_name(str(pid)), group, cols,
                       prov.with_facts(("patient", str(pid))))
            _write_html(stage / "patients" / patient_file_name(str(pid), ".html"), str(pid),
                        group, result, prov)
        report: dict[str, Any] = {
            "schema_version": RUN_SCHEMA_VERSION, "run_id": result.run_id,
            "tool": "varreinterp", "tool_version": prov.tool_version,
            "finished_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "targets": [s.name for s in result.targets],
            "min_priority_listed": result.min_priority.value,
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
            "changes": {"total": len(rows), "by_priority": result.counts(),
                        "per_patient": per_patient,
                        "patient_files": {pid: "patients/" + patient_file_name(pid)
                                          for pid in per_patient},
                        "patient_reports": {pid: "patients/" + patient_file_name(pid, ".html")
                                            for pid in per_patient}},
            "outside_panel": result.outside_panel,
            "timings": result.timings,
        }
        with open(stage / "run.json", "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2, sort_keys=True, default=str)
        os.chmod(stage / "run.json", FILE_MODE)
        if (out / "run.json").exists():
            # An undelivered report of a killed run (checked above): replace it whole.
            trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=stage.parent))
            os.rename(out, trash / "old")
            os.rename(stage, out)
            shutil.rmtree(trash, ignore_errors=True)
        elif not out.exists():
            os.rename(stage, out)
        else:  # an existing folder of the user's: add our files, touch nothing else
            (out / "patients").mkdir(exist_ok=True, mode=DIR_MODE)
            for f in sorted((stage / "patients").iterdir()):
                os.replace(f, out / "patients" / f.name)
            os.replace(stage / "changes.tsv", out / "changes.tsv")
            os.replace(stage / "run.json", out / "run.json")
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    return out
