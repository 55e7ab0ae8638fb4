"""Command line: parse, resolve configuration, call one core function, hand its result to the
output layer (`varreinterp/output/`).

Exceptions become exit codes in exactly one place, `run()`. Heavy modules (duckdb, pyarrow,
pandas, pysam) are imported inside commands so `--help` stays instant."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from varreinterp import __version__
from varreinterp.errors import ExitCode, UsageError, VarreinterpError

if TYPE_CHECKING:
    from varreinterp.changes import Priority
    from varreinterp.output.formats import Format
    from varreinterp.store import Store

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


@dataclass(frozen=True)
class Invocation:
    """What this command line asked for, shared by every command (typer's ctx.obj)."""

    store_option: str | None
    command: str

    def store(self) -> Store:
        from varreinterp.store import Store, default_store_path

        return Store(default_store_path(self.store_option))


def _inv(ctx: typer.Context) -> Invocation:
    obj = ctx.find_root().obj
    assert isinstance(obj, Invocation)
    return obj


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
    ctx: typer.Context,
    store: Annotated[str | None, typer.Option(
        "--store", help="Store directory (else $VARREINTERP_HOME, else "
        "~/.local/share/varreinterp).", envvar=None)] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    from varreinterp.provenance import command_line

    # run() hands the argument list in as ctx.obj: the command line provenance names.
    argv = ctx.obj if isinstance(ctx.obj, list) else None
    ctx.obj = Invocation(store, command_line(argv))
    _setup_logging(debug, quiet)


def _setup_logging(debug: bool, quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("varreinterp: %(levelname)s: %(message)s"))
    log.handlers[:] = [handler]
    log.setLevel(logging.ERROR if quiet else logging.DEBUG if debug else logging.INFO)
    log.propagate = False


def _format(fmt: str | None, *allowed: str) -> Format:
    from varreinterp.output.formats import ROW_FORMATS, Format, resolve_format

    return resolve_format(fmt, [Format(a) for a in allowed] if allowed else ROW_FORMATS)


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
    ctx: typer.Context,
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
    reference: Annotated[Path | None, typer.Option(
        help="FASTA of the release's build: an older variant_summary (no *VCF columns) "
        "needs it to anchor indels (else they are skipped and counted).")] = None,
    max_drop: Annotated[float, typer.Option(
        "--max-drop", min=0, max=100, help="Mark the release suspect when it has more than "
        "this percentage fewer records than the previous release of its lineage.")] = 5.0,
) -> None:
    """Import a classification file as a new immutable snapshot."""
    from varreinterp.snapshots import SourceFormat, add_snapshot, resolve_assembly

    try:
        source_format = SourceFormat(fmt)
    except ValueError:
        raise UsageError(f"--format must be one of {', '.join(f.value for f in SourceFormat)}"
                         ) from None
    result = add_snapshot(
        _inv(ctx).store(), path, name=name, assembly=resolve_assembly(assembly),
        fmt=source_format, mapping_path=mapping, release_date=_parse_date(release_date),
        allow_unknown_terms=allow_unknown_terms, reference_path=reference,
        max_drop_percent=max_drop)
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
                 "uncertain", "benign", "conflicting", "other", "source_file", "source_sha256",
                 "lineage", "state"]


