"""Gene panels and genomic regions: which variants a command looks at.

A panel restricts annotate, diff, history, report and reanalyze to the variants it contains.

- Genes (`--genes FILE|LIST|acmg-sf`): a variant is in the panel when ANY symbol of its gene
  field is a panel gene. The field may join several symbols with `|` (ClinVar GENEINFO,
  `MLH1|EPM2AIP1`), `;` or `,` (gene columns of other tables); spaces are ignored and symbols
  compare case-insensitively (ASCII letters only: a symbol with any other character never
  matches, since HGNC symbols are ASCII). A variant without a gene symbol is outside every gene
  panel.
- Regions (`--regions FILE.bed`): BED intervals, 0-based and half-open. A variant at 1-based
  POS with a REF of length L (at least 1) covers [POS-1, POS-1+L) and is inside when that span
  overlaps an interval: a SNV at POS = start is outside, at POS = start+1 inside, and a deletion
  whose REF reaches into an interval is inside. Contigs compare as in matching (`chr1` = `1`,
  `chrM` = `M` = `MT`).
- Genes and regions together: a variant must satisfy both (the intersection), never either.

`Panel.contains` (Python) and `Panel.sql_predicate` / `Panel.register` (DuckDB) state the same
rule; tests/test_panels.py checks they agree on generated variants.

Symbols a user gave (a `--genes` list or file, a config panel; not the built-in lists) are kept
in `Panel.given`: `check_known_symbols` refuses one that no compared snapshot knows, since a
typo (`BRAC1`) would otherwise make a panel that silently matches nothing.
"""

from __future__ import annotations

import bisect
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp import db
from varreinterp.assembly import accession_build, contig_sql, normalize_contig
from varreinterp.errors import EnvironmentIOError, InputError, UsageError, VarreinterpError

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

    from varreinterp.store import Snapshot

Interval = tuple[int, int]
# Per contig key (normalize_contig), sorted by key: sorted, disjoint, non-adjacent intervals.
Regions = tuple[tuple[str, tuple[Interval, ...]], ...]

ACMG_SF = "acmg-sf"

# SQL region lookups join on (contig, 16 kb bin) and then test the overlap; each interval is
# listed in every bin it touches and each variant unnests the bins its REF span touches, so the
# lookup is exact for any REF length. Measured (DuckDB 2.0, 2 cores, 1M variants): 0.3-0.6 s
# against 100,000 registered regions (0.2 s to register, 0.4 s to read the gzip BED), 0.3-0.45 s
# against 1,000 regions inline; a plain `contig = ... AND start < end ...` join took ~9 s and a
# VALUES list of 100,000 regions 6.8 s (parsing), hence the inline limit below. Bin sizes of
# 2^14 and 2^16 timed the same. Gene tests unnest the symbols and join: 0.05-0.15 s per 1M rows
# for 2 to 5,000 genes, where list_has_any() with a 5,000-gene list took 60 s.
BIN_BITS = 14
INLINE_REGION_ROWS = 5000

_SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9._@-]*")  # HGNC symbols, upper-cased: BRCA1, HLA-A, TRB@
_FIELD_SPLIT = re.compile(r"[\t,;\s]+")
_INTEGER = re.compile(r"[0-9]+")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BED_SKIP = re.compile(r"(#|track(\s|$)|browser(\s|$))")
# A first line whose first column is one of these is a column header, not a gene.
_HEADER_WORDS = frozenset({"GENE", "GENES", "SYMBOL", "SYMBOLS", "GENE_SYMBOL", "GENESYMBOL",
                           "GENE_NAME", "GENENAME", "HGNC_SYMBOL", "HUGO_SYMBOL", "APPROVED",
                           "APPROVED_SYMBOL", "NAME"})
_TO_PIPE = str.maketrans({";": "|", ",": "|"})
_PATH_SUFFIXES = (".txt", ".tsv", ".csv", ".list", ".lst", ".genes", ".gz", ".bed")
_DESCRIBE_GENES = 20  # a longer list is abbreviated in descriptions (to_json keeps them all)
_DESCRIBE_UNKNOWN = 10  # unknown symbols named in one error message
# difflib ratio for a "did you mean": a swap or slip in a 5-letter symbol scores 0.8 (BRAC1 ->
# BRCA1, SCN5X -> SCN5A), one wrong letter of 4 scores 0.75 (PTEM -> PTEN); difflib's default
# 0.6 would also offer other genes (BRAC1 -> BRCA2 0.6, MYH7 -> MYO7A 0.67).
_SUGGEST_CUTOFF = 0.75


