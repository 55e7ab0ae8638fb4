"""What every importer shares: turning a staged table of raw rows into the snapshot's Parquet file
(vocabulary mapping, allele trimming and, with --reference, left-alignment, de-duplication).

An importer's job ends with a DuckDB table named `staged` holding STAGED_COLUMNS (all VARCHAR but
`pos` BIGINT), in file order, plus a `locate` callback that finds a raw term's line for errors."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import db
from varreinterp.assembly import (
    Assembly,
    ContigPolicy,
    assembly_from_contig_lengths,
    normalize_contig,
    other_build,
)
from varreinterp.errors import AssemblyMismatchError, InputError
from varreinterp.normalize import can_shift_left_sql, invalid_allele_sql, left_align, trim
from varreinterp.vocabulary import (
    Tier,
    UnknownTerm,
    check_term,
    classify,
    fold_term_list,
    review_status,
    tier_order_sql,
)

if TYPE_CHECKING:
    import duckdb

    from varreinterp.patient_vcf import FastaReference

log = logging.getLogger("varreinterp")

STAGED_COLUMNS = [
    "chrom", "pos", "ref", "alt", "raw_classification", "raw_review_status", "conflicts",
    "gene", "conditions", "consequence", "variation_id", "allele_id", "last_evaluated",
    "onc_classification", "onc_review_status", "sci_classification", "sci_review_status",
    "hgvs",
]

# Columns of variants.parquet, in order (schema 2 added hgvs; see store.V1_COLUMNS).
SNAPSHOT_COLUMNS = [
    "chrom", "pos", "ref", "alt", "classification", "tier", "stars", "review_status",
    "raw_classification", "raw_review_status", "conflicts", "gene", "conditions", "consequence",
    "variation_id", "allele_id", "last_evaluated",
    "onc_classification", "onc_review_status", "sci_classification", "sci_review_status",
    "hgvs",
]


@dataclass
class StagedSource:
    """What an importer learned about its file besides the rows."""

    kind: str
    path: Path
    release_date: date | None
    assembly: Assembly | None
    skipped: Counter[str] = field(default_factory=Counter)
    # Finds the 1-based line of the first row whose `field` equals `raw` (error path only).
    locate: Callable[[str, str], int | None] = lambda field, raw: None
    # A lab's own spellings, rewritten to ClinVar's before the shared vocabulary sees them.
    rewrite_classification: Callable[[str], str] = lambda raw: raw
    rewrite_review: Callable[[str], str] = lambda raw: raw
    numeric_codes: bool = False  # pre-2017 CLNSIG codes ('5' = Pathogenic): those files only
    declared_contigs: dict[str, int] = field(default_factory=dict)  # ##contig lengths
    # --reference: finalize left-aligns the indels against it, as the patient reader does.
    reference: FastaReference | None = None


class AlleleNote(StrEnum):
    """What normalizing the stored alleles counts in the manifest's `skipped`."""

    # Not imported: --reference contradicts the REF (the patient reader's Skip.REF_MISMATCH).
    REF_MISMATCH = "ref_mismatch"
    # The next two are imported as given (trimmed), so only a patient call spelled the same way
    # matches them: an indel that can shift left (`G>GG`) with no FASTA to left-align it, and
    # an indel on a contig the --reference FASTA has no sequence for (REF not checked either).
    NOT_LEFT_ALIGNED = "not_left_aligned"
    NO_REFERENCE_SEQUENCE = "no_reference_sequence"


# Counted in `skipped` (the manifest's one place for counts) but stored: said apart in logs.
STORED_AS_GIVEN = frozenset({AlleleNote.NOT_LEFT_ALIGNED.value,
                             AlleleNote.NO_REFERENCE_SEQUENCE.value})


