"""`annotate`: what does snapshot X say about these patients' carried variants?"""

from __future__ import annotations

import logging
import tempfile
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import __version__
from varreinterp.errors import InputError, UsageError
from varreinterp.importers.common import duckdb_connect
from varreinterp.patient_vcf import (
    FastaReference,
    ReadStats,
    Skip,
    VcfHeader,
    candidate_alleles_sql,
    carried_at,
    check_assembly,
    check_matched_refs,
    check_samples_exist,
    key_match_sql,
    load,
    read_header,
    select_samples,
)
from varreinterp.prefilter import load_sites
from varreinterp.runinfo import command_line
from varreinterp.store import Snapshot, Store
from varreinterp.vocabulary import TIER_ORDER, Tier

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

log = logging.getLogger("varreinterp")

ANNOTATION_COLUMNS = [
    "sample", "chrom", "pos", "ref", "alt", "zygosity", "filter", "gene", "classification",
    "tier", "stars", "review_status", "conditions", "variation_id", "snapshot",
]

TIER_RANK_SQL = "CASE tier " + " ".join(
    f"WHEN '{t.value}' THEN {i}" for i, t in enumerate(TIER_ORDER)) + " ELSE 9 END"
# Report order: input file, sample, most severe tier first, best reviewed first, position.
_REPORT_ORDER = (f"f, sample, {TIER_RANK_SQL}, stars DESC NULLS LAST, key_chrom, pos, ref, alt, "
                 "rid, ai")
# The snapshot columns an annotation row carries.
_PAYLOAD = ["gene", "classification", "tier", "stars", "review_status", "conditions",
            "variation_id"]


class InfoKey(StrEnum):
    """Every INFO key `annotate --format vcf` writes: Number=A, one value per ALT."""

    CLASSIFICATION = "VRI_CLASSIFICATION"
    TIER = "VRI_TIER"
    STARS = "VRI_STARS"
    REVIEW_STATUS = "VRI_REVIEW_STATUS"
    VARIATION_ID = "VRI_VARIATION_ID"
    GENE = "VRI_GENE"
    CONDITIONS = "VRI_CONDITIONS"


_INFO_SOURCE = {
    InfoKey.CLASSIFICATION: ("classification", "String", "Normalized germline classification"),
    InfoKey.TIER: ("tier", "String", "Tier: pathogenic, uncertain, benign, conflicting, other"),
    InfoKey.STARS: ("stars", "Integer", "Review status stars (0-4)"),
    InfoKey.REVIEW_STATUS: ("review_status", "String", "Normalized review status"),
    InfoKey.VARIATION_ID: ("variation_id", "String", "Variation identifier in the snapshot"),
    InfoKey.GENE: ("gene", "String", "Gene symbol(s)"),
    InfoKey.CONDITIONS: ("conditions", "String", "Condition names"),
}


@dataclass
class AnnotationResult:
    """The matched rows stay in DuckDB (view `annotation`) until a caller asks, and come out
    in report order: `rows` for a DataFrame, `export()` for a file written by DuckDB itself."""

    snapshot: Snapshot
    stats: list[ReadStats]
    con: duckdb.DuckDBPyConnection
    _rows: pd.DataFrame | None = None

    @property
    def rows(self) -> pd.DataFrame:
        if self._rows is None:
            self._rows = self.con.execute(
                f"SELECT {', '.join(ANNOTATION_COLUMNS)} FROM annotation "
                f"ORDER BY {_REPORT_ORDER}").df()
        return self._rows

    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM annotation").fetchall()[0][0])

    def export(self, path: Path, fmt: str, extra: dict[str, Any] | None = None) -> None:
        """COPY the rows to `path` as csv (tab-separated, header), json (lines) or parquet."""
        cols = ", ".join(ANNOTATION_COLUMNS)
        consts = "".join(f", {_sql_literal(v)} AS {k}" for k, v in (extra or {}).items())
        options = {"tsv": "FORMAT csv, DELIMITER '\t', HEADER, QUOTE '', ESCAPE ''",
                   "json": "FORMAT json", "parquet": "FORMAT parquet, COMPRESSION zstd"}[fmt]
        target = str(path).replace("'", "''")
        self.con.execute(f"COPY (SELECT {cols}{consts} FROM annotation "
                         f"ORDER BY {_REPORT_ORDER}) TO '{target}' ({options})")

    def summary(self) -> str:
        by_tier = dict(self.con.execute(
            "SELECT tier, count(*) FROM annotation GROUP BY 1").fetchall())
        samples = self.con.execute("SELECT count(DISTINCT sample) FROM annotation").fetchall()
        parts = [f"{by_tier[t.value]} {t.value}" for t in TIER_ORDER if by_tier.get(t.value)]
        return (f"{sum(by_tier.values())} classified variant call(s) in {samples[0][0]} "
                f"sample(s) against {self.snapshot.name} ({self.snapshot.manifest.release_date})"
                + (f": {', '.join(parts)}" if parts else ""))