def gene_symbols(gene_field: str | None) -> list[str]:
    """The symbols of a snapshot's gene field, as panels compare them (upper-cased, spaces
    removed; a symbol with non-ASCII characters is kept as is and never matches)."""
    if not gene_field:
        return []
    tokens = gene_field.replace(" ", "").translate(_TO_PIPE).split("|")
    return [t.upper() if t.isascii() else t for t in tokens if t]


@dataclass(frozen=True)
class Panel:
    """A gene set, a region set, or both (a variant must then satisfy both).

    `name` is a short label (`acmg-sf-v3.3`, `cardio.txt`); `description` says where the panel
    came from, for provenance. Build panels with `parse_genes_option`, `load_gene_file`,
    `load_bed`, `acmg_sf`, `build_panel` or `Panel.from_parts`, which check their input."""

    name: str
    description: str
    genes: frozenset[str] | None = None
    regions: Regions | None = field(default=None, repr=False)
    # (where the user gave them, symbols): what `check_known_symbols` checks. Built-in lists
    # give none. Not part of equality: it says where the genes came from, not what they are.
    given: tuple[tuple[str, frozenset[str]], ...] = field(default=(), repr=False,
                                                          compare=False)

    def __post_init__(self) -> None:
        # The constructors report empty inputs with the file or option at fault; this guards
        # against a panel built by hand that would silently match nothing.
        if self.genes is None and self.regions is None:
            raise VarreinterpError(f"panel {self.name!r} has neither genes nor regions")
        if self.genes is not None and not self.genes:
            raise VarreinterpError(f"panel {self.name!r} has an empty gene set")
        if self.regions is not None and not self.regions:
            raise VarreinterpError(f"panel {self.name!r} has an empty region set")

    @classmethod
    def from_parts(cls, name: str, genes: Iterable[str] | str | Path | None,
                   regions: Iterable[tuple[str, int, int]] | str | Path | None,
                   genes_file: Path | None = None) -> Panel:
        """A named panel from the config file. `genes`: symbols, or a string read like
        `--genes` (file, comma list or built-in name), or a Path to a genes file; `genes_file`
        adds its genes to them (a panel's inline list plus its file: both count). `regions`:
        (contig, start, end) BED-style tuples (0-based, half-open), or the path of a BED file.
        Genes and regions both given: the intersection."""
        parts: list[Panel] = []
        if isinstance(genes, Path):
            parts.append(load_gene_file(genes))
        elif isinstance(genes, str):
            parts.append(parse_genes_option(genes, source=f"panel {name}"))
        elif genes is not None:
            parts.append(_gene_list_panel(list(genes), f"panel {name}"))
        if genes_file is not None:
            listed = load_gene_file(genes_file)
            if parts and parts[0].genes is not None and listed.genes is not None:
                parts[0] = _gene_list_panel(sorted(parts[0].genes | listed.genes),
                                            f"panel {name}")
            else:
                parts.insert(0, listed)
        if isinstance(regions, (str, Path)):
            parts.append(load_bed(Path(regions)))
        elif regions is not None:
            parts.append(_tuple_regions_panel(name, regions))
        if not parts:
            raise UsageError(f"panel {name!r} names neither genes nor regions")
        combined = _intersect_all(parts)
        return cls(name, f"panel {name}: {combined.description}", combined.genes,
                   combined.regions, combined.given)

    # -- membership ---------------------------------------------------------------------

    def contains(self, chrom: str | None, pos: int | None, ref: str | None,
                 gene: str | None) -> bool:
        """Whether one variant is in the panel (pure Python, for tests and small tables)."""
        if self.genes is not None and not any(s in self.genes for s in gene_symbols(gene)):
            return False
        if self.regions is not None:
            if chrom is None or pos is None:
                return False
            start = pos - 1
            return self._overlaps(normalize_contig(chrom), start, start + max(len(ref or ""), 1))
        return True

    def _overlaps(self, key: str, start: int, end: int) -> bool:
        found = self._index.get(key)
        if found is None:
            return False
        starts, ends = found
        # Intervals are disjoint and sorted, so the last one starting before `end` is the only
        # candidate: any earlier interval ends before it starts.
        i = bisect.bisect_left(starts, end) - 1
        return i >= 0 and ends[i] > start

    @cached_property
    def _index(self) -> dict[str, tuple[list[int], list[int]]]:
        return {key: ([s for s, _ in ivs], [e for _, e in ivs]) for key, ivs in self.regions or ()}

    # -- SQL ----------------------------------------------------------------------------

    def sql_predicate(self, chrom_col: str, pos_col: str, ref_col: str, gene_col: str, *,
                      registered: str | None = None) -> str:
        """A DuckDB boolean expression (never NULL) for "the variant is in the panel".

        The arguments are SQL expressions for the variant's contig, 1-based position, REF and
        gene field; they are used as given (callers pass column names, never user data).
        Every literal from the panel is quoted here. It holds correlated subqueries, which
        DuckDB plans as joins, in WHERE, SELECT and JOIN ... ON alike.

        Without `registered`, genes and regions are inline VALUES lists; regions past
        INLINE_REGION_ROWS bin rows (an exome kit) need `register` first: pass the name it
        returned as `registered` (or call that macro directly)."""
        if registered is not None:
            _check_identifier(registered)
            return f"{registered}({chrom_col}, {pos_col}, {ref_col}, {gene_col})"
        tests: list[str] = []
        if self.genes is not None:
            rows = ", ".join(f"({db.quote(g)})" for g in sorted(self.genes))
            tests.append(_gene_test(gene_col, f"(VALUES {rows}) AS vr_panel_g(vr_sym)"))
        if self.regions is not None:
            rows_list = self._bin_rows()
            if len(rows_list) > INLINE_REGION_ROWS:
                raise VarreinterpError(
                    f"panel {self.name!r} has {self.interval_count} regions, too many to inline "
                    f"in SQL: register() it on the connection and pass registered=")
            values = ", ".join(f"({db.quote(c)}, {b}, {lo}, {hi})" for c, b, lo, hi in rows_list)
            tests.append(_region_test(
                chrom_col, pos_col, ref_col,
                f"(VALUES {values}) AS vr_panel_r(vr_contig, vr_bin, vr_lo, vr_hi)"))
        return "coalesce(" + " AND ".join(f"({t})" for t in tests) + ", false)"

    def register(self, con: duckdb.DuckDBPyConnection, name: str) -> str:
        """Load the panel into temp tables of `con` and create a temp macro
        `vrp_<name>(chrom, pos, ref, gene)`, the panel's predicate (never NULL); returns the
        macro's name. Write `{macro}(c.chrom, c.pos, c.ref, s.gene)` in a query, or pass it as
        `registered=` to sql_predicate. Registering the same name again replaces the panel.
        Fast for any panel size (100,000 regions against 1M variants: 0.3-0.6 s)."""
        _check_identifier(name)
        name = f"vrp_{name}"  # a prefix keeps SQL keywords (`both`, `order`) usable as names
        tests: list[str] = []
        if self.genes is not None:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name}_genes AS "
                        "SELECT unnest($1::VARCHAR[]) AS vr_sym", [sorted(self.genes)])
            tests.append(_gene_test("vr_gene", f"{name}_genes AS vr_panel_g"))
        if self.regions is not None:
            rows = self._bin_rows()
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE {name}_regions AS SELECT "
                "unnest($1::VARCHAR[]) AS vr_contig, unnest($2::BIGINT[]) AS vr_bin, "
                "unnest($3::BIGINT[]) AS vr_lo, unnest($4::BIGINT[]) AS vr_hi",
                [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                 [r[3] for r in rows]])
            tests.append(_region_test("vr_chrom", "vr_pos", "vr_ref",
                                      f"{name}_regions AS vr_panel_r"))
        body = "coalesce(" + " AND ".join(f"({t})" for t in tests) + ", false)"
        con.execute(f"CREATE OR REPLACE TEMP MACRO {name}(vr_chrom, vr_pos, vr_ref, vr_gene) "
                    f"AS {body}")
        return name

    def _bin_rows(self) -> list[tuple[str, int, int, int]]:
        return [(key, b, lo, hi) for key, ivs in self.regions or () for lo, hi in ivs
                for b in range(lo >> BIN_BITS, ((hi - 1) >> BIN_BITS) + 1)]

    # -- combination and provenance -----------------------------------------------------

    def intersect(self, other: Panel) -> Panel:
        """Variants in both panels. Two gene sets or two region sets that share nothing are a
        UsageError: such a panel would silently match nothing."""
        genes = self.genes
        if other.genes is not None:
            genes = other.genes if genes is None else genes & other.genes
            if not genes:
                raise UsageError(f"the gene sets of {self.name} and {other.name} share no gene")
        regions = self.regions
        if other.regions is not None:
            regions = other.regions if regions is None else _intersect_regions(regions,
                                                                               other.regions)
            if not regions:
                raise UsageError(f"the regions of {self.name} and {other.name} do not overlap")
        return Panel(f"{self.name}+{other.name}",
                     f"{self.description} AND {other.description}", genes, regions,
                     self.given + other.given)

    @property
    def interval_count(self) -> int:
        return sum(len(ivs) for _, ivs in self.regions or ())

    @property
    def bases(self) -> int:
        return sum(e - s for _, ivs in self.regions or () for s, e in ivs)

    @cached_property
    def sha256(self) -> str:
        """Checksum of the content (genes and merged regions), not of the files it came from."""
        import hashlib

        genes = ",".join(sorted(self.genes)) if self.genes is not None else "*"
        regions = ("|".join(f"{k}:{s}-{e}" for k, ivs in self.regions for s, e in ivs)
                   if self.regions is not None else "*")
        return hashlib.sha256(f"genes={genes}\nregions={regions}\n".encode()).hexdigest()

    def summary(self) -> str:
        """One line of provenance text."""
        return f"{self.description} [panel sha256 {self.sha256[:12]}]"

    def facts(self) -> tuple[tuple[str, str], ...]:
        """(key, value) pairs for `Provenance.with_facts`."""
        return (("panel", self.description), ("panel_sha256", self.sha256))

    def to_json(self) -> dict[str, Any]:
        """JSON-ready provenance: every gene, and a summary of the regions (not 100k rows)."""
        regions: dict[str, Any] | None = None
        if self.regions is not None:
            regions = {"intervals": self.interval_count, "bases": self.bases,
                       "contigs": [key for key, _ in self.regions]}
        return {"name": self.name, "description": self.description, "sha256": self.sha256,
                "genes": sorted(self.genes) if self.genes is not None else None,
                "regions": regions}