def allele_skip_sql(ref: str = "ref", alt: str = "alt") -> str:
    """SQL: why a raw row's alleles (upper-cased) cannot be stored, or NULL. A REF or ALT that
    is not plain bases (`-`, `T/A`, `G ` with an export's trailing blank) could never match a
    patient allele, which annotate skips by the same rule (patient_vcf.Skip.INVALID)."""
    return f"""(CASE WHEN {alt} IS NULL OR {alt} IN ('.', '') THEN 'alt_missing'
                     WHEN {alt} LIKE '%<%' OR {alt} = '*' THEN 'symbolic_alt'
                     WHEN {alt} LIKE '%,%' THEN 'multi_allelic_row'
                     WHEN {invalid_allele_sql(ref, alt)} THEN 'invalid_allele' END)"""


def refused_contigs(source: StagedSource, names: Iterable[str]) -> dict[str, str]:
    """The contigs among `names` whose rows must not be imported, with their skip reasons
    (hg19's chrM, which is not the rCRS; another build's RefSeq accession), one warning each:
    the rules the patient reader applies (assembly.ContigPolicy)."""
    policy = ContigPolicy(source.declared_contigs, {}, source.assembly)
    refused = {}
    for name in names:
        verdict = policy.verdict(name)
        if verdict is not None:
            log.warning("%s: %s", source.path, policy.explain(
                name, verdict, "its rows are not imported",
                f"if it is the rCRS, write it MT, or declare ##contig=<ID={name},length=16569> "
                "in a VCF"))
            refused[name] = verdict.value
    return refused


@dataclass
class FinalizedSnapshot:
    records: int
    tiers: dict[str, int]
    stars: dict[str, int]
    skipped: dict[str, int]
    unknown_terms: dict[str, int]
    contigs: list[str]


# ------------------------------------------------------------------------------- finalize
def _map_terms(
    con: duckdb.DuckDBPyConnection, source: StagedSource, allow_unknown: bool
) -> Counter[str]:
    """Build term tables `cls_map(raw, classification, tier)` and `rev_map(raw, term, stars)`."""
    unknown: Counter[str] = Counter()

    def classification(raw: str) -> tuple[str, str, str]:
        c = classify(source.rewrite_classification(raw), codes=source.numeric_codes)
        return raw, c.term, c.tier.value

    def review(raw: str) -> tuple[str, str, int | None]:
        r = review_status(source.rewrite_review(raw))
        return raw, r.term, r.stars

    cls_rows = _fold_terms(con, source, allow_unknown, unknown, "classification",
                           "classification", classification, Tier.OTHER.value)
    rev_rows = _fold_terms(con, source, allow_unknown, unknown, "review_status",
                           "review status", review, None)
    con.execute("CREATE OR REPLACE TEMP TABLE cls_map (raw VARCHAR, classification VARCHAR, "
                "tier VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE rev_map (raw VARCHAR, term VARCHAR, stars TINYINT)")
    if cls_rows:
        con.executemany("INSERT INTO cls_map VALUES (?, ?, ?)", cls_rows)
    if rev_rows:
        con.executemany("INSERT INTO rev_map VALUES (?, ?, ?)", rev_rows)
    return unknown


def _fold_terms(con: duckdb.DuckDBPyConnection, source: StagedSource, allow_unknown: bool,
                unknown: Counter[str], column: str, field: str,
                fold: Callable[[str], tuple[Any, ...]], other: object) -> list[tuple[Any, ...]]:
    """One row per distinct raw term of `raw_<column>`: folded, or (with --allow-unknown)
    kept as written with `other` in the last column and counted in `unknown`."""
    rows: list[tuple[Any, ...]] = []
    for raw, n in con.execute(
        f"SELECT raw_{column}, count(*) FROM staged WHERE raw_{column} IS NOT NULL GROUP BY 1"
    ).fetchall():
        try:
            rows.append(fold(raw))
        except UnknownTerm:
            check_term(raw, allow_unknown, path=str(source.path),
                       line=source.locate(column, raw), field=field)
            unknown[raw] += n
            rows.append((raw, raw, other))
    return rows


