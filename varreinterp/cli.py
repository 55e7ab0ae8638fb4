"""Command line: parse, resolve configuration and snapshot selectors, call one core function, hand
its result to the output layer (`varreinterp/output/`).

Exceptions become exit codes in exactly one place, `run()`. Heavy modules (duckdb, pyarrow,
pandas, pysam) are imported inside commands so `--help` stays instant. Configuration comes from
flag > environment > config file > default (`config.py`); `varreinterp config show` says which."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import logging
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, cast, get_type_hints

import typer

from varreinterp import __version__
from varreinterp.errors import ExitCode, UsageError, VarreinterpError

if TYPE_CHECKING:
    from varreinterp.changes import Priority
    from varreinterp.config import Settings
    from varreinterp.notify import RunSummary
    from varreinterp.output.formats import Format
    from varreinterp.panels import Panel
    from varreinterp.provenance import Provenance
    from varreinterp.store import Snapshot, Store

log = logging.getLogger("varreinterp")
GLOBAL_OPTIONS = ("--store", "--config", "--quiet", "--debug", "--version")

app = typer.Typer(
    name="varreinterp",
    help="Clinical variant reinterpretation: annotate patient VCFs against versioned "
    "classification snapshots (ClinVar releases or a lab's own table) and report what changed "
    "since a patient was last reported. Global options go before the command.",
    epilog="\b\nExample: varreinterp --store /data/vri reanalyze --exit-code",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: no <path> or {VCF...} type placeholders
    context_settings={"help_option_names": ["-h", "--help"]},
)
snapshot_app = typer.Typer(help="Fetch, import, list, inspect, verify, compare and remove "
                           "classification snapshots (ClinVar releases or lab tables).",
                           epilog="\b\nExample: varreinterp snapshot fetch latest",
                           no_args_is_help=True, rich_markup_mode=None)
app.add_typer(snapshot_app, name="snapshot")
cohort_app = typer.Typer(help="Register patients once (their carried alleles go into the "
                         "store's cohort index) and see where each one stands.",
                         epilog="\b\nExample: varreinterp cohort add patients/*.vcf.gz "
                         "--baseline 2024-01-07",
                         no_args_is_help=True, rich_markup_mode=None)
app.add_typer(cohort_app, name="cohort")
config_app = typer.Typer(help="The effective configuration.", no_args_is_help=True,
                         epilog="\b\nExample: varreinterp --config lab.toml config show",
                         rich_markup_mode=None)
app.add_typer(config_app, name="config")


class Invocation:
    """What this command line asked for, shared by every command (typer's ctx.obj): the global
    options and the command itself (for provenance)."""

    def __init__(self, store_option: str | None, config_option: Path | None, command: str):
        self.store_option = store_option
        self.config_option = config_option
        self.command = command
        self._flags: dict[str, object | None] = {}

    def with_flags(self, **flags: object | None) -> Settings:
        """Settings with these command-line values on top (None: not given)."""
        self._flags.update({k.replace("__", "."): v for k, v in flags.items()})
        self.__dict__.pop("settings", None)
        return self.settings

    @cached_property
    def settings(self) -> Settings:
        import os

        from varreinterp.config import Settings, load_config, locate_config

        path = locate_config(self.config_option, os.environ)
        return Settings.resolve(load_config(path, os.environ), os.environ,
                                {"store": self.store_option, **self._flags})

    def store(self) -> Store:
        from varreinterp.store import Store

        store = Store(self.settings.store)
        # Readers too: "no such release" in a folder that is no store at all would mislead.
        store.refuse_foreign()
        store.reclaim()  # working folders of killed commands, whatever the command
        return store


def _inv(ctx: typer.Context) -> Invocation:
    obj = ctx.find_root().obj
    assert isinstance(obj, Invocation)
    return obj


def _refuse_overwriting_inputs(ctx: typer.Context, output: Path | None) -> None:
    """-o naming a file this command reads (the patient's VCF, a FASTA, a gene list) would
    replace that input with the report: refuse before reading anything."""
    if output is None or str(output) == "-" or not output.is_file():
        return
    for name, value in ctx.params.items():
        for given in value if isinstance(value, list | tuple) else [value]:
            if name == "output" or not isinstance(given, Path | str) or not given:
                continue
            with contextlib.suppress(OSError):
                if Path(given).is_file() and os.path.samefile(given, output):
                    raise UsageError(f"-o {output} is an input of this command ({given}): "
                                     "refusing to overwrite it; write the output elsewhere")


def _listing(ctx: typer.Context) -> Provenance:
    """The provenance of an output that lists the store or the settings: tool and command."""
    from varreinterp.provenance import Provenance

    return Provenance(_inv(ctx).command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"varreinterp {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    store: Annotated[str | None, typer.Option(
        "--store", metavar="DIR", help="Store directory (else $VARREINTERP_HOME, else the "
        "config file, else ~/.local/share/varreinterp).", envvar=None)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", metavar="FILE", help="Config file (else $VARREINTERP_CONFIG, else "
        "~/.config/varreinterp/config.toml when it exists).")] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr.")] = False,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Show the version and exit.")] = False,
) -> None:
    from varreinterp.provenance import command_line

    # run() hands the argument list in as ctx.obj: the command line provenance names.
    argv = ctx.obj if isinstance(ctx.obj, list) else None
    ctx.obj = Invocation(store, config, command_line(argv))
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


# ------------------------------------------------------------------------------ shared options
FormatOpt = Annotated[str | None, typer.Option(
    "--format", "-f", metavar="FORMAT", help="table | tsv | json (default: table on a terminal, "
    "tsv when piped).")]
VcfArgs = Annotated[list[Path], typer.Argument(metavar="VCF...",
                                               help="Patient VCF, VCF.gz or BCF file(s).")]
SampleOpt = Annotated[list[str] | None, typer.Option(
    "--sample", metavar="NAME", help="Only these samples (repeatable; default: every sample).")]
ReferenceOpt = Annotated[Path | None, typer.Option(
    "--reference", metavar="FASTA", help="FASTA (bgzip + .fai) of the VCF's build to "
    "left-align indels and check REF.")]
OutOpt = Annotated[Path | None, typer.Option(
    "-o", "--output", metavar="FILE", help="Write here (atomically) instead of stdout.")]
MinPriorityOpt = Annotated[str | None, typer.Option(
    "--min-priority", metavar="LEVEL", help="low | medium | high: list changes at or above "
    "this (default: medium, or the config file's).")]
AllOpt = Annotated[bool, typer.Option("--all", help="Everything, down to low priority "
                                      "(same as --min-priority low).")]
ExitCodeOpt = Annotated[bool, typer.Option("--exit-code", help="Exit 1 when any change was "
                                           "reported, 0 when none.")]
PassOnlyOpt = Annotated[bool, typer.Option(
    "--pass-only", help="Only calls whose FILTER is PASS (or '.').")]
SchedulerOpt = Annotated[str | None, typer.Option(
    "--scheduler", metavar="ADDRESS", help="Run the cohort work on this Dask scheduler "
    "(tcp://host:8786); every worker must see the store at the same path.")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", metavar="N", help="Worker processes of the local cluster (default: one per "
    "core when the work is large enough, else this process).")]
CrossLineageOpt = Annotated[bool, typer.Option(
    "--cross-lineage", help="Compare releases of different sources (a ClinVar release with a "
    "lab table): nearly every variant then looks changed.")]
AcceptSuspectOpt = Annotated[bool, typer.Option(
    "--accept-suspect", help="Use a target marked suspect (a release that looks partial).")]
GenesOpt = Annotated[str | None, typer.Option(
    "--genes", metavar="GENES", help="Only these genes: a file (one symbol per line), a list "
    "(BRCA1,BRCA2), acmg-sf (the ACMG secondary-findings list) or a panel of the config "
    "file.")]
RegionsOpt = Annotated[Path | None, typer.Option(
    "--regions", metavar="BED", help="Only variants in these regions (BED).")]


def _priority(inv: Invocation, value: str | None, show_all: bool = False) -> Priority:
    from varreinterp.changes import Priority

    if show_all:
        if value is not None:
            raise UsageError(f"--all lists every change: --min-priority {value} would not "
                             "apply; give one of them")
        return Priority.LOW
    return inv.with_flags(min_priority=value).min_priority


def _refuse_unknown_symbols(panels: list[Panel | None], snapshots: list[Snapshot]) -> None:
    """A symbol no compared release knows is a typo that would empty the panel silently
    (a counselor would read "no change in BRAC1"): exit 2 with a suggestion."""
    from varreinterp.panels import check_known_symbols as check

    check(panels, snapshots)


def _panel(inv: Invocation, genes: str | None, regions: Path | None) -> Panel | None:
    """--genes naming a panel of the config file, or a file, list or built-in list; with
    --regions, the two intersect."""
    from varreinterp.panels import Panel, build_panel

    spec = inv.settings.panels.get(genes) if genes else None
    if spec is None:
        return build_panel(genes=genes, regions=regions)
    panel = Panel.from_parts(spec.name, spec.genes or None, spec.regions, spec.genes_file)
    if regions is not None:
        other = build_panel(regions=regions)
        assert other is not None
        panel = panel.intersect(other)
    return panel


def _warn_if_stale(inv: Invocation, store: Store, lineages: set[str]) -> list[str]:
    """One warning per lineage whose newest release is older than stale_after_days."""
    from varreinterp.snapshots import stale_lineages

    limit = inv.settings.stale_after_days
    found = stale_lineages(store, lineages, limit)
    for snap, age in found:
        log.warning("the newest %s release (%s, %s) is %d days old, more than "
                    "stale_after_days %d: fetch a newer one (varreinterp snapshot fetch)",
                    snap.lineage, snap.name, snap.manifest.release_date, age, limit)
    return [f"{snap.lineage}: {snap.name} is {age} days old" for snap, age in found]


def _vcf_build(vcf: Path) -> str | None:
    """The build a VCF's header declares, to resolve selectors like `latest` (None when the
    header cannot tell or cannot be read: the command's own read reports that)."""
    from varreinterp.patient_vcf import peek_assembly

    try:
        found = peek_assembly(vcf)
    except VarreinterpError:
        return None
    return found.value if found else None


def _resolve(store: Store, selector: str, *, build: str | None = None,
             lineage: str | None = None, what: str = "snapshot") -> Snapshot:
    from varreinterp.selectors import resolve

    return resolve(store, selector, build=build, lineage=lineage, what=what)


def _stored_name(store: Store, text: str | None) -> bool:
    """`text` names a stored snapshot and cannot be read as a selector (a store written by an
    older version may hold a snapshot called `latest`: the resolver refuses that ambiguity)."""
    from varreinterp.selectors import reads_as_selector

    return text is not None and store.exists(text) and not reads_as_selector(text)


def _pair(store: Store, old: str, new: str | None, build: str | None) -> tuple[str, str]:
    """--from / --to selectors: --to defaults to the latest of --from's lineage and build."""
    target = None
    if new is not None and _stored_name(store, new):
        target = store.get(new)
    a = _resolve(store, old, build=build or (target.manifest.assembly if target else None),
                 lineage=target.lineage if target else None, what="--from")
    b = target or _resolve(store, new or "latest", build=a.manifest.assembly,
                           lineage=a.lineage, what="--to")
    return a.name, b.name


FromOpt = Annotated[str, typer.Option("--from", metavar="SNAPSHOT", help="Snapshot the patient "
                                      "was reported against (a name or selector).")]
ToOpt = Annotated[str | None, typer.Option("--to", metavar="SNAPSHOT", help="Snapshot to compare "
                                           "with (default: the latest of --from's source and "
                                           "build).")]


OldArg = Annotated[str, typer.Argument(metavar="OLD", help="Older snapshot (a name or selector).")]
NewArg = Annotated[str | None, typer.Argument(metavar="[NEW]", help="Newer snapshot (default: the "
                                              "latest of OLD's source and build).")]


@dataclass(frozen=True)
class ChangeQuery:
    """The options of every command that lists one patient file's changes (diff, report)."""

    from_: FromOpt
    to: ToOpt = None
    reference: ReferenceOpt = None
    min_priority: MinPriorityOpt = None
    show_all: AllOpt = False
    genes: GenesOpt = None
    regions: RegionsOpt = None
    pass_only: PassOnlyOpt = False
    cross_lineage: CrossLineageOpt = False
    accept_suspect: AcceptSuspectOpt = False

    def resolve(self, inv: Invocation, vcf: Path | None
                ) -> tuple[Store, str, str, Panel | None, Priority]:
        """The store, both snapshots' names, the panel and the priority floor, after refusing
        gene symbols neither snapshot knows and warning when the target is not the latest."""
        priority = _priority(inv, self.min_priority, self.show_all)  # a usage error first
        store = inv.store()
        a, b = _pair(store, self.from_, self.to, _vcf_build(vcf) if vcf else None)
        panel = _panel(inv, self.genes, self.regions)
        _refuse_unknown_symbols([panel], [store.use(a), store.use(b)])
        _warn_if_stale(inv, store, {store.get(b).lineage})
        return store, a, b, panel, priority


@dataclass(frozen=True)
class Listing:
    """Where and how a command lists its rows."""

    fmt: FormatOpt = None
    output: OutOpt = None

    def format(self) -> Format:
        return _format(self.fmt)


def _with_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Typer has no option groups: a parameter typed with an options dataclass is shown to typer
    as that dataclass's fields (keyword-only, in order) and handed to the command built."""
    hints = get_type_hints(command, include_extras=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type, list[str]]] = {}
    for p in inspect.signature(command).parameters.values():
        kind = hints[p.name]
        if not dataclasses.is_dataclass(kind):
            params.append(p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=kind))
            continue
        assert isinstance(kind, type)
        inner = get_type_hints(kind, include_extras=True)
        names = [f.name for f in dataclasses.fields(kind)]
        groups[p.name] = (kind, names)
        params += [inspect.Parameter(
            f.name, inspect.Parameter.KEYWORD_ONLY, annotation=inner[f.name],
            default=(inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default))
            for f in dataclasses.fields(kind)]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        for name, (kind, names) in groups.items():
            kwargs[name] = kind(**{n: kwargs.pop(n) for n in names})
        return command(**kwargs)

    wrapper.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        params, return_annotation=hints.get("return", inspect.Signature.empty))
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