# -- building panels from options, files and the built-in list ---------------------------


def build_panel(genes: str | None = None, regions: str | Path | None = None) -> Panel | None:
    """The panel of `--genes` and `--regions` (None when neither is given); with both, a
    variant must be in a panel gene AND in a region."""
    parts: list[Panel] = []
    if genes is not None:
        parts.append(parse_genes_option(genes))
    if regions is not None:
        parts.append(load_bed(Path(regions)))
    return _intersect_all(parts) if parts else None


def parse_genes_option(value: str, *, source: str = "--genes") -> Panel:
    """`--genes` in its three forms, tried in this order:
    - a built-in name: `acmg-sf` (the current ACMG SF list) or `acmg-sf-v3.2` (an earlier v3
      list); case-insensitive, and it wins over a file of that name (write `./acmg-sf`);
    - an existing path: a genes file (see `load_gene_file`); a value that looks like a path
      (a `/`, or a .txt/.tsv/.csv/.bed/.gz... suffix) but does not exist is an InputError;
    - otherwise a comma-separated list of symbols (`BRCA1,brca2`)."""
    text = value.strip()
    if text.lower() == ACMG_SF or text.lower().startswith(ACMG_SF + "-"):
        return acmg_sf(text.lower())
    path = Path(text).expanduser()
    if text and path.exists():
        return load_gene_file(path)
    if "/" in text or "\\" in text or text.lower().endswith(_PATH_SUFFIXES):
        raise InputError("genes file not found", path)
    items = [t.strip("\"'") for t in re.split(r"[,;\s]+", text)]
    builtin = [t for t in items if t.lower() == ACMG_SF or t.lower().startswith(ACMG_SF + "-")]
    if builtin:
        raise UsageError(f"{source}: {builtin[0]!r} is a built-in panel; give it alone, "
                         "not inside a list of genes")
    return _gene_list_panel([t for t in items if t], source)