def _sql_literal(value: object) -> str:
    return "NULL" if value is None else "'" + str(value).replace("'", "''") + "'"


def provenance(snapshot: Snapshot) -> dict[str, Any]:
    m = snapshot.manifest
    return {"tool": "varreinterp", "tool_version": __version__, "snapshot": m.name,
            "release_date": m.release_date, "assembly": m.assembly,
            "source_sha256": m.source_sha256, "snapshot_sha256": m.manifest_sha256,
            "command": command_line()}


def parse_tiers(values: list[str] | None) -> list[Tier] | None:
    if not values:
        return None
    out = []
    for v in values:
        try:
            out.append(Tier(v.lower()))
        except ValueError:
            raise UsageError(f"--tier {v!r}: use one of {', '.join(t.value for t in Tier)}"
                             ) from None
    return out


def snapshot_filter_sql(tiers: list[Tier] | None, min_stars: int | None) -> str:
    clauses = ["s.classification IS NOT NULL"]
    if tiers:
        clauses.append("s.tier IN (" + ", ".join(f"'{t.value}'" for t in tiers) + ")")
    if min_stars:
        clauses.append(f"coalesce(s.stars, 0) >= {int(min_stars)}")
    return " AND ".join(clauses)


def parquet_sql(path: Path) -> str:
    return "read_parquet('" + str(path).replace("'", "''") + "')"


@dataclass
class PreparedInputs:
    headers: list[VcfHeader]
    reference: FastaReference | None
    workdir: tempfile.TemporaryDirectory[str]


def prepare_inputs(vcfs: list[Path], assembly: str, what: str, samples: list[str] | None,
                   reference_path: Path | None, check: bool = True) -> PreparedInputs:
    """Check every input before any work, and report all header problems at once."""
    if not vcfs:
        raise UsageError("no VCF given")
    workdir = tempfile.TemporaryDirectory(prefix="varreinterp-")
    try:
        headers = [read_header(p, Path(workdir.name)) for p in vcfs]
        for h in headers if check else []:
            check_assembly(h, assembly, what)
        check_samples_exist(headers, samples)
        reference = (FastaReference(reference_path, Path(workdir.name)) if reference_path
                     else None)
    except BaseException:
        workdir.cleanup()
        raise
    return PreparedInputs(headers, reference, workdir)


def annotate(
    store: Store,
    vcfs: list[Path],
    snapshot_name: str,
    *,
    samples: list[str] | None = None,
    reference_path: Path | None = None,
    pass_only: bool = False,
    tiers: list[Tier] | None = None,
    min_stars: int | None = None,
) -> AnnotationResult:
    snapshot = store.get(snapshot_name)
    inputs = prepare_inputs(vcfs, snapshot.manifest.assembly, f"snapshot {snapshot.name}",
                            samples, reference_path)
    con = duckdb_connect()
    stats = []
    matches = snapshot_relation_sql(snapshot, tiers, min_stars)
    sites = load_sites(con, matches)
    tables = []
    with inputs.workdir:
        for n, header in enumerate(inputs.headers):
            idx = select_samples(header, samples)
            st = load(con, header, idx, inputs.reference, pass_only, sites)
            table = f"hits_{n}"
            carried_at(con, header, idx, matches, table, pass_only, _PAYLOAD)
            if inputs.reference is not None:
                st.skipped[Skip.REF_MISMATCH.value] += check_matched_refs(
                    con, inputs.reference, table)
            matched = con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
            log.info("%s: %d records, %d alleles after splitting, %d carried calls, %d matched "
                     "in %s; not reported: %s", header.path, st.records, st.alleles, st.carried,
                     matched, snapshot.name, _skips(st))
            stats.append(st)
            tables.append(f"SELECT {n} AS f, *, {_sql_literal(snapshot.name)} AS snapshot "
                          f"FROM {table}")
    con.execute(f"CREATE TEMP VIEW annotation AS {' UNION ALL '.join(tables)}")
    return AnnotationResult(snapshot, stats, con)