# ------------------------------------------------------------------------------ snapshot
@snapshot_app.command("add", epilog="\b\nExample: varreinterp snapshot add "
                      "clinvar_20240107.vcf.gz")
def snapshot_add(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="ClinVar VCF, variant_summary, "
                                         "or a lab table.")],
    name: Annotated[str | None, typer.Option(metavar="NAME", help="Snapshot name (default: "
                                             "source, assembly and release date).")] = None,
    assembly: Annotated[str | None, typer.Option(metavar="BUILD", help="GRCh37 or GRCh38 "
                                                 "(default: from the file's header).")] = None,
    fmt: Annotated[str, typer.Option("--format", "-f", metavar="KIND", help="auto | "
                                     "clinvar-vcf | variant-summary | table")] = "auto",
    mapping: Annotated[Path | None, typer.Option(metavar="TOML", help="File describing a lab "
                                                 "table's columns and terms.")] = None,
    release_date: Annotated[str | None, typer.Option(
        metavar="YYYY-MM-DD", help="Release date when the file does not carry one.")] = None,
    allow_unknown_terms: Annotated[bool, typer.Option(
        help="Import unknown classification terms as tier 'other' (counted) instead of "
        "failing.")] = False,
    reference: Annotated[Path | None, typer.Option(
        metavar="FASTA", help="FASTA of the release's build: indels are left-aligned and REF "
        "checked as for patients (without it, an indel stored right-shifted is counted as "
        "not_left_aligned and matches only a call spelled the same way); an older "
        "variant_summary (no *VCF columns) needs it to anchor indels.")] = None,
    max_drop: Annotated[float, typer.Option(
        "--max-drop", min=0, max=100, metavar="PERCENT", help="Mark the release suspect when "
        "it has more than this percentage fewer records than the previous release of its "
        "source.")] = 5.0,
) -> None:
    """Import a classification file (a ClinVar VCF release, a ClinVar variant_summary, or a
    lab's own table described by a TOML mapping) as a new immutable, checksummed snapshot.
    Adding content already stored is a no-op; a release much smaller than the previous one of
    its source is stored but marked suspect."""
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
    _log_added(path, result.snapshot, result.already_stored)


