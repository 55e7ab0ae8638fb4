"""ClinVar `variant_summary.txt[.gz]`: tab-separated, one row per allele per assembly, 34 columns
before 2024 and 40 after. Coordinates come from the *VCF columns (Start/Ref/Alt may be `na`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from varreinterp import bgzf, db
from varreinterp.assembly import Assembly, contig_sql
from varreinterp.errors import InputError, UsageError
from varreinterp.importers.common import StagedSource
from varreinterp.textfile import open_text

if TYPE_CHECKING:
    import duckdb

REQUIRED = ["Assembly", "Chromosome", "PositionVCF", "ReferenceAlleleVCF", "AlternateAlleleVCF",
            "ClinicalSignificance", "ReviewStatus", "VariationID"]
_FIELD_COLUMN = {"classification": "ClinicalSignificance", "review_status": "ReviewStatus"}


def header_columns(path: Path) -> list[str]:
    for line in open_text(path):
        return [c.lstrip("#") for c in line.rstrip("\r\n").split("\t")]
    raise InputError("empty file", path)


def is_variant_summary(columns: list[str]) -> bool:
    return all(c in columns for c in REQUIRED)


def locate_column(path: Path, columns: list[str], column: str, raw: str) -> int | None:
    idx = columns.index(column)
    for n, line in enumerate(open_text(path), start=1):
        if n > 1:
            fields = line.rstrip("\r\n").split("\t")
            if idx < len(fields) and fields[idx] == raw:
                return n
    return None


def stage_variant_summary(
    con: duckdb.DuckDBPyConnection, path: Path, assembly: Assembly | None, workdir: Path
) -> StagedSource:
    columns = header_columns(path)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InputError(f"not a ClinVar variant_summary file: missing column(s) "
                         f"{', '.join(missing)}", path, 1)
    names = [f"c{i}" for i in range(len(columns))]
    col = {name: f"c{columns.index(name)}" for name in columns}
    text = bgzf.decompressed_text(path, workdir)
    with db.reading(path):
        con.execute(f"CREATE TEMP TABLE raw AS SELECT * FROM "
                    f"{db.read_delimited(text, names, skip=1)}")
    builds = [r[0] for r in con.execute(
        f"SELECT DISTINCT {col['Assembly']} FROM raw ORDER BY 1").fetchall()]
    known = [b for b in builds if b in (a.value for a in Assembly)]
    if assembly is None:
        if len(known) != 1:
            raise UsageError(f"{path}: rows for {', '.join(known) or 'no known assembly'}; "
                             "choose one with --assembly GRCh37|GRCh38")
        assembly = Assembly(known[0])
    source = StagedSource("variant-summary", path, None, assembly)

    def opt(name: str) -> str:
        return f"nullif(nullif({col[name]}, '-'), '')" if name in col else "NULL"

    counts = con.execute(f"""
        SELECT CASE WHEN {col['Assembly']} IS DISTINCT FROM '{assembly.value}' THEN 'other_assembly'
                    WHEN coalesce({col['PositionVCF']}, 'na') IN ('na', '-1', '')
                      OR coalesce({col['ReferenceAlleleVCF']}, 'na') IN ('na', '')
                      OR coalesce({col['AlternateAlleleVCF']}, 'na') IN ('na', '')
                    THEN 'no_vcf_coordinates' END AS reason, count(*)
        FROM raw GROUP BY 1 HAVING reason IS NOT NULL
    """).fetchall()
    source.skipped.update({r: n for r, n in counts})
    bad = db.first_row(con, f"""
        SELECT rowid, {col['PositionVCF']} FROM raw
        WHERE {col['Assembly']} = '{assembly.value}' AND {col['PositionVCF']} NOT IN ('na', '-1')
          AND {db.strict_pos_sql(col['PositionVCF'])} IS NULL
        ORDER BY rowid LIMIT 1
    """)
    if bad:
        raise InputError(f"PositionVCF {bad[1]!r} is not a position (digits, 1 to "
                         f"{db.MAX_POS})", path, int(bad[0]) + 2)
    con.execute(f"""
        CREATE TEMP TABLE staged AS
        SELECT {contig_sql(col['Chromosome'])} AS chrom,
               CAST({col['PositionVCF']} AS BIGINT) AS pos,
               upper({col['ReferenceAlleleVCF']}) AS ref, upper({col['AlternateAlleleVCF']}) AS alt,
               {opt('ClinicalSignificance')} AS raw_classification,
               {opt('ReviewStatus')} AS raw_review_status,
               CAST(NULL AS VARCHAR) AS conflicts,
               {opt('GeneSymbol')} AS gene, {opt('PhenotypeList')} AS conditions,
               CAST(NULL AS VARCHAR) AS consequence,
               {opt('VariationID')} AS variation_id, {opt('AlleleID')} AS allele_id,
               {opt('LastEvaluated')} AS last_evaluated,
               {opt('Oncogenicity')} AS onc_classification,
               {opt('ReviewStatusOncogenicity')} AS onc_review_status,
               {opt('SomaticClinicalImpact')} AS sci_classification,
               {opt('ReviewStatusClinicalImpact')} AS sci_review_status
        FROM raw
        WHERE {col['Assembly']} = '{assembly.value}'
          AND {col['PositionVCF']} NOT IN ('na', '-1', '')
          AND {col['ReferenceAlleleVCF']} NOT IN ('na', '')
          AND {col['AlternateAlleleVCF']} NOT IN ('na', '')
    """)
    source.locate = lambda field, raw: locate_column(path, columns, _FIELD_COLUMN[field], raw)
    return source
