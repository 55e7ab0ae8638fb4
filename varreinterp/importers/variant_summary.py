"""ClinVar `variant_summary.txt[.gz]`: tab-separated, one row per allele per assembly.

Layouts: since 2017 (34 columns, 40 from 2024) coordinates come from the *VCF columns
(PositionVCF, ReferenceAlleleVCF, AlternateAlleleVCF; Start/Ref/Alt may be `na`). The older
30-column layout has only Start/Stop/ReferenceAllele/AlternateAllele, which lack VCF's anchor
base for indels: substitutions are taken as they are, indels are built against `--reference`
(the base before them read from the FASTA, the deleted bases checked against it) or else
skipped and counted (`indel_needs_reference`). Start is HGVS's, shifted right through repeats:
finalize then left-aligns the built indel against the same FASTA."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from varreinterp import bgzf, db
from varreinterp.assembly import PRIMARY_CONTIGS, Assembly, contig_sql, normalize_contig
from varreinterp.errors import InputError, UsageError
from varreinterp.importers.common import AlleleNote, StagedSource, allele_skip_sql
from varreinterp.textfile import open_text, parse_table

if TYPE_CHECKING:
    import duckdb

    from varreinterp.patient_vcf import FastaReference

CORE = ["Assembly", "Chromosome", "ClinicalSignificance", "ReviewStatus"]
VCF_COORDINATES = ["PositionVCF", "ReferenceAlleleVCF", "AlternateAlleleVCF"]
OLD_COORDINATES = ["Start", "Stop", "ReferenceAllele", "AlternateAllele"]
_FIELD_COLUMN = {"classification": "ClinicalSignificance", "review_status": "ReviewStatus"}
_BASES = re.compile(r"[ACGTN]+")


def header_columns(path: Path) -> list[str]:
    for line in open_text(path):
        return [c.lstrip("#") for c in line.rstrip("\r\n").split("\t")]
    raise InputError("empty file", path)


def is_variant_summary(columns: list[str]) -> bool:
    return all(c in columns for c in CORE) and (
        all(c in columns for c in VCF_COORDINATES) or all(c in columns for c in OLD_COORDINATES))


def locate_column(path: Path, columns: list[str], column: str, raw: str) -> int | None:
    idx = columns.index(column)
    for n, line in enumerate(open_text(path), start=1):
        if n > 1:
            fields = line.rstrip("\r\n").split("\t")
            if idx < len(fields) and fields[idx] == raw:
                return n
    return None


def stage_variant_summary(
    con: duckdb.DuckDBPyConnection, path: Path, assembly: Assembly | None, workdir: Path,
    reference: FastaReference | None = None,
) -> StagedSource:
    columns = header_columns(path)
    if not is_variant_summary(columns):
        missing = [c for c in CORE + VCF_COORDINATES if c not in columns]
        raise InputError(f"not a ClinVar variant_summary file: missing column(s) "
                         f"{', '.join(missing)}", path, 1)
    names = [f"c{i}" for i in range(len(columns))]
    col = {name: f"c{columns.index(name)}" for name in columns}
    parse_table(path, bgzf.decompressed_text(path, workdir), names, 1,
                lambda reader: con.execute(f"CREATE OR REPLACE TEMP TABLE raw AS SELECT * FROM "
                                           f"{reader}"))
    builds = [r[0] for r in con.execute(
        f"SELECT DISTINCT {col['Assembly']} FROM raw ORDER BY 1").fetchall()]
    known = [b for b in builds if b in (a.value for a in Assembly)]
    if assembly is None:
        if len(known) != 1:
            raise UsageError(f"{path}: rows for {', '.join(known) or 'no known assembly'}; "
                             "choose one with --assembly GRCh37|GRCh38")
        assembly = Assembly(known[0])
    source = StagedSource("variant-summary", path, None, assembly, reference=reference)
    other = con.execute(f"SELECT count(*) FROM raw WHERE {col['Assembly']} IS DISTINCT FROM "
                        f"{db.quote(assembly.value)}").fetchall()[0][0]
    if other:
        source.skipped["other_assembly"] += other
    con.execute(f"DELETE FROM raw WHERE {col['Assembly']} IS DISTINCT FROM "
                f"{db.quote(assembly.value)}")
    if all(c in columns for c in VCF_COORDINATES):
        _coordinates_from_vcf_columns(con, path, col, source)
    else:
        _coordinates_from_old_columns(con, path, col, source, reference)
    _skip_unmatchable(con, col, source)

    def opt(name: str) -> str:
        return f"nullif(nullif(r.{col[name]}, '-'), '')" if name in col else "NULL"

    con.execute(f"""
        CREATE TEMP TABLE staged AS
        SELECT {contig_sql('r.' + col['Chromosome'])} AS chrom, k.pos, k.ref, k.alt,
               {opt('ClinicalSignificance')} AS raw_classification,
               {opt('ReviewStatus')} AS raw_review_status,
               CAST(NULL AS VARCHAR) AS conflicts,
               {opt('GeneSymbol')} AS gene, {opt('PhenotypeList')} AS conditions,
               CAST(NULL AS VARCHAR) AS consequence,
               {opt('VariationID')} AS variation_id, {opt('AlleleID')} AS allele_id,
               {opt('LastEvaluated')} AS last_evaluated, {opt('Name')} AS hgvs,
               {opt('Oncogenicity')} AS onc_classification,
               {opt('ReviewStatusOncogenicity')} AS onc_review_status,
               {opt('SomaticClinicalImpact')} AS sci_classification,
               {opt('ReviewStatusClinicalImpact')} AS sci_review_status
        FROM raw r JOIN coords k ON k.row_id = r.rowid
        ORDER BY r.rowid
    """)
    source.locate = lambda field, raw: locate_column(path, columns, _FIELD_COLUMN[field], raw)
    return source


def _coordinates_from_vcf_columns(con: duckdb.DuckDBPyConnection, path: Path,
                                  col: dict[str, str], source: StagedSource) -> None:
    pos, ref, alt = (col[c] for c in VCF_COORDINATES)
    missing = (f"coalesce({pos}, 'na') IN ('na', '-1', '') OR coalesce({ref}, 'na') IN ('na', '')"
               f" OR coalesce({alt}, 'na') IN ('na', '')")
    n = con.execute(f"SELECT count(*) FROM raw WHERE {missing}").fetchall()[0][0]
    if n:
        source.skipped["no_vcf_coordinates"] += n
    bad = db.first_row(con, f"""
        SELECT rowid, {pos} FROM raw WHERE NOT ({missing}) AND {db.strict_pos_sql(pos)} IS NULL
        ORDER BY rowid LIMIT 1""")
    if bad:
        raise InputError(f"PositionVCF {bad[1]!r} is not a position (digits, 1 to "
                         f"{db.MAX_POS})", path, _line(con, int(bad[0])))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE coords AS
        SELECT rowid AS row_id, CAST({pos} AS BIGINT) AS pos, upper({ref}) AS ref,
               upper({alt}) AS alt
        FROM raw WHERE NOT ({missing})""")