def _log_added(source: object, snap: Snapshot, already: bool) -> None:
    m = snap.manifest
    if already:
        log.info("%s is already stored as snapshot %s (same content); nothing to do", source,
                 m.name)
        return
    from varreinterp.importers.common import STORED_AS_GIVEN

    skipped = ", ".join(f"{k}={v}" for k, v in sorted(m.skipped.items())
                        if k not in STORED_AS_GIVEN) or "none"
    given = ", ".join(f"{k}={v}" for k, v in sorted(m.skipped.items()) if k in STORED_AS_GIVEN)
    log.info("added snapshot %s: %d records (%s), release %s, %s; skipped: %s%s", m.name,
             m.records, ", ".join(_TIER_WORDS.get(k, "{k} {v}").format(k=k, v=v)
                                  for k, v in m.tiers.items() if v), m.release_date,
             m.assembly, skipped, f"; stored as given: {given}" if given else "")


# A record without a germline class (one with only ClinVar's oncogenicity or somatic impact
# axes, or none) is stored but no command reports or compares it.
_TIER_WORDS = {"none": "{v} without a germline class, not reported"}


@snapshot_app.command("fetch", epilog="\b\nExample: varreinterp snapshot fetch --assembly GRCh38 "
                      "--release latest")
def snapshot_fetch(
    ctx: typer.Context,
    assembly: Annotated[str, typer.Option(metavar="BUILD", help="GRCh37 or GRCh38.")] = "GRCh38",
    release: Annotated[str, typer.Option(metavar="WHEN", help="latest, or a release date "
                                         "YYYY-MM-DD (a month YYYY-MM for "
                                         "variant-summary).")] = "latest",
    kind: Annotated[str, typer.Option(metavar="KIND", help="vcf | variant-summary")] = "vcf",
    mirror: Annotated[str | None, typer.Option(
        metavar="URL", help="Base URL laid out like NCBI's pub/clinvar/ (default: NCBI, or "
        "the config file's fetch.mirror).")] = None,
    timeout: Annotated[float | None, typer.Option(
        metavar="SECONDS", help="Seconds without progress before a try fails.")] = None,
    max_drop: Annotated[float, typer.Option("--max-drop", min=0, max=100, metavar="PERCENT",
                                            help="As for snapshot add.")] = 5.0,
) -> None:
    """Download a ClinVar release from NCBI (or a mirror), check its md5, and import it as a
    snapshot; a no-op when that release is already stored. An interrupted download resumes.
    HTTPS_PROXY, NO_PROXY and a CA bundle (config fetch.ca_bundle) are honoured; progress is
    shown only on a terminal."""
    from varreinterp.fetch import FetchOptions, ReleaseKind
    from varreinterp.snapshots import fetch_snapshot, resolve_assembly

    inv = _inv(ctx)
    settings = inv.with_flags(fetch__mirror=mirror, fetch__timeout=timeout)
    build = resolve_assembly(assembly)
    assert build is not None
    try:
        ReleaseKind(kind)
    except ValueError:
        raise UsageError(f"--kind must be vcf or variant-summary, not {kind!r}") from None
    options = FetchOptions(timeout=settings.fetch_timeout, ca_bundle=settings.ca_bundle)
    with _byte_progress("Downloading") as progress:
        result = fetch_snapshot(inv.store(), assembly=build, release=release, kind=kind,
                                mirror=settings.mirror, options=options, progress=progress,
                                max_drop_percent=max_drop)
    _log_added(result.url, result.snapshot, result.already_stored)


_LIST_COLUMNS = ["name", "assembly", "release_date", "source_kind", "records", "pathogenic",
                 "uncertain", "benign", "conflicting", "other", "source_file", "source_sha256",
                 "lineage", "state"]


@snapshot_app.command("list", epilog="\b\nExample: varreinterp snapshot list --format tsv")
def snapshot_list(ctx: typer.Context, fmt: FormatOpt = None) -> int:
    """List stored snapshots by build and release date, with their source (lineage) and state:
    ok, SUSPECT (a release that looks partial), or damaged (exit 4)."""
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    store = _inv(ctx).store()
    snaps = store.snapshots()
    broken = store.broken()
    rows = [{**s.manifest.to_json(), **s.manifest.tiers,
             "state": "corrupt manifest" if not s.manifest.is_sealed()
             else f"SUSPECT: {s.manifest.suspect}" if s.manifest.suspect else "ok"}
            for s in snaps]
    rows += [{"name": name, "state": f"unreadable: {error}"} for name, error in broken.items()]
    if chosen is Format.JSON:
        write_rows(rows, _LIST_COLUMNS, chosen, title="", prov=_listing(ctx))
    else:
        if chosen is Format.TABLE:
            for r in rows:
                r["source_sha256"] = str(r.get("source_sha256") or "")[:12]
        write_rows(rows, _LIST_COLUMNS, chosen, title=f"Snapshots in {store.root}",
                   caption=f"{len(rows)} snapshot(s)", prov=_listing(ctx))
    damaged = sorted([*broken, *(s.name for s in snaps if not s.manifest.is_sealed())])
    if damaged:
        from varreinterp.errors import StoreError

        detail = next(iter(broken.values()), "manifest checksum mismatch")
        raise StoreError(f"{len(damaged)} snapshot(s) cannot be trusted ({', '.join(damaged)}: "
                         f"{detail}); see `snapshot verify`")
    return ExitCode.OK


