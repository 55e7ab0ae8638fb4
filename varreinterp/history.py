"""`history`: a carried variant's classification in every stored snapshot of its assembly."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import db
from varreinterp.assembly import normalize_contig
from varreinterp.changes import class_key_sql
from varreinterp.errors import StoreError, UsageError
from varreinterp.matching import (
    carried_at,
    check_matched_refs,
    count_ref_mismatch_calls,
    count_repeats,
    key_match_sql,
    merged_calls_sql,
    prepare_inputs,
    snapshot_keys_sql,
)
from varreinterp.panels import Panel, check_known_symbols, panel_membership
from varreinterp.patient_vcf import ReadStats, load, select_samples
from varreinterp.provenance import Provenance
from varreinterp.store import Snapshot, Store

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

log = logging.getLogger("varreinterp")

# `filter` is the call's VCF FILTER: a call that failed QC must stay visible as such.
HISTORY_COLUMNS = ["sample", "chrom", "pos", "ref", "alt", "zygosity", "filter", "gene",
                   "snapshot", "release_date", "classification", "tier", "stars",
                   "review_status"]


@dataclass
class HistoryResult:
    snapshots: list[Snapshot]
    rows: pd.DataFrame  # one row per (sample, variant, snapshot), release-date order
    panel: Panel | None = None
    outside_panel: int = 0  # rows the panel left out

    def provenance(self, command: str) -> Provenance:
        return Provenance.of(command, *((f"snapshot_{i}", s)
                                        for i, s in enumerate(self.snapshots, start=1)))


def history(store: Store, vcfs: Sequence[Path], workdir: Path, *,
            samples: list[str] | None = None, reference_path: Path | None = None,
            show_all: bool = False, source: str | None = None,
            pass_only: bool = False, panel: Panel | None = None) -> HistoryResult:
    """Each carried variant's classification in every snapshot of one lineage (`source`:
    clinvar, clinvar-summary or a lab table's name; default: the only one of the VCFs' build,
    else clinvar), oldest first; by default only variants whose classification differs
    somewhere. One sample in several files is one patient: each variant once, its repeats
    counted."""
    inputs = prepare_inputs(vcfs, workdir, assembly=None, what="", samples=samples,
                            reference_path=reference_path)
    assembly = {a for h in inputs.headers if (a := h.assembly()) is not None}
    stored = store.snapshots()
    if len(assembly) > 1:
        raise UsageError("the VCFs are of different assemblies; run history on each")
    builds = {s.manifest.assembly for s in stored}
    if assembly:
        build = assembly.pop().value
    elif len(builds) == 1:
        build = builds.pop()
    else:
        raise UsageError("the VCF header does not tell its build and the store holds "
                         f"{', '.join(sorted(builds)) or 'no'} snapshots: nothing to compare")
    lineages = sorted({s.lineage for s in stored if s.manifest.assembly == build})
    lineage = _choose_lineage(lineages, source, build)
    broken = store.broken_lineages()
    if lineage in broken or "*" in broken:
        raise StoreError(f"a snapshot of {lineage} cannot be read "
                         f"({broken.get(lineage) or broken['*']}): the history would be "
                         "incomplete")
    snaps = trusted_series(store, lineage)
    if panel is not None:  # a typo would empty the history silently, as it would a diff
        check_known_symbols([panel], snaps)
    con = db.connect(workdir)
    union = " UNION ALL ".join(
        f"SELECT {db.quote(s.name)} AS snapshot, {db.quote(s.manifest.release_date)} "
        f"AS release_date, {i} AS k, chrom, pos, ref, alt, gene, classification, tier, stars, "
        f"review_status FROM {db.parquet(s.variants)} WHERE classification IS NOT NULL"
        for i, s in enumerate(snaps))
    releases = ", ".join(f"({i}, {db.quote(s.name)}, {db.quote(s.manifest.release_date)})"
                         for i, s in enumerate(snaps))
    stats: list[ReadStats] = []
    tables: list[str] = []
    for n, header in enumerate(inputs.headers):
        calls = load(con, header, select_samples(header, samples), inputs.reference,
                     pass_only)
        count_ref_mismatch_calls(calls)
        # the calls some release lists, one row per sample and allele (repeats counted)
        table = carried_at(calls, snapshot_keys_sql(*snaps), f"carried_{n}")
        if inputs.reference is not None:  # as annotate and diff do: a REF the FASTA contradicts
            check_matched_refs(con, inputs.reference, table, calls.stats)
        count_repeats(con, table, tables, calls.stats)
        stats.append(calls.stats)
        tables.append(table)
    con.execute(f"CREATE TEMP TABLE history_calls AS {merged_calls_sql(tables)}")
    rows = con.execute(f"""
            WITH c AS (SELECT * FROM history_calls),
            m AS (
                SELECT c.sample, c.key_chrom, c.pos, c.ref, c.alt, s.k, s.gene,
                       s.classification, s.tier, s.stars, s.review_status
                FROM c JOIN ({union}) s ON {key_match_sql('s', 'c')}),
            known AS (  -- the calls some release lists, and their latest gene
                SELECT sample, key_chrom, pos, ref, alt, arg_max(gene, k) AS last_gene
                FROM m GROUP BY ALL),
            h AS (  -- one row per release, absent ones included (classification NULL)
                SELECT c.f, c.sample, c.chrom, c.key_chrom, c.pos, c.ref, c.alt,
                       c.zygosity, c.filter, n.snapshot, n.release_date, n.k,
                       coalesce(m.gene, c.last_gene) AS gene, m.classification, m.tier,
                       m.stars, m.review_status
                FROM (SELECT c.*, known.last_gene FROM c
                      JOIN known USING (sample, key_chrom, pos, ref, alt)) c
                CROSS JOIN (VALUES {releases}) n(k, snapshot, release_date)
                LEFT JOIN m ON m.sample = c.sample AND m.key_chrom = c.key_chrom
                           AND m.pos = c.pos AND m.ref = c.ref AND m.alt = c.alt
                           AND m.k = n.k),
            changed AS (
                SELECT sample, key_chrom, pos, ref, alt FROM h
                GROUP BY ALL
                HAVING count(DISTINCT {class_key_sql('classification')}) > 1
                    OR count(classification) < {len(snaps)})
            SELECT h.* EXCLUDE (key_chrom, k) FROM h
            {"" if show_all else "SEMI JOIN changed USING (sample, key_chrom, pos, ref, alt)"}
            ORDER BY sample, key_chrom, pos, ref, alt, k
        """).df()
    con.close()
    # Each row is counted in the first file holding its call.
    per_file = rows["f"].value_counts().to_dict()
    for n, st in enumerate(stats):
        log.info("%s: %d records, %d carried calls, %d history row(s) over %d snapshot(s) of "
                 "%s; not reported: %s", st.path, st.records, st.carried, per_file.get(n, 0),
                 len(snaps), lineage, st.not_reported())
        said = st.ref_mismatch_warning(inputs.reference.path if inputs.reference else None)
        if said:
            log.warning("%s", said)
    rows = rows[HISTORY_COLUMNS]
    outside = 0
    if panel is not None:
        # A variant is in the panel when any release puts it there (a renamed gene symbol):
        # its whole history is kept, not only the releases that name the panel's gene.
        inside = panel_membership(panel, rows)
        key = ["sample", "chrom", "pos", "ref", "alt"]
        keep = inside.groupby([rows[c] for c in key], dropna=False).transform("any")
        outside = int((~keep).sum())
        rows = rows[keep].reset_index(drop=True)
    return HistoryResult(snaps, rows, panel, outside)


def trusted_series(store: Store, lineage: str, keep: Sequence[str] = ()) -> list[Snapshot]:
    """The releases of a lineage for a history or a report's timeline, oldest first, without
    those marked suspect (partial: a variant missing from one would read "absent", as if
    ClinVar had dropped it), except those named in `keep` (a target the user accepted)."""
    series, left_out = [], []
    for s in store.lineage(lineage):
        if s.manifest.suspect and s.name not in keep:
            left_out.append(s.name)
        else:
            series.append(store.use(s.name))
    if left_out:
        log.warning("%s: left out of the history the release(s) marked suspect (partial): %s",
                    lineage, ", ".join(left_out))
    return series


def _choose_lineage(lineages: list[str], source: str | None, build: str) -> str:
    if not lineages:
        raise StoreError(f"no stored snapshot of assembly {build}")
    if source:
        wanted = f"{source}/{build}" if "/" not in source else source
        if wanted not in lineages:
            raise UsageError(f"--source {source}: no {build} snapshots of that source "
                             f"(lineages: {', '.join(lineages)})")
        return wanted
    if len(lineages) == 1:
        return lineages[0]
    if f"clinvar/{build}" in lineages:
        return f"clinvar/{build}"
    raise UsageError(f"the store holds several {build} lineages ({', '.join(lineages)}): "
                     "choose one with --source")


Key = tuple[str, int, str, str]  # (contig key, pos, ref, alt)


def key_of(row: Mapping[str, Any]) -> Key:
    """The matching key of a change row (its contig in the patient's spelling)."""
    return (normalize_contig(str(row["chrom"])), int(row["pos"]), str(row["ref"]),
            str(row["alt"]))


def keys_of(rows: pd.DataFrame) -> list[Key]:
    """`key_of` of every row of a frame, column-wise (row dicts of 750,000 changes took 45 s:
    contigs are few, so each spelling is normalized once)."""
    contig = {c: normalize_contig(str(c)) for c in rows["chrom"].unique()}
    return [(contig[c], int(p), str(r), str(a)) for c, p, r, a in
            zip(rows["chrom"].tolist(), rows["pos"].tolist(), rows["ref"].tolist(),
                rows["alt"].tolist(), strict=True)]


def timelines(con: duckdb.DuckDBPyConnection, snapshots: Sequence[Snapshot],
              keys: Sequence[Key]) -> dict[Key, list[dict[str, object]]]:
    """For each allele key, its classification in every snapshot (oldest first), with None
    where the snapshot does not list it: the timeline of a report card."""
    if not keys or not snapshots:
        return {}
    values = ", ".join(f"({db.quote(c)}, {int(p)}, {db.quote(r)}, {db.quote(a)})"
                       for c, p, r, a in dict.fromkeys(keys))
    union = " UNION ALL ".join(
        f"SELECT {i} AS k, chrom, pos, ref, alt, classification, tier, stars "
        f"FROM {db.parquet(s.variants)} WHERE classification IS NOT NULL"
        for i, s in enumerate(snapshots))
    found: dict[tuple[Key, int], tuple[object, object, object]] = {}
    for k, chrom, pos, ref, alt, cls, tier, stars in con.execute(f"""
            SELECT s.k, s.chrom, s.pos, s.ref, s.alt, s.classification, s.tier, s.stars
            FROM ({union}) s SEMI JOIN (VALUES {values}) w(chrom, pos, ref, alt)
              USING (chrom, pos, ref, alt)""").fetchall():
        found[((chrom, int(pos), ref, alt), int(k))] = (cls, tier, stars)
    out: dict[Key, list[dict[str, object]]] = {}
    for key in dict.fromkeys(keys):
        out[key] = [{"snapshot": s.name, "release_date": s.manifest.release_date,
                     "classification": found.get((key, i), (None,))[0],
                     "tier": found.get((key, i), (None, None))[1],
                     "stars": found.get((key, i), (None, None, None))[2]}
                    for i, s in enumerate(snapshots)]
    return out