def load_gene_file(path: Path) -> Panel:
    """A genes file: one symbol per line; `#` starts a comment; blank lines are skipped; a
    line may hold tab-, comma- or space-separated columns, the first being the symbol; a first
    line naming a column (`gene`, `symbol`, `hgnc_symbol`...) is a header. Plain or gzip."""
    symbols: list[str] = []
    header_allowed = True
    for number, raw in enumerate(_read_lines(path, "genes file"), start=1):
        text = raw.split("#", 1)[0].strip()
        if not text:
            continue
        token = _FIELD_SPLIT.split(text, maxsplit=1)[0].strip("\"'")
        symbol = token.upper()
        if header_allowed and symbol in _HEADER_WORDS:
            header_allowed = False
            continue
        header_allowed = False
        if not token:
            raise InputError("the first column is empty; expected a gene symbol", path, number)
        if not symbol.isascii() or not _SYMBOL.fullmatch(symbol):
            raise InputError(f"{token!r} is not a gene symbol", path, number)
        symbols.append(symbol)
    if not symbols:
        raise InputError("no gene symbols in the genes file", path)
    genes = frozenset(symbols)
    return Panel(path.name, f"genes file {path} ({_count(len(genes), 'gene')})", genes,
                 given=((f"genes file {path}", genes),))