@snapshot_app.command("list")
def snapshot_list(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    """List stored snapshots, oldest release first."""
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    store = _inv(ctx).store()
    snaps = store.snapshots()
    if chosen is Format.JSON:
        write_rows([s.manifest.to_json() for s in snaps], _LIST_COLUMNS, chosen, title="")
        return
    rows = [{**s.manifest.to_json(), **s.manifest.tiers,
             "state": "corrupt manifest" if not s.manifest.is_sealed()
             else f"SUSPECT: {s.manifest.suspect}" if s.manifest.suspect else "ok"}
            for s in snaps]
    rows += [{"name": name, "state": f"unreadable: {error}"}
             for name, error in store.broken().items()]
    if chosen is Format.TABLE:
        for r in rows:
            r["source_sha256"] = str(r["source_sha256"])[:12]
    write_rows(rows, _LIST_COLUMNS, chosen, title=f"Snapshots in {store.root}",
               caption=f"{len(rows)} snapshot(s); varreinterp {__version__}")


@snapshot_app.command("show")
def snapshot_show(ctx: typer.Context, name: str, fmt: FormatOpt = None) -> None:
    """Show one snapshot's manifest: provenance, counts per tier and stars, skipped records."""
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    m = _inv(ctx).store().get(name).manifest.to_json()
    if chosen is Format.JSON:
        write_rows([m], list(m), chosen, title="")
        return
    write_rows([{"field": k, "value": v} for k, v in m.items()], ["field", "value"], chosen,
               title=f"Snapshot {name}")


@snapshot_app.command("remove")
def snapshot_remove(ctx: typer.Context, name: str) -> None:
    """Remove a snapshot from the store."""
    from varreinterp.snapshots import remove_snapshot

    remove_snapshot(_inv(ctx).store(), name)
    log.info("removed snapshot %s", name)


@snapshot_app.command("verify")
def snapshot_verify(ctx: typer.Context, name: Annotated[str | None, typer.Argument()] = None,
                    fmt: FormatOpt = None) -> None:
    """Re-check stored checksums; exit code 4 when anything is corrupt."""
    from varreinterp.errors import StoreError
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    store = _inv(ctx).store()
    problems = store.verify(name)
    rows = [{"snapshot": p.snapshot, "problem": p.problem} for p in problems]
    if rows or chosen is not Format.TABLE:
        write_rows(rows, ["snapshot", "problem"], chosen, title="Problems")
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
    ctx: typer.Context,
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
    from varreinterp.output.formats import Format, output_stream
    from varreinterp.output.results import write_annotation
    from varreinterp.provenance import Provenance

    inv = _inv(ctx)
    chosen = _format(fmt, "table", "tsv", "json", "vcf", "parquet")
    tiers = core.parse_tiers(tier)
    if chosen is Format.VCF:
        if len(vcfs) != 1:
            raise UsageError("--format vcf annotates one VCF at a time")
        if sample:
            raise UsageError("--format vcf annotates records, not samples: --sample does not "
                             "apply (every sample column is kept)")
    if chosen is Format.PARQUET and output is None:
        raise UsageError("--format parquet needs -o FILE")
    store = inv.store()
    snap = store.use(snapshot)
    prov = Provenance.of(inv.command, ("snapshot", snap))
    with store.workdir() as workdir:
        if chosen is Format.VCF:
            from varreinterp.output.vcf import write_annotated_vcf

            vcf = core.vcf_annotation(store, vcfs[0], snapshot, workdir,
                                      reference_path=reference, tiers=tiers,
                                      min_stars=min_stars, pass_only=pass_only)
            with output_stream(output, binary=True) as fh:
                write_annotated_vcf(vcf, fh, prov)
            log.info("%s: %d records written, %d with a classified ALT in %s", vcfs[0],
                     vcf.stats.records, len(vcf.additions), snapshot)
            return
        result = core.annotate(store, vcfs, snapshot, workdir, samples=sample,
                               reference_path=reference, pass_only=pass_only, tiers=tiers,
                               min_stars=min_stars)
        write_annotation(result, chosen, output, prov, workdir)
        log.info("%s", result.summary())
        result.con.close()


MinPriorityOpt = Annotated[str, typer.Option(
    "--min-priority", help="low | medium | high: report changes at or above this.")]
AllOpt = Annotated[bool, typer.Option("--all", help="Everything, down to low priority "
                                      "(same as --min-priority low).")]
ExitCodeOpt = Annotated[bool, typer.Option("--exit-code", help="Exit 1 when any change was "
                                           "reported, 0 when none.")]
PassOnlyOpt = Annotated[bool, typer.Option(
    "--pass-only", help="Only calls whose FILTER is PASS (or '.').")]
CrossLineageOpt = Annotated[bool, typer.Option(
    "--cross-lineage", help="Compare releases of different sources (a ClinVar release with a "
    "lab table): nearly every variant then looks changed.")]
AcceptSuspectOpt = Annotated[bool, typer.Option(
    "--accept-suspect", help="Use a target marked suspect (a release that looks partial).")]


def _min_priority(value: str, show_all: bool) -> Priority:
    from varreinterp.changes import Priority, parse_priority

    return Priority.LOW if show_all else parse_priority(value)


@app.command("diff")
def diff_cmd(
    ctx: typer.Context,
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
    cross_lineage: CrossLineageOpt = False,
    accept_suspect: AcceptSuspectOpt = False,
    pass_only: PassOnlyOpt = False,
) -> int:
    """What changed for these patients' carried variants between two snapshots?"""
    from varreinterp import diff as core
    from varreinterp.output.results import write_changes

    inv = _inv(ctx)
    chosen = _format(fmt)
    store = inv.store()
    with store.workdir() as workdir:
        report = core.diff_patients(store, vcfs, from_, to, workdir, samples=sample,
                                    reference_path=reference,
                                    min_priority=_min_priority(min_priority, show_all),
                                    cross_lineage=cross_lineage,
                                    accept_suspect=accept_suspect, pass_only=pass_only)
    write_changes(report, core.PATIENT_COLUMNS, chosen, output, report.provenance(inv.command))
    log.info("%s", report.summary())
    return ExitCode.CHANGES_FOUND if exit_code and len(report.rows) else ExitCode.OK


@snapshot_app.command("diff")
def snapshot_diff_cmd(
    ctx: typer.Context,
    from_: Annotated[str, typer.Argument(metavar="A", help="Older snapshot.")],
    to: Annotated[str, typer.Argument(metavar="B", help="Newer snapshot.")],
    min_priority: MinPriorityOpt = "medium",
    show_all: AllOpt = False,
    fmt: FormatOpt = None,
    output: OutOpt = None,
    exit_code: ExitCodeOpt = False,
    cross_lineage: CrossLineageOpt = False,
    accept_suspect: AcceptSuspectOpt = False,
) -> int:
    """Every classified variant whose classification changed between two snapshots."""
    from varreinterp import diff as core
    from varreinterp.changes import VARIANT_COLUMNS
    from varreinterp.output.results import write_changes

    inv = _inv(ctx)
    chosen = _format(fmt)
    store = inv.store()
    with store.workdir() as workdir:
        report = core.diff_snapshots(store, from_, to, _min_priority(min_priority, show_all),
                                     workdir, cross_lineage=cross_lineage,
                                     accept_suspect=accept_suspect)
    write_changes(report, VARIANT_COLUMNS, chosen, output, report.provenance(inv.command))
    log.info("%s", report.summary())
    return ExitCode.CHANGES_FOUND if exit_code and len(report.rows) else ExitCode.OK


@app.command("history")
def history_cmd(
    ctx: typer.Context,
    vcfs: VcfArgs,
    sample: SampleOpt = None,
    reference: ReferenceOpt = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also variants whose classification "
                                           "never changed.")] = False,
    fmt: FormatOpt = None,
    output: OutOpt = None,
    source: Annotated[str | None, typer.Option(
        help="Which source's releases: clinvar, clinvar-summary or a lab table's name "
        "(default: the only one of the VCF's build, else clinvar).")] = None,
    pass_only: PassOnlyOpt = False,
) -> None:
    """Each carried variant's classification in every release of one source, oldest first."""
    from varreinterp import history as core
    from varreinterp.output.results import write_history

    inv = _inv(ctx)
    chosen = _format(fmt)
    store = inv.store()
    with store.workdir() as workdir:
        result = core.history(store, vcfs, workdir, samples=sample, reference_path=reference,
                              show_all=show_all, source=source, pass_only=pass_only)
    write_history(result, chosen, output, result.provenance(inv.command))


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    vcf: Annotated[Path, typer.Argument(help="The patient's VCF, VCF.gz or BCF.")],
    from_: Annotated[str, typer.Option("--from", help="Snapshot the patient was reported "
                                       "against.")],
    to: Annotated[str, typer.Option("--to", help="Snapshot to compare with.")],
    sample: Annotated[str | None, typer.Option(
        "--sample", help="The sample (needed when the VCF holds several).")] = None,
    reference: ReferenceOpt = None,
    min_priority: MinPriorityOpt = "medium",
    show_all: AllOpt = False,
    pass_only: PassOnlyOpt = False,
    cross_lineage: CrossLineageOpt = False,
    accept_suspect: AcceptSuspectOpt = False,
    output: OutOpt = None,
) -> None:
    """A self-contained HTML report of one patient's changes, for the chart or a colleague:
    one card per change (gene, HGVS, consequence, conditions, before -> after in plain words,
    review status, conflicts, last evaluated, zygosity, FILTER, why it has its priority, a
    ClinVar link) with the variant's classification over every release of the source."""
    from varreinterp.output.formats import output_stream
    from varreinterp.output.html_report import render_html
    from varreinterp.output.patient_reports import patient_report
    from varreinterp.report import report_data

    inv = _inv(ctx)
    store = inv.store()
    priority = _min_priority(min_priority, show_all)
    with store.workdir() as workdir:
        data = report_data(store, vcf, from_, to, workdir, sample=sample,
                           reference_path=reference, pass_only=pass_only,
                           cross_lineage=cross_lineage, accept_suspect=accept_suspect)
    changes = data.changes
    prov = changes.provenance(inv.command)
    page = patient_report(patient_id=data.sample, sample=data.sample, source_file=vcf.name,
                          rows=changes.rows, from_snapshot=changes.from_snapshot,
                          to_snapshot=changes.to_snapshot, timelines=data.timelines,
                          min_priority=priority, prov=prov,
                          notes=["Only calls whose FILTER is PASS are shown."] if pass_only
                          else ())
    with output_stream(output) as fh:
        fh.write(render_html(page))
    log.info("report for %s: %d change(s) shown at or above %s (%d in all)%s", data.sample,
             len(page.cards), priority.value, len(changes.rows),
             f"; written to {output}" if output else "")


