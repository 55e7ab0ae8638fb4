"""Command line: parse, resolve configuration, call one core function, render its result.

Exceptions become exit codes in exactly one place, `run()`. Heavy modules (duckdb, pyarrow,
pandas, cyvcf2, pysam) are imported inside commands so `--help` stays instant."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from varreinterp import __version__
from varreinterp.errors import ExitCode, UsageError, VarreinterpError

log = logging.getLogger("varreinterp")

app = typer.Typer(
    name="varreinterp",
    help="Clinical variant reinterpretation: annotate patient VCFs against versioned "
    "classification snapshots (ClinVar releases or a lab's own table) and report what changed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
snapshot_app = typer.Typer(help="Import, list, inspect, verify and remove classification "
                           "snapshots.", no_args_is_help=True)
app.add_typer(snapshot_app, name="snapshot")


class State:
    store_option: str | None = None


STATE = State()

FormatOpt = Annotated[
    str | None,
    typer.Option("--format", "-f", help="table | tsv | json (default: table on a terminal, "
                 "tsv when piped)"),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"varreinterp {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    store: Annotated[str | None, typer.Option(
        "--store", help="Store directory (else $VARREINTERP_HOME, else "
        "~/.local/share/varreinterp).", envvar=None)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    STATE.store_option = store
    _setup_logging(debug, quiet)


def _setup_logging(debug: bool, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("varreinterp: %(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.ERROR if quiet else logging.DEBUG if debug else logging.INFO)
    log.propagate = False


def _store() -> Any:
    from varreinterp.store import Store, default_store_path

    return Store(default_store_path(STATE.store_option))


def _format(fmt: str | None, allowed: tuple[str, ...] = ("table", "tsv", "json")) -> str:
    from varreinterp.render import resolve_format

    chosen = resolve_format(fmt)
    if chosen not in allowed:
        raise UsageError(f"--format must be one of {', '.join(allowed)}, not {chosen!r}")
    return chosen


def _parse_date(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--release-date {text!r} is not a date (YYYY-MM-DD)") from None


# ------------------------------------------------------------------------------ snapshot
@snapshot_app.command("add")
def snapshot_add(
    path: Annotated[Path, typer.Argument(help="ClinVar VCF, variant_summary, or a lab table.")],
    name: Annotated[str | None, typer.Option(help="Snapshot name (default: derived from "
                                             "source, assembly and release date).")] = None,
    assembly: Annotated[str | None, typer.Option(help="GRCh37 or GRCh38 (default: from the "
                                                 "file's header).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | clinvar-vcf | variant-summary | "
                                     "table")] = "auto",
    mapping: Annotated[Path | None, typer.Option(help="TOML file describing a lab table's "
                                                 "columns and terms.")] = None,
    release_date: Annotated[str | None, typer.Option(help="Release date YYYY-MM-DD when the "
                                                     "file does not carry one.")] = None,
    allow_unknown_terms: Annotated[bool, typer.Option(
        help="Import unknown classification terms as tier 'other' (counted) instead of "
        "failing.")] = False,
) -> None:
    """Import a classification file as a new immutable snapshot."""
    from varreinterp.snapshots import SourceFormat, add_snapshot, resolve_assembly

    try:
        source_format = SourceFormat(fmt)
    except ValueError:
        raise UsageError(f"--format must be one of {', '.join(f.value for f in SourceFormat)}"
                         ) from None
    result = add_snapshot(
        _store(), path, name=name, assembly=resolve_assembly(assembly), fmt=source_format,
        mapping_path=mapping, release_date=_parse_date(release_date),
        allow_unknown_terms=allow_unknown_terms)
    m = result.snapshot.manifest
    if result.already_stored:
        log.info("%s is already stored as snapshot %s (same sha256); nothing to do",
                 path, m.name)
        return
    skipped = ", ".join(f"{k}={v}" for k, v in sorted(m.skipped.items())) or "none"
    log.info("added snapshot %s: %d records (%s), release %s, %s; skipped: %s", m.name,
             m.records, ", ".join(f"{k} {v}" for k, v in m.tiers.items() if v), m.release_date,
             m.assembly, skipped)


_LIST_COLUMNS = ["name", "assembly", "release_date", "source_kind", "records", "pathogenic",
                 "uncertain", "benign", "conflicting", "other", "source_file", "source_sha256"]


@snapshot_app.command("list")
def snapshot_list(fmt: FormatOpt = None) -> None:
    """List stored snapshots, oldest release first."""
    from varreinterp import render

    chosen = _format(fmt)
    snaps = _store().snapshots()
    if chosen == "json":
        for s in snaps:
            sys.stdout.write(render.json_line(s.manifest.to_json()))
        return
    rows = [{**s.manifest.to_json(), **s.manifest.tiers} for s in snaps]
    if chosen == "tsv":
        render.write_tsv(sys.stdout, _LIST_COLUMNS, rows)
    else:
        for r in rows:
            r["source_sha256"] = str(r["source_sha256"])[:12]
        render.print_table(sys.stdout, _LIST_COLUMNS, rows,
                           title=f"Snapshots in {_store().root}",
                           caption=f"{len(rows)} snapshot(s); varreinterp {__version__}")


@snapshot_app.command("show")
def snapshot_show(name: str, fmt: FormatOpt = None) -> None:
    """Show one snapshot's manifest: provenance, counts per tier and stars, skipped records."""
    from varreinterp import render

    chosen = _format(fmt)
    m = _store().get(name).manifest.to_json()
    if chosen == "json":
        sys.stdout.write(render.json_line(m))
        return
    rows = [{"field": k, "value": v} for k, v in m.items()]
    if chosen == "tsv":
        render.write_tsv(sys.stdout, ["field", "value"], rows)
    else:
        render.print_table(sys.stdout, ["field", "value"], rows, title=f"Snapshot {name}")


