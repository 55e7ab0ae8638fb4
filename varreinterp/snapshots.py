"""Core operations on classification snapshots: import (add), and what list/show/verify report."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from varreinterp import __version__, db
from varreinterp.assembly import Assembly, ContigSkip, accession_build, normalize_contig
from varreinterp.errors import InputError, StoreError, UsageError
from varreinterp.importers.common import SNAPSHOT_COLUMNS, STORED_AS_GIVEN, finalize
from varreinterp.selectors import reads_as_selector
from varreinterp.store import (
    VARIANTS_FILE,
    Snapshot,
    SnapshotManifest,
    Store,
    lineage_of,
    sha256_file,
)
from varreinterp.textfile import header_lines, header_lines_of, open_text

if TYPE_CHECKING:
    from varreinterp.importers.mapped_table import Mapping

log = logging.getLogger("varreinterp")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_FILENAME_DATE = re.compile(r"(?<!\d)(19|20)(\d{2})-?(\d{2})(?:-?(\d{2}))?(?!\d)")


class SourceFormat(StrEnum):
    AUTO = "auto"
    CLINVAR_VCF = "clinvar-vcf"
    VARIANT_SUMMARY = "variant-summary"
    TABLE = "table"


def check_name(name: str) -> str:
    """`name` if it can name a snapshot: a name that also reads as a selector (`latest`,
    `previous`, a date or month) would be chosen by `--snapshot latest` in place of the
    newest release, silently."""
    if not _NAME.match(name):
        raise UsageError(f"invalid snapshot name {name!r}: use letters, digits, '.', '_', '-'")
    if reads_as_selector(name):
        raise UsageError(f"invalid snapshot name {name!r}: it would read as a selector "
                         "(latest, previous, a release date or month); choose another name")
    return name


def date_from_filename(path: Path) -> date | None:
    """`clinvar_20230710.vcf.gz`, `release201803` (first of the month), `2024-01-07`."""
    for m in _FILENAME_DATE.finditer(path.name):
        year, month, day = int(m.group(1) + m.group(2)), int(m.group(3)), int(m.group(4) or 1)
        try:
            return date(year, month, day)
        except ValueError:
            continue
    return None


def detect_format(path: Path) -> SourceFormat:
    # A header line is decoded on its own, so a bad byte there is refused with its line (a
    # decoder reading ahead would refuse it without one).
    first = next((text for _, text in header_lines_of(path)), None)
    if first is None:  # no header: empty, or not a VCF nor a variant_summary
        first = next(iter(open_text(path)), None)
    if first is None:
        raise InputError("empty file", path)
    if first.startswith("##fileformat=VCF"):
        return SourceFormat.CLINVAR_VCF
    from varreinterp.importers.variant_summary import is_variant_summary

    if is_variant_summary([c.lstrip("#") for c in first.rstrip("\r\n").split("\t")]):
        return SourceFormat.VARIANT_SUMMARY
    raise InputError("cannot tell the format: not a VCF nor a ClinVar variant_summary file "
                     "(for a lab table use --format table --mapping FILE)", path, 1)


def _check_source(path: Path) -> None:
    if not path.exists():
        raise InputError("no such file", path)
    if not path.is_file():
        raise InputError("not a regular file", path)


@dataclass(frozen=True)
class AddResult:
    """The snapshot `add_snapshot` stored, or found already stored with the same content."""

    snapshot: Snapshot
    already_stored: bool


def add_snapshot(
    store: Store,
    path: Path,
    *,
    name: str | None = None,
    assembly: Assembly | None = None,
    fmt: SourceFormat = SourceFormat.AUTO,
    mapping_path: Path | None = None,
    release_date: date | None = None,
    allow_unknown_terms: bool = False,
    reference_path: Path | None = None,
    max_drop_percent: float = 5.0,
) -> AddResult:
    """Import a ClinVar VCF, a variant_summary file or a mapped lab table as a new immutable
    snapshot (a no-op when the same content is already stored). Staged under the store's
    tmp/ and renamed into place, so an interrupted import leaves the store as it was."""
    _check_source(path)
    if name is not None:
        check_name(name)
    if fmt is SourceFormat.AUTO:
        fmt = SourceFormat.TABLE if mapping_path else detect_format(path)
    if fmt is SourceFormat.TABLE and not mapping_path:
        raise UsageError("--format table needs --mapping FILE describing the table's columns")
    mapping = None
    if mapping_path:
        from varreinterp.importers.mapped_table import load_mapping

        mapping = load_mapping(mapping_path)
    table = _table_name(mapping)
    source_sha = sha256_file(path)

    with store.lock("snapshot add"):
        existing = store.find_by_source(
            source_sha, assembly.value if assembly else None,
            sha256_file(mapping_path) if mapping_path else None)
        if existing:
            given = {k: v for k, v in existing.manifest.skipped.items() if k in STORED_AS_GIVEN}
            if reference_path is not None and given:
                raise UsageError(
                    f"{path} is already stored as snapshot {existing.name}, imported without "
                    f"this --reference ({', '.join(f'{k} {v}' for k, v in given.items())}): "
                    f"remove it first (snapshot remove {existing.name}), then add it again")
            return AddResult(existing, already_stored=True)
        if name and store.exists(name):
            raise StoreError(f"snapshot {name!r} already exists with different content "
                             f"(source sha256 {store.get(name).manifest.source_sha256[:12]}...)")
        if release_date is None and (fmt is SourceFormat.CLINVAR_VCF or (
                mapping is not None and mapping.format == "vcf" and not mapping.release_date)):
            _check_file_date(path)
        with store.staging() as staged_dir, store.workdir() as workdir:
            con = db.connect(workdir)
            reference = None
            if reference_path:  # every importer's: finalize left-aligns the indels against it
                from varreinterp.patient_vcf import FastaReference

                reference = FastaReference(reference_path, workdir)
            if fmt is SourceFormat.CLINVAR_VCF:
                from varreinterp.importers.clinvar_vcf import stage_clinvar_vcf

                source = stage_clinvar_vcf(con, path, assembly, workdir, reference)
            elif fmt is SourceFormat.VARIANT_SUMMARY:
                from varreinterp.importers.variant_summary import stage_variant_summary

                source = stage_variant_summary(con, path, assembly, workdir, reference)
            else:
                from varreinterp.importers.mapped_table import stage_mapped_table

                assert mapping is not None
                source = stage_mapped_table(con, path, mapping, assembly, workdir, reference)
            if source.assembly is None:
                raise UsageError(f"{path}: the file does not say its assembly; "
                                 "give --assembly GRCh37|GRCh38")
            release = _release_date(path, source.release_date, release_date)
            prefix = {"clinvar-vcf": "clinvar", "variant-summary": "clinvar-summary"}.get(
                source.kind, table or (mapping.path.stem if mapping else "table"))
            final_name = name or f"{prefix}-{source.assembly.value}-{release.isoformat()}"
            check_name(final_name)
            if source.kind == "table" and final_name.lower().startswith("clinvar"):
                raise UsageError(f"snapshot name {final_name!r}: names starting with 'clinvar' "
                                 "are kept for ClinVar's releases (a lab table under such a "
                                 "name would pass for one, and `snapshot fetch` skip the "
                                 "real release)")
            if store.exists(final_name):
                raise StoreError(
                    f"snapshot {final_name!r} already exists with different content; "
                    "choose another name with --name")
            result = finalize(con, source, staged_dir / VARIANTS_FILE, allow_unknown_terms)
            con.close()
            if result.unknown_terms:
                total = sum(result.unknown_terms.values())
                log.warning("%s: %d record(s) carry %d unknown term(s), imported as tier "
                            "'other': %s", path, total, len(result.unknown_terms),
                            ", ".join(sorted(result.unknown_terms)))
            manifest = SnapshotManifest(
                name=final_name,
                source_kind=source.kind,
                source_file=path.name,
                source_sha256=source_sha,
                release_date=release.isoformat(),
                assembly=source.assembly.value,
                records=result.records,
                tiers=result.tiers,
                stars=result.stars,
                skipped=result.skipped,
                unknown_terms=result.unknown_terms,
                tool_version=__version__,
                # Microseconds: it orders releases of one date (store.release_order), and
                # two imports of a second are common in scripts.
                imported_at=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                files={VARIANTS_FILE: sha256_file(staged_dir / VARIANTS_FILE)},
                mapping=({"file": mapping_path.name, "sha256": sha256_file(mapping_path)}
                         if mapping_path else None),
                lineage=_lineage(store, source.kind, final_name, source.assembly.value, table,
                                 sha256_file(mapping_path) if mapping_path else None),
                contigs=result.contigs,
                columns=list(SNAPSHOT_COLUMNS),
            )
            manifest.suspect = release_suspicion(store, manifest, max_drop_percent)
            if manifest.suspect:
                log.warning("%s: stored as %s but marked SUSPECT: %s; reanalyze, diff and "
                            "report refuse it as a target unless --accept-suspect", path,
                            final_name, manifest.suspect)
            snap = store.commit_snapshot(staged_dir, manifest)
    return AddResult(snap, already_stored=False)


_CLINVAR_LINEAGES = ("clinvar", "clinvar-summary")


def _lineage(store: Store, kind: str, name: str, assembly: str, table: str | None,
             mapping_sha: str | None) -> str:
    """The lineage of a new snapshot. A lab table's: that of the releases already imported
    with the same mapping file (a store whose lab lineage an older version took from --name
    keeps it), else its mapping's `[source] name`, else (a mapping with no name: a file name
    such as mapping.toml names no lab) the snapshot's name, as older versions did. A new lab
    lineage beside others of the build is said: patients follow a lineage, not a table."""
    if kind != "table":
        return lineage_of(kind, name, assembly)
    tables = [s for s in store.snapshots()
              if s.manifest.source_kind == kind and s.manifest.assembly == assembly]
    same = [s for s in tables if mapping_sha and (s.manifest.mapping or {}).get("sha256")
            == mapping_sha]
    if same:
        return same[-1].lineage
    lineage = lineage_of(kind, name, assembly, table)
    others = sorted({s.lineage for s in tables} - {lineage})
    if others and lineage not in {s.lineage for s in tables}:
        log.warning("lab table %s starts a new lineage %s beside %s: patients following those "
                    "will not move onto it; if it is their next release, give its mapping "
                    "that lineage's [source] name", name, lineage, ", ".join(others))
    return lineage


def _table_name(mapping: Mapping | None) -> str | None:
    """A lab table's name, its mapping's `[source] name`: the lineage its releases form,
    whatever each is named with --name. None for a mapping that names no lab."""
    if mapping is None or not mapping.name:
        return None
    table = mapping.name
    if table.lower() in _CLINVAR_LINEAGES:  # a table would join ClinVar's own series
        raise UsageError(f"{mapping.path}: [source] name {table!r} is kept for ClinVar's own "
                         "releases: name the lab table's source otherwise")
    if not table or "/" in table:  # the lineage is `<table>/<build>`
        raise UsageError(f"{mapping.path}: [source] name {table!r} cannot name a lab table's "
                         "series: use letters, digits, '.', '_', '-'")
    return table


def release_suspicion(store: Store, new: SnapshotManifest, max_drop_percent: float
                      ) -> str | None:
    """Why a release looks partial against the latest release of its lineage (by release
    date) up to its own date that is not itself suspect: more than `max_drop_percent` fewer
    records, or fewer contigs. A release cut short otherwise becomes the newest snapshot and
    every variant it lost reads as 'gone'. A suspect release is never the yardstick: a second
    cut release (the same records, a later date) would match the first and pass as 'ok'
    (tests/test_nightly.py::test_a_second_cut_release_in_a_row_is_suspect_too). A stored
    release of the same date is a yardstick too: a cut copy of a release added again (under
    another name, or fetched under a later file name whose header repeats the date) has no
    earlier release to be measured against."""
    before = [s.manifest for s in store.lineage(new.lineage)
              if (s.manifest.release_date or "") <= (new.release_date or "")
              and not s.manifest.suspect]
    if not before:
        return None
    prev = before[-1]
    reasons = []
    if prev.records and new.records < prev.records * (1 - max_drop_percent / 100):
        drop = 100 * (prev.records - new.records) / prev.records
        reasons.append(f"{new.records:,} records against {prev.records:,} in {prev.name} "
                       f"({drop:.1f}% fewer, more than the {max_drop_percent:g}% allowed)")
    if prev.contigs is not None and new.contigs is not None:
        lost = sorted(_keys_not_refused(prev.contigs, new) - set(new.contigs))
        if lost:
            reasons.append(f"contig(s) {', '.join(lost[:10])} of {prev.name} have no record")
    return "; ".join(reasons) or None


def _keys_not_refused(contigs: list[str], new: SnapshotManifest) -> set[str]:
    """An older release's contigs as today's keys, less those the new import refused by the
    contig rules (assembly.ContigPolicy): a release stored before those rules may hold hg19's
    chrM as MT, or accessions under their own names, and losing them is not a cut."""
    keys = {normalize_contig(c) for c in contigs}
    skipped = new.skipped or {}
    if skipped.get(ContigSkip.NON_RCRS_MITOCHONDRION.value) or \
            skipped.get(ContigSkip.UNVERIFIED_MITOCHONDRION.value):
        keys.discard("MT")
    if skipped.get(ContigSkip.OTHER_BUILD_CONTIG.value):
        keys -= {normalize_contig(c) for c in contigs if accession_build(c) is not None}
    return keys


def _check_file_date(path: Path) -> None:
    """Refuse a VCF whose `##fileDate` line is there but is not a date: the release date orders
    a lineage (latest, previous, the direction of a diff, staleness, suspicion), so it must not
    quietly become the file name's date instead. When both are dates and differ, warn (the
    header's date is used, as the importer reads it)."""
    from varreinterp.importers.clinvar_vcf import parse_file_date

    header, _ = header_lines(path)
    prefix = "##fileDate="
    line = next((n for n, text in enumerate(header, start=1) if text.startswith(prefix)), None)
    if line is None:
        return
    value = header[line - 1][len(prefix):].strip()
    found = parse_file_date(value)
    if found is None:
        raise InputError(f"{prefix}{value} is not a date (YYYY-MM-DD); give --release-date "
                         "YYYY-MM-DD to import the file", path, line)
    named = date_from_filename(path)
    if named is not None and named != found:
        log.warning("%s: the header's %s%s (line %d) differs from the date in the file name "
                    "(%s); the header's date %s is used", path, prefix, value, line, named,
                    found)