@contextlib.contextmanager
def _progress(label: str, total: int) -> Iterator[Any]:
    """A rich progress bar on a terminal (stderr) for long runs; nothing under cron."""
    if not sys.stderr.isatty() or total < 2:
        yield None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda done, _total: bar.update(task, completed=done)


# ------------------------------------------------------------------------------ cohort
cohort_app = typer.Typer(help="Register patients once; their carried alleles go into the "
                         "store's cohort index.", no_args_is_help=True)
app.add_typer(cohort_app, name="cohort")


@cohort_app.command("add")
def cohort_add_cmd(
    ctx: typer.Context,
    vcfs: VcfArgs,
    sample: SampleOpt = None,
    patient_id: Annotated[str | None, typer.Option(
        "--patient-id", help="Patient identifier (one sample only; default: sample name).")
    ] = None,
    baseline: Annotated[str | None, typer.Option(
        help="Snapshot the patient was last reported against (default: newest of its "
        "build, when the store holds one lineage of that build).")] = None,
    reference: ReferenceOpt = None,
    replace: Annotated[bool, typer.Option(
        help="Re-register a patient from a different file (re-sequenced, re-called); its "
        "newly carried and no longer carried alleles are reported once by the next "
        "reanalyze.")] = False,
    pass_only: Annotated[bool, typer.Option(
        help="Index only FILTER=PASS (or '.') calls.")] = False,
    group: Annotated[str | None, typer.Option(
        help="Cohort group (its gene panel comes from the config file).")] = None,
) -> None:
    """Register each sample of the VCF(s) as a patient and index its carried alleles (all
    files or none)."""
    from varreinterp import cohort

    with _progress("Registering", len(vcfs)) as advance:
        outcomes = cohort.cohort_add(_inv(ctx).store(), vcfs, samples=sample,
                                     patient_id=patient_id, baseline=baseline,
                                     reference_path=reference, replace=replace,
                                     pass_only=pass_only, group=group, progress=advance)
    # One line per patient on a terminal; under cron only the summary line.
    per_patient = logging.INFO if sys.stderr.isatty() or len(outcomes) <= 20 else logging.DEBUG
    words = {"added": "registered", "unchanged": "already registered with this file, nothing "
             "to do", "replaced": "re-registered from a new file (changes in its calls are "
             "reported by the next reanalyze)", "relocated": "already registered (same "
             "content): source path updated", "followed": "now also follows the --baseline "
             "lineage"}
    for o in outcomes:
        log.log(per_patient, "patient %s (sample %s): %s (%d alleles)", o.patient_id, o.sample,
                words[o.status], o.alleles)
    counts = {s: sum(o.status == s for o in outcomes) for s in words}
    log.info("cohort add: %d sample(s): %s", len(outcomes),
             ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing")


def _file_name(path: object) -> str | None:
    """Full paths wrap a terminal table; the name is what a person looks for."""
    return Path(str(path)).name if path else None


@cohort_app.command("list")
def cohort_list_cmd(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    """List registered patients."""
    from varreinterp import cohort
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    rows: list[dict[str, Any]] = [
            {"patient": p.patient_id, "sample": p.sample, "assembly": p.assembly,
             "reviewed": "; ".join(f"{k}: {v}" for k, v in sorted(p.reviewed.items())),
             "alleles": p.alleles, "replaced": bool(p.previous_index_file),
             "group": p.group, "source": p.source}
            for p in sorted(cohort.Registry.load(_inv(ctx).store()).patients.values(),
                            key=lambda p: p.patient_id)]
    if chosen is Format.TABLE:
        for r in rows:
            r["source"] = _file_name(r["source"])
    cols = ["patient", "sample", "assembly", "reviewed", "alleles", "replaced", "group",
            "source"]
    write_rows(rows, cols, chosen, title="Cohort",
               caption=f"{len(rows)} patient(s); varreinterp {__version__}")


@cohort_app.command("show")
def cohort_show_cmd(ctx: typer.Context, patient: str, fmt: FormatOpt = None) -> None:
    """Show one patient's registration."""
    from dataclasses import asdict

    from varreinterp import cohort
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    p = asdict(cohort.Registry.load(_inv(ctx).store()).get(patient))
    if chosen is Format.JSON:
        write_rows([p], list(p), chosen, title="")
    else:
        write_rows([{"field": k, "value": v} for k, v in p.items()], ["field", "value"],
                   chosen, title=f"Patient {patient}")


@cohort_app.command("remove")
def cohort_remove_cmd(ctx: typer.Context, patient: str) -> None:
    """Remove a patient and its rows of the cohort index."""
    from varreinterp import cohort

    cohort.cohort_remove(_inv(ctx).store(), patient)
    log.info("removed patient %s", patient)


_STATUS_COLUMNS = ["patient", "lineage", "reviewed_snapshot", "target_snapshot", "state",
                   "high", "medium", "low", "reason", "source"]


@cohort_app.command("status")
def cohort_status_cmd(
    ctx: typer.Context,
    fmt: FormatOpt = None,
) -> int:
    """Each patient's state on each lineage it follows: up to date, waiting (with the changes
    waiting, by priority) or failing (with the reason). Exit 6 when any patient is failing."""
    from varreinterp.output.formats import Format, write_rows
    from varreinterp.reanalyze import cohort_status

    chosen = _format(fmt)
    rows = cohort_status(_inv(ctx).store())
    if chosen is Format.TABLE:
        for r in rows:
            r["source"] = _file_name(r["source"])
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(states.items()))
    write_rows(rows, _STATUS_COLUMNS if chosen is not Format.JSON else list(rows[0]) if rows
               else _STATUS_COLUMNS, chosen, title="Cohort status",
               caption=f"{summary or 'no patients registered'}; varreinterp {__version__}")
    log.info("%s", summary or "no patients registered")
    return ExitCode.PARTIAL if states.get("failing") else ExitCode.OK


@app.command("reanalyze")
def reanalyze_cmd(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option(help="Snapshot to reanalyze against (default: the "
                                           "newest of each lineage a patient follows).")] = None,
    min_priority: MinPriorityOpt = "medium",
    report_dir: Annotated[Path | None, typer.Option(
        "--report-dir", "--out", help="Report folder; may hold {date}, {snapshot} and {run_id} "
        "(default: a dated folder under the store's reports/).")] = None,
    dry_run: Annotated[bool, typer.Option(help="Compute and print; write and record "
                                          "nothing.")] = False,
    exit_code: ExitCodeOpt = False,
    allow_backwards: Annotated[bool, typer.Option(
        help="Allow a --to older than a patient's reviewed snapshot.")] = False,
    accept_suspect: Annotated[bool, typer.Option(
        help="Use a target marked suspect (a release that looks partial).")] = False,
    fmt: FormatOpt = None,
) -> int:
    """Nightly job: every patient's new changes since the snapshot it was last reviewed
    against, along each lineage it follows; each change is delivered once. Exit 6 when any
    patient could not be reanalyzed (listed on stderr and in run.json)."""
    from varreinterp.output.results import write_reanalysis
    from varreinterp.reanalyze import reanalyze

    inv = _inv(ctx)
    result = reanalyze(inv.store(), to=to, min_priority=_min_priority(min_priority, False),
                       out=report_dir, dry_run=dry_run, command=inv.command,
                       allow_backwards=allow_backwards, accept_suspect=accept_suspect,
                       changes_code=exit_code)
    if dry_run or fmt:
        write_reanalysis(result, _format(fmt), result.provenance(inv.command), dry_run)
    log.info("%s", result.summary())
    return result.exit_code(exit_code)


