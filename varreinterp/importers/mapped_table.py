"""A lab's own classification table (TSV with a header line) or VCF, in any layout, described by
a TOML mapping file. See examples/mappings/ and the README for the format.

    [source]
    format = "vcf" | "tsv"
    name = "mylab"                      # optional; default snapshot names start with it
    release_date = "2018-03-01"        # optional; else --release-date, ##fileDate, file name

    [columns]                           # our field -> the file's column / INFO key
    contig = "CHROM"                    # for VCF: CHROM POS ID REF ALT are the fixed columns,
    position = "POS"                    # any other name is an INFO key
    ref = "REF"
    alt = "ALT"
    classification = "CLINICAL_SIGNIFICANCE"
    review_status = "REVIEW_STATUS"     # optional fields from here on
    gene = "SYMBOL"
    condition = "ALL_TRAITS"
    identifier = ["VARIATION_ID", "MEASURESET_ID"]   # a list: the first one the file has
    last_evaluated = "LAST_EVALUATED"

    [replace]                           # text replacements before any lookup
    ".." = ",_"

    [terms]                             # the lab's classification terms -> ClinVar's
    "Benign|Likely_benign" = "Benign/Likely_benign"

    [review_terms]                      # the same for review statuses
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from varreinterp import bgzf, db
from varreinterp.assembly import Assembly, contig_sql
from varreinterp.errors import InputError, UsageError
from varreinterp.importers.clinvar_vcf import (
    VCF_COLUMNS,
    check_vcf_header,
    declared_info,
    header_value,
    info_sql,
    parse_file_date,
    with_info_,
)
from varreinterp.importers.common import StagedSource
from varreinterp.textfile import header_lines, open_text

if TYPE_CHECKING:
    import duckdb

REQUIRED_FIELDS = ["contig", "position", "ref", "alt", "classification"]
OPTIONAL_FIELDS = ["review_status", "gene", "condition", "identifier", "last_evaluated"]
_VCF_FIXED = {"CHROM": "chrom", "POS": "pos", "ID": "id", "REF": "ref", "ALT": "alt"}


@dataclass
class Mapping:
    path: Path
    format: str
    columns: dict[str, list[str]]
    release_date: str | None = None
    name: str | None = None
    replace: dict[str, str] = field(default_factory=dict)
    terms: dict[str, str] = field(default_factory=dict)
    review_terms: dict[str, str] = field(default_factory=dict)

    def rewrite(self, raw: str, table: dict[str, str]) -> str:
        text = raw
        for old, new in self.replace.items():
            text = text.replace(old, new)
        return table.get(raw, table.get(text, text))


def load_mapping(path: Path) -> Mapping:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UsageError(f"{path}: mapping file not found") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read mapping file ({exc})") from exc
    source = data.get("source", {})
    fmt = source.get("format")
    if fmt not in ("vcf", "tsv"):
        raise UsageError(f"{path}: [source] format must be \"vcf\" or \"tsv\", not {fmt!r}")
    raw_cols = data.get("columns", {})
    unknown = set(raw_cols) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS)
    if unknown:
        raise UsageError(f"{path}: unknown [columns] key(s): {', '.join(sorted(unknown))}")
    missing = [f for f in REQUIRED_FIELDS if f not in raw_cols]
    if missing:
        raise UsageError(f"{path}: [columns] must name {', '.join(missing)}")
    columns = {k: [v] if isinstance(v, str) else list(v) for k, v in raw_cols.items()}
    for section in ("replace", "terms", "review_terms"):
        table = data.get(section, {})
        if not all(isinstance(v, str) for v in table.values()):
            raise UsageError(f"{path}: [{section}] values must be strings")
    return Mapping(path, fmt, columns, source.get("release_date"), source.get("name"),
                   data.get("replace", {}), data.get("terms", {}), data.get("review_terms", {}))


def _pick(options: list[str], available: set[str]) -> str | None:
    return next((o for o in options if o in available), None)


def stage_mapped_table(
    con: duckdb.DuckDBPyConnection, path: Path, mapping: Mapping, assembly: Assembly | None,
    workdir: Path,
) -> StagedSource:
    if mapping.format == "vcf":
        header, skip = header_lines(path)
        names = check_vcf_header(path, header)
        available = set(_VCF_FIXED) | declared_info(header)
        file_date = header_value(header, "fileDate")
        release = parse_file_date(file_date) if file_date else None
        col_names = VCF_COLUMNS + [f"extra{i}" for i in range(len(names) - len(VCF_COLUMNS))]

        def expr(name: str) -> str:
            return (f"nullif({_VCF_FIXED[name]}, '.')" if name in _VCF_FIXED
                    else f"nullif({info_sql(name)}, '.')")
    else:
        header_line = next(iter(open_text(path)), None)
        if header_line is None:
            raise InputError("empty file", path)
        names = header_line.rstrip("\r\n").lstrip("#").split("\t")
        available = set(names)
        skip, release = 1, None
        col_names = [f"c{i}" for i in range(len(names))]

        def expr(name: str) -> str:
            return f"nullif(nullif(c{names.index(name)}, ''), '.')"

    chosen: dict[str, str | None] = {}
    for fld in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        options = mapping.columns.get(fld, [])
        chosen[fld] = _pick(options, available)
        if fld in REQUIRED_FIELDS and chosen[fld] is None:
            if fld == "classification":
                raise InputError(f"no classification field: none of {', '.join(options)} is in "
                                 f"the file (mapping {mapping.path})", path)
            raise InputError(f"mapping {mapping.path} names {fld} as {', '.join(options)}, "
                             "which the file does not have", path)

    def sel(fld: str) -> str:
        name = chosen[fld]
        return expr(name) if name else "CAST(NULL AS VARCHAR)"

    reader = db.read_delimited(bgzf.decompressed_text(path, workdir), col_names, skip=skip)
    with db.reading(path):
        con.execute(f"""
            CREATE TEMP TABLE raw AS
            SELECT {sel('contig')} AS chrom, {sel('position')} AS pos, upper({sel('ref')}) AS ref,
                   upper({sel('alt')}) AS alt, {sel('classification')} AS raw_classification,
                   {sel('review_status')} AS raw_review_status, {sel('gene')} AS gene,
                   {sel('condition')} AS conditions, {sel('identifier')} AS variation_id,
                   {sel('last_evaluated')} AS last_evaluated
            FROM {with_info_(reader) if mapping.format == "vcf" else reader}
        """)
    bad = db.first_row(con, f"""
        SELECT rowid, chrom, pos FROM raw
        WHERE chrom IS NULL OR {db.strict_pos_sql('pos')} IS NULL OR ref IS NULL
        ORDER BY rowid LIMIT 1""")
    if bad:
        raise InputError(f"malformed record (contig={bad[1]!r}, position={bad[2]!r})", path,
                         skip + int(bad[0]) + 1)
    if mapping.release_date:
        release = parse_file_date(mapping.release_date)
    source = StagedSource("table", path, release, assembly)
    counts = con.execute("""
        SELECT CASE WHEN alt IS NULL THEN 'alt_missing'
                    WHEN alt LIKE '%<%' OR alt = '*' THEN 'symbolic_alt'
                    WHEN alt LIKE '%,%' THEN 'multi_allelic_row'
                    WHEN raw_classification IS NULL THEN 'no_classification' END AS reason,
               count(*)
        FROM raw GROUP BY 1 HAVING reason IS NOT NULL""").fetchall()
    source.skipped.update({r: n for r, n in counts})
    con.execute(f"""
        CREATE TEMP TABLE staged AS
        SELECT {contig_sql('chrom')} AS chrom, CAST(pos AS BIGINT) AS pos, ref, alt,
               raw_classification, raw_review_status, CAST(NULL AS VARCHAR) AS conflicts,
               gene, conditions, CAST(NULL AS VARCHAR) AS consequence, variation_id,
               CAST(NULL AS VARCHAR) AS allele_id, last_evaluated,
               CAST(NULL AS VARCHAR) AS onc_classification,
               CAST(NULL AS VARCHAR) AS onc_review_status,
               CAST(NULL AS VARCHAR) AS sci_classification,
               CAST(NULL AS VARCHAR) AS sci_review_status
        FROM raw
        WHERE alt IS NOT NULL AND alt NOT LIKE '%<%' AND alt <> '*' AND alt NOT LIKE '%,%'
          AND raw_classification IS NOT NULL
    """)
    source.rewrite_classification = lambda raw: mapping.rewrite(raw, mapping.terms)
    source.rewrite_review = lambda raw: mapping.rewrite(raw, mapping.review_terms)
    fields = {"classification": chosen["classification"], "review_status": chosen["review_status"]}
    source.locate = lambda fld, raw: _locate(path, mapping.format, names, skip, fields[fld], raw)
    return source


def _locate(path: Path, fmt: str, names: list[str], skip: int, column: str | None,
            raw: str) -> int | None:
    if column is None:
        return None
    for n, line in enumerate(open_text(path), start=1):
        if n <= skip:
            continue
        parts = line.rstrip("\r\n").split("\t")
        if fmt == "vcf":
            info = parts[7].split(";") if len(parts) > 7 else []
            if f"{column}={raw}" in info:
                return n
        elif column in names and names.index(column) < len(parts) \
                and parts[names.index(column)] == raw:
            return n
    return None