def load_bed(path: Path) -> Panel:
    """Regions from a BED file (plain or gzip): at least 3 columns (contig, start, end),
    0-based half-open; `track`, `browser`, `#` and blank lines are skipped. Overlapping and
    adjacent intervals are merged; empty ones (start = end) cover no base and are dropped."""
    records: list[tuple[str, int, int]] = []
    for number, raw in enumerate(_read_lines(path, "BED file", final_newline=True), start=1):
        line = raw.strip()
        if not line or _BED_SKIP.match(line):
            continue
        records.append(_bed_record(line, path, number))
    if not records:
        raise InputError("no regions in the BED file", path)
    regions = _merge(records)
    if not regions:
        raise InputError("every region in the BED file is empty (start = end)", path)
    merged = sum(len(ivs) for _, ivs in regions)
    description = f"regions {path} ({_count(len(records), 'region')}"
    if merged != len(records):
        description += f", {merged} after merging"
    return Panel(path.name, description + ")", None, regions)


def acmg_sf(name: str = ACMG_SF) -> Panel:
    """The built-in ACMG Secondary Findings list: `acmg-sf` (the current version) or
    `acmg-sf-v3.0` .. `acmg-sf-v3.3`; anything else is a UsageError listing the names."""
    data = _acmg_data()
    version = (data.latest if name == ACMG_SF
               else name.removeprefix(ACMG_SF + "-").removeprefix("v"))
    if version not in data.counts:
        raise UsageError(f"unknown built-in gene panel {name!r}; known: "
                         + ", ".join(builtin_panel_names()))
    genes = frozenset(g for g, added in data.genes if _version_key(added) <= _version_key(version))
    return Panel(f"{ACMG_SF}-v{version}",
                 f"{ACMG_SF} v{version}: ACMG Secondary Findings list v{version}, "
                 f"{len(genes)} genes ({data.citations[version]})", genes)


def builtin_panel_names() -> list[str]:
    """Names `--genes` accepts for the built-in lists."""
    return [ACMG_SF] + [f"{ACMG_SF}-v{v}" for v in _acmg_data().counts]


def resolve_named_panel(name: str, panels: Mapping[str, Panel]) -> Panel:
    """A panel by name among the config file's panels and the built-in lists; an unknown
    name is a UsageError listing the known ones."""
    if name in panels:
        return panels[name]
    if name.lower() in builtin_panel_names():
        return acmg_sf(name.lower())
    known = sorted(panels) + builtin_panel_names()
    raise UsageError(f"unknown panel {name!r}; known: {', '.join(known)}")


# -- helpers ---------------------------------------------------------------------------


def _gene_list_panel(items: Sequence[str], source: str) -> Panel:
    if not items:
        raise UsageError(f"{source}: no gene symbol given")
    genes: set[str] = set()
    for item in items:
        symbol = item.strip().upper()
        if not symbol.isascii() or not _SYMBOL.fullmatch(symbol):
            raise UsageError(f"{source}: {item!r} is not a gene symbol")
        genes.add(symbol)
    ordered = sorted(genes)
    shown = ",".join(ordered[:_DESCRIBE_GENES])
    if len(ordered) > _DESCRIBE_GENES:
        shown += f",... ({len(ordered)} genes)"
    return Panel(",".join(ordered) if len(ordered) <= 3 else f"{len(ordered)} genes",
                 f"genes: {shown}", frozenset(genes), given=((source, frozenset(genes)),))