@snapshot_app.command("show", epilog="\b\nExample: varreinterp snapshot show latest:GRCh38")
def snapshot_show(ctx: typer.Context,
                  name: Annotated[str, typer.Argument(metavar="SNAPSHOT")],
                  fmt: FormatOpt = None) -> None:
    """One snapshot's manifest: provenance, counts per tier and stars, skipped records. The
    snapshot may be named by a selector: latest, latest:GRCh38, a date or month, previous."""
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    store = _inv(ctx).store()
    m = store.get(_resolve(store, name).name).manifest.to_json()
    if chosen is Format.JSON:
        write_rows([m], list(m), chosen, title="", prov=_listing(ctx))
        return
    write_rows([{"field": k, "value": v} for k, v in m.items()], ["field", "value"], chosen,
               title=f"Snapshot {m['name']}", prov=_listing(ctx))


@snapshot_app.command("remove", epilog="\b\nExample: varreinterp snapshot remove "
                      "clinvar-GRCh38-2024-01-07")
def snapshot_remove(ctx: typer.Context,
                    name: Annotated[str, typer.Argument(metavar="SNAPSHOT")]) -> None:
    """Remove a snapshot from the store; refused while a patient was last reviewed against it
    (reanalyze moves them forward first)."""
    from varreinterp.snapshots import remove_snapshot

    store = _inv(ctx).store()
    target = _resolve(store, name).name
    remove_snapshot(store, target)
    log.info("removed snapshot %s", target)


@snapshot_app.command("verify", epilog="\b\nExample: varreinterp snapshot verify")
def snapshot_verify(ctx: typer.Context,
                    name: Annotated[str | None, typer.Argument(metavar="[SNAPSHOT]")] = None,
                    fmt: FormatOpt = None) -> None:
    """Re-check stored checksums (every snapshot, or one); exit code 4 when anything is
    corrupt."""
    from varreinterp.errors import StoreError
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    store = _inv(ctx).store()
    target = name if _stored_name(store, name) else _resolve(store, name).name if name else None
    problems = store.verify(target)
    rows = [{"snapshot": p.snapshot, "problem": p.problem} for p in problems]
    if rows or chosen is not Format.TABLE:
        write_rows(rows, ["snapshot", "problem"], chosen, title="Problems", prov=_listing(ctx))
    checked = 1 if target else len(store.snapshot_names())
    if problems:
        raise StoreError(f"{len(problems)} problem(s) in {checked} snapshot(s) of store "
                         f"{store.root}")
    log.info("%d snapshot(s) verified, no problems", checked)


@snapshot_app.command("diff", epilog="\b\nExample: varreinterp snapshot diff 2024-01 latest --all")
@_with_options
def snapshot_diff_cmd(
    ctx: typer.Context,
    old: OldArg,
    new: NewArg = None,
    min_priority: MinPriorityOpt = None,
    show_all: AllOpt = False,
    listing: Listing = Listing(),
    exit_code: ExitCodeOpt = False,
    cross_lineage: CrossLineageOpt = False,
    accept_suspect: AcceptSuspectOpt = False,
) -> int:
    """Every classified variant whose classification or review changed between two
    snapshots, most urgent first, with a matrix of the tier transitions."""
    from varreinterp import diff as core
    from varreinterp.changes import VARIANT_COLUMNS
    from varreinterp.output.results import write_changes

    inv = _inv(ctx)
    chosen = listing.format()
    store = inv.store()
    a, b = _pair(store, old, new, None)
    with store.workdir() as workdir:
        report = core.diff_snapshots(store, a, b, _priority(inv, min_priority, show_all),
                                     workdir, cross_lineage=cross_lineage,
                                     accept_suspect=accept_suspect)
    write_changes(report, VARIANT_COLUMNS, chosen, listing.output,
                  report.provenance(inv.command))
    log.info("%s", report.summary())
    return ExitCode.CHANGES_FOUND if exit_code and len(report.rows) else ExitCode.OK


# ------------------------------------------------------------------------------ annotate, diff
@app.command("annotate", epilog="\b\nExample: varreinterp annotate patient.vcf.gz --snapshot "
             "latest --genes acmg-sf")
def annotate_cmd(
    ctx: typer.Context,
    vcfs: VcfArgs,
    snapshot: Annotated[str, typer.Option(metavar="SNAPSHOT", help="Snapshot name or selector "
                                          "(latest, a date...).")] = "latest",
    sample: SampleOpt = None,
    reference: ReferenceOpt = None,
    pass_only: PassOnlyOpt = False,
    tier: Annotated[list[str] | None, typer.Option(
        metavar="TIER", help="Only these tiers (repeatable): pathogenic, uncertain, benign, "
        "conflicting, other.")] = None,
    min_stars: Annotated[int | None, typer.Option(min=0, max=4, metavar="N",
                                                  help="Only review stars >= N.")] = None,
    genes: GenesOpt = None,
    regions: RegionsOpt = None,
    fmt: Annotated[str | None, typer.Option(
        "--format", "-f", metavar="FORMAT", help="table | tsv | json | vcf | parquet (default: "
        "table on a terminal, tsv when piped)")] = None,
    output: OutOpt = None,
) -> None:
    """What does a snapshot say about these patients' carried variants? One row per sample and
    classified variant, most severe first; `--format vcf` copies the VCF with VRI_* INFO
    fields added."""
    from varreinterp import annotate as core
    from varreinterp.output.formats import Format, output_stream
    from varreinterp.output.results import write_annotation
    from varreinterp.provenance import Provenance

    inv = _inv(ctx)
    _refuse_overwriting_inputs(ctx, output)
    chosen = _format(fmt, "table", "tsv", "json", "vcf", "parquet")
    tiers = core.parse_tiers(tier)
    if chosen is Format.VCF:
        if len(vcfs) != 1:
            raise UsageError("--format vcf annotates one VCF at a time")
        if sample:
            raise UsageError("--format vcf annotates records, not samples: --sample does not "
                             "apply (every sample column is kept)")
        if genes or regions:
            raise UsageError("--format vcf annotates every record: --genes/--regions do not "
                             "apply")
    if chosen is Format.PARQUET and output is None:
        raise UsageError("--format parquet needs -o FILE")
    store = inv.store()
    snap = store.use(_resolve(store, snapshot, build=_vcf_build(vcfs[0]) if vcfs else None,
                              what="--snapshot").name)
    panel = _panel(inv, genes, regions)
    _refuse_unknown_symbols([panel], [snap])
    _warn_if_stale(inv, store, {snap.lineage})
    prov = Provenance.of(inv.command, ("snapshot", snap),
                         facts=panel.facts() if panel else ())
    with store.workdir() as workdir:
        if chosen is Format.VCF:
            from varreinterp.output.vcf import write_annotated_vcf

            vcf = core.vcf_annotation(store, vcfs[0], snap.name, workdir,
                                      reference_path=reference, tiers=tiers,
                                      min_stars=min_stars, pass_only=pass_only)
            with output_stream(output, binary=True) as fh:
                if output is not None and output.suffix in (".gz", ".bgz"):
                    from varreinterp.bgzf import BgzfWriter

                    packed = BgzfWriter(fh)
                    write_annotated_vcf(vcf, cast(IO[bytes], packed), prov)
                    packed.close()
                else:
                    write_annotated_vcf(vcf, fh, prov)
            log.info("%s: %d records written, %d with a classified ALT in %s", vcfs[0],
                     vcf.stats.records, len(vcf.additions), snap.name)
            return
        result = core.annotate(store, vcfs, snap.name, workdir, samples=sample,
                               reference_path=reference, pass_only=pass_only, tiers=tiers,
                               min_stars=min_stars, panel=panel)
        write_annotation(result, chosen, output, prov, workdir)
        log.info("%s", result.summary())
        result.con.close()


