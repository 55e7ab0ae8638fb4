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
    hgvs = "HGVS_C"
    consequence = "MOLECULAR_CONSEQUENCE"
    conflicts = "CLNSIGCONF"

    [replace]                           # text replacements before any lookup
    ".." = ",_"

    [terms]                             # the lab's classification terms -> ClinVar's
    "VUS" = "Uncertain_significance"

A list of submitters' terms ('Benign|Likely_benign|Uncertain_significance', in any order) is
folded as ClinVar aggregates them (vocabulary.fold_term_list) when [terms] does not name it.
For a VCF, fields are found by name in the records whatever the header declares; a file with a
#CHROM line but no ##fileformat line (older lab exports) is read with a warning.
    [review_terms]                      # the same for review statuses
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import bgzf, db
from varreinterp.assembly import (
    Assembly,
    contig_sql,
    declared_contig_lengths,
    plausible_contig,
)
from varreinterp.errors import InputError, UsageError
from varreinterp.importers.clinvar_vcf import (
    VCF_COLUMNS,
    header_value,
    info_sql,
    parse_file_date,
)
from varreinterp.importers.common import (
    StagedSource,
    allele_skip_sql,
    check_declared_build,
    refused_contigs,
)
from varreinterp.textfile import header_lines, open_text, parse_table
from varreinterp.vocabulary import fold_term_list

if TYPE_CHECKING:
    import duckdb

    from varreinterp.patient_vcf import FastaReference

log = logging.getLogger("varreinterp")

REQUIRED_FIELDS = ["contig", "position", "ref", "alt", "classification"]
OPTIONAL_FIELDS = ["review_status", "gene", "condition", "identifier", "last_evaluated", "hgvs",
                   "consequence", "conflicts"]
_SECTIONS = {"source": {"format", "name", "release_date"}, "columns": None, "replace": None,
             "terms": None, "review_terms": None}
_VCF_FIXED = {"CHROM": "chrom", "POS": "pos", "ID": "id", "REF": "ref", "ALT": "alt"}
# Why a raw row (REF and ALT already upper-cased) is skipped: one reason per row, in this order;
# NULL keeps it. The same expression counts the skipped rows and selects the kept ones. A REF or
# ALT that is not plain bases (`-`, `T/A`, `G ` with an export's trailing blank) can never match
# a patient allele, which annotate skips by the same rule (patient_vcf.Skip.INVALID).
_SKIP_SQL = f"""coalesce({allele_skip_sql()},
                          CASE WHEN raw_classification IS NULL THEN 'no_classification' END)"""


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

    def rewrite_classification(self, raw: str) -> str:
        text = self.rewrite(raw, self.terms)
        return fold_term_list(text) or text


def _line_of(text: str, key: str) -> int | None:
    """The line a TOML key (or a `[section]` header) is written on (tomllib gives no
    positions), for error messages."""
    for n, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped.startswith((f"{key} ", f"{key}=", f'"{key}"')) or (
                key.startswith("[") and stripped.replace(" ", "") == key):
            return n
    return None


def _bad(path: Path, text: str, key: str, problem: str) -> UsageError:
    line = _line_of(text, key)
    return UsageError(f"{path}{f':{line}' if line else ''}: {problem}")


def load_mapping(path: Path) -> Mapping:
    """Read and check a TOML mapping: unknown sections or keys and values of the wrong type
    are usage errors naming the key, the file and the line."""
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise UsageError(f"{path}: mapping file not found") from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read mapping file ({exc})") from exc
    for section, value in data.items():
        if section not in _SECTIONS:
            raise _bad(path, text, f"[{section}]", f"unknown section [{section}] (known: "
                       f"{', '.join(f'[{k}]' for k in _SECTIONS)})")
        if not isinstance(value, dict):
            raise _bad(path, text, section, f"{section} must be a [{section}] table")
    source: dict[str, Any] = data.get("source", {})
    for key, value in source.items():
        if key not in (_SECTIONS["source"] or ()):
            raise _bad(path, text, key, f"unknown key {key!r} in [source]")
        if not isinstance(value, str):
            raise _bad(path, text, key, f"[source] {key} must be a string, not "
                       f"{type(value).__name__}")
    fmt = source.get("format")
    if fmt not in ("vcf", "tsv"):
        raise _bad(path, text, "format", f"[source] format must be \"vcf\" or \"tsv\", not "
                   f"{fmt!r}")
    release_date = source.get("release_date")
    if release_date is not None and parse_file_date(release_date) is None:
        # Else the file's ##fileDate or name would date the release instead, unannounced.
        raise _bad(path, text, "release_date", f"[source] release_date {release_date!r} is not "
                   "a date (YYYY-MM-DD)")
    raw_cols: dict[str, Any] = data.get("columns", {})
    for key, value in raw_cols.items():
        if key not in REQUIRED_FIELDS + OPTIONAL_FIELDS:
            raise _bad(path, text, key, f"unknown [columns] key {key!r} (known: "
                       f"{', '.join(REQUIRED_FIELDS + OPTIONAL_FIELDS)})")
        if not (isinstance(value, str) or (isinstance(value, list) and value
                                           and all(isinstance(v, str) for v in value))):
            raise _bad(path, text, key, f"[columns] {key} must be a column name or a list of "
                       f"names, not {value!r}")
    missing = [f for f in REQUIRED_FIELDS if f not in raw_cols]
    if missing:
        raise UsageError(f"{path}: [columns] must name {', '.join(missing)}")
    columns = {k: [v] if isinstance(v, str) else list(v) for k, v in raw_cols.items()}
    for section in ("replace", "terms", "review_terms"):
        for key, value in data.get(section, {}).items():
            if not isinstance(value, str):
                raise _bad(path, text, key, f"[{section}] {key!r} must map to a string, not "
                           f"{type(value).__name__}")
    return Mapping(path, fmt, columns, source.get("release_date"), source.get("name"),
                   data.get("replace", {}), data.get("terms", {}), data.get("review_terms", {}))


