"""Matching patient alleles to snapshot rows: the one join annotate, diff, history and the cohort
share.

A snapshot row (contig in key form: no `chr`, `MT`) and a patient allele (split, trimmed and,
with a FASTA, left-aligned by `patient_vcf`) are the same variant when contig key, position, REF
and ALT are equal. The join runs on the few alleles that can match: a large file is first cut
to the snapshot's positions (`prefilter` before parsing, an integer filter after), and genotypes
are expanded only for the matching alleles."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from varreinterp import db
from varreinterp.assembly import assembly_from_contig_lengths, normalize_contig, other_build
from varreinterp.errors import AssemblyMismatchError, InputError, UsageError
from varreinterp.patient_vcf import (
    FastaReference,
    PatientCalls,
    ReadStats,
    Skip,
    VcfHeader,
    check_assembly,
    check_samples_exist,
    genotype_status,
    read_header,
    skip_sql,
)
from varreinterp.store import Snapshot
from varreinterp.vocabulary import Tier

log = logging.getLogger("varreinterp")

if TYPE_CHECKING:
    import duckdb

# Below this many rows in `rec` (a prefiltered file), an integer position filter costs more
# than it saves.
_POSITION_FILTER_ROWS = 500_000


@dataclass
class PreparedInputs:
    """Every input checked before any work: headers read, builds compared, FASTA opened."""

    headers: list[VcfHeader]
    reference: FastaReference | None


def prepare_inputs(vcfs: Sequence[Path], workdir: Path, *, assembly: str | None,
                   what: str, samples: list[str] | None,
                   reference_path: Path | None) -> PreparedInputs:
    """Read every header and check it against `assembly` (None: no build to compare with yet)
    before any work, so that all header problems are reported at once, not after hours."""
    if not vcfs:
        raise UsageError("no VCF given")
    headers = [read_header(p, workdir) for p in vcfs]
    if assembly is not None:
        for h in headers:
            check_assembly(h, assembly, what)
    check_samples_exist(headers, samples)
    check_distinct_samples(headers, samples)
    reference = FastaReference(reference_path, workdir) if reference_path else None
    if reference is not None:
        for h in headers:
            check_reference(h, reference, assembly)
    return PreparedInputs(headers, reference)


def check_distinct_samples(headers: Sequence[VcfHeader], wanted: list[str] | None) -> None:
    """One sample name in two input files (only the `wanted` samples, when given) is read as
    one patient: right for one person's files split by chromosome or variant type (SNVs and
    indels), wrong for two people named by a caller's default (`SAMPLE`). The output has no
    file column, so it is said, once; one file given twice is refused (every call twice)."""
    seen: dict[str, Path] = {}
    clashes: list[tuple[str, Path, Path]] = []
    for header in headers:
        for name in header.samples:
            if wanted and name not in wanted:
                continue
            if name in seen:
                clashes.append((name, seen[name], header.path))
            else:
                seen[name] = header.path
    if not clashes:
        return
    name, first, second = clashes[0]
    if first.resolve() == second.resolve():
        raise UsageError(f"{second} is given twice: its samples would be reported twice")
    others = sorted({n for n, _, _ in clashes} - {name})
    also = f" (also: {', '.join(others)})" if others else ""
    log.warning("sample %s is in both %s and %s%s: their calls are reported as one patient's "
                "(right for one person's files split by chromosome or variant type; if they "
                "are two people, run the files separately or rename one sample with "
                "bcftools reheader -s)", name, first, second, also)


def check_reference(header: VcfHeader, reference: FastaReference, assembly: str | None) -> None:
    """A --reference FASTA must be the VCF's build: every contig both declare has one length,
    and the FASTA's known contig lengths name the same build as the VCF (and the snapshot)."""
    fasta = {normalize_contig(k): v for k, v in reference.lengths().items()}
    for name, length in header.contigs.items():
        theirs = fasta.get(normalize_contig(name))
        if theirs is not None and theirs != length:
            raise InputError(f"--reference {reference.path} does not fit this VCF: contig "
                             f"{name} is {length:,} bp in the VCF header but {theirs:,} bp in "
                             "the FASTA", header.path)
    why = other_build(None, reference.lengths())
    if why:
        raise AssemblyMismatchError(f"--reference {reference.path} is another genome build: "
                                    f"{why}", header.path)
    fasta_build = assembly_from_contig_lengths(reference.lengths())
    vcf_build = header.assembly()
    for build, what in ((vcf_build, "the VCF"), (assembly, "the snapshot")):
        if fasta_build is not None and build is not None and str(build) != fasta_build.value:
            raise AssemblyMismatchError(
                f"--reference {reference.path} is {fasta_build.value} (from its contig "
                f"lengths) but {what} is {build}", header.path)