@app.command("diff", epilog="\b\nExample: varreinterp diff patient.vcf.gz --from 2023-07 --all")
@_with_options
def diff_cmd(
    ctx: typer.Context,
    vcfs: VcfArgs,
    query: ChangeQuery,
    sample: SampleOpt = None,
    listing: Listing = Listing(),
    exit_code: ExitCodeOpt = False,
) -> int:
    """What changed for these patients' carried variants between two snapshots? Upgrades,
    downgrades, conflicts, new and gone classifications, review changes; most urgent first."""
    from varreinterp import diff as core
    from varreinterp.output.results import write_changes

    inv = _inv(ctx)
    _refuse_overwriting_inputs(ctx, listing.output)
    chosen = listing.format()
    store, a, b, panel, priority = query.resolve(inv, vcfs[0] if vcfs else None)
    with store.workdir() as workdir:
        report = core.diff_patients(store, vcfs, a, b, workdir, samples=sample,
                                    reference_path=query.reference, min_priority=priority,
                                    cross_lineage=query.cross_lineage,
                                    accept_suspect=query.accept_suspect,
                                    pass_only=query.pass_only).restrict(panel)
    prov = report.provenance(inv.command).with_facts(*(panel.facts() if panel else ()))
    write_changes(report, core.PATIENT_COLUMNS, chosen, listing.output, prov)
    log.info("%s", report.summary())
    return ExitCode.CHANGES_FOUND if exit_code and len(report.rows) else ExitCode.OK


@app.command("history", epilog="\b\nExample: varreinterp history patient.vcf.gz --source clinvar")
@_with_options
def history_cmd(
    ctx: typer.Context,
    vcfs: VcfArgs,
    source: Annotated[str | None, typer.Option(
        metavar="SOURCE", help="Which source's releases: clinvar, clinvar-summary or a lab "
        "table's name (default: the only one of the VCF's build, else clinvar).")] = None,
    show_all: Annotated[bool, typer.Option("--all", help="Also variants whose classification "
                                           "never changed.")] = False,
    sample: SampleOpt = None,
    reference: ReferenceOpt = None,
    genes: GenesOpt = None,
    regions: RegionsOpt = None,
    pass_only: PassOnlyOpt = False,
    listing: Listing = Listing(),
) -> None:
    """Each carried variant's classification in every release of one source, oldest first;
    on a terminal, one row per change."""
    from varreinterp import history as core
    from varreinterp.output.results import write_history

    inv = _inv(ctx)
    _refuse_overwriting_inputs(ctx, listing.output)
    chosen = listing.format()
    store = inv.store()
    panel = _panel(inv, genes, regions)
    with store.workdir() as workdir:
        result = core.history(store, vcfs, workdir, samples=sample, reference_path=reference,
                              show_all=show_all, source=source, pass_only=pass_only,
                              panel=panel)
    prov = result.provenance(inv.command).with_facts(*(panel.facts() if panel else ()))
    write_history(result, chosen, listing.output, prov)
    if panel is not None:
        log.info("%d row(s) outside %s", result.outside_panel, panel.summary())


@app.command("report", epilog="\b\nExample: varreinterp report trio.vcf --sample CHILD01 "
             "--from 2024-01-07 -o CHILD01.html")