def _release_date(path: Path, from_file: date | None, option: date | None) -> date:
    if from_file and option and from_file != option:
        raise UsageError(f"{path}: --release-date {option} contradicts the file's own date "
                         f"{from_file}")
    found = from_file or option or date_from_filename(path)
    if found is None:
        raise UsageError(f"{path}: the file carries no release date; give --release-date "
                         "YYYY-MM-DD")
    # A release from the future would stay `latest` for good: every real release after it
    # would be older, never a target. A day of slack for a lab's clock east of UTC.
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    if found > tomorrow:
        where = ("--release-date" if option and not from_file else
                 "its file name" if not from_file else "its header")
        raise InputError(f"release date {found} (from {where}) is in the future: a typo? "
                         "(give the right --release-date)", path)
    return found


def resolve_assembly(text: str | None) -> Assembly | None:
    if text is None:
        return None
    for a in Assembly:
        if a.value.lower() == text.lower():
            return a
    raise UsageError(f"unknown assembly {text!r}: use GRCh37 or GRCh38")


def remove_snapshot(store: Store, name: str) -> None:
    """Remove a snapshot, unless a patient's review state needs it: every later reanalysis of
    that patient compares against it."""
    from varreinterp.cohort import Registry

    with store.lock("snapshot remove"):
        store.get(name)
        users = Registry.load(store).users_of(name)
        if users:
            shown = ", ".join(users[:5]) + (", ..." if len(users) > 5 else "")
            raise StoreError(
                f"snapshot {name} is the last reviewed snapshot of {len(users)} patient(s) "
                f"({shown}): run `varreinterp reanalyze` to move them to a newer release (or "
                "`cohort remove` them) before removing it")
        store.remove(name)