def check_declared_build(source: StagedSource, named: str | None) -> None:
    """The header's own evidence of its build (`##reference` value `named`, `##contig`
    lengths), as the patient reader weighs it: another build (hg18, T2T) is refused, lengths
    of the other GRCh build than the one named are warned about. Lengths alone never decide a
    release's build (headers copied from a template are common): --assembly must say it."""
    why = other_build(named, source.declared_contigs)
    if why:
        raise AssemblyMismatchError(f"another genome build: {why}; snapshots are GRCh37 or "
                                    "GRCh38, so its positions would match the wrong variants",
                                    source.path)
    build = assembly_from_contig_lengths(source.declared_contigs)
    if build is not None and source.assembly is not None and build != source.assembly:
        # Said, not refused: real exports keep a template's contig lines (MacArthur's b38
        # release declares GRCh37's lengths), and --assembly or ##reference named the build.
        log.warning("%s: the header's ##contig lengths are %s's, but the file is imported as "
                    "%s (--assembly or ##reference): check that this is the release's build",
                    source.path, build.value, source.assembly.value)


def check_reference(source: StagedSource, reference: FastaReference) -> None:
    """A --reference FASTA must be the release's build (matching.check_reference's rules for a
    patient VCF): another build would contradict most REFs and drop those indels as
    ref_mismatch, or left-align them against the wrong sequence."""
    fasta = reference.lengths()
    for name, length in source.declared_contigs.items():
        theirs = next((n for c, n in fasta.items()
                       if normalize_contig(c) == normalize_contig(name)), None)
        if theirs is not None and theirs != length:
            raise InputError(f"--reference {reference.path} does not fit this file: contig "
                             f"{name} is {length:,} bp in its header but {theirs:,} bp in the "
                             "FASTA", source.path)
    why = other_build(None, fasta)
    if why:
        raise AssemblyMismatchError(f"--reference {reference.path} is another genome build: "
                                    f"{why}", source.path)
    build = assembly_from_contig_lengths(fasta)
    if build is not None and source.assembly is not None and build != source.assembly:
        raise AssemblyMismatchError(f"--reference {reference.path} is {build.value} (from its "
                                    f"contig lengths) but the file is {source.assembly.value}",
                                    source.path)


# Rows that need Python: those with bases to trim (rare: a ClinVar release has none) and, with
# a FASTA, every indel (about 10% of a release). Without one, the indels that can shift left are
# only counted, by one more scan of about 0.1 s: the 3M-record bench release (67,777 of its
# synthetic indels can shift) imported in 10.3 s before and 10.4 s after, 3 runs each.
_UNTRIMMED = ("(length(ref) > 1 AND length(alt) > 1 "
              "AND (ref[1] = alt[1] OR ref[-1] = alt[-1]))")
_INDEL = "length(ref) <> length(alt)"


def _normalize_alleles(con: duckdb.DuckDBPyConnection, source: StagedSource) -> None:
    """Trim shared bases and, with `source.reference`, left-align indels and drop the rows
    whose REF it contradicts: what the patient reader does to every call
    (patient_vcf._normalize_in_python), so that both sides spell a variant one way. Without a
    FASTA an indel that can shift left is stored as given, counted and warned about."""
    reference = source.reference
    if reference is not None:
        check_reference(source, reference)
    wanted = f"{_UNTRIMMED} OR {_INDEL}" if reference is not None else _UNTRIMMED
    rows = con.execute(f"SELECT rowid, chrom, pos, ref, alt FROM staged "
                       f"WHERE {wanted}").fetchall()
    fixed: list[tuple[int, int, str, str]] = []
    mismatched: list[tuple[int, str, int, str, str]] = []
    unsequenced: Counter[str] = Counter()
    usable = _sequenced(source, reference) if reference is not None else set()
    for rowid, chrom, pos, ref, alt in rows:
        if reference is not None and normalize_contig(chrom) in usable:
            if reference.fetch(chrom, pos - 1, pos - 1 + len(ref)).upper() != ref:
                mismatched.append((rowid, chrom, pos, ref, alt))
                continue
            new = left_align(reference, chrom, pos, ref, alt)
        else:
            new = trim(pos, ref, alt)
            if reference is not None and len(ref) != len(alt):
                unsequenced[chrom] += 1
        if new != (pos, ref, alt):
            fixed.append((rowid, *new))
    _apply(con, fixed, [m[0] for m in mismatched])
    _count_notes(con, source, mismatched, unsequenced)


