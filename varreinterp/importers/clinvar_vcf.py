"""ClinVar VCF releases, GRCh37 and GRCh38, 2014 to now.

Current files (one ALT per row, text CLNSIG) are parsed columnar with DuckDB: the INFO fields are
pulled out with regular expressions on whole `;`-delimited entries, so values with a literal
comma (`criteria_provided,_single_submitter`) are never split. Pre-2017 files (numeric CLNSIG,
CLNALLE choosing the allele) are small and irregular and are read row by row."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from varreinterp import bgzf, db, vcfscan
from varreinterp.assembly import (
    Assembly,
    contig_sql,
    declared_contig_lengths,
    normalize_contig,
    parse_assembly,
)
from varreinterp.db import MAX_POS
from varreinterp.errors import InputError
from varreinterp.importers.common import (
    STAGED_COLUMNS,
    StagedSource,
    check_declared_build,
    check_reference,
    refused_contigs,
)
from varreinterp.normalize import ALLELE_RE, invalid_allele_sql
from varreinterp.textfile import header_lines, open_text, parse_table

if TYPE_CHECKING:
    import duckdb

    from varreinterp.patient_vcf import FastaReference

VCF_COLUMNS = ["chrom", "pos", "id", "ref", "alt", "qual", "filter", "info"]
_POS = re.compile(r"[0-9]{1,10}")

# staged column -> INFO key (ClinVar names)
INFO_FIELDS = {
    "raw_classification": "CLNSIG",
    "raw_review_status": "CLNREVSTAT",
    "conflicts": "CLNSIGCONF",
    "conditions": "CLNDN",
    "consequence": "MC",
    "allele_id": "ALLELEID",
    "onc_classification": "ONC",
    "onc_review_status": "ONCREVSTAT",
    "sci_classification": "SCI",
    "sci_review_status": "SCIREVSTAT",
    "hgvs": "CLNHGVS",
}
_FIELD_KEY = {"classification": "CLNSIG", "review_status": "CLNREVSTAT"}


def info_sql(key: str, column: str = "info_") -> str:
    """One INFO value from `column`, which holds ';' || INFO: the text after the first
    `;KEY=` up to the next ';', so a value with a literal comma is never split and no key
    matches inside another. Two split_part calls ran 25% faster than the equivalent
    regexp_extract over a 3M-record release (3.2 s against 4.3 s for seven keys)."""
    literal = key.replace("'", "''")
    return f"nullif(split_part(split_part({column}, ';{literal}=', 2), ';', 1), '')"


_WITH_TIME = re.compile(r"\s*(\d{4}-?\d{2}-?\d{2})[T ]\d{1,2}:\d{2}\S*\s*")


def parse_file_date(text: str) -> date | None:
    """A `##fileDate` (YYYYMMDD, YYYY-MM-DD and the like; a time after it, as some tools
    write, is ignored); None when it is not one."""
    timed = _WITH_TIME.fullmatch(text)
    digits = re.sub(r"[^0-9]", "", timed.group(1) if timed else text)
    if len(digits) != 8:
        return None
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def header_value(header: list[str], key: str) -> str | None:
    prefix = f"##{key}="
    for line in header:
        if line.startswith(prefix):
            return line[len(prefix):].strip()
    return None


def declared_info(header: list[str]) -> set[str]:
    return {m.group(1) for line in header if (m := re.match(r"##INFO=<ID=([^,>]+)", line))}


def check_vcf_header(path: Path, header: list[str]) -> list[str]:
    """The #CHROM line's column names; InputError for an empty or header-less file."""
    if not header:
        raise InputError("empty file or missing VCF header (no '#' lines)", path)
    if not header[0].startswith("##fileformat=VCF"):
        raise InputError("not a VCF: first line is not ##fileformat=VCF...", path, 1)
    last = header[-1]
    if not last.startswith("#CHROM"):
        raise InputError("VCF header has no #CHROM line", path, len(header))
    columns = last.lstrip("#").split("\t")
    if len(columns) < len(VCF_COLUMNS):
        raise InputError(f"the #CHROM line names {len(columns)} columns; a VCF has at least 8 "
                         "(CHROM POS ID REF ALT QUAL FILTER INFO)", path, len(header))
    return columns