def _skips(st: ReadStats) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(st.skipped.items()) if v) or "nothing"


def snapshot_relation_sql(snapshot: Snapshot, tiers: list[Tier] | None,
                          min_stars: int | None) -> str:
    """The snapshot's variants an annotation reports: keys and the report's columns."""
    return (f"(SELECT chrom, pos, ref, alt, {', '.join(_PAYLOAD)} "
            f"FROM {parquet_sql(snapshot.variants)} s "
            f"WHERE {snapshot_filter_sql(tiers, min_stars)})")


def snapshot_keys_sql(*snapshots: Snapshot) -> str:
    """The allele keys of classified variants in these snapshots."""
    return "(" + " UNION ALL ".join(
        f"SELECT chrom, pos, ref, alt FROM {parquet_sql(s.variants)} "
        "WHERE classification IS NOT NULL" for s in snapshots) + ")"


# ------------------------------------------------------------------------------ VCF output
_PERCENT = (("%", "%25"), (";", "%3B"), ("=", "%3D"), (",", "%2C"), (" ", "%20"),
            ("\t", "%09"), ("\n", "%0A"), ("\r", "%0D"))


def _escape_sql(expr: str) -> str:
    """VCF 4.3 percent-encoding of the characters INFO values may not contain, in SQL."""
    for ch, code in _PERCENT:
        literal = {"\t": "chr(9)", "\n": "chr(10)", "\r": "chr(13)"}.get(ch, f"'{ch}'")
        expr = f"replace({expr}, {literal}, '{code}')"
    return expr


def write_annotated_vcf(
    store: Store,
    vcf: Path,
    snapshot_name: str,
    out: Any,
    *,
    reference_path: Path | None = None,
    tiers: list[Tier] | None = None,
    min_stars: int | None = None,
    pass_only: bool = False,
) -> ReadStats:
    """Copy the input VCF with VRI_* INFO fields on every record that has a classified ALT."""

    snapshot = store.get(snapshot_name)
    inputs = prepare_inputs([vcf], snapshot.manifest.assembly, f"snapshot {snapshot.name}",
                            None, reference_path)
    header = inputs.headers[0]
    con = duckdb_connect()
    with inputs.workdir:
        matches = snapshot_relation_sql(snapshot, tiers, min_stars)
        stats = load(con, header, [], inputs.reference, pass_only, load_sites(con, matches))
        # The INFO text is built by DuckDB: one value per ALT ('.' where unmatched), escaped.
        cols = ", ".join(f"s.{src}" for src, _, _ in _INFO_SOURCE.values())

        def value(src: str) -> str:
            return _escape_sql(f"CAST(m.{src} AS VARCHAR)")

        # One ALT (most records): the text straight from the match. Several ALTs: one value per
        # ALT, '.' where unmatched, aggregated over the (few) split records only.
        single = " || ';' || ".join(f"'{key.value}=' || coalesce({value(src)}, '.')"
                                    for key, (src, _, _) in _INFO_SOURCE.items())
        several = " || ';' || ".join(
            f"'{key.value}=' || string_agg(coalesce({value(src)}, '.'), ',' ORDER BY a.ai)"
            for key, (src, _, _) in _INFO_SOURCE.items())
        additions = dict(con.execute(f"""
            WITH m AS (
                SELECT a.rid, a.ai, a.split, {cols}
                FROM ({candidate_alleles_sql(con, matches, [], pass_only)}) a
                JOIN {matches} s
                  ON {key_match_sql('s', 'a')}
                WHERE a.skip IS NULL)
            SELECT rid, {single} FROM m WHERE NOT split
            UNION ALL
            SELECT a.rid, {several}
            FROM complex_allele a LEFT JOIN (SELECT * FROM m WHERE split) m
              ON m.rid = a.rid AND m.ai = a.ai
            WHERE a.rid IN (SELECT rid FROM m WHERE split)
            GROUP BY a.rid
        """).fetchall())
        m = snapshot.manifest
        prov = provenance(snapshot)
        meta = [f'##INFO=<ID={key.value},Number=A,Type={typ},Description="{desc} '
                f'(varreinterp, snapshot {m.name})">'
                for key, (_, typ, desc) in _INFO_SOURCE.items()]
        meta.append(f'##varreinterp=<Version="{__version__}",Snapshot="{m.name}",'
                    f'ReleaseDate="{m.release_date}",Assembly="{m.assembly}",'
                    f'SourceSHA256="{m.source_sha256}",SnapshotSHA256="{m.manifest_sha256}",'
                    f'Command="{_escape_header(prov["command"])}">')
        _rewrite_vcf(header.text_path, out, meta, additions)
    log.info("%s: %d records written, %d with a classified ALT in %s", vcf, stats.records,
             len(additions), snapshot.name)
    return stats