# ------------------------------------------------------------------------------ entry point
class _Signals:
    """SIGINT and SIGTERM end a command as an interrupt: the first one raises KeyboardInterrupt
    in the main thread, so every `finally` runs (staging, working folders, half-written outputs
    and the lock are cleaned up), and the exit code is 128 + the signal. DuckDB turns the
    KeyboardInterrupt raised inside a query into its own error, so the signal is remembered
    here rather than read from the exception. Later signals are only remembered: the cleanup
    must finish."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)

    def restore(self) -> None:
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is None:
            self.received = signum
            raise KeyboardInterrupt

    def exit_code(self) -> int:
        import signal

        if self.received == signal.SIGTERM:
            return ExitCode.TERMINATED
        return ExitCode.INTERRUPTED


def _framework_exit(exc: BaseException) -> int | None:
    """typer vendors its own click, so its exceptions are matched by class name."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Exit" in names:
        return int(getattr(exc, "exit_code", 0))
    if "Abort" in names:
        return ExitCode.INTERRUPTED
    if "ClickException" in names and hasattr(exc, "show"):
        exc.show(file=sys.stderr)
        return ExitCode.USAGE
    return None


class _ClosedStream:
    """Stands for a standard output the caller closed: writing data to it is an error (exit
    74), never a silent loss; commands that write nothing there run as usual."""

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        from varreinterp.errors import EnvironmentIOError

        raise EnvironmentIOError("<stdout>", "standard output is closed")

    def flush(self) -> None:
        pass