@_with_options
def report_cmd(
    ctx: typer.Context,
    vcf: Annotated[Path, typer.Argument(metavar="VCF", help="The patient's VCF, VCF.gz or "
                                        "BCF.")],
    query: ChangeQuery,
    sample: Annotated[str | None, typer.Option(
        "--sample", metavar="NAME", help="The sample (needed when the VCF holds several).")
    ] = None,
    output: OutOpt = None,
) -> None:
    """A self-contained HTML report of one patient's changes, for the chart or a colleague:
    one card per change (gene, HGVS, consequence, conditions, before -> after in plain words,
    review status, conflicts, last evaluated, zygosity, FILTER, why it has its priority, a
    ClinVar link) with the variant's classification over every release of the source."""
    from varreinterp.output.formats import frame_records, output_stream
    from varreinterp.output.html_report import render_html
    from varreinterp.output.patient_reports import patient_report
    from varreinterp.report import report_data

    inv = _inv(ctx)
    _refuse_overwriting_inputs(ctx, output)
    store, a, b, panel, priority = query.resolve(inv, vcf)
    pass_only = query.pass_only
    with store.workdir() as workdir:
        data = report_data(store, vcf, a, b, workdir, sample=sample,
                           reference_path=query.reference, pass_only=pass_only,
                           cross_lineage=query.cross_lineage,
                           accept_suspect=query.accept_suspect, panel=panel)
    changes = data.changes
    prov = changes.provenance(inv.command).with_facts(*(panel.facts() if panel else ()))
    notes = ["Only calls whose FILTER is PASS are shown."] if pass_only else []
    if panel is not None:
        notes.append(f"Restricted to {panel.summary()}: {changes.outside_panel} change(s) "
                     "outside it are not shown.")
    page = patient_report(patient_id=data.sample, sample=data.sample, source_file=vcf.name,
                          rows=frame_records(changes.rows), from_snapshot=changes.from_snapshot,
                          to_snapshot=changes.to_snapshot, timelines=data.timelines,
                          min_priority=priority, prov=prov, notes=notes)
    with output_stream(output) as fh:
        fh.write(render_html(page))
    outside = (f"; {changes.outside_panel} change(s) outside {panel.summary()}"
               if panel is not None else "")
    log.info("report for %s: %d change(s) shown at or above %s (%d in all)%s%s", data.sample,
             len(page.cards), priority.value, len(changes.rows), outside,
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
        # (done, total): the caller's own count (files, or the engine's tasks)
        yield lambda done, of: bar.update(task, completed=done, total=of)


@contextlib.contextmanager
def _byte_progress(label: str) -> Iterator[Any]:
    """A download's progress on a terminal; nothing under cron."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                  transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


# ------------------------------------------------------------------------------ cohort
@cohort_app.command("add", epilog="\b\nExample: varreinterp cohort add cohort/*.vcf.gz "
                    "--baseline clinvar-GRCh38-2024-01-07")
def cohort_add_cmd(
    ctx: typer.Context,
    vcfs: VcfArgs,
    sample: SampleOpt = None,
    patient_id: Annotated[str | None, typer.Option(
        "--patient-id", metavar="ID", help="Patient identifier (one sample only; default: "
        "sample name).")] = None,
    baseline: Annotated[str | None, typer.Option(
        metavar="SNAPSHOT", help="Snapshot the patient was last reported against (default: "
        "the latest of its build, when the store holds one source of that build).")] = None,
    reference: ReferenceOpt = None,
    replace: Annotated[bool, typer.Option(
        help="Re-register a patient from a different file (re-sequenced, re-called); its "
        "newly carried and no longer carried alleles are reported once by the next "
        "reanalyze.")] = False,
    pass_only: PassOnlyOpt = False,
    group: Annotated[str | None, typer.Option(
        metavar="GROUP", help="Cohort group (its gene panel comes from the config file).")
    ] = None,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
) -> None:
    """Register each sample of the VCF(s) as a patient and index its carried alleles (all
    files or none). A patient is an id plus a build: another file for the same id needs
    --replace, another build is refused."""
    from varreinterp import cohort

    inv = _inv(ctx)
    store = inv.store()
    base = None
    if baseline is not None:
        base = _resolve(store, baseline, build=_vcf_build(vcfs[0]) if vcfs else None,
                        what="--baseline").name
    if group is not None:
        inv.settings.group(group)  # an unknown group fails before any work
    with _progress("Registering", len(vcfs)) as advance:
        outcomes = cohort.cohort_add(store, vcfs, samples=sample, patient_id=patient_id,
                                     baseline=base, reference_path=reference, replace=replace,
                                     pass_only=pass_only, group=group, progress=advance,
                                     choice=_engine_choice(inv, scheduler, workers))
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


@cohort_app.command("list", epilog="\b\nExample: varreinterp cohort list --format tsv")
def cohort_list_cmd(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    """List registered patients: build, the snapshot each was last reviewed against per
    source, alleles indexed, group and VCF (its file name on a terminal)."""
    from varreinterp import cohort
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    rows: list[dict[str, Any]] = [
        {"patient": p.patient_id, "sample": p.sample, "assembly": p.assembly,
         "reviewed": "; ".join(f"{k}: {v}" for k, v in sorted(p.reviewed.items())),
         "alleles": p.alleles, "replaced": bool(p.previous), "group": p.group,
         "source": p.source}
        for p in sorted(cohort.Registry.load(_inv(ctx).store()).patients.values(),
                        key=lambda p: p.patient_id)]
    caption = f"{len(rows)} patient(s); varreinterp {__version__}"
    if chosen is Format.TABLE:
        from varreinterp.output import tables

        tables.print_rows(sys.stdout, tables.COHORT_COLUMNS, tables.cohort_rows(rows),
                          title="Cohort", caption=caption)
        return
    cols = ["patient", "sample", "assembly", "reviewed", "alleles", "replaced", "group",
            "source"]
    write_rows(rows, cols, chosen, title="Cohort", caption=caption, prov=_listing(ctx))


@cohort_app.command("show", epilog="\b\nExample: varreinterp cohort show NA12878")
def cohort_show_cmd(ctx: typer.Context,
                    patient: Annotated[str, typer.Argument(metavar="PATIENT")],
                    fmt: FormatOpt = None) -> None:
    """One patient's registration."""
    from dataclasses import asdict

    from varreinterp import cohort
    from varreinterp.output.formats import Format, write_rows

    chosen = _format(fmt)
    p = asdict(cohort.Registry.load(_inv(ctx).store()).get(patient))
    if chosen is Format.JSON:
        write_rows([p], list(p), chosen, title="", prov=_listing(ctx))
    else:
        write_rows([{"field": k, "value": v} for k, v in p.items()], ["field", "value"],
                   chosen, title=f"Patient {patient}", prov=_listing(ctx))


@cohort_app.command("remove", epilog="\b\nExample: varreinterp cohort remove NA12878")
def cohort_remove_cmd(ctx: typer.Context,
                      patient: Annotated[str, typer.Argument(metavar="PATIENT")]) -> None:
    """Remove a patient and its cohort index."""
    from varreinterp import cohort

    cohort.cohort_remove(_inv(ctx).store(), patient)
    log.info("removed patient %s", patient)


@cohort_app.command("migrate", epilog="\b\nExample: varreinterp cohort migrate")
def cohort_migrate_cmd(ctx: typer.Context) -> None:
    """Bring a cohort registered by an older version (one index file per patient) to the
    inverted index. Any command that reads the cohort does this on first use; this command
    lets it happen at a chosen time."""
    from varreinterp import cohort

    done = cohort.migrate(_inv(ctx).store())
    log.info("%s", "cohort migrated to the inverted index" if done else
             "nothing to migrate: the cohort is already on the current schema")


@cohort_app.command("compact", epilog="\b\nExample: varreinterp cohort compact --workers 2")
def cohort_compact_cmd(ctx: typer.Context, scheduler: SchedulerOpt = None,
                       workers: WorkersOpt = None) -> None:
    """Rewrite each bin of the cohort index as one sorted file without the rows of removed
    or replaced registrations (cohort add compacts crowded bins by itself)."""
    from varreinterp import cohort

    inv = _inv(ctx)
    store = inv.store()
    with store.lock("cohort compact"):
        registry = cohort.Registry.load(store)
        n = cohort.compact(store, registry, only_crowded=False,
                           choice=_engine_choice(inv, scheduler, workers))
    log.info("cohort index: %d bin(s) rewritten, %d file(s), %d bytes", n,
             len(registry.catalog.files), registry.catalog.total_bytes)


@cohort_app.command("verify", epilog="\b\nExample: varreinterp cohort verify")
def cohort_verify_cmd(ctx: typer.Context) -> None:
    """Read every file of the cohort index and check every byte against the catalog's
    checksums (a nightly run checks only what it reads). Exit 4 on the first damaged file."""
    from varreinterp import cohort
    from varreinterp.cohort_index import verify_file

    store = _inv(ctx).store()
    registry = cohort.Registry.load(store)
    total = sum(verify_file(store.root, e) for e in registry.catalog.files.values())
    log.info("cohort index: %d file(s), %d bytes, all checksums match; %d patient(s)",
             len(registry.catalog.files), total, len(registry.patients))


_STATUS_COLUMNS = ["patient", "lineage", "reviewed_snapshot", "target_snapshot", "state",
                   "high", "medium", "low", "reason", "source"]


@cohort_app.command("status", epilog="\b\nExample: varreinterp cohort status --format json")
def cohort_status_cmd(ctx: typer.Context, fmt: FormatOpt = None) -> int:
    """Each patient's state on each source it follows: up to date, waiting (with the changes
    waiting, by priority) or failing (with the reason). Exit 6 when any patient is failing."""
    from varreinterp.output.formats import Format, write_rows
    from varreinterp.reanalyze import cohort_index_summary, cohort_status

    chosen = _format(fmt)
    store = _inv(ctx).store()
    rows = cohort_status(store)
    index = cohort_index_summary(store)
    if chosen is Format.JSON:
        for r in rows:
            r.update(index)
    states: dict[str, int] = {}
    for r in rows:
        states[r["state"]] = states.get(r["state"], 0) + 1
    summary = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in sorted(states.items()))
    columns = list(rows[0]) if rows and chosen is Format.JSON else _STATUS_COLUMNS
    engine = (f"{index['index_engine']} ({index['index_workers']} worker(s))"
              if index["index_engine"] else "none yet")
    where = (f"index: {index['index_files']} file(s), {index['index_bytes']} bytes, last "
             f"indexed by {engine}")
    caption = f"{summary or 'no patients registered'}; {where}; varreinterp {__version__}"
    if chosen is Format.TABLE:
        from varreinterp.output import tables

        tables.print_rows(sys.stdout, tables.STATUS_COLUMNS, tables.status_rows(rows),
                          title="Cohort status", caption=tables.status_caption(rows, caption))
    else:
        write_rows(rows, columns, chosen, title="Cohort status", caption=caption,
                   prov=_listing(ctx))
    log.info("%s; %s", summary or "no patients registered", where)
    return ExitCode.PARTIAL if states.get("failing") else ExitCode.OK


@app.command("reanalyze", epilog="\b\nExample (cron): varreinterp --quiet reanalyze --exit-code "
             "-o '/data/reports/{date}-{run_id}' --notify https://hooks.example.org/lab")