def _tuple_regions_panel(name: str, regions: Iterable[tuple[str, int, int]]) -> Panel:
    records: list[tuple[str, int, int]] = []
    for contig, start, end in regions:
        if not contig or not isinstance(start, int) or not isinstance(end, int) \
                or start < 0 or start > end:
            raise UsageError(f"panel {name}: bad region {contig}:{start}-{end} "
                             "(want 0-based start <= end)")
        records.append((contig, start, end))
    merged = _merge(records)
    if not merged:
        raise UsageError(f"panel {name}: no non-empty region")
    return Panel(name, f"regions: {_count(len(records), 'interval')}", None, merged)


def _intersect_all(parts: Sequence[Panel]) -> Panel:
    panel = parts[0]
    for other in parts[1:]:
        panel = panel.intersect(other)
    return panel


def _bed_record(line: str, path: Path, number: int) -> tuple[str, int, int]:
    fields = line.split("\t") if "\t" in line else line.split()
    if len(fields) < 3:
        raise InputError(f"expected at least 3 columns (contig, start, end), found "
                         f"{len(fields)}", path, number)
    contig, start_text, end_text = (f.strip() for f in fields[:3])
    if not contig:
        raise InputError("empty contig name", path, number)
    if accession_build(contig) is not None:
        # An accession names one build's coordinates, and a panel is applied to either build.
        raise InputError(f"contig {contig} is a RefSeq accession of {accession_build(contig)}: "
                         f"name it as a chromosome ({normalize_contig(contig)} or chr"
                         f"{normalize_contig(contig)}) in a BED of that build", path, number)
    for label, text in (("start", start_text), ("end", end_text)):
        if not _INTEGER.fullmatch(text):
            raise InputError(f"{label} {text!r} is not a non-negative integer", path, number)
    start, end = int(start_text), int(end_text)
    if start > end:
        raise InputError(f"start {start} is after end {end}", path, number)
    return contig, start, end


def _merge(records: Iterable[tuple[str, int, int]]) -> Regions:
    by_key: dict[str, list[Interval]] = {}
    for contig, start, end in records:
        if end > start:
            by_key.setdefault(normalize_contig(contig), []).append((start, end))
    out: list[tuple[str, tuple[Interval, ...]]] = []
    for key in sorted(by_key):
        merged: list[Interval] = []
        for start, end in sorted(by_key[key]):
            if merged and start <= merged[-1][1]:  # overlapping or adjacent
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        out.append((key, tuple(merged)))
    return tuple(out)


def _intersect_regions(a: Regions, b: Regions) -> Regions:
    other = dict(b)
    out: list[tuple[str, tuple[Interval, ...]]] = []
    for key, left in a:
        right = other.get(key, ())
        i = j = 0
        both: list[Interval] = []
        while i < len(left) and j < len(right):
            start, end = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
            if start < end:
                both.append((start, end))
            if left[i][1] < right[j][1]:
                i += 1
            else:
                j += 1
        if both:
            out.append((key, tuple(both)))
    return tuple(out)


def _tokens_sql(gene_col: str) -> str:
    """The raw tokens of a gene field (a list): the SQL form of `gene_symbols` before
    upper-casing."""
    return f"string_split(translate(replace({gene_col}, ' ', ''), ';,', '||'), '|')"


def _gene_test(gene_col: str, source: str) -> str:
    """Any symbol of the gene field in `source` (alias vr_panel_g, column vr_sym): the SQL
    form of `gene_symbols`. `length = strlen` (characters = bytes) keeps the ASCII rule:
    DuckDB's upper() maps some non-ASCII letters to ASCII ones (dotless i to I)."""
    tokens = _tokens_sql(gene_col)
    return (f"EXISTS (SELECT 1 FROM (SELECT unnest({tokens}) AS vr_tok) AS vr_panel_t "
            f"JOIN {source} ON vr_panel_g.vr_sym = upper(vr_panel_t.vr_tok) "
            f"WHERE length(vr_panel_t.vr_tok) = strlen(vr_panel_t.vr_tok))")