_KEYS = {k.value for k in InfoKey}


def _rewrite_vcf(path: Path, out: Any, meta: list[str], additions: dict[int, str]) -> None:
    """Copy the VCF to `out` (binary), rewriting only the records that change: unchanged runs of
    lines are copied as bytes, located with a vectorized newline search, so a WGS costs
    seconds rather than a Python loop over five million lines."""
    import numpy as np

    data = read_text_bytes(path)
    body_at = data.find(b"\n#CHROM")
    if body_at < 0 and not data.startswith(b"#CHROM"):
        raise InputError("VCF header has no #CHROM line", path)
    chrom_end = data.find(b"\n", body_at + 1)
    chrom_end = len(data) if chrom_end < 0 else chrom_end + 1
    for line in data[:body_at + 1].splitlines(keepends=True):
        if not any(line.startswith(f"##INFO=<ID={k.value},".encode()) for k in InfoKey):
            out.write(line)
    out.write(("\n".join(meta) + "\n").encode())
    out.write(data[body_at + 1:chrom_end])
    body = memoryview(data)[chrom_end:]
    arr = np.frombuffer(body, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    starts = np.concatenate(([0], ends + 1))[: len(ends) + (0 if len(arr) and arr[-1] == 10
                                                            else 1)]
    ends = np.append(ends, len(arr))[: len(starts)]
    # The columnar reader skips blank lines: number the records the same way.
    records = np.flatnonzero((ends - starts) > (arr[np.maximum(ends - 1, 0)] == 13))
    touched = set(additions)
    if data.find(b"VRI_", chrom_end) >= 0:  # earlier annotations elsewhere must not survive
        stale = [r for r in range(len(records))
                 if b"VRI_" in bytes(body[starts[records[r]]:ends[records[r]]])]
        touched.update(stale)
    cursor = 0
    pieces: list[bytes | memoryview] = []
    rec_starts, rec_ends = starts[records], ends[records]
    del starts, ends
    for rid in sorted(touched):
        # Only the INFO field changes: find its bounds in place, copy everything around it.
        line_end = int(rec_ends[rid]) + chrom_end
        start = int(rec_starts[rid]) + chrom_end
        for _ in range(7):
            start = data.find(b"\t", start, line_end) + 1
            if not start:
                raise InputError("malformed record (fewer than 8 columns)", path)
        end = data.find(b"\t", start, line_end)
        if end < 0:
            end = line_end - 1 if data[line_end - 1:line_end] == b"\r" else line_end
        info = bytes(data[start:end])
        if info in (b".", b""):
            kept = b""
        elif b"VRI_" in info:
            kept = b";".join(kv for kv in info.split(b";")
                             if kv.split(b"=", 1)[0].decode() not in _KEYS)
        else:
            kept = info
        add = additions.get(rid)
        pieces.append(body[cursor:start - chrom_end])
        pieces.append(b";".join(x for x in (kept, add.encode() if add else b"") if x) or b".")
        cursor = end - chrom_end
        if len(pieces) > 4096:
            out.writelines(pieces)
            pieces.clear()
    pieces.append(body[cursor:])
    out.writelines(pieces)


def read_text_bytes(path: Path) -> bytes | bytearray:
    """A whole (b)gzip or plain text file."""
    import gzip

    from varreinterp import bgzf

    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return bgzf.inflate_all(raw) if bgzf.is_bgzf(raw[:16]) else gzip.decompress(raw)
    except (OSError, EOFError, zlib.error, ValueError) as exc:
        raise InputError("truncated or corrupt gzip data", path) from exc


def _escape_header(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
