"""Writers for the core's result objects: annotations, change reports, histories and reanalysis
listings, each in the formats its command offers."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import db
from varreinterp.output import tables
from varreinterp.output.formats import (
    Format,
    clean_record,
    frame_records,
    json_line,
    output_stream,
    print_table,
    row_provenance,
    tsv_text,
    write_frame,
)

if TYPE_CHECKING:
    from varreinterp.annotate import AnnotationResult
    from varreinterp.diff import ReclassificationReport
    from varreinterp.history import HistoryResult
    from varreinterp.provenance import Provenance
    from varreinterp.reanalyze import ReanalysisResult

PRIORITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}


def write_annotation(result: AnnotationResult, fmt: Format, output: Path | None,
                     prov: Provenance, workdir: Path) -> None:
    """Large outputs (TSV, JSON, Parquet) are written by DuckDB (COPY) into the run's private
    folder, then renamed into place or streamed to stdout: never half-written."""

    if fmt is Format.TABLE:
        records = frame_records(result.rows)
        cols = tables.ANNOTATION_COLUMNS
        if len({r["sample"] for r in records}) <= 1:  # the title names the snapshot; the
            cols = cols[1:]                           # sample is in the summary below
        with output_stream(output) as fh:
            tables.print_rows(fh, cols, tables.annotation_rows(records),
                              title=f"Classified variants against {result.snapshot.name}",
                              caption="\n".join([result.summary(), tables.LEGEND,
                                                 prov.caption()]))
        return
    body = workdir / f"rows.{fmt.value}"
    extra = list(row_provenance(prov).items()) if fmt is Format.JSON else []
    options = {Format.TSV: "FORMAT csv, DELIMITER '\t', HEADER, QUOTE '', ESCAPE ''",
               Format.JSON: "FORMAT json",
               Format.PARQUET: "FORMAT parquet, COMPRESSION zstd"}[fmt]
    with db.writing(body):
        result.con.execute(f"COPY ({result.ordered_sql(extra)}) TO {db.quote(str(body))} "
                           f"({options})")
    if fmt is Format.PARQUET:
        import pyarrow.parquet as pq

        table = pq.read_table(body)
        table = table.replace_schema_metadata(prov.metadata())
        with output_stream(output, binary=True) as fh:
            pq.write_table(table, fh)
        return
    with output_stream(output, binary=True) as fh, open(body, "rb") as src:
        if fmt is Format.TSV:
            fh.write((prov.tsv_line() + "\n").encode())
        shutil.copyfileobj(src, fh, 4 << 20)  # bytes: no decoding of what DuckDB wrote


def write_changes(report: ReclassificationReport, columns: list[str], fmt: Format,
                  output: Path | None, prov: Provenance) -> None:
    """A change report. JSON Lines start with one {"provenance": ...} object (with the tier
    transitions of a snapshot diff); TSV with the '#' provenance line."""
    if fmt is Format.JSON:
        with output_stream(output) as fh:
            head: dict[str, Any] = {"provenance": prov.to_json(),
                                    "min_priority": report.min_priority.value,
                                    "changes": len(report.rows)}
            if report.transitions is not None:
                head["transitions"] = report.transitions.to_dict(orient="records")
            fh.write(json_line(head))
            for record in report.rows[columns].to_dict(orient="records"):
                fh.write(json_line(clean_record(record)))
        return
    if fmt is Format.TSV:
        with output_stream(output) as fh:
            fh.write(prov.tsv_line() + "\n")
            fh.write(tsv_text(report.rows[columns]))
        return
    caption = "\n".join([*report.per_sample_summary(), report.summary(), tables.LEGEND,
                         prov.caption()])
    if report.transitions is not None and len(report.transitions):
        _print_transitions(report)
    records = frame_records(report.rows[columns])
    several = "sample" in columns and len({r["sample"] for r in records}) > 1
    cols = ([tables.Column("sample", "sample", max_width=12)] if several else []) + \
        tables.CHANGE_COLUMNS
    with output_stream(output) as fh:
        tables.print_rows(fh, cols, tables.change_rows(records), title="Reclassifications",
                          caption=caption, style_row=_priority_style)


def _print_transitions(report: ReclassificationReport) -> None:
    assert report.transitions is not None
    order = ["pathogenic", "conflicting", "uncertain", "benign", "other", "(absent)"]
    cells = {(r["tier_before"], r["tier_after"]): r["variants"]
             for r in report.transitions.to_dict(orient="records")}
    matrix = [{"from \\ to": a, **{b: cells.get((a, b), "") for b in order}}
              for a in order if any((a, b) in cells for b in order)]
    print_table(sys.stdout, ["from \\ to", *order], matrix,
                title="Tier transitions, variants (all priorities)")


def write_history(result: HistoryResult, fmt: Format, output: Path | None,
                  prov: Provenance) -> None:
    from varreinterp.history import HISTORY_COLUMNS

    if fmt is not Format.TABLE:
        write_frame(result.rows, HISTORY_COLUMNS, fmt, output, prov, title="", caption="")
        return
    records = frame_records(result.rows)
    releases = [(s.name, s.manifest.release_date) for s in result.snapshots]
    rows = tables.history_rows(records, releases)
    variants = len({(r["sample"], r["variant"]) for r in rows})
    with output_stream(output) as fh:
        tables.print_rows(fh, tables.HISTORY_COLUMNS, rows,
                          title="Classification history, one row per change (oldest first)",
                          caption="\n".join([f"{variants} variant call(s) over "
                                             f"{len(releases)} release(s)", tables.LEGEND,
                                             prov.caption()]))


def write_reanalysis(result: ReanalysisResult, fmt: Format, prov: Provenance,
                     dry_run: bool) -> None:
    from varreinterp.reanalyze import REANALYZE_COLUMNS

    if fmt is not Format.TABLE:
        write_frame(result.listed(), REANALYZE_COLUMNS, fmt, None, prov,
                    title="", caption="")
        return
    records = frame_records(result.listed())
    cols = [tables.Column("patient", "patient", max_width=12), *tables.CHANGE_COLUMNS]
    tables.print_rows(sys.stdout, cols, tables.change_rows(records),
                      title="Reanalysis (dry run)" if dry_run else "Reanalysis",
                      caption="\n".join([result.summary(), tables.LEGEND, prov.caption()]),
                      style_row=_priority_style)


def _priority_style(row: Mapping[str, Any]) -> str | None:
    return PRIORITY_STYLE.get(str(row.get("priority")))