@snapshot_app.command("remove")
def snapshot_remove(name: str) -> None:
    """Remove a snapshot from the store."""
    store = _store()
    with store.lock("snapshot remove"):
        store.remove(name)
    log.info("removed snapshot %s", name)


@snapshot_app.command("verify")
def snapshot_verify(name: Annotated[str | None, typer.Argument()] = None,
                    fmt: FormatOpt = None) -> None:
    """Re-check stored checksums; exit code 4 when anything is corrupt."""
    from varreinterp import render
    from varreinterp.errors import StoreError

    chosen = _format(fmt)
    store = _store()
    problems = store.verify(name)
    rows = [{"snapshot": p.snapshot, "problem": p.problem} for p in problems]
    if chosen == "json":
        render.write_jsonl(sys.stdout, rows)
    elif chosen == "tsv":
        render.write_tsv(sys.stdout, ["snapshot", "problem"], rows)
    elif rows:
        render.print_table(sys.stdout, ["snapshot", "problem"], rows, title="Problems")
    checked = 1 if name else len(store.snapshot_names())
    if problems:
        raise StoreError(f"{len(problems)} problem(s) in {checked} snapshot(s) of store "
                         f"{store.root}")
    log.info("%d snapshot(s) verified, no problems", checked)


# ------------------------------------------------------------------------------ annotate
VcfArgs = Annotated[list[Path], typer.Argument(help="Patient VCF, VCF.gz or BCF file(s).")]
SampleOpt = Annotated[list[str] | None, typer.Option(
    "--sample", help="Only these samples (repeatable; default: every sample).")]
ReferenceOpt = Annotated[Path | None, typer.Option(
    "--reference", help="FASTA (bgzip + .fai) to left-align indels and check REF.")]
OutOpt = Annotated[Path | None, typer.Option("-o", "--output",
                                             help="Write here (atomically) instead of stdout.")]