def reanalyze_cmd(
    ctx: typer.Context,
    to: Annotated[str | None, typer.Option(
        metavar="SNAPSHOT", help="Snapshot to reanalyze against (default: the latest of each "
        "source a patient follows).")] = None,
    min_priority: Annotated[str | None, typer.Option(
        "--min-priority", metavar="LEVEL", help="low | medium | high: list changes at or "
        "above this, for every patient (default: each patient's cohort group's min_priority, "
        "else the config file's, else medium).")] = None,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", "--out", "--report-dir", metavar="DIR", help="Report folder; may "
        "hold {date}, {snapshot} and {run_id} (default: a dated folder under the store's "
        "reports/). Nothing is written when nothing changed.")] = None,
    dry_run: Annotated[bool, typer.Option(help="Compute and print; write and record "
                                          "nothing.")] = False,
    exit_code: ExitCodeOpt = False,
    allow_backwards: Annotated[bool, typer.Option(
        help="Allow a --to older than a patient's reviewed snapshot.")] = False,
    accept_suspect: AcceptSuspectOpt = False,
    genes: GenesOpt = None,
    regions: RegionsOpt = None,
    pass_only: PassOnlyOpt = False,
    notify: Annotated[list[str] | None, typer.Option(
        "--notify", metavar="URL", help="https://... (POST of a JSON summary) or "
        "smtp://host:port?to=... (a mail); repeatable; default: the config file's.")] = None,
    fail_if_stale: Annotated[bool, typer.Option(
        help="Exit 7 instead of only warning when a source's newest release is older than "
        "stale_after_days.")] = False,
    scheduler: SchedulerOpt = None,
    workers: WorkersOpt = None,
    fmt: FormatOpt = None,
) -> int:
    """The nightly job: every patient's new changes since the snapshot it was last reviewed
    against, along each source it follows; each change is delivered exactly once (report
    folder with run.json, changes.tsv and a TSV and an HTML page per patient). Exit codes: 0
    nothing new, 1 changes delivered (with --exit-code), 6 some patient could not be
    reanalyzed, 7 stale (with --fail-if-stale), 8 a notification failed."""
    from varreinterp.errors import StaleSnapshotError
    from varreinterp.output.results import write_reanalysis
    from varreinterp.reanalyze import notifying, reanalyze

    inv = _inv(ctx)
    settings = inv.with_flags(notify=tuple(notify) if notify else None)
    targets = _notify_targets(settings.notify) if not dry_run else []
    store = inv.store()
    if to is not None:
        to = _resolve(store, to, what="--to").name
    from varreinterp.cohort import Registry

    lineages = Registry.lineages(store)
    stale = _warn_if_stale(inv, store, lineages)
    if stale and fail_if_stale:
        raise StaleSnapshotError(f"stale releases ({'; '.join(stale)}): fetch a newer release "
                                 "(varreinterp snapshot fetch) before reanalyzing")
    panel = _panel(inv, genes, regions)
    priority = _priority(inv, min_priority)
    # Each group's own min_priority, unless --min-priority was given (then it is everyone's).
    by_group = {name: inv.settings.min_priority_for(name) for name in inv.settings.groups}
    with contextlib.nullcontext() if dry_run else notifying(store):
        # an earlier run's notification first, before this run notes its own
        delivered = True if dry_run else _notify_interrupted(store)
        with _progress("Reading the cohort index", 2) as advance:
            result = reanalyze(store, to=to, min_priority=priority, out=output,
                               dry_run=dry_run, command=inv.command,
                               allow_backwards=allow_backwards, accept_suspect=accept_suspect,
                               changes_code=exit_code, panel_for=_panels_by_group(inv, panel),
                               pass_only=pass_only,
                               choice=_engine_choice(inv, scheduler, workers),
                               progress=advance, group_priorities=by_group,
                               notify=settings.notify if targets else ())
        if dry_run or fmt:
            write_reanalysis(result, _format(fmt), result.provenance(inv.command), dry_run)
        log.info("%s", result.summary())
        code = result.exit_code(exit_code)
        if result.notification is not None:
            delivered = _notify(store, result.notification, result.out_dir,
                                targets) and delivered
    if not delivered and code != ExitCode.PARTIAL:
        code = ExitCode.NOTIFY_FAILED
    return code


def _engine_choice(inv: Invocation, scheduler: str | None, workers: int | None) -> Any:
    """Where cohort work runs: flag > environment > config file > automatic."""
    from varreinterp.engine import EngineChoice

    settings = inv.with_flags(scheduler=scheduler, workers=workers)
    return EngineChoice(settings.scheduler, settings.workers)


def _panels_by_group(inv: Invocation, panel: Panel | None) -> Any:
    """Each patient's panel: its cohort group's (config file), intersected with
    --genes/--regions."""
    from varreinterp.panels import Panel as PanelType

    cache: dict[str | None, PanelType | None] = {}

    def panel_for(patient: Any) -> PanelType | None:
        group = patient.group
        if group not in cache:
            spec = inv.settings.panel_for(group)
            mine = PanelType.from_parts(spec.name, spec.genes or None, spec.regions,
                                        spec.genes_file) if spec else None
            cache[group] = (mine.intersect(panel) if mine and panel else mine or panel)
        return cache[group]

    return panel_for


def _notify_targets(urls: tuple[str, ...]) -> list[Any]:
    from varreinterp.notify import parse_targets

    return parse_targets(list(urls)) if urls else []


def _notify_interrupted(store: Store) -> bool:
    """Send the notification of an earlier run that was killed while notifying (its patients
    are recorded, so nothing else would ever tell the lab). False when it failed again."""
    from varreinterp.notify import parse_targets
    from varreinterp.reanalyze import notification_noted, pending_notification

    if not notification_noted(store):
        return True
    pending = pending_notification(store)
    if pending is None:
        return True
    summary, urls = pending
    log.warning("the notification of run %s was never answered (that run was stopped while "
                "notifying): sending it now", summary.run_id)
    report = Path(summary.report_path) if summary.report_path else None
    return _notify(store, summary, report, parse_targets(urls))


def _notify(store: Store, summary: RunSummary, report: Path | None,
            targets: list[Any]) -> bool:
    """Tell the lab; a failed notification never loses the report (it is already delivered):
    it is recorded and changes the exit code."""
    from varreinterp.notify import send_notifications
    from varreinterp.reanalyze import record_notifications

    outcomes = send_notifications(targets, summary)
    record_notifications(store, summary.run_id, report, [o.as_dict() for o in outcomes])
    for o in outcomes:
        if o.ok:
            log.info("notified %s", o.target)
        else:
            log.error("notification to %s failed: %s", o.target, o.error)
    return all(o.ok for o in outcomes)


# ------------------------------------------------------------------------------ config
@config_app.command("show", epilog="\b\nExample: varreinterp --config lab.toml config show")
def config_show(ctx: typer.Context, fmt: FormatOpt = None) -> None:
    """Every effective setting and where it came from: a flag, the environment, the config
    file (with its line) or the default."""
    from varreinterp.config import effective_settings
    from varreinterp.output.formats import write_rows

    chosen = _format(fmt)
    rows = [{"key": s.key, "value": s.text, "source": s.source}
            for s in effective_settings(_inv(ctx).settings)]
    write_rows(rows, ["key", "value", "source"], chosen, title="Configuration",
               prov=_listing(ctx))