@dataclass(frozen=True)
class FetchResult:
    snapshot: Snapshot
    already_stored: bool
    url: str
    resumed: bool = False


def fetch_snapshot(store: Store, *, assembly: Assembly, release: str, kind: str, mirror: str,
                   options: object | None = None,
                   progress: Callable[[int, int | None], None] | None = None,
                   max_drop_percent: float = 5.0) -> FetchResult:
    """Download a ClinVar release from NCBI's layout (or a mirror), verify its md5 and import
    it; a no-op when that release is already stored. The download resumes an interrupted
    one (`STORE/downloads/`, private) and is removed once imported."""
    from varreinterp.fetch import FetchOptions, ReleaseKind, download_release, resolve_release

    opts = options if isinstance(options, FetchOptions) else None
    remote = resolve_release(mirror, assembly, release, ReleaseKind(kind), options=opts)
    prefix = "clinvar" if remote.kind is ReleaseKind.VCF else "clinvar-summary"
    name = f"{prefix}-{assembly.value}-{remote.release_date.isoformat()}"
    if store.exists(name):
        stored = store.get(name)
        if stored.manifest.source_kind != ("clinvar-vcf" if remote.kind is ReleaseKind.VCF
                                           else "variant-summary"):
            raise StoreError(f"snapshot {name} is stored, but it is a "
                             f"{stored.manifest.source_kind} ({stored.manifest.source_file}), "
                             f"not ClinVar's release {remote.url}: remove or rename it")
        return FetchResult(stored, True, remote.url)
    store.ensure()
    downloads = store.root / "downloads"
    downloads.mkdir(mode=0o700, exist_ok=True)
    fetched = download_release(remote, downloads, options=opts, progress=progress)
    result = add_snapshot(store, fetched.path, name=name, assembly=assembly,
                          release_date=remote.release_date if remote.kind is not
                          ReleaseKind.VCF else None, max_drop_percent=max_drop_percent)
    for path in (fetched.path, fetched.tbi_path):
        if path is not None:
            path.unlink(missing_ok=True)
    return FetchResult(result.snapshot, result.already_stored, remote.url, fetched.resumed)


def stale_lineages(store: Store, lineages: set[str], max_age_days: int,
                   today: date | None = None) -> list[tuple[Snapshot, int]]:
    """(newest snapshot, its age in days) of each lineage whose newest release is older than
    `max_age_days`: a reanalysis against it would miss a month of reclassifications."""
    today = today or datetime.now(UTC).date()
    out = []
    for lineage in sorted(lineages):
        series = store.lineage(lineage)
        if not series or not series[-1].manifest.release_date:
            continue
        age = (today - date.fromisoformat(str(series[-1].manifest.release_date))).days
        if age > max_age_days:
            out.append((series[-1], age))
    return out