def find_line(path: Path, header_lines: int,
              test: Callable[[list[str]], bool]) -> tuple[int, list[str]] | None:
    """The number and tab-separated fields of the first data line whose fields pass `test`
    (error paths only: a pass over the file)."""
    for n, line in enumerate(open_text(path), start=1):
        if n > header_lines and test(fields := line.rstrip("\r\n").split("\t")):
            return n, fields
    return None


def locate_info(path: Path, header_lines: int, key: str, raw: str) -> int | None:
    needle = f"{key}={raw}"
    found = find_line(path, header_lines,
                      lambda fields: len(fields) > 7 and needle in fields[7].split(";"))
    return found[0] if found else None


def stage_clinvar_vcf(
    con: duckdb.DuckDBPyConnection, path: Path, assembly_option: Assembly | None,
    workdir: Path, reference: FastaReference | None = None,
) -> StagedSource:
    """Stage a ClinVar VCF (either era). With `reference`, finalize left-aligns its indels:
    pre-2017 files hold right-shifted ones (11:108151707 T>TT in the 2017-04-04 release)."""
    header, n_header = header_lines(path)
    columns = check_vcf_header(path, header)
    info_keys = declared_info(header)
    if "CLNSIG" not in info_keys:
        raise InputError(
            "no classification field: the header declares no INFO/CLNSIG, so this file "
            "classifies nothing (for a lab table use --format table --mapping FILE)", path)
    file_date = header_value(header, "fileDate")
    release = parse_file_date(file_date) if file_date else None
    named = header_value(header, "reference")
    declared = parse_assembly(named) if named else None
    if declared and assembly_option and declared != assembly_option:
        raise InputError(
            f"--assembly {assembly_option.value} contradicts the file's ##reference={named}",
            path)
    source = StagedSource("clinvar-vcf", path, release, declared or assembly_option,
                          reference=reference)
    source.declared_contigs = declared_contig_lengths(header)
    check_declared_build(source, named)
    if reference is not None:  # before staging a release (10 s for 3M rows); finalize rechecks
        check_reference(source, reference)
    if "CLNALLE" in info_keys:
        source.numeric_codes = True
        _stage_numeric(con, source, n_header)
    else:
        _stage_current(con, source, columns, n_header, workdir)
        source.locate = lambda field, raw: locate_info(path, n_header, _FIELD_KEY[field], raw)
    return source


def _stage_current(
    con: duckdb.DuckDBPyConnection, source: StagedSource, columns: list[str], n_header: int,
    workdir: Path,
) -> None:
    # Every key, declared or not: a trimmed or lab-made file may carry CLNREVSTAT or GENEINFO
    # without its ##INFO line, and dropping it would lose the stars (every variant then a
    # "review" change) or the gene (outside every panel). A key no record has costs little.
    keys = [*INFO_FIELDS.values(), "GENEINFO"]
    if vcfscan.available():
        _stage_scanned(con, source, len(columns), n_header, keys, workdir)
    else:
        _stage_sql(con, source, columns, n_header, keys, workdir)
    _finish_staged(con, source, n_header)


def _key_fields(fields: list[str]) -> tuple[str, str, str]:
    """CHROM, POS and REF of a line's fields ('' where the line is short)."""
    padded = fields + [""] * 4
    return padded[0], padded[1], padded[3]


def _malformed(fields: list[str]) -> bool:
    """The rule `_check_rows` applies to staged rows, on a line's fields (blank lines, which
    both readers skip, are not records)."""
    if fields == [""]:
        return False
    chrom, pos, ref = _key_fields(fields)
    return (not normalize_contig(chrom) or not ref
            or not (_POS.fullmatch(pos) is not None and 1 <= int(pos) <= MAX_POS))