def key_match_sql(snapshot: str, allele: str) -> str:
    """A snapshot row (key-form `chrom`) and a patient allele (`key_chrom`) are the same
    variant."""
    return (f"{snapshot}.chrom = {allele}.key_chrom AND {snapshot}.pos = {allele}.pos "
            f"AND {snapshot}.ref = {allele}.ref AND {snapshot}.alt = {allele}.alt")


def snapshot_filter_sql(tiers: Sequence[Tier] | None, min_stars: int | None) -> str:
    clauses = ["s.classification IS NOT NULL"]
    if tiers:
        clauses.append("s.tier IN (" + ", ".join(db.quote(t.value) for t in tiers) + ")")
    if min_stars:
        clauses.append(f"coalesce(s.stars, 0) >= {int(min_stars)}")
    return " AND ".join(clauses)


def snapshot_relation_sql(snapshot: Snapshot, columns: Sequence[str],
                          tiers: Sequence[Tier] | None = None,
                          min_stars: int | None = None) -> str:
    """A snapshot's classified variants: keys and the given report columns."""
    return (f"(SELECT chrom, pos, ref, alt, {', '.join(columns)} "
            f"FROM {db.parquet(snapshot.variants)} s "
            f"WHERE {snapshot_filter_sql(tiers, min_stars)})")


def snapshot_keys_sql(*snapshots: Snapshot) -> str:
    """The allele keys of classified variants in these snapshots."""
    return "(" + " UNION ALL ".join(
        f"SELECT chrom, pos, ref, alt FROM {db.parquet(s.variants)} "
        "WHERE classification IS NOT NULL" for s in snapshots) + ")"


def candidate_alleles_sql(calls: PatientCalls, keys: str) -> str:
    """Every allele of `calls` that may match relation `keys` (rid, ai, chrom, key_chrom, pos,
    ref, alt, filter, skip, split): a large `rec` (not prefiltered) is first cut to the
    positions of `keys` with an integer filter, which drops ~95% of a WGS cheaply."""
    rows = db.count(calls.con, calls.rec_table)
    narrow = f"AND pos IN (SELECT pos FROM {keys})" if rows > _POSITION_FILTER_ROWS else ""
    return f"""
        SELECT r.rid, 1 AS ai, r.chrom, ct.key_chrom, r.pos, r.ref, r.alt, r.filter,
               coalesce({skip_sql('alt', '1', calls.pass_only)}, ct.contig_skip) AS skip,
               false AS split
        FROM (SELECT * FROM {calls.rec} WHERE NOT complex {narrow}) r
        JOIN {calls.contigs} ct ON ct.chrom = r.chrom
        UNION ALL
        SELECT rid, ai, chrom, key_chrom, pos, ref, alt, filter, skip, true AS split
        FROM {calls.complex_allele}"""