def _reflow_help(*apps: typer.Typer) -> None:
    """Command docstrings are wrapped for the source, not the terminal: join each paragraph's
    lines so the help renderer wraps them to the terminal's width."""
    for sub in apps:
        for info in sub.registered_commands:
            doc = info.callback.__doc__ if info.callback else None
            if doc and info.callback is not None:
                paragraphs = [" ".join(p.split()) for p in doc.strip().split("\n\n")]
                info.callback.__doc__ = "\n\n".join(paragraphs)


_reflow_help(app, snapshot_app, cohort_app, config_app)


def _click_command() -> Any:
    """The click command tree, with arguments shown by their own metavar in usage lines
    (`VCF...`, not typer's `{VCF...}`)."""
    import typer.main

    command = typer.main.get_command(app)

    def patch(cmd: Any) -> None:
        for param in getattr(cmd, "params", []):
            if type(param).__name__ == "TyperArgument" and param.metavar:
                param.make_metavar = (lambda p: lambda ctx=None, usage=False: p.metavar)(param)
        for sub in (getattr(cmd, "commands", None) or {}).values():
            patch(sub)

    patch(command)
    return command


# ------------------------------------------------------------------------------ entry point
class _Signals:
    """SIGINT and SIGTERM end a command as an interrupt: the first one raises KeyboardInterrupt
    in the main thread, so every `finally` runs (staging, working folders, half-written outputs
    and the lock are cleaned up), and the exit code is 128 + the signal. DuckDB turns the
    KeyboardInterrupt raised inside a query into its own error, so the signal is remembered
    here rather than read from the exception. Later signals are only remembered: the cleanup
    must finish."""

    def __init__(self, received: int | None = None, keep_installed: bool = False) -> None:
        self.received = received
        self.late: int | None = None  # a signal after the command's commit point
        self.finished = False  # the outcome is decided: a signal now changes nothing
        # The console script keeps this handler to the end: restoring Python's default there
        # would let a signal in the last instant kill a process whose work is done.
        self.keep_installed = keep_installed
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

        self.finished = True
        if self.keep_installed:
            return
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        from varreinterp.atomic import interrupt_requested, is_committed

        if self.finished or is_committed():  # nothing left to undo: finish, say it came late
            self.late = signum
            return
        if self.received is None:
            self.received = signum
            interrupt_requested()
            raise KeyboardInterrupt

    def exit_code(self) -> int:
        import signal

        if self.received == signal.SIGTERM:
            return ExitCode.TERMINATED
        return ExitCode.INTERRUPTED


def _framework_exit(exc: BaseException, args: list[str]) -> int | None:
    """typer vendors its own click, so its exceptions are matched by class name."""
    names = {cls.__name__ for cls in type(exc).__mro__}
    if "Exit" in names:
        return int(getattr(exc, "exit_code", 0))
    if "Abort" in names:
        return ExitCode.INTERRUPTED
    if "ClickException" in names and hasattr(exc, "show"):
        exc.show(file=sys.stderr)
        message = str(getattr(exc, "message", exc))
        misplaced = [o for o in GLOBAL_OPTIONS if f"No such option: {o}" in message]
        if misplaced:
            command = " ".join(_command_words(args)) or "COMMAND"
            sys.stderr.write(f"varreinterp: hint: global options ({', '.join(GLOBAL_OPTIONS)}) "
                             f"go before the command: varreinterp {misplaced[0]} ... {command} "
                             "...\n")
        return ExitCode.USAGE
    return None


def _vanished_file(exc: BaseException) -> str | None:
    """The file DuckDB found gone between planning a read and doing it: a store file removed
    by another command (`snapshot remove` takes the writer lock, readers take none)."""
    text = str(exc)
    if type(exc).__name__ != "IOException" or "No files found that match the pattern" not in text:
        return None
    quoted = text.split('"')
    return quoted[1] if len(quoted) > 2 else "a store file"


def _command_words(args: list[str]) -> list[str]:
    """The command (and subcommand) words of an argument list, global options skipped."""
    words: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in ("--store", "--config"):
            skip = True
        elif arg.startswith("-"):
            continue
        elif not words or words[0] in ("snapshot", "cohort", "config") and len(words) == 1:
            words.append(arg)
        else:
            break
    return words


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

    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    return ExitCode.BROKEN_PIPE


def _quiet_interrupts(default: Any) -> Any:
    """A signal that lands in a finalizer or weakref callback raises its KeyboardInterrupt
    where Python can only print it ("Exception ignored in ..." and a traceback). The handler
    has already noted the interrupt, which the commit point and `run` honour: print nothing."""
    def hook(unraisable: Any) -> None:
        if not isinstance(unraisable.exc_value, KeyboardInterrupt):
            default(unraisable)
    return hook


def run(argv: list[str] | None = None, signals: _Signals | None = None) -> int:
    """Console entry point: the one place exceptions become exit codes."""
    import os

    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    from varreinterp.atomic import interrupt_requested, reset_committed

    signals = signals or _Signals()
    reset_committed()
    unraisable = sys.unraisablehook
    sys.unraisablehook = _quiet_interrupts(unraisable)
    if signals.received is not None:  # a signal during the imports (entry.main)
        interrupt_requested()
    signals.install()
    # Everything we create (store files, DuckDB's own writes, reports) is owner-only: it holds
    # or points at patient data.
    umask = os.umask(0o077)
    closed_stdout = sys.stdout is None
    if closed_stdout:
        sys.stdout = _ClosedStream()
    try:
        code = _run(args, debug, signals)
        signals.finished = True
        try:
            sys.stdout.flush()  # a pipe closed early shows here, not in the interpreter's exit
        except BrokenPipeError:
            code = _broken_pipe()
        except (OSError, ValueError):
            pass  # a stdout closed by the caller: nothing more to say on it
        if signals.received is not None:
            sys.stderr.write("varreinterp: interrupted\n")
            return signals.exit_code()
        if signals.late is not None:
            sys.stderr.write("varreinterp: signal received after the work was committed: "
                             "it completed\n")
        return code
    finally:
        signals.restore()
        sys.unraisablehook = unraisable
        os.umask(umask)
        if closed_stdout:
            sys.stdout = None


def _run(args: list[str], debug: bool, signals: _Signals) -> int:
    try:
        result = _click_command().main(args=args, prog_name="varreinterp",
                                       standalone_mode=False, obj=list(args))
        code = int(result) if isinstance(result, int) else ExitCode.OK
        if code == ExitCode.INTERRUPTED and signals.received is None:
            signals.received = 2  # typer turned a Ctrl-C into a return value
        return code
    except KeyboardInterrupt:
        signals.received = signals.received or 2
        return ExitCode.INTERRUPTED
    except SystemExit as exc:
        # click ends a write to a closed pipe with sys.exit(1) after wrapping stdout.
        if type(sys.stdout).__name__ == "PacifyFlushWrapper":
            return _broken_pipe()
        return int(exc.code) if isinstance(exc.code, int) else ExitCode.USAGE
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
        framework_code = _framework_exit(exc, args)
        if framework_code is not None:
            return framework_code
        vanished = _vanished_file(exc)
        if vanished is not None:
            sys.stderr.write(f"varreinterp: error: {vanished}: removed while this command was "
                             "reading it (a snapshot removed meanwhile?); run it again\n")
            return ExitCode.STORE
        if debug:
            import traceback

            traceback.print_exc()
        msg = " ".join(str(exc).split()) or type(exc).__name__
        sys.stderr.write(f"varreinterp: internal error: {type(exc).__name__}: {msg} "
                         "(rerun with --debug for the traceback)\n")
        return ExitCode.INTERNAL