def _stage_scanned(con: duckdb.DuckDBPyConnection, source: StagedSource, ncols: int,
                   n_header: int, keys: list[str], workdir: Path) -> None:
    """The compiled scanner (vcfscan.py) splits the lines; DuckDB takes its Arrow in parts,
    in a thread of its own, while the next part is scanned."""
    from concurrent.futures import Future, ThreadPoolExecutor

    import pyarrow as pa

    def insert(table: pa.Table, statement: str = "INSERT INTO staged") -> None:
        with db.reading(source.path):  # the DuckDB error policy, as for the SQL reader
            con.register("scanned", table)
            con.execute(f"{statement} {_staged_sql(keys, _SCANNED)}")
            con.unregister("scanned")

    # Row order carries no meaning once the scanner has refused every malformed line with its
    # number (finalize breaks ties between duplicate keys on content): unordered inserts
    # take half the time.
    con.execute("SET preserve_insertion_order = false")
    try:
        # The empty scan creates the table (with its types) for a header-only file too.
        insert(pa.Table.from_batches([vcfscan.scan_batch(b"", ncols, keys)]),
               "CREATE TEMP TABLE staged AS")
        with ThreadPoolExecutor(max_workers=1) as inserter:  # one user of `con` at a time
            pending: Future[None] | None = None
            for table in vcfscan.read_tables(source.path, n_header, ncols, keys, workdir):
                if pending:
                    pending.result()
                pending = inserter.submit(insert, table)
            if pending:
                pending.result()
    finally:
        con.execute("SET preserve_insertion_order = true")


# Empty ID and ALT fields as NULL, as DuckDB's reader gives them (an empty CHROM or REF the
# scanner refuses).
_SCANNED = "(SELECT * REPLACE (nullif(id, '') AS id, nullif(alt, '') AS alt) FROM scanned)"


def _stage_sql(con: duckdb.DuckDBPyConnection, source: StagedSource, columns: list[str],
               n_header: int, keys: list[str], workdir: Path) -> None:
    """Without the compiled scanner: DuckDB parses the verified text and pulls each key out
    with one pass per key (the rare somatic ones pre-tested)."""
    names = VCF_COLUMNS + [f"extra{i}" for i in range(len(columns) - len(VCF_COLUMNS))]

    def value(key: str) -> str:
        guard = {"ONC": "ONC", "SCI": "SCI"}.get(key[:3])
        sql = info_sql(key)
        return f"(CASE WHEN contains(info_, '{guard}') THEN {sql} END)" if guard else sql

    extracted = "".join(f", {value(key)} AS {vcfscan.info_column(key)}" for key in keys)

    def rows(reader: str) -> str:
        return (f"(SELECT chrom, {db.strict_pos_sql('pos')} AS pos, id, ref, alt{extracted} "
                f"FROM (SELECT chrom, pos, id, ref, alt, ';' || info AS info_ FROM {reader}))")

    # Verified text (bgzf.py), then parsed and extracted on every core in one pass.
    parse_table(source.path, bgzf.decompressed_text(source.path, workdir), names, n_header,
                lambda reader: con.execute(
                    f"CREATE TEMP TABLE staged AS {_staged_sql(keys, rows(reader))}"))