def _sequenced(source: StagedSource, reference: FastaReference) -> set[str]:
    """The contig keys whose sequence the FASTA gives for this source: a mitochondrion only
    when the FASTA's is the rCRS (hg19's 16,571 bp chrM would shift or refuse ClinVar's MT
    indels: the patient reader's ContigPolicy, with the FASTA's lengths)."""
    lengths = {normalize_contig(n): n_bp for n, n_bp in reference.lengths().items()}
    policy = ContigPolicy({}, lengths, source.assembly)
    usable = set()
    for key in lengths:
        verdict = policy.verdict(key)
        if verdict is None:
            usable.add(key)
        else:
            log.warning("%s: --reference %s: %s", source.path, reference.path, policy.explain(
                key, verdict, "its indels are stored as given (no_reference_sequence)"))
    return usable


def _apply(con: duckdb.DuckDBPyConnection, fixed: list[tuple[int, int, str, str]],
           dropped: list[int]) -> None:
    """Rewrite the `fixed` rows' alleles and delete the `dropped` rows, by rowid: one join
    each, not one statement per row (a lab table written HGVS-style shifts most indels)."""
    if not fixed and not dropped:
        return
    import pyarrow as pa

    con.register("normalized_rows", pa.table({
        "row_id": pa.array([f[0] for f in fixed], pa.int64()),
        "pos": pa.array([f[1] for f in fixed], pa.int64()),
        "ref": pa.array([f[2] for f in fixed], pa.string()),
        "alt": pa.array([f[3] for f in fixed], pa.string()),
    }))
    con.register("dropped_rows", pa.table({"row_id": pa.array(dropped, pa.int64())}))
    try:
        con.execute("UPDATE staged SET pos = f.pos, ref = f.ref, alt = f.alt "
                    "FROM normalized_rows f WHERE staged.rowid = f.row_id")
        con.execute("DELETE FROM staged WHERE rowid IN (SELECT row_id FROM dropped_rows)")
    finally:
        con.unregister("normalized_rows")
        con.unregister("dropped_rows")


def _count_notes(con: duckdb.DuckDBPyConnection, source: StagedSource,
                 mismatched: list[tuple[int, str, int, str, str]],
                 unsequenced: Counter[str]) -> None:
    """Count what normalizing did not do in `source.skipped`, one warning line each. The rows
    left not left-aligned are found among the normalized ones: all of them without a FASTA,
    those on the contigs it lacks with one."""
    reference = source.reference
    if mismatched and reference is not None:
        source.skipped[AlleleNote.REF_MISMATCH.value] += len(mismatched)
        _, chrom, pos, ref, alt = mismatched[0]
        log.warning("%s: %d row(s) have a REF that --reference %s contradicts (e.g. %s:%d "
                    "%s>%s): not imported", source.path, len(mismatched), reference.path,
                    chrom, pos, ref, alt)
    for chrom, n in sorted(unsequenced.items()):
        assert reference is not None
        source.skipped[AlleleNote.NO_REFERENCE_SEQUENCE.value] += n
        log.warning("%s: --reference %s has no sequence for contig %s: %d indel row(s) on it "
                    "were not left-aligned or REF-checked (only trimmed)", source.path,
                    reference.path, chrom, n)
    if reference is not None and not unsequenced:
        return
    where = can_shift_left_sql()  # the rows are trimmed by now
    if unsequenced:
        where += f" AND chrom IN ({', '.join(db.quote(c) for c in unsequenced)})"
    unaligned = int(db.scalar(con, f"SELECT count(*) FROM staged WHERE {where}") or 0)
    if not unaligned:
        return
    source.skipped[AlleleNote.NOT_LEFT_ALIGNED.value] += unaligned
    chrom, pos, ref, alt = con.execute(f"SELECT chrom, pos, ref, alt FROM staged WHERE {where} "
                                       "ORDER BY chrom, pos, ref, alt LIMIT 1").fetchall()[0]
    fasta = "a --reference FASTA that has their contig" if reference else "--reference FASTA"
    log.warning("%s: %d indel row(s) are not left-aligned (e.g. %s:%d %s>%s) and are stored "
                "as given, so a normalized patient call (bcftools norm -f) will not match "
                "them; import with %s to left-align them", source.path, unaligned, chrom, pos,
                ref, alt, fasta)