@app.command("annotate")
def annotate_cmd(
    vcfs: VcfArgs,
    snapshot: Annotated[str, typer.Option(help="Snapshot name.")],
    sample: SampleOpt = None,
    reference: ReferenceOpt = None,
    pass_only: Annotated[bool, typer.Option(help="Only FILTER=PASS (or '.') records.")] = False,
    tier: Annotated[list[str] | None, typer.Option(
        help="Only these tiers (repeatable): pathogenic, uncertain, benign, conflicting, "
        "other.")] = None,
    min_stars: Annotated[int | None, typer.Option(min=0, max=4,
                                                  help="Only review stars >= N.")] = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", help="table | tsv | json | vcf | parquet (default: table on a "
        "terminal, tsv when piped)")] = None,
    output: OutOpt = None,
) -> None:
    """What does a snapshot say about these patients' carried variants?"""
    from varreinterp import annotate as core
    from varreinterp import render

    chosen = _format(fmt, ("table", "tsv", "json", "vcf", "parquet"))
    tiers = core.parse_tiers(tier)
    store = _store()
    if chosen == "vcf":
        if len(vcfs) != 1:
            raise UsageError("--format vcf annotates one VCF at a time")
        if sample:
            raise UsageError("--format vcf annotates records, not samples: --sample does not "
                             "apply (every sample column is kept)")
        with render.output_stream(output, binary=True) as fh:
            core.write_annotated_vcf(store, vcfs[0], snapshot, fh, reference_path=reference,
                                     tiers=tiers, min_stars=min_stars, pass_only=pass_only)
        return
    if chosen == "parquet" and output is None:
        raise UsageError("--format parquet needs -o FILE")
    result = core.annotate(store, vcfs, snapshot, samples=sample, reference_path=reference,
                           pass_only=pass_only, tiers=tiers, min_stars=min_stars)
    prov = core.provenance(result.snapshot)
    if chosen in ("tsv", "json", "parquet"):
        _export(result, chosen, output, prov)
        log.info("%s", result.summary())
        return
    _write_frame(result.rows, core.ANNOTATION_COLUMNS, chosen, output, prov,
                 table_columns=["sample", "variant", "zygosity", "gene", "classification",
                                "stars", "conditions"],
                 title=f"Classified variants against {result.snapshot.name}",
                 caption=f"{result.summary()}\n{_provenance_caption(prov)}")
    log.info("%s", result.summary())


MinPriorityOpt = Annotated[str, typer.Option(
    "--min-priority", help="low | medium | high: report changes at or above this.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Everything, down to low priority "
                                      "(same as --min-priority low).")]
ExitCodeOpt = Annotated[bool, typer.Option("--exit-code", help="Exit 1 when any change was "
                                           "reported, 0 when none.")]
_PRIORITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "dim"}


def _min_priority(value: str, show_all: bool) -> Any:
    from varreinterp.diff import Priority, parse_priority

    return Priority.LOW if show_all else parse_priority(value)


def _emit_report(report: Any, columns: list[str], chosen: str, output: Path | None,
                 exit_code: bool) -> int:
    """Write a ReclassificationReport: JSON Lines start with one {"provenance": ...} object."""
    from varreinterp import render

    prov = report.provenance
    if chosen == "json":
        with render.output_stream(output) as fh:
            head: dict[str, Any] = {"provenance": prov, "min_priority": report.min_priority.value,
                                    "changes": len(report.rows)}
            if report.transitions is not None:
                head["transitions"] = report.transitions.to_dict(orient="records")
            fh.write(render.json_line(head))
            for record in report.rows[columns].to_dict(orient="records"):
                fh.write(render.json_line(_clean(record)))
    elif chosen == "tsv":
        with render.output_stream(output) as fh:
            flat = {"tool_version": prov["tool_version"],
                    **{f"from_{k}": v for k, v in prov["from_snapshot"].items()},
                    **{f"to_{k}": v for k, v in prov["to_snapshot"].items()}}
            fh.write("#" + " ".join(f"{k}={v}" for k, v in flat.items()) + "\n")
            report.rows[columns].to_csv(fh, sep="\t", index=False, na_rep="",
                                        lineterminator="\n")
    else:
        a, b = prov["from_snapshot"], prov["to_snapshot"]
        caption = "\n".join([
            *report.per_sample_summary(), report.summary(),
            f"varreinterp {prov['tool_version']}; from {a['snapshot']} ({a['release_date']}, "
            f"sha256 {a['source_sha256'][:12]}) to {b['snapshot']} ({b['release_date']}, "
            f"sha256 {b['source_sha256'][:12]})"])
        table_cols = (["sample"] if "sample" in columns else []) + [
            "priority", "change", "variant", "gene", "before", "after", "stars_before",
            "stars_after"] + (["zygosity"] if "zygosity" in columns else [])
        if report.transitions is not None and len(report.transitions):
            order = ["pathogenic", "conflicting", "uncertain", "benign", "other", "(absent)"]
            cells = {(r["tier_before"], r["tier_after"]): r["variants"]
                     for r in report.transitions.to_dict(orient="records")}
            matrix = [{"from \\ to": a, **{b: cells.get((a, b), "") for b in order}}
                      for a in order if any((a, b) in cells for b in order)]
            render.print_table(sys.stdout, ["from \\ to", *order], matrix,
                               title="Tier transitions, variants (all priorities)")
        _write_frame(report.rows, columns, "table", output, prov, title="Reclassifications",
                     caption=caption, table_columns=table_cols,
                     style_row=lambda r: _PRIORITY_STYLE.get(str(r.get("priority"))))
    log.info("%s", report.summary())
    return 1 if exit_code and len(report.rows) else 0