def _vcf_layout(path: Path) -> tuple[list[str], int, list[str]]:
    """(header lines, their count, column names) of a VCF-like table. Older lab exports have
    a #CHROM line but no ##fileformat line: read with one warning."""
    header, skip = header_lines(path)
    if not header or not header[-1].startswith("#CHROM"):
        raise InputError("no #CHROM header line: not a VCF-like table", path,
                         len(header) or None)
    if not header[0].startswith("##fileformat=VCF"):
        log.warning("%s: no ##fileformat line; read as a VCF because the mapping says so",
                    path)
    columns = header[-1].lstrip("#").split("\t")
    if [c.upper() for c in columns[:8]] != ["CHROM", "POS", "ID", "REF", "ALT", "QUAL",
                                            "FILTER", "INFO"]:
        raise InputError("malformed #CHROM line", path, skip)
    return header, skip, columns


def stage_mapped_table(
    con: duckdb.DuckDBPyConnection, path: Path, mapping: Mapping, assembly: Assembly | None,
    workdir: Path, reference: FastaReference | None = None,
) -> StagedSource:
    """Stage a lab table as `mapping` describes it. Labs often write indels HGVS-style,
    shifted right (`G>GG` for a C>CG call): with `reference` finalize left-aligns them."""
    text = bgzf.decompressed_text(path, workdir)
    if mapping.format == "vcf":
        header, skip, names = _vcf_layout(path)
        declared = declared_contig_lengths(header)
        file_date = header_value(header, "fileDate")
        release = parse_file_date(file_date) if file_date else None
        col_names = VCF_COLUMNS + [f"extra{i}" for i in range(len(names) - len(VCF_COLUMNS))]
        parse_table(path, text, col_names, skip, lambda reader: con.execute(
            f"CREATE OR REPLACE TEMP TABLE lines AS SELECT chrom, pos, id, ref, alt, "
            f"';' || coalesce(info, '') AS info_ FROM {reader}"))
        available = set(_VCF_FIXED) | _info_keys_present(con, mapping)

        def expr(name: str) -> str:
            return (f"nullif({_VCF_FIXED[name]}, '.')" if name in _VCF_FIXED
                    else f"nullif({info_sql(name)}, '.')")
    else:
        header_line = next(iter(open_text(path)), None)
        if header_line is None:
            raise InputError("empty file", path)
        names = header_line.rstrip("\r\n").lstrip("#").split("\t")
        available = set(names)
        skip, release, declared = 1, None, {}
        col_names = [f"c{i}" for i in range(len(names))]
        parse_table(path, text, col_names, skip, lambda reader: con.execute(
            f"CREATE OR REPLACE TEMP TABLE lines AS SELECT * FROM {reader}"))

        def expr(name: str) -> str:
            return f"nullif(nullif(c{names.index(name)}, ''), '.')"

    chosen: dict[str, str | None] = {}
    for fld in REQUIRED_FIELDS + OPTIONAL_FIELDS:
        options = mapping.columns.get(fld, [])
        found = chosen[fld] = next((o for o in options if o in available), None)
        if mapping.format != "vcf" and found is not None and names.count(found) > 1:
            raise InputError(f"the header names column {found!r} (the mapping's {fld}) "
                             f"{names.count(found)} times: which one holds it?", path, 1)
        if fld in OPTIONAL_FIELDS and options and chosen[fld] is None:
            if mapping.format != "vcf":  # a header names its columns: a renamed one is lost
                raise InputError(f"mapping {mapping.path} names {fld} as "
                                 f"{', '.join(options)}, but the header lacks it (renamed in "
                                 "this export?)", path, 1)
            log.warning("%s: no record carries %s, which mapping %s names for %s: that field "
                        "is empty in this snapshot", path, ", ".join(options), mapping.path, fld)
        if fld in REQUIRED_FIELDS and chosen[fld] is None:
            where = "no record carries" if mapping.format == "vcf" else "the header lacks"
            if fld == "classification":
                raise InputError(f"no classification field: {where} any of "
                                 f"{', '.join(options)} (mapping {mapping.path})", path)
            raise InputError(f"mapping {mapping.path} names {fld} as {', '.join(options)}, "
                             f"but {where} it", path)

    def sel(fld: str) -> str:
        name = chosen[fld]
        return expr(name) if name else "CAST(NULL AS VARCHAR)"

    con.execute(f"""
        CREATE TEMP TABLE raw AS
        SELECT {sel('contig')} AS chrom, {sel('position')} AS pos, upper({sel('ref')}) AS ref,
               upper({sel('alt')}) AS alt, {sel('classification')} AS raw_classification,
               {sel('review_status')} AS raw_review_status, {sel('gene')} AS gene,
               {sel('condition')} AS conditions, {sel('identifier')} AS variation_id,
               {sel('last_evaluated')} AS last_evaluated, {sel('hgvs')} AS hgvs,
               {sel('consequence')} AS consequence, {sel('conflicts')} AS conflicts
        FROM lines
    """)
    con.execute("DROP TABLE lines")
    bad = db.first_row(con, f"""
        SELECT rowid, chrom, pos FROM raw
        WHERE chrom IS NULL OR {db.strict_pos_sql('pos')} IS NULL OR ref IS NULL
        ORDER BY rowid LIMIT 1""")
    if bad:
        raise InputError(f"malformed record (contig={bad[1]!r}, position={bad[2]!r})", path,
                         skip + int(bad[0]) + 1)
    if mapping.release_date:
        release = parse_file_date(mapping.release_date)
    source = StagedSource("table", path, release, assembly, reference=reference)
    source.declared_contigs = declared
    if mapping.format == "vcf":
        check_declared_build(source, header_value(header, "reference"))
    names_found = [n for (n,) in con.execute("SELECT DISTINCT chrom FROM raw").fetchall()]
    implausible = sorted(n for n in names_found if not plausible_contig(n))
    if implausible:
        log.warning("%s: contig name(s) %s name no sequence of a human build (a blank, a quote, "
                    "a leading zero or a number above 22: an export's spelling?): their rows "
                    "are not imported (invalid_contig)", path,
                    ", ".join(repr(n) for n in implausible[:5]))
    for name in implausible:
        source.skipped["invalid_contig"] += db.scalar(
            con, "SELECT count(*) FROM raw WHERE chrom = ?", [name])
        con.execute("DELETE FROM raw WHERE chrom = ?", [name])
    names_found = [n for n in names_found if n not in implausible]
    for name, reason in refused_contigs(source, names_found).items():
        source.skipped[reason] += db.scalar(con, "SELECT count(*) FROM raw WHERE chrom = ?",
                                            [name])
        con.execute("DELETE FROM raw WHERE chrom = ?", [name])
    counts = con.execute(f"""
        SELECT {_SKIP_SQL} AS reason, count(*)
        FROM raw GROUP BY 1 HAVING reason IS NOT NULL""").fetchall()
    source.skipped.update({r: n for r, n in counts})
    con.execute(f"""
        CREATE TEMP TABLE staged AS
        SELECT {contig_sql('chrom')} AS chrom, CAST(pos AS BIGINT) AS pos, ref, alt,
               raw_classification, raw_review_status, conflicts,
               gene, conditions, consequence, variation_id,
               CAST(NULL AS VARCHAR) AS allele_id, last_evaluated, hgvs,
               CAST(NULL AS VARCHAR) AS onc_classification,
               CAST(NULL AS VARCHAR) AS onc_review_status,
               CAST(NULL AS VARCHAR) AS sci_classification,
               CAST(NULL AS VARCHAR) AS sci_review_status
        FROM raw
        WHERE {_SKIP_SQL} IS NULL
    """)
    source.rewrite_classification = mapping.rewrite_classification
    source.rewrite_review = lambda raw: mapping.rewrite(raw, mapping.review_terms)
    fields = {"classification": chosen["classification"], "review_status": chosen["review_status"]}
    source.locate = lambda fld, raw: _locate(path, mapping.format, names, skip, fields[fld], raw)
    return source


def _info_keys_present(con: duckdb.DuckDBPyConnection, mapping: Mapping) -> set[str]:
    """The mapping's INFO keys that at least one record carries, found in the data: old lab
    files declare their INFO fields wrongly or not at all."""
    wanted = sorted({o for opts in mapping.columns.values() for o in opts} - set(_VCF_FIXED))
    if not wanted:
        return set()
    counts = ", ".join(f"count(*) FILTER (contains(info_, {db.quote(';' + k + '=')}))"
                       for k in wanted)
    row = db.first_row(con, f"SELECT {counts} FROM lines")
    return {k for k, n in zip(wanted, row or (), strict=True) if n}


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