# After stars and tier: the variation id first, then every other staged column.
_TIE_ORDER = ["variation_id", *(c for c in STAGED_COLUMNS[4:] if c != "variation_id")]


def _fold_disagreeing_duplicates(con: duckdb.DuckDBPyConnection, source: StagedSource,
                                 repeated: str) -> bool:
    """Rows of one allele that disagree, among the best-reviewed of them (a lab's appended
    reclassification row, two submitters' rows, two ClinVar records of one allele): keeping
    the most severe would hide the other (a Pathogenic row kept over the Benign one that
    replaced it: the downgrade never reported). They are folded as a list of submitters'
    terms is (vocabulary.fold_term_list: different tiers give Conflicting), into the temp table
    `folded_duplicates`, with a warning. False when no allele needs it."""
    rows = con.execute(f"""
        WITH d AS ({repeated}),
        top AS (SELECT *, max(stars) OVER (PARTITION BY chrom, pos, ref, alt) AS best FROM d)
        SELECT chrom, pos, ref, alt, list(DISTINCT classification ORDER BY classification)
        FROM top WHERE stars IS NOT DISTINCT FROM best AND classification IS NOT NULL
        GROUP BY ALL HAVING count(DISTINCT classification) > 1
        ORDER BY chrom, pos, ref, alt""").fetchall()
    folded = []
    for chrom, pos, ref, alt, terms in rows:
        term = fold_term_list("|".join(terms))
        if term is not None:
            folded.append((chrom, pos, ref, alt, term, classify(term).tier.value, terms))
    if not folded:
        return False
    # A literal table (a few rows): pyarrow's first array here would cost a pandas import.
    values = ", ".join(f"({db.quote(c)}, {int(p)}, {db.quote(r)}, {db.quote(a)}, {db.quote(t)}, "
                       f"{db.quote(tier)})" for c, p, r, a, t, tier, _ in folded)
    con.execute(f"""CREATE OR REPLACE TEMP TABLE folded_duplicates AS
                    SELECT * FROM (VALUES {values})
                    t(chrom, pos, ref, alt, classification, tier)""")
    chrom, pos, ref, alt, term, _, terms = folded[0]
    log.warning("%s: %d allele(s) listed more than once with different classifications (e.g. "
                "%s:%d %s>%s: %s): each is stored as their combination (%s), as a list of "
                "submitters' terms is, not as one of the rows", source.path, len(folded),
                chrom, pos, ref, alt, ", ".join(terms), term)
    return True