@app.command("diff")
def diff_cmd(
    vcfs: VcfArgs,
    from_: Annotated[str, typer.Option("--from", help="Snapshot the patient was reported "
                                       "against.")],
    to: Annotated[str, typer.Option("--to", help="Snapshot to compare with (e.g. newest).")],
    sample: SampleOpt = None,
    reference: ReferenceOpt = None,
    min_priority: MinPriorityOpt = "medium",
    show_all: AllOpt = False,
    fmt: FormatOpt = None,
    output: OutOpt = None,
    exit_code: ExitCodeOpt = False,
) -> int:
    """What changed for these patients' carried variants between two snapshots?"""
    from varreinterp import diff as core

    chosen = _format(fmt)
    report = core.diff_patients(_store(), vcfs, from_, to, samples=sample,
                                reference_path=reference,
                                min_priority=_min_priority(min_priority, show_all))
    return _emit_report(report, core.PATIENT_COLUMNS, chosen, output, exit_code)


@snapshot_app.command("diff")
def snapshot_diff_cmd(
    from_: Annotated[str, typer.Argument(metavar="A", help="Older snapshot.")],
    to: Annotated[str, typer.Argument(metavar="B", help="Newer snapshot.")],
    min_priority: MinPriorityOpt = "medium",
    show_all: AllOpt = False,
    fmt: FormatOpt = None,
    output: OutOpt = None,
    exit_code: ExitCodeOpt = False,
) -> int:
    """Every classified variant whose classification changed between two snapshots."""
    from varreinterp import diff as core

    chosen = _format(fmt)
    report = core.diff_snapshots(_store(), from_, to, _min_priority(min_priority, show_all))
    return _emit_report(report, core.VARIANT_COLUMNS, chosen, output, exit_code)


@app.command("history")
def history_cmd(
    vcfs: VcfArgs,
    sample: SampleOpt = None,
    reference: ReferenceOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also variants whose classification "
                                           "never changed.")] = False,
    fmt: FormatOpt = None,
    output: OutOpt = None,
) -> None:
    """Each carried variant's classification in every stored snapshot, oldest first."""
    from varreinterp import history as core
    from varreinterp import render

    chosen = _format(fmt)
    result = core.history(_store(), vcfs, samples=sample, reference_path=reference,
                          show_all=show_all)
    names = [s.name for s in result.snapshots]
    if chosen != "table":
        prov = {"tool": "varreinterp", "tool_version": __version__,
                "snapshots": ",".join(names)}
        _write_frame(result.rows, core.HISTORY_COLUMNS, chosen, output, prov, title="",
                     caption="")
        return
    wide: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in result.rows.to_dict(orient="records"):
        key = (r["sample"], r["chrom"], r["pos"], r["ref"], r["alt"])
        row = wide.setdefault(key, {"sample": r["sample"], "variant": render.variant_label(r),
                                    "gene": r["gene"]})
        row[r["snapshot"]] = f"{r['classification']} {render.stars(r['stars'])}"
    with render.output_stream(output) as fh:
        render.print_table(fh, ["sample", "variant", "gene", *names], list(wide.values()),
                           title="Classification history (oldest snapshot first)",
                           caption=f"{len(wide)} variant call(s); varreinterp {__version__}")