def _region_test(chrom_col: str, pos_col: str, ref_col: str, source: str) -> str:
    """The REF span overlaps a row of `source` (alias vr_panel_r: vr_contig, vr_bin, vr_lo,
    vr_hi): the SQL form of `Panel._overlaps`, looked up through the bins of the span."""
    start = f"(CAST({pos_col} AS BIGINT) - 1)"
    end = f"({start} + greatest(coalesce(length({ref_col}), 0), 1))"
    bins = (f"range(greatest({start}, 0) >> {BIN_BITS}, "
            f"((greatest({end}, 1) - 1) >> {BIN_BITS}) + 1)")
    return (f"EXISTS (SELECT 1 FROM (SELECT unnest({bins}) AS vr_bin) AS vr_panel_q "
            f"JOIN {source} ON vr_panel_r.vr_contig = {contig_sql(chrom_col)} "
            f"AND vr_panel_r.vr_bin = vr_panel_q.vr_bin "
            f"WHERE vr_panel_r.vr_lo < {end} AND vr_panel_r.vr_hi > {start})")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _check_identifier(name: str) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise VarreinterpError(f"not a SQL identifier for a panel: {name!r}")


def _read_lines(path: Path, what: str, final_newline: bool = False) -> list[str]:
    """The lines of a small text file, plain or gzip; a byte-order mark is dropped (CSV from
    spreadsheets starts with one) and line numbers count LF-ended lines as editors do. With
    `final_newline` (a BED), plain text must end with one. A gene list need not: a cut
    symbol is unknown to every snapshot and refused as such, and lists written with
    "\\n".join() are common."""
    import gzip
    import zlib

    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{what} not found", path) from exc
    except OSError as exc:
        raise EnvironmentIOError.from_os_error(exc, path) from exc
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise InputError(f"damaged gzip data ({exc})", path) from exc
    elif final_newline and data and not data.endswith((b"\n", b"\r")):
        # as bgzf.check_file: a BED cut inside its last interval ('6 0 2610') narrows the panel
        from varreinterp.bgzf import CUT_SHORT

        raise InputError(f"{what}: {CUT_SHORT}", path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (bad byte at offset {exc.start})", path) from exc
    return [line.removesuffix("\r") for line in text.split("\n")]


@dataclass(frozen=True)
class _AcmgData:
    latest: str
    genes: tuple[tuple[str, str], ...]  # (symbol, SF version that added it)
    counts: dict[str, int]  # stated gene count per v3 version, oldest first
    citations: dict[str, str]


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


@cache
def _acmg_data() -> _AcmgData:
    """The packaged list, checked against its own stated counts (a mismatch is a bug)."""
    from importlib.resources import files

    text = files("varreinterp").joinpath("data/acmg_sf.txt").read_text(encoding="utf-8")
    meta: dict[str, str] = {}
    genes: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith("#@"):
            key, _, value = line[2:].partition(":")
            meta[key.strip()] = value.strip()
        elif line and not line.startswith("#"):
            symbol, added = line.split("\t")
            genes.append((symbol, added))
    counts = {k.split()[1]: int(v) for k, v in meta.items() if k.startswith("count ")}
    citations = {k.split()[1]: v for k, v in meta.items() if k.startswith("cite ")}
    data = _AcmgData(meta["latest"], tuple(genes),
                     dict(sorted(counts.items(), key=lambda kv: _version_key(kv[0]))), citations)
    symbols = [g for g, _ in genes]
    if len(set(symbols)) != len(symbols) or any(not _SYMBOL.fullmatch(g) for g in symbols):
        raise VarreinterpError("packaged ACMG SF list has duplicate or malformed symbols")
    for version, stated in data.counts.items():
        have = sum(_version_key(a) <= _version_key(version) for _, a in genes)
        if have != stated or version not in citations:
            raise VarreinterpError(f"packaged ACMG SF list: v{version} has {have} genes, "
                                   f"its header states {stated}")
    return data


def filter_relation(con: duckdb.DuckDBPyConnection, panel: Panel, relation: str, *,
                    chrom: str = "chrom", pos: str = "pos", ref: str = "ref",
                    gene: str = "gene") -> tuple[str, int]:
    """(SQL of `relation`'s rows inside the panel, how many rows it leaves out). The panel is
    registered on `con` first, so a BED of any size works."""
    macro = panel.register(con, "active")
    test = f"{macro}({chrom}, {pos}, {ref}, {gene})"
    outside = int(con.execute(f"SELECT count(*) FROM {relation} WHERE NOT {test}"
                              ).fetchall()[0][0])
    return f"(SELECT * FROM {relation} WHERE {test})", outside


def filter_frame(panel: Panel, frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """(the rows of a result table inside the panel, how many it leaves out), judged by
    `panel_membership`."""
    inside = panel_membership(panel, frame)
    return frame[inside].reset_index(drop=True), int((~inside).sum())


def panel_membership(panel: Panel, frame: pd.DataFrame) -> pd.Series:
    """Whether each row of a result table is inside the panel: a boolean Series on the
    frame's index. Rows are judged by their gene column (any symbol of a `|` list) and their
    REF span on the contig."""
    import numpy as np
    import pandas as pd

    inside = np.zeros(len(frame), dtype=bool)
    if len(frame):
        con = db.connect()
        try:
            rows = frame[["chrom", "pos", "ref", "gene"]].reset_index(drop=True)
            con.register("panel_rows", rows.assign(vr_row=np.arange(len(rows))))
            macro = panel.register(con, "active")
            hits = con.execute(f"SELECT vr_row FROM panel_rows "
                               f"WHERE {macro}(chrom, pos, ref, gene)").fetchall()
        finally:
            con.close()
        inside[[h[0] for h in hits]] = True
    return pd.Series(inside, index=frame.index, dtype=bool)


def check_known_symbols(panels: Iterable[Panel | None], snapshots: Iterable[Snapshot]) -> None:
    """Refuse (UsageError, exit 2) a symbol the user gave to any of `panels` (a `--genes`
    list or file, a config panel) that occurs in the gene column of none of `snapshots`,
    naming it, where it was given and the closest known symbol. Such a symbol matches no
    variant of these snapshots: a typo would silently empty the panel. The built-in lists
    are exempt (they name genes a snapshot may simply not hold); with no snapshot, there is
    nothing to check against."""
    given: dict[str, list[str]] = {}
    for panel in panels:
        for source, symbols in panel.given if panel is not None else ():
            for symbol in symbols:
                sources = given.setdefault(symbol, [])
                if source not in sources:
                    sources.append(source)
    snaps = list({s.name: s for s in snapshots}.values())
    if not given or not snaps:
        return
    unknown = sorted(set(given) - _known_symbols(snaps, sorted(given)))
    if not unknown:
        return
    known = sorted(_known_symbols(snaps, None))
    described = []
    for symbol in unknown[:_DESCRIBE_UNKNOWN]:
        near = difflib.get_close_matches(symbol, known, n=1, cutoff=_SUGGEST_CUTOFF)
        hint = f"; did you mean {near[0]}?" if near else ""
        described.append(f"{symbol} ({', '.join(given[symbol])}{hint})")
    if len(unknown) > _DESCRIBE_UNKNOWN:
        described.append(f"and {len(unknown) - _DESCRIBE_UNKNOWN} more")
    names = [s.name for s in snaps]
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    raise UsageError(f"unknown gene symbol{'s' if len(unknown) > 1 else ''} "
                     f"{', '.join(described)}: in the gene column of none of the snapshots "
                     f"compared ({shown}); a panel gene no snapshot knows matches nothing")


def _known_symbols(snapshots: Sequence[Snapshot], wanted: Sequence[str] | None) -> set[str]:
    """The symbols (as panels compare them) of the snapshots' gene fields; only those in
    `wanted` when given (one pass over each snapshot's distinct gene fields)."""
    fields = " UNION ".join(
        f"SELECT gene FROM (SELECT {s.column('gene')} FROM {db.parquet(s.variants)}) "
        "WHERE gene IS NOT NULL" for s in snapshots)
    only = "AND upper(vr_tok) IN (SELECT unnest($1::VARCHAR[]))" if wanted is not None else ""
    con = db.connect()
    try:
        found = con.execute(f"""
            SELECT DISTINCT upper(vr_tok) AS vr_sym FROM (
                SELECT unnest({_tokens_sql('gene')}) AS vr_tok FROM ({fields}))
            WHERE vr_tok <> '' AND length(vr_tok) = strlen(vr_tok) {only}""",
                            [list(wanted)] if wanted is not None else []).fetchall()
    finally:
        con.close()
    return {str(row[0]) for row in found}