def carried_at(calls: PatientCalls, keys: str, table: str, payload: Sequence[str] = (),
               join_keys: bool = True) -> str:
    """Materialize into `table` the carried alleles whose key is in relation `keys`
    (chrom, pos, ref, alt, with key-form contigs), with the `payload` columns of `keys` joined
    on (one scan of `keys` does both). The key join runs before genotypes are expanded, so only
    the few matching alleles pay for it. With join_keys=False, the carried alleles at the
    positions of `keys` (or all, when `rec` is already small), for a caller that joins next.

    One row per (sample, allele): a record repeated in the file is reported once, and every
    repeat is counted in the file's stats as `duplicate_record`. Returns `table`."""
    join = "JOIN" if payload else "SEMI JOIN"
    key_join = f"{join} {keys} k ON {key_match_sql('k', 'a0')}" if join_keys else ""
    con = calls.con
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {table} AS
        WITH a0 AS ({candidate_alleles_sql(calls, keys)}),
        a AS (
            SELECT a0.*{"".join(f", k.{p}" for p in payload)} FROM a0 {key_join}),
        c AS ({calls.carried_sql("a", payload)})
        SELECT {unique_calls_columns(payload)}
        FROM c GROUP BY sample, key_chrom, pos, ref, alt
    """)
    repeats = db.scalar(con, f"SELECT coalesce(sum(copies - 1), 0) FROM {table}")
    if repeats:
        calls.stats.skipped[Skip.DUPLICATE_RECORD.value] += int(repeats)
    return table


def unique_calls_columns(payload: Sequence[str] = ()) -> str:
    """SELECT list collapsing repeated (sample, allele) rows to one: the first copy's
    coordinates and FILTER, every zygosity seen, and how many copies there were."""
    extra = "".join(f", any_value({p}) AS {p}" for p in payload)
    return ("sample, min(rid) AS rid, arg_min(ai, rid) AS ai, arg_min(chrom, rid) AS chrom, "
            "key_chrom, pos, ref, alt, arg_min(filter, rid) AS filter, "
            f"{distinct_zygosities_sql()} AS zygosity, "
            f"count(*) AS copies{extra}")


def distinct_zygosities_sql(column: str = "zygosity") -> str:
    """Aggregate SQL: the distinct non-NULL values of `column`, sorted, joined by ','; NULL when
    there are none. The same as string_agg(DISTINCT .. ORDER BY ..), which DuckDB plans as a
    separate aggregate and join: this list form took a third of the time of the whole match."""
    return (f"nullif(array_to_string(list_sort(list_distinct(list({column}))), ','), '')")


def check_matched_refs(con: duckdb.DuckDBPyConnection, reference: FastaReference,
                       table: str, stats: ReadStats, keys: str | None = None) -> int:
    """With a FASTA, also check the REF of every matched allele of `table` (a `carried_at`
    table; of those whose key is in relation `keys`, when given) that did not go through
    normalization (SNVs mostly). The calls of a mismatch are removed from `table` and moved in
    `stats` from carried (and duplicate_record, for their repeats) to ref_mismatch: one count
    per call, the unit of `count_ref_mismatch_calls`. Returns the calls removed. Contigs the
    FASTA lacks are not checked: `patient_vcf.load` warned about each of them."""
    among = f" SEMI JOIN {keys} k ON {key_match_sql('k', 't')}" if keys else ""
    rows = con.execute(f"SELECT DISTINCT t.chrom, t.pos, t.ref FROM {table} t{among}"
                       ).fetchall()
    bad = [(c, p, r) for c, p, r in rows
           if reference.has(c) and reference.fetch(c, p - 1, p - 1 + len(r)).upper() != r]
    if not bad:
        return 0
    sites = ", ".join(f"({db.quote(c)}, {int(p)}, {db.quote(r)})" for c, p, r in bad)
    where = f"(chrom, pos, ref) IN (SELECT * FROM (VALUES {sites}) v(chrom, pos, ref))"
    calls, repeats = con.execute(f"SELECT coalesce(sum(copies), 0), "
                                 f"coalesce(sum(copies - 1), 0) FROM {table} WHERE {where}"
                                 ).fetchall()[0]
    con.execute(f"DELETE FROM {table} WHERE {where}")
    stats.carried -= int(calls)
    _add(stats, Skip.DUPLICATE_RECORD.value, -int(repeats))
    _add(stats, Skip.REF_MISMATCH.value, int(calls))
    return int(calls)


def count_ref_mismatch_calls(calls: PatientCalls) -> None:
    """Count the alleles `load` marked ref_mismatch (an indel or trimmed allele whose REF the
    FASTA contradicts: marked while normalizing, before genotypes are read) per call, as
    `check_matched_refs` counts the alleles checked after matching: a genotype carrying the
    allele is one ref_mismatch call, any other genotype keeps its own reason (hom_ref,
    no_call...). `load` counted each such allele once and none of its calls, so three samples
    carrying one bad indel read as "ref_mismatch 1" beside SNVs counted per call."""
    con, stats = calls.con, calls.stats
    mismatch = Skip.REF_MISMATCH.value
    alleles = int(db.scalar(con, f"SELECT count(*) FROM {calls.allele} WHERE skip = ?",
                            [mismatch]) or 0)
    if not alleles:
        return
    _add(stats, mismatch, -alleles)
    for ai, code, n in con.execute(f"""
            SELECT a.ai, c.code, sum(c.n)::BIGINT FROM {calls.allele} a
            JOIN {calls.gtcounts} c USING (rid) WHERE a.skip = ? GROUP BY ALL""",
                                   [mismatch]).fetchall():
        status, _ = genotype_status(calls.code_text[code], ai)
        stats.calls += int(n)
        _add(stats, mismatch if status == "carried" else status, int(n))


def _add(stats: ReadStats, reason: str, n: int) -> None:
    """Add `n` (may be negative) to a reason's count; a reason back at 0 is dropped, so the
    JSON counts do not list it."""
    total = stats.skipped[reason] + n
    if total:
        stats.skipped[reason] = total
    else:
        stats.skipped.pop(reason, None)


# ------------------------------------------------------------ one patient over several files
_CALL_KEY = "sample, key_chrom, pos, ref, alt"


def count_repeats(con: duckdb.DuckDBPyConnection, table: str, earlier: Sequence[str],
                  stats: ReadStats) -> int:
    """The rows of `table` (one file's `carried_at` table) whose sample and allele an
    `earlier` file's table already holds: one sample in two files is one patient, so such a
    call is a repeated record, counted in this file's `stats` as duplicate_record (as a
    repeat inside one file is). Returns how many."""
    if not earlier:
        return 0
    seen = " UNION ALL ".join(f"SELECT {_CALL_KEY} FROM {t}" for t in earlier)
    repeats = int(db.scalar(con, f"SELECT count(*) FROM {table} SEMI JOIN ({seen}) p "
                                 f"USING ({_CALL_KEY})") or 0)
    _add(stats, Skip.DUPLICATE_RECORD.value, repeats)
    return repeats


def merged_calls_sql(tables: Sequence[str], payload: Sequence[str] = ()) -> str:
    """One row per (sample, allele) over the `carried_at` tables of several files, read as
    one patient's: `f` is the first file holding the call (its index in `tables`), whose
    coordinates and FILTER the row keeps; zygosities are combined as inside one file."""
    if len(tables) == 1:  # nothing to merge: spare the grouping
        return f"SELECT 0 AS f, * FROM {tables[0]}"
    union = " UNION ALL BY NAME ".join(f"SELECT {n} AS f, * FROM {t}"
                                       for n, t in enumerate(tables))
    first = "(f, rid)"
    extra = "".join(f", arg_min({p}, {first}) AS {p}" for p in payload)
    zygosities = "flatten(list(string_split(zygosity, ',')))"
    return (f"SELECT min(f) AS f, sample, arg_min(rid, {first}) AS rid, "
            f"arg_min(ai, {first}) AS ai, arg_min(chrom, {first}) AS chrom, key_chrom, pos, "
            f"ref, alt, arg_min(filter, {first}) AS filter, "
            f"nullif(array_to_string(list_sort(list_distinct({zygosities})), ','), '') "
            f"AS zygosity, sum(copies) AS copies{extra} "
            f"FROM ({union}) GROUP BY {_CALL_KEY}")