def finalize(
    con: duckdb.DuckDBPyConnection, source: StagedSource, out: Path, allow_unknown: bool
) -> FinalizedSnapshot:
    """Map terms, normalize alleles (with `source.reference`, left-align), de-duplicate and
    write `out` (Parquet); return the counts."""
    _normalize_alleles(con, source)  # first: a row it drops has no term to count
    unknown = _map_terms(con, source, allow_unknown)
    # One row per allele key, once normalized (two spellings of one indel are one key).
    # Duplicates (rare) keep the best-reviewed, most severe row and are counted, never silently
    # dropped. The window only runs over the rows whose key hash repeats (grouping one hash is
    # a third faster than four columns); a hash shared by two keys only sends both to the
    # window, which partitions by the keys themselves.
    key_hash = "hash(s.chrom, s.pos, s.ref, s.alt)"
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE dup_hashes AS
        SELECT {key_hash} AS h FROM staged s GROUP BY 1 HAVING count(*) > 1""")
    # Ties end on the rows' content, never on their order in `staged` (an importer may insert
    # in parallel): the kept row is the same on every run.
    rank = f"""row_number() OVER (
            PARTITION BY s.chrom, s.pos, s.ref, s.alt
            ORDER BY r.stars DESC NULLS LAST, {tier_order_sql('c.tier')},
                     {', '.join(f's.{col} NULLS LAST' for col in _TIE_ORDER)})"""
    mapped = f"""
        SELECT s.chrom, s.pos, s.ref, s.alt,
               c.classification, c.tier, r.stars, r.term AS review_status,
               {', '.join('s.' + col for col in STAGED_COLUMNS[4:])}
        FROM staged s
        LEFT JOIN cls_map c ON s.raw_classification = c.raw
        LEFT JOIN rev_map r ON s.raw_review_status = r.raw"""
    # The few repeated rows, taken once: ranked, and folded where they disagree.
    con.execute(f"""CREATE OR REPLACE TEMP TABLE dup_staged AS
                    SELECT * FROM staged s SEMI JOIN dup_hashes d ON {key_hash} = d.h""")
    repeated = mapped.replace("FROM staged s", "FROM dup_staged s")
    kept = f"""SELECT * EXCLUDE (k) FROM ({repeated.replace("SELECT", f"SELECT {rank} AS k,", 1)})
               WHERE k = 1"""
    if _fold_disagreeing_duplicates(con, source, repeated):
        kept = f"""
            SELECT x.* REPLACE (coalesce(f.classification, x.classification) AS classification,
                                coalesce(f.tier, x.tier) AS tier)
            FROM ({kept}) x LEFT JOIN folded_duplicates f USING (chrom, pos, ref, alt)"""
    final = f"""
        {mapped} ANTI JOIN dup_hashes d ON {key_hash} = d.h
        UNION ALL
        {kept}"""
    # Written straight to Parquet; the counts are then read back from the file's columns.
    # Row order inside a snapshot carries no meaning (it is read by joins): let both threads
    # write.
    con.execute("SET preserve_insertion_order = false")
    with db.writing(out):
        con.execute(
            f"COPY (SELECT {', '.join(SNAPSHOT_COLUMNS)} FROM ({final})) "
            f"TO {db.quote(str(out))} (FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
        )
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"CREATE OR REPLACE TEMP VIEW final AS SELECT * FROM {db.parquet(out)}")
    staged_n = con.execute("SELECT count(*) FROM staged").fetchall()[0][0]
    records = con.execute("SELECT count(*) FROM final").fetchall()[0][0]
    if staged_n > records:
        source.skipped["duplicate_allele_key"] += staged_n - records
        log.warning("%s: %d rows repeat an allele already imported (one row kept per allele: "
                    "the best-reviewed, their classifications combined where they disagree)",
                    source.path, staged_n - records)
    no_germline = con.execute(
        "SELECT count(*) FROM final WHERE classification IS NULL").fetchall()[0][0]
    if not records:
        raise InputError("no classified record in the file: nothing to import (a header-only "
                         "or cut release is never stored)", source.path)
    if no_germline == records:
        raise InputError("no germline classification in any record: nothing to import",
                         source.path)
    tiers = {t.value: 0 for t in Tier}
    for tier, n in con.execute("SELECT tier, count(*) FROM final GROUP BY 1").fetchall():
        tiers[tier if tier else "none"] = n
    stars = {str(s): n for s, n in con.execute(
        "SELECT stars, count(*) FROM final WHERE stars IS NOT NULL GROUP BY 1 ORDER BY 1"
    ).fetchall()}
    contigs = sorted(r[0] for r in con.execute("SELECT DISTINCT chrom FROM final").fetchall())
    return FinalizedSnapshot(records, tiers, stars, dict(source.skipped), dict(unknown), contigs)
