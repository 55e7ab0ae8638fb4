"""`annotate`: what does snapshot X say about these patients' carried variants?"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from varreinterp import db
from varreinterp.errors import UsageError
from varreinterp.matching import (
    candidate_alleles_sql,
    carried_at,
    check_matched_refs,
    count_ref_mismatch_calls,
    count_repeats,
    key_match_sql,
    merged_calls_sql,
    prepare_inputs,
    snapshot_filter_sql,
    snapshot_relation_sql,
)
from varreinterp.panels import Panel, filter_relation
from varreinterp.patient_vcf import ReadStats, VcfHeader, load, select_samples
from varreinterp.prefilter import load_sites
from varreinterp.store import Snapshot, Store
from varreinterp.vocabulary import TIER_ORDER, Tier, tier_order_sql

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

log = logging.getLogger("varreinterp")

ANNOTATION_COLUMNS = [
    "sample", "chrom", "pos", "ref", "alt", "zygosity", "filter", "gene", "classification",
    "tier", "stars", "review_status", "conditions", "variation_id", "snapshot",
]

# Report order: input file, sample, most severe tier first, best reviewed first, position.
_REPORT_ORDER = (f"f, sample, {tier_order_sql('tier')}, stars DESC NULLS LAST, key_chrom, pos, "
                 "ref, alt, rid, ai")
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


# INFO key -> (snapshot column, VCF type, description)
INFO_SOURCE = {
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
    """The matched rows stay in DuckDB (relation `annotation` on `con`) until a writer asks:
    `rows` for a DataFrame, `ordered_sql()` for a writer that lets DuckDB copy them out."""

    snapshot: Snapshot
    stats: list[ReadStats]
    con: duckdb.DuckDBPyConnection
    panel: Panel | None = None
    outside_panel: int = 0  # matched calls the panel left out
    # --tier/--min-stars as the user gave them ('' when neither) and the matched calls they
    # left out (counted before the panel: each left-out call is counted once)
    selection: str = ""
    excluded: int = 0
    _rows: pd.DataFrame | None = field(default=None, repr=False)

    def ordered_sql(self, extra: Sequence[tuple[str, object]] = ()) -> str:
        """The rows in report order, with constant columns appended."""
        consts = "".join(f", {db.quote(v)} AS {k}" for k, v in extra)
        return (f"SELECT {', '.join(ANNOTATION_COLUMNS)}{consts} FROM annotation "
                f"ORDER BY {_REPORT_ORDER}")

    @property
    def rows(self) -> pd.DataFrame:
        if self._rows is None:
            self._rows = self.con.execute(self.ordered_sql()).df()
        return self._rows

    def summary(self) -> str:
        by_tier = dict(self.con.execute(
            "SELECT tier, count(*) FROM annotation GROUP BY 1").fetchall())
        samples = db.scalar(self.con, "SELECT count(DISTINCT sample) FROM annotation")
        parts = [f"{by_tier[t.value]} {t.value}" for t in TIER_ORDER if by_tier.get(t.value)]
        return (f"{sum(by_tier.values())} classified variant call(s) in {samples} "
                f"sample(s) against {self.snapshot.name} ({self.snapshot.manifest.release_date})"
                + (f": {', '.join(parts)}" if parts else "")
                + (f"; {self.excluded} excluded by {self.selection}" if self.selection
                   else "")
                + (f"; {self.outside_panel} outside {self.panel.summary()}" if self.panel
                   else ""))


def parse_tiers(values: Sequence[str] | None) -> list[Tier] | None:
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


def selection_words(tiers: Sequence[Tier] | None, min_stars: int | None) -> str:
    """--tier/--min-stars as the summary names them ('' when neither selects anything)."""
    words = []
    if tiers:
        words.append("--tier " + ",".join(t.value for t in tiers))
    if min_stars:
        words.append(f"--min-stars {int(min_stars)}")
    return " and ".join(words)


def annotate(
    store: Store,
    vcfs: Sequence[Path],
    snapshot_name: str,
    workdir: Path,
    *,
    samples: list[str] | None = None,
    reference_path: Path | None = None,
    pass_only: bool = False,
    tiers: Sequence[Tier] | None = None,
    min_stars: int | None = None,
    panel: Panel | None = None,
) -> AnnotationResult:
    """Match every carried allele of `vcfs` against snapshot `snapshot_name` (only calls of
    `tiers`/`min_stars` and in `panel`, when given: the others are counted). One sample in
    several files is one patient: one row per sample and allele, its repeats counted.

    Every input is checked first (headers, build, samples, FASTA). `workdir` holds the run's
    temporary files and must outlive the result (its rows stay in DuckDB)."""
    snapshot = store.use(snapshot_name)
    inputs = prepare_inputs(vcfs, workdir, assembly=snapshot.manifest.assembly,
                            what=f"snapshot {snapshot.name}", samples=samples,
                            reference_path=reference_path)
    con = db.connect(workdir)
    stats = []
    # Every classified variant is matched: --tier/--min-stars apply to the matched calls, so
    # that the calls they leave out are counted, as a panel's are.
    matches = snapshot_relation_sql(snapshot, _PAYLOAD)
    sites = load_sites(con, matches)
    tables: list[str] = []
    for n, header in enumerate(inputs.headers):
        calls = load(con, header, select_samples(header, samples), inputs.reference, pass_only,
                     sites)
        count_ref_mismatch_calls(calls)
        st = calls.stats
        table = carried_at(calls, matches, f"hits_{n}", _PAYLOAD)
        if inputs.reference is not None:
            check_matched_refs(con, inputs.reference, table, st)
        matched = db.count(con, table) - count_repeats(con, table, tables, st)
        log.info("%s: %d records, %d alleles after splitting, %d carried calls, %d matched "
                 "in %s; not reported: %s", header.path, st.records, st.alleles, st.carried,
                 matched, snapshot.name, st.not_reported())
        said = st.ref_mismatch_warning(inputs.reference.path if inputs.reference else None)
        if said:
            log.warning("%s", said)
        stats.append(st)
        tables.append(table)
    merged = merged_calls_sql(tables, _PAYLOAD)
    con.execute(f"CREATE TEMP TABLE annotation_all AS SELECT *, "
                f"{db.quote(snapshot.name)} AS snapshot FROM ({merged})")
    selection, selected = selection_words(tiers, min_stars), "annotation_all"
    excluded = 0
    if selection:
        chosen = snapshot_filter_sql(tiers, min_stars)
        excluded = int(db.scalar(con, f"SELECT count(*) FROM annotation_all s "
                                      f"WHERE ({chosen}) IS NOT TRUE") or 0)
        selected = f"(SELECT * FROM annotation_all s WHERE {chosen})"
    outside = 0
    if panel is not None:
        con.execute(f"CREATE TEMP VIEW annotation_selected AS SELECT * FROM {selected}")
        selected, outside = filter_relation(con, panel, "annotation_selected")
    con.execute(f"CREATE TEMP VIEW annotation AS SELECT * FROM {selected}")
    return AnnotationResult(snapshot, stats, con, panel, outside, selection, excluded)


# ------------------------------------------------------------------------------ VCF output
@dataclass
class VcfAnnotation:
    """What `annotate --format vcf` adds to a VCF: the INFO text per data line (0-based)."""

    snapshot: Snapshot
    header: VcfHeader
    stats: ReadStats
    additions: dict[int, str]


_PERCENT = (("%", "%25"), (";", "%3B"), ("=", "%3D"), (",", "%2C"), (" ", "%20"),
            ("\t", "%09"), ("\n", "%0A"), ("\r", "%0D"))


def _escape_sql(expr: str) -> str:
    """VCF 4.3 percent-encoding of the characters INFO values may not contain, in SQL."""
    for ch, code in _PERCENT:
        literal = {"\t": "chr(9)", "\n": "chr(10)", "\r": "chr(13)"}.get(ch, f"'{ch}'")
        expr = f"replace({expr}, {literal}, '{code}')"
    return expr


def vcf_annotation(
    store: Store,
    vcf: Path,
    snapshot_name: str,
    workdir: Path,
    *,
    reference_path: Path | None = None,
    tiers: Sequence[Tier] | None = None,
    min_stars: int | None = None,
    pass_only: bool = False,
) -> VcfAnnotation:
    """The VRI_* INFO text of every record of `vcf` that has a classified ALT."""
    snapshot = store.use(snapshot_name)
    inputs = prepare_inputs([vcf], workdir, assembly=snapshot.manifest.assembly,
                            what=f"snapshot {snapshot.name}", samples=None,
                            reference_path=reference_path)
    header = inputs.headers[0]
    con = db.connect(workdir)
    matches = snapshot_relation_sql(snapshot, _PAYLOAD, tiers, min_stars)
    # Every sample is read: the annotated copy must not pass on a malformed genotype.
    calls = load(con, header, list(range(len(header.samples))), inputs.reference, pass_only,
                 load_sites(con, matches))
    # The INFO text is built by DuckDB: one value per ALT ('.' where unmatched), escaped.
    cols = ", ".join(f"s.{src}" for src, _, _ in INFO_SOURCE.values())

    def value(src: str) -> str:
        return _escape_sql(f"CAST(m.{src} AS VARCHAR)")

    # One ALT (most records): the text straight from the match. Several ALTs: one value per
    # ALT, '.' where unmatched, aggregated over the (few) split records only.
    single = " || ';' || ".join(f"'{key.value}=' || coalesce({value(src)}, '.')"
                                for key, (src, _, _) in INFO_SOURCE.items())
    several = " || ';' || ".join(
        f"'{key.value}=' || string_agg(coalesce({value(src)}, '.'), ',' ORDER BY a.ai)"
        for key, (src, _, _) in INFO_SOURCE.items())
    additions = dict(con.execute(f"""
        WITH m AS (
            SELECT a.rid, a.ai, a.split, {cols}
            FROM ({candidate_alleles_sql(calls, matches)}) a
            JOIN {matches} s
              ON {key_match_sql('s', 'a')}
            WHERE a.skip IS NULL)
        SELECT rid, {single} FROM m WHERE NOT split
        UNION ALL
        SELECT a.rid, {several}
        FROM {calls.complex_allele} a LEFT JOIN (SELECT * FROM m WHERE split) m
          ON m.rid = a.rid AND m.ai = a.ai
        WHERE a.rid IN (SELECT rid FROM m WHERE split)
        GROUP BY a.rid
    """).fetchall())
    con.close()
    return VcfAnnotation(snapshot, header, calls.stats, additions)