def _staged_sql(keys: list[str], rows: str) -> str:
    """STAGED_COLUMNS from `rows`: chrom, pos (BIGINT, NULL when malformed), id, ref, alt and
    one info_<KEY> column per key read ('' or NULL where the record lacks it)."""

    def info(key: str) -> str:
        return f"nullif({vcfscan.info_column(key)}, '')" if key in keys else "CAST(NULL AS VARCHAR)"

    extracted = ", ".join(f"{info(key)} AS {col}" for col, key in INFO_FIELDS.items())
    return f"""
            SELECT chrom, pos, upper(ref) AS ref, upper(alt) AS alt,
                   nullif(id, '.') AS variation_id, {extracted},
                   {_gene_sql(info('GENEINFO'))} AS gene,
                   CAST(NULL AS VARCHAR) AS last_evaluated,
                   CASE WHEN alt IS NULL OR alt = '.' OR alt = '' THEN 'alt_missing'
                        WHEN alt LIKE '%<%' OR alt = '*' THEN 'symbolic_alt'
                        WHEN alt LIKE '%,%' THEN 'multi_allelic_row'
                        WHEN {invalid_allele_sql('ref', 'alt')} THEN 'invalid_allele'
                   END AS skip
            FROM {rows}"""


def _finish_staged(con: duckdb.DuckDBPyConnection, source: StagedSource, n_header: int) -> None:
    # Contig names are few: checked and normalized once per name, not once per record.
    names = [name for (name,) in con.execute(
        "SELECT DISTINCT chrom FROM staged WHERE chrom IS NOT NULL").fetchall()]
    for name, reason in refused_contigs(source, names).items():
        con.execute("UPDATE staged SET skip = ? WHERE chrom = ? AND skip IS NULL", [reason, name])
    con.execute(f"""
        UPDATE staged SET chrom = c.key FROM (
            SELECT chrom AS name, {contig_sql('chrom')} AS key FROM (SELECT DISTINCT chrom
                                                                    FROM staged)) c
        WHERE staged.chrom = c.name AND c.key <> c.name""")
    _check_rows(con, source, n_header)
    skipped = con.execute(
        "SELECT skip, count(*) FROM staged WHERE skip IS NOT NULL GROUP BY 1").fetchall()
    source.skipped.update({reason: n for reason, n in skipped})
    if skipped:
        con.execute("DELETE FROM staged WHERE skip IS NOT NULL")


def _gene_sql(geneinfo: str) -> str:
    """`SYMBOL:ID|SYMBOL:ID` -> `SYMBOL|SYMBOL`; the regex only for the rare multi-gene rows."""
    return (f"(CASE WHEN contains({geneinfo}, '|') THEN "
            f"nullif(regexp_replace({geneinfo}, ':[^|]*', '', 'g'), '') "
            f"ELSE nullif(split_part({geneinfo}, ':', 1), '') END)")


def _check_rows(con: duckdb.DuckDBPyConnection, source: StagedSource, n_header: int) -> None:
    """Every data row needs an integer POS, a non-empty REF and a contig. A row left malformed
    (by the SQL reader; by either, a CHROM naming no contig, 'chr') is found again in the file
    by its content: neither the rows' order nor the blank lines the readers skip tell its
    line."""
    bad = db.first_row(con, """
        SELECT chrom, ref FROM staged
        WHERE pos IS NULL OR pos < 1 OR ref IS NULL OR ref = '' OR chrom IS NULL OR chrom = ''
        LIMIT 1
    """)
    if bad:
        chrom, ref = bad
        pos, line = None, None
        found = find_line(source.path, n_header, _malformed)
        if found:  # the fields as the file has them, all from the line named
            line, fields = found
            chrom, pos, ref = _key_fields(fields)
        raise InputError(f"malformed record (CHROM={chrom!r} POS={pos!r} REF={ref!r})",
                         source.path, line)


# ------------------------------------------------------------------ pre-2017 numeric files
def _info_pair(entry: str) -> tuple[str, str]:
    key, _, value = entry.partition("=")
    return key, value