@contextlib.contextmanager
def _progress(label: str, total: int) -> Iterator[Any]:
    """A rich progress bar on a terminal (stderr) for long runs; nothing under cron."""
    if not sys.stderr.isatty() or total < 2:
        yield None
        return
    from rich.progress import Progress

    with Progress(transient=True, console=_stderr_console()) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, _total: bar.update(task, completed=done)


def _stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


# ------------------------------------------------------------------------------ cohort
cohort_app = typer.Typer(help="Register patients once; their carried alleles go into the "
                         "store's cohort index.", no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")


@cohort_app.command("add")
def cohort_add_cmd(
    vcfs: VcfArgs,
    sample: SampleOpt = None,
    patient_id: Annotated[str | None, typer.Option(
        "--patient-id", help="Patient identifier (one sample only; default: sample name).")
    ] = None,
    baseline: Annotated[str | None, typer.Option(
        help="Snapshot the patient was last reported against (default: newest of its "
        "assembly).")] = None,
    reference: ReferenceOpt = None,
) -> None:
    """Register each sample of the VCF(s) as a patient and index its carried alleles."""
    from varreinterp import cohort

    with _progress("Registering", len(vcfs)) as advance:
        outcomes = cohort.cohort_add(_store(), vcfs, samples=sample, patient_id=patient_id,
                                     baseline=baseline, reference_path=reference,
                                     progress=advance)
    # One line per patient on a terminal; under cron only the summary line.
    per_patient = logging.INFO if sys.stderr.isatty() or len(outcomes) <= 20 else logging.DEBUG
    for o in outcomes:
        what = {"added": "registered", "unchanged": "already registered with this file, "
                "nothing to do", "re-ingested": "VCF changed: re-ingested",
                "relocated": "already registered (same content): source path updated"
                }[o.status]
        log.log(per_patient, "patient %s (sample %s): %s (%d alleles)", o.patient_id, o.sample,
                what, o.alleles)
    counts = {s: sum(o.status == s for o in outcomes)
              for s in ("added", "re-ingested", "unchanged", "relocated")}
    log.info("cohort add: %d sample(s): %d registered, %d re-ingested, %d already registered"
             "%s", len(outcomes), counts["added"], counts["re-ingested"],
             counts["unchanged"] + counts["relocated"],
             f" ({counts['relocated']} with a new source path)" if counts["relocated"] else "")


_COHORT_COLUMNS = ["patient", "sample", "assembly", "reviewed_snapshot", "newest_snapshot",
                   "waiting_changes", "alleles", "source"]


@cohort_app.command("list")
def cohort_list_cmd(fmt: FormatOpt = None) -> None:
    """List registered patients."""
    from varreinterp import cohort

    chosen = _format(fmt)
    rows = [{"patient": p.patient_id, "sample": p.sample, "assembly": p.assembly,
             "reviewed_snapshot": p.reviewed_snapshot, "baseline_snapshot": p.baseline_snapshot,
             "alleles": p.alleles, "source": p.source}
            for p in sorted(cohort.Registry.load(_store()).patients.values(),
                            key=lambda p: p.patient_id)]
    cols = ["patient", "sample", "assembly", "reviewed_snapshot", "baseline_snapshot",
            "alleles", "source"]
    _rows_out(rows, cols, chosen, "Cohort")


def _rows_out(rows: list[dict[str, Any]], cols: list[str], chosen: str, title: str) -> None:
    from varreinterp import render

    if chosen == "json":
        render.write_jsonl(sys.stdout, rows)
    elif chosen == "tsv":
        render.write_tsv(sys.stdout, cols, rows)
    else:
        render.print_table(sys.stdout, cols, rows, title=title,
                           caption=f"{len(rows)} row(s); varreinterp {__version__}")


@cohort_app.command("show")
def cohort_show_cmd(patient: str, fmt: FormatOpt = None) -> None:
    """Show one patient's registration."""
    from dataclasses import asdict

    from varreinterp import cohort, render

    chosen = _format(fmt)
    p = asdict(cohort.Registry.load(_store()).get(patient))
    if chosen == "json":
        sys.stdout.write(render.json_line(p))
    else:
        _rows_out([{"field": k, "value": v} for k, v in p.items()], ["field", "value"],
                  chosen, f"Patient {patient}")


@cohort_app.command("remove")
def cohort_remove_cmd(patient: str) -> None:
    """Remove a patient and its rows of the cohort index."""
    from varreinterp import cohort

    cohort.cohort_remove(_store(), patient)
    log.info("removed patient %s", patient)


@cohort_app.command("status")
def cohort_status_cmd(
    min_priority: MinPriorityOpt = "medium",
    fmt: FormatOpt = None,
) -> None:
    """Patients per assembly, each one's last reviewed snapshot, and the changes waiting
    against the newest snapshot."""
    from varreinterp import cohort

    chosen = _format(fmt)
    rows, _ = cohort.cohort_status(_store(), _min_priority(min_priority, False))
    _rows_out(rows, _COHORT_COLUMNS, chosen, "Cohort status")
    by_assembly: dict[str, int] = {}
    for r in rows:
        by_assembly[r["assembly"]] = by_assembly.get(r["assembly"], 0) + 1
    log.info("%s", ", ".join(f"{n} patient(s) on {a}" for a, n in sorted(by_assembly.items()))
             or "no patients registered")


@app.command("reanalyze")
def reanalyze_cmd(
    to: Annotated[str | None, typer.Option(help="Snapshot to reanalyze against (default: "
                                           "newest of each patient's assembly).")] = None,
    min_priority: MinPriorityOpt = "medium",
    out: Annotated[Path | None, typer.Option(help="Report folder (default: a dated folder "
                                             "under the store's reports/).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Compute and print; write and record "
                                          "nothing.")] = False,
    exit_code: ExitCodeOpt = False,
    fmt: FormatOpt = None,
) -> int:
    """Nightly job: every patient's new changes since the snapshot it was last reviewed
    against; each change is reported once."""
    from varreinterp import cohort

    result = cohort.reanalyze(_store(), to=to, min_priority=_min_priority(min_priority, False),
                              out=out, dry_run=dry_run)
    if dry_run or fmt:
        chosen = _format(fmt)
        prov = {"tool": "varreinterp", "tool_version": __version__,
                "to_snapshot": result.to_snapshot.name}
        _write_frame(result.rows, cohort.REANALYZE_COLUMNS, chosen, None, prov,
                     title="Reanalysis (dry run)" if dry_run else "Reanalysis",
                     caption=result.summary(),
                     table_columns=["patient", "priority", "change", "variant", "gene",
                                    "before", "after", "stars_before", "stars_after"])
    for problem in result.problems:
        log.debug("skipped %s: %s", problem.patient_id, problem.problem)
    log.info("%s", result.summary())
    return 1 if exit_code and len(result.rows) else 0


def _export(result: Any, chosen: str, output: Path | None, prov: dict[str, Any]) -> None:
    """Large annotation outputs are written by DuckDB (COPY) into a private temporary file,
    then renamed into place or streamed to stdout: never half-written."""
    import json
    import shutil
    import tempfile

    from varreinterp import render

    with tempfile.TemporaryDirectory(prefix="varreinterp-out-") as tmp:
        body = Path(tmp) / f"rows.{chosen}"
        extra = ({f"provenance_{k}": v for k, v in prov.items() if k != "snapshot"}
                 if chosen == "json" else None)
        result.export(body, chosen, extra)
        if chosen == "parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(body)
            table = table.replace_schema_metadata({"varreinterp": json.dumps(prov)})
            with render.output_stream(output, binary=True) as fh:
                pq.write_table(table, fh)
            return
        with render.output_stream(output, binary=True) as fh, open(body, "rb") as src:
            if chosen == "tsv":
                fh.write(("#" + " ".join(f"{k}={v}" for k, v in prov.items()) + "\n").encode())
            shutil.copyfileobj(src, fh, 4 << 20)  # bytes: no decoding of what DuckDB wrote


def _provenance_caption(prov: dict[str, Any]) -> str:
    return (f"varreinterp {prov['tool_version']}; snapshot {prov['snapshot']} released "
            f"{prov['release_date']} ({prov['assembly']}), source sha256 "
            f"{str(prov['source_sha256'])[:12]}")


def _write_frame(frame: Any, columns: list[str], chosen: str, output: Path | None,
                 prov: dict[str, Any], *, title: str, caption: str,
                 table_columns: list[str] | None = None, style_row: Any = None) -> None:
    """Rows to the chosen format. TSV starts with one '#' provenance line; JSON Lines carry the
    provenance on every row; Parquet in its key-value metadata."""
    import json

    from varreinterp import render

    rows = frame[columns]
    if chosen == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(rows, preserve_index=False)
        table = table.replace_schema_metadata({"varreinterp": json.dumps(prov)})
        with render.output_stream(output, binary=True) as fh:
            pq.write_table(table, fh)
        return
    with render.output_stream(output) as fh:
        if chosen == "tsv":
            fh.write("#" + " ".join(f"{k}={v}" for k, v in prov.items()) + "\n")
            rows.to_csv(fh, sep="\t", index=False, na_rep="", lineterminator="\n")
        elif chosen == "json":
            extra = {f"provenance_{k}": v for k, v in prov.items() if k != "snapshot"}
            for record in rows.to_dict(orient="records"):
                fh.write(render.json_line({**_clean(record), **extra}))
        else:
            records = [_clean(r) for r in rows.to_dict(orient="records")]
            for r in records:
                r["variant"] = render.variant_label(r)
                for key in ("stars", "stars_before", "stars_after"):
                    if key in r:
                        r[key] = render.stars(r[key])
            render.print_table(fh, table_columns or columns, records, title=title,
                               caption=caption, style_row=style_row)


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    """pandas NaN/NA to None, numpy scalars to Python."""
    import pandas as pd

    out: dict[str, Any] = {}
    for k, v in record.items():
        if v is None or (not isinstance(v, list | dict | str) and pd.isna(v)):
            out[k] = None
        elif hasattr(v, "item"):
            out[k] = v.item()
        else:
            out[k] = v
    return out


# ------------------------------------------------------------------------------ entry point
def _framework_exit(exc: BaseException) -> int | None:
    """typer vendors its own click, so its exceptions are matched by class name."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Exit" in names:
        return int(getattr(exc, "exit_code", 0))
    if "Abort" in names:
        sys.stderr.write("varreinterp: interrupted\n")
        return ExitCode.INTERRUPTED
    if "ClickException" in names and hasattr(exc, "show"):
        exc.show(file=sys.stderr)
        return ExitCode.USAGE
    return None


def run(argv: list[str] | None = None) -> int:
    """Console entry point: the one place exceptions become exit codes."""
    from varreinterp.runinfo import set_command_line

    args = sys.argv[1:] if argv is None else argv
    set_command_line(args)
    debug = "--debug" in args
    try:
        result = app(args=args, prog_name="varreinterp", standalone_mode=False)
        code = int(result) if isinstance(result, int) else ExitCode.OK
        if code == ExitCode.INTERRUPTED:  # typer turns Ctrl-C into a return value
            sys.stderr.write("varreinterp: interrupted\n")
        return code
    except VarreinterpError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"varreinterp: error: {exc.one_line()}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("varreinterp: interrupted\n")
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): not an error of ours.
        sys.stderr.close()
        return ExitCode.OK
    except Exception as exc:  # the last line of defence: one line, traceback only on --debug
        framework_code = _framework_exit(exc)
        if framework_code is not None:
            return framework_code
        if debug:
            import traceback

            traceback.print_exc()
        msg = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"varreinterp: internal error: {type(exc).__name__}: {msg} "
                         "(rerun with --debug for the traceback)\n")
        return ExitCode.INTERNAL