def _skip_unmatchable(con: duckdb.DuckDBPyConnection, col: dict[str, str],
                      source: StagedSource) -> None:
    """Alleles no patient call can have (`-`, `<DEL>`, `G,T`, REF equal to ALT) and contigs no
    build has (`Un`, `na`): counted and removed from `coords`, as the other sources do."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE coord_skips AS
        SELECT k.row_id, coalesce({allele_skip_sql('k.ref', 'k.alt')},
                                  CASE WHEN k.ref = k.alt THEN 'invalid_allele' END) AS why,
               r.{col['Chromosome']} AS chrom
        FROM coords k JOIN raw r ON r.rowid = k.row_id""")
    for (name,) in con.execute("SELECT DISTINCT chrom FROM coord_skips").fetchall():
        # ClinVar writes 1-22, X, Y, MT, and `Un`/`na` for an allele with no chromosome
        if name is None or normalize_contig(name) not in PRIMARY_CONTIGS:
            con.execute("UPDATE coord_skips SET why = 'invalid_contig' "
                        "WHERE chrom IS NOT DISTINCT FROM ?", [name])
    for why, n in con.execute("SELECT why, count(*) FROM coord_skips WHERE why IS NOT NULL "
                              "GROUP BY 1").fetchall():
        source.skipped[str(why)] += int(n)
    con.execute("DELETE FROM coords WHERE row_id IN "
                "(SELECT row_id FROM coord_skips WHERE why IS NOT NULL)")


