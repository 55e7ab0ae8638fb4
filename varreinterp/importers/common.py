"""What every importer shares: turning a staged table of raw rows into the snapshot's Parquet file
(vocabulary mapping, allele trimming, de-duplication).

An importer's job ends with a DuckDB table named `staged` holding STAGED_COLUMNS (all VARCHAR but
`pos` BIGINT), in file order, plus a `locate` callback that finds a raw term's line for errors."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import db
from varreinterp.assembly import Assembly, ContigPolicy
from varreinterp.errors import InputError
from varreinterp.normalize import needs_trim, trim
from varreinterp.vocabulary import (
    Tier,
    UnknownTerm,
    check_term,
    classify,
    review_status,
    tier_order_sql,
)

if TYPE_CHECKING:
    import duckdb

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


def _trim_untrimmed(con: duckdb.DuckDBPyConnection) -> int:
    """Trim the (rare) rows whose REF and ALT share bases; ClinVar rows never need it."""
    rows = con.execute(
        "SELECT rowid, pos, ref, alt FROM staged WHERE length(ref) > 1 AND length(alt) > 1 "
        "AND (ref[1] = alt[1] OR ref[-1] = alt[-1])"
    ).fetchall()
    fixes = [(trim(pos, ref, alt), rowid) for rowid, pos, ref, alt in rows if needs_trim(ref, alt)]
    if fixes:
        con.executemany("UPDATE staged SET pos = ?, ref = ?, alt = ? WHERE rowid = ?",
                        [(p, r, a, rowid) for (p, r, a), rowid in fixes])
    return len(fixes)


# After stars and tier: the variation id first, then every other staged column.
_TIE_ORDER = ["variation_id", *(c for c in STAGED_COLUMNS[4:] if c != "variation_id")]


def finalize(
    con: duckdb.DuckDBPyConnection, source: StagedSource, out: Path, allow_unknown: bool
) -> FinalizedSnapshot:
    """Map terms, trim, de-duplicate and write `out` (Parquet); return the counts."""
    unknown = _map_terms(con, source, allow_unknown)
    _trim_untrimmed(con)
    # One row per allele key. Duplicates (rare) keep the best-reviewed, most severe row and are
    # counted, never silently dropped. The window only runs over the rows whose key hash
    # repeats (grouping one hash is a third faster than four columns); a hash shared by two
    # keys only sends both to the window, which partitions by the keys themselves.
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
    final = f"""
        {mapped} ANTI JOIN dup_hashes d ON {key_hash} = d.h
        UNION ALL
        SELECT * EXCLUDE (k) FROM ({mapped.replace("SELECT", f"SELECT {rank} AS k,", 1)}
                                   SEMI JOIN dup_hashes d ON {key_hash} = d.h)
        WHERE k = 1"""
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
        log.warning("%s: %d rows repeat an allele already imported (kept the best-reviewed)",
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