def _stage_numeric(con: duckdb.DuckDBPyConnection, source: StagedSource, n_header: int) -> None:
    import pyarrow as pa

    rows: dict[str, list[object]] = {c: [] for c in STAGED_COLUMNS}
    skipped: Counter[str] = Counter()
    lines: dict[tuple[str, str], int] = {}
    refused: dict[str, str | None] = {}
    for lineno, line in enumerate(open_text(source.path), start=1):
        if lineno <= n_header or not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        pos_text = fields[1] if len(fields) > 1 else ""
        if len(fields) < 8 or not _POS.fullmatch(pos_text) or not 1 <= int(pos_text) <= MAX_POS:
            raise InputError("malformed record (expected 8 tab-separated columns and POS as "
                             f"digits in 1..{MAX_POS}, got {pos_text!r})", source.path, lineno)
        chrom, pos, vid, ref, alt_field, _, _, info_text = fields[:8]
        info = dict(_info_pair(kv) for kv in info_text.split(";"))
        alts = alt_field.split(",")
        if chrom not in refused:
            refused[chrom] = refused_contigs(source, [chrom]).get(chrom)
        if refused[chrom]:
            skipped[str(refused[chrom])] += len(alts)
            continue
        if "CLNSIG" not in info or "CLNALLE" not in info:
            skipped["no_classification"] += len(alts)
            continue
        per_allele = {
            key: info.get(key, "").split(",")
            for key in ("CLNSIG", "CLNREVSTAT", "CLNDBN", "CLNALLE")
        }
        # Each ALT is counted once: stored, refused (why), or not classified; an entry that
        # names no ALT (the REF, -1) accounts for an unclassified ALT of its record, so
        # records + skipped = the file's ALTs.
        chosen: set[int] = set()
        refused_alt: dict[int, str] = {}
        no_alt: Counter[str] = Counter()
        for i, allele_idx in enumerate(per_allele["CLNALLE"]):
            idx = int(allele_idx) if allele_idx.lstrip("-").isdigit() else -1
            if idx <= 0 or idx > len(alts):
                no_alt["clnalle_not_an_alt" if idx else "clnalle_ref_allele"] += 1
                continue
            alt = alts[idx - 1]
            if alt in (".", "*") or alt.startswith("<"):
                refused_alt.setdefault(idx, "alt_missing" if alt == "." else "symbolic_alt")
                continue
            if not (ALLELE_RE.fullmatch(ref) and ALLELE_RE.fullmatch(alt)):
                refused_alt.setdefault(idx, "invalid_allele")  # the rule of _staged_sql
                continue
            chosen.add(idx)

            def pick(key: str, i: int = i,
                     per_allele: dict[str, list[str]] = per_allele) -> str | None:
                values = per_allele[key]
                return values[i] if i < len(values) and values[i] not in ("", ".") else None

            sig = pick("CLNSIG")
            rev = pick("CLNREVSTAT")
            for field_name, value in (("classification", sig), ("review_status", rev)):
                if value is not None:
                    lines.setdefault((field_name, value), lineno)
            record = {
                "chrom": normalize_contig(chrom), "pos": int(pos), "ref": ref.upper(),
                "alt": alt.upper(), "raw_classification": sig, "raw_review_status": rev,
                "gene": re.sub(r":[^|]*", "", info.get("GENEINFO", "")) or None,
                "conditions": pick("CLNDBN"), "variation_id": None if vid == "." else vid,
            }
            for col in STAGED_COLUMNS:
                rows[col].append(record.get(col))
        for idx, why in refused_alt.items():
            if idx not in chosen:
                skipped[why] += 1
        unclassified = len(alts) - len(chosen | set(refused_alt))
        # (entries beyond the unclassified ALTs classify no allele of the file: not alleles)
        for why, n in no_alt.items():
            skipped[why] += min(n, unclassified)
            unclassified -= min(n, unclassified)
        skipped["alt_not_classified"] += unclassified
    source.skipped.update({k: v for k, v in skipped.items() if v})
    table = pa.table({c: pa.array(v, type=pa.int64() if c == "pos" else pa.string())
                      for c, v in rows.items()})
    con.register("numeric_rows", table)
    con.execute("CREATE TEMP TABLE staged AS SELECT * FROM numeric_rows")
    con.unregister("numeric_rows")
    source.locate = lambda field, raw: lines.get((field, raw))