def _line(con: duckdb.DuckDBPyConnection, row_id: int) -> int:
    """The file line of a raw row: rows of other assemblies were deleted, so rowid still is the
    data line index."""
    return row_id + 2


def _coordinates_from_old_columns(con: duckdb.DuckDBPyConnection, path: Path,
                                  col: dict[str, str], source: StagedSource,
                                  reference: FastaReference | None) -> None:
    """Start/Stop/ReferenceAllele/AlternateAllele (no anchor base) to VCF-style alleles."""
    rows = con.execute(f"""
        SELECT rowid, {col['Chromosome']}, {col['Start']}, {col['Stop']},
               upper({col['ReferenceAllele']}), upper({col['AlternateAllele']})
        FROM raw""").fetchall()
    out: list[tuple[int, int, str, str]] = []
    skipped: Counter[str] = Counter()
    for row_id, chrom, start_text, stop_text, ref, alt in rows:
        if ref in (None, "", "NA") or alt in (None, "", "NA") or start_text in (None, "na", "-1"):
            skipped["no_vcf_coordinates"] += 1
            continue
        for text in (start_text, stop_text):
            if text is not None and text not in ("na", "-1") and (
                    not re.fullmatch(r"[0-9]{1,10}", text) or not 1 <= int(text) <= db.MAX_POS):
                raise InputError(f"Start/Stop {text!r} is not a position (digits, 1 to "
                                 f"{db.MAX_POS})", path, _line(con, row_id))
        start = int(start_text)
        ref = "" if ref == "-" else ref
        alt = "" if alt == "-" else alt
        if (ref and not _BASES.fullmatch(ref)) or (alt and not _BASES.fullmatch(alt)):
            skipped["no_vcf_coordinates"] += 1
            continue
        if ref and alt and len(ref) == len(alt):
            out.append((row_id, start, ref, alt))  # a substitution needs no anchor
            continue
        if reference is None or not reference.has(chrom):
            skipped["indel_needs_reference"] += 1
            continue
        # An insertion sits after Start; anything else starts at Start: anchor on the base
        # before the first changed one, as VCF does.
        anchor_pos = start if not ref else start - 1
        if anchor_pos < 1:
            skipped["no_vcf_coordinates"] += 1
            continue
        seq = reference.fetch(chrom, anchor_pos - 1, anchor_pos + len(ref)).upper()
        if seq[1:] != ref:
            skipped[AlleleNote.REF_MISMATCH.value] += 1
            continue
        out.append((row_id, anchor_pos, seq, seq[0] + alt))
    source.skipped.update({k: v for k, v in skipped.items() if v})
    import pyarrow as pa

    table = pa.table({"row_id": pa.array([r[0] for r in out], pa.int64()),
                      "pos": pa.array([r[1] for r in out], pa.int64()),
                      "ref": pa.array([r[2] for r in out], pa.string()),
                      "alt": pa.array([r[3] for r in out], pa.string())})
    con.register("coords_rows", table)
    con.execute("CREATE OR REPLACE TEMP TABLE coords AS SELECT * FROM coords_rows")
    con.unregister("coords_rows")