def _broken_pipe() -> int:
    """The reader went away (`| head`): end quietly, as a shell reports SIGPIPE. stdout is
    pointed at /dev/null so the interpreter's final flush does not fail again."""
    import os

    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return ExitCode.BROKEN_PIPE


def run(argv: list[str] | None = None) -> int:
    """Console entry point: the one place exceptions become exit codes."""
    import os

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    signals = _Signals()
    signals.install()
    # Everything we create (store files, DuckDB's own writes, reports) is owner-only: it holds
    # or points at patient data.
    umask = os.umask(0o077)
    closed_stdout = sys.stdout is None
    if closed_stdout:
        sys.stdout = _ClosedStream()
    try:
        code = _run(args, debug, signals)
        try:
            sys.stdout.flush()  # a pipe closed early shows here, not in the interpreter's exit
        except BrokenPipeError:
            code = _broken_pipe()
        except (OSError, ValueError):
            pass  # a stdout closed by the caller: nothing more to say on it
        if signals.received is not None:
            sys.stderr.write("varreinterp: interrupted\n")
            return signals.exit_code()
        return code
    finally:
        signals.restore()
        os.umask(umask)
        if closed_stdout:
            sys.stdout = None


def _run(args: list[str], debug: bool, signals: _Signals) -> int:
    try:
        result = app(args=args, prog_name="varreinterp", standalone_mode=False, obj=list(args))
        code = int(result) if isinstance(result, int) else ExitCode.OK
        if code == ExitCode.INTERRUPTED and signals.received is None:
            signals.received = 2  # typer turned a Ctrl-C into a return value
        return code
    except KeyboardInterrupt:
        signals.received = signals.received or 2
        return ExitCode.INTERRUPTED
    except VarreinterpError as exc:
        if signals.received is not None:
            return signals.exit_code()
        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"varreinterp: error: {exc.one_line()}\n")
        return exc.exit_code
    except BrokenPipeError:
        return _broken_pipe()
    except OSError as exc:
        # The system refused a read or write that no layer mapped (a store owned by someone
        # else, a full disk): an environment error, not a bug.
        if signals.received is not None:
            return signals.exit_code()
        from varreinterp.errors import EnvironmentIOError

        if debug:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"varreinterp: error: {EnvironmentIOError.from_os_error(exc).one_line()}"
                         "\n")
        return ExitCode.IO_ERROR
    except Exception as exc:  # the last line of defence: one line, traceback only on --debug
        if signals.received is not None:
            return signals.exit_code()  # DuckDB reports an interrupted query as its own error
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
