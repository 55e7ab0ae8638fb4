"""Terminal tables for people: they must read at 80 columns.

Classifications are abbreviated in tables only (P, LP, VUS, LB, B, Conflicting; a one-line
legend under the table), long alleles are shortened, a call that failed QC is marked "QC!" in
its variant cell, and cells wrap at spaces or end in an ellipsis: never inside a word. TSV and
JSON keep the exact normalized terms (and the FILTER itself)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import IO, Any

from varreinterp.output import words

_ALLELE = 6  # bases of a REF/ALT shown before an ellipsis


@dataclass(frozen=True)
class Column:
    key: str
    header: str
    min_width: int | None = None
    max_width: int | None = None
    wrap: bool = False  # wrap at spaces (else one line, ending in an ellipsis)
    justify: str = "left"
    optional: bool = False  # shown only when some row fills it
    shrink: int | None = None  # may end in an ellipsis at this width when the table is too wide
    shrink_first: bool = False  # ...before any wrapping column is narrowed (a preview column)


# A call that failed QC is marked in its variant cell, where a person looks first; the variant
# column wraps at spaces, so the marker costs no width at 80 columns (it goes under the alleles).
QC_MARK = "QC!"
QC_LEGEND = (f"{QC_MARK} = the call did not pass the variant caller's filters (its VCF FILTER "
             "is not PASS): confirm the call before acting on it")


def variant_cell(record: Mapping[str, Any]) -> str:
    """The variant of a patient's call, with the QC marker when its FILTER failed."""
    text = variant(record)
    return f"{text} {QC_MARK}" if words.filter_failed(_text(record.get("filter"))) else text


def legend(rows: Sequence[Mapping[str, Any]]) -> str:
    """The abbreviation legend, preceded by the QC marker's when a row's variant cell has it."""
    marked = any(QC_MARK in str(r.get("variant", "")).split() for r in rows)
    return "\n".join([QC_LEGEND, LEGEND] if marked else [LEGEND])


def table_width(fh: IO[str]) -> int | None:
    """$COLUMNS when set (tests pin it); the terminal's width on a terminal; else room for
    the data (a table written to a file or pipe was asked for on purpose)."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return None if getattr(fh, "isatty", lambda: False)() else 200


def allele(seq: object) -> str:
    text = "" if seq is None else str(seq)
    return text if len(text) <= _ALLELE else text[:_ALLELE - 1] + "…"


def variant(row: Mapping[str, Any]) -> str:
    return f"{row.get('chrom')}:{row.get('pos')} {allele(row.get('ref'))}>{allele(row.get('alt'))}"


def transition(before: object, after: object) -> str:
    a = words.classification_abbrev(_text(before), missing="absent")
    b = words.classification_abbrev(_text(after), missing="absent")
    return f"{a} → {b}"


def stars_change(before: object, after: object) -> str:
    def n(x: object) -> str:
        return "-" if _text(x) is None else str(int(float(str(x))))

    return n(after) if _text(before) == _text(after) or _text(before) is None else \
        f"{n(before)}→{n(after)}"


def _text(value: object) -> str | None:
    if value is None or (isinstance(value, float) and value != value) or value == "":
        return None
    return str(value)


def print_rows(fh: IO[str], columns: Sequence[Column], rows: Sequence[Mapping[str, Any]], *,
               title: str | None = None, caption: str | None = None,
               style_row: Callable[[Mapping[str, Any]], str | None] | None = None) -> None:
    """`rows` as a table for people. Optional columns appear only when some row fills them;
    widths are fitted to the terminal without cutting a word when that is possible; the
    caption is folded at spaces to the table's width, so no legend or provenance character is
    lost. A caption holding the abbreviation legend gets the QC marker's legend before it
    when a variant cell carries the marker."""
    from rich import box
    from rich.console import Console
    from rich.segment import Segment, SegmentLines
    from rich.table import Table
    from rich.text import Text

    console = Console(file=fh, soft_wrap=False, width=table_width(fh),
                      force_terminal=None if fh is sys.stdout else False)
    shown = [c for c in columns if not c.optional or any(_cell(r, c) for r in rows)]
    cells = [[_cell(r, c) for c in shown] for r in rows]
    fitted = _fit_widths(shown, cells, console.width)
    widths: Sequence[int | None] = fitted or [None] * len(shown)
    # No edge: the two border spaces are worth more to the cells at 80 columns.
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                  collapse_padding=True)
    for c, width in zip(shown, widths, strict=True):
        table.add_column(c.header, width=width, min_width=c.min_width, max_width=c.max_width,
                         no_wrap=not c.wrap, overflow="fold" if c.wrap else "ellipsis",
                         justify=c.justify)  # type: ignore[arg-type]
    for row, line in zip(rows, cells, strict=True):
        # Text, not str: a bracket in a gene or condition name is data, not rich markup
        table.add_row(*(Text(cell) for cell in line),
                      style=style_row(row) if style_row else None)
    lines = console.render_lines(table, pad=False)
    console.print(SegmentLines(lines, new_lines=True), end="")
    if caption and LEGEND in caption.splitlines():
        caption = caption.replace(LEGEND, legend(rows))
    if caption:
        # Given to the table, rich wrapped the caption to the table's computed width, which a
        # min_width can push past the terminal's: the terminal then cut "LB = likely" to
        # "LB = likel". The width actually drawn is what the caption may use.
        drawn = max((Segment.get_line_length(line) for line in lines), default=console.width)
        console.print()
        console.print(Text(caption, style="table.caption"), width=drawn)


def _cell(row: Mapping[str, Any], column: Column) -> str:
    value = row.get(column.key)
    return "" if _text(value) is None else str(value)


def _fit_widths(columns: Sequence[Column], cells: Sequence[Sequence[str]],
                width: int) -> list[int] | None:
    """Column widths that fit `width` when rich's own layout would not. Columns give way in
    this order: `shrink_first` ones (previews, right to left), wrapping ones (widest first,
    never below their longest word), then the other `shrink` ones (right to left). None when
    the table fits as it is, or cannot fit that way (rich's layout then decides, as before)."""
    from rich.cells import cell_len

    overhead = 2 * (len(columns) - 1)  # between columns: one space of padding, one of border
    natural, floor = [], []
    for i, c in enumerate(columns):
        texts = [c.header, *(row[i] for row in cells)]
        lines = [line for text in texts for line in text.splitlines() or [""]]
        full = max(cell_len(line) for line in lines)
        full = max(full, c.min_width or 0)
        full = min(full, c.max_width) if c.max_width is not None else full
        if c.wrap:
            word = max((cell_len(w) for line in lines for w in line.split()), default=1)
            least = min(full, word)  # min_width is a preference, not a floor
        elif c.shrink is not None:
            least = min(full, max(c.shrink, cell_len(c.header)))
        else:
            least = full
        natural.append(full)
        floor.append(least)
    excess = sum(natural) + overhead - width
    if excess <= 0 or sum(floor) + overhead > width:
        return None
    widths = list(natural)

    def cut(which: Callable[[Column], bool]) -> None:
        nonlocal excess
        for i in reversed(range(len(columns))):
            if which(columns[i]) and excess > 0:
                give = min(excess, widths[i] - floor[i])
                widths[i] -= give
                excess -= give

    cut(lambda c: c.shrink is not None and c.shrink_first)
    while excess > 0:
        slack = [i for i, c in enumerate(columns) if c.wrap and widths[i] > floor[i]]
        if not slack:
            break
        widest = max(slack, key=lambda i: (widths[i], i))
        widths[widest] -= 1
        excess -= 1
    cut(lambda c: c.shrink is not None)
    return widths


CHANGE_COLUMNS = [
    Column("priority", "priority", min_width=6), Column("change", "change", max_width=12,
                                                         wrap=True),
    Column("variant", "variant", min_width=15, wrap=True), Column("gene", "gene", max_width=7),
    Column("classes", "before → after", min_width=16, max_width=26, wrap=True),
    Column("stars", "★", min_width=3),
]


def change_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Change records (diff, reanalyze) as table cells; a call that failed QC is marked."""
    return [{**r, "variant": variant_cell(r),
             "classes": transition(r.get("before"), r.get("after")),
             "stars": stars_change(r.get("stars_before"), r.get("stars_after")),
             "change": str(r.get("change", "")).replace("_", " ")} for r in records]


ANNOTATION_COLUMNS = [
    Column("sample", "sample", max_width=9),
    Column("variant", "variant", min_width=15, wrap=True),
    Column("zygosity", "zyg.", min_width=4), Column("gene", "gene", max_width=7),
    Column("class", "class", min_width=12, max_width=14, wrap=True),
    Column("stars", "★", min_width=1),
    Column("conditions", "condition", max_width=24, shrink=12, shrink_first=True),
]


def annotation_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Annotated calls as table cells; a call that failed QC is marked."""
    return [{**r, "variant": variant_cell(r),
             "class": words.classification_abbrev(_text(r.get("classification"))),
             "stars": "-" if _text(r.get("stars")) is None else str(int(float(str(r["stars"])))),
             "conditions": "; ".join(words.condition_list(_text(r.get("conditions")))) or ""}
            for r in records]


HISTORY_COLUMNS = [
    Column("sample", "sample", max_width=12), Column("variant", "variant", wrap=True),
    Column("gene", "gene", max_width=10), Column("release_date", "date"),
    Column("classes", "from → to", max_width=28, wrap=True), Column("stars", "★"),
]


def history_rows(records: Sequence[Mapping[str, Any]],
                 releases: Sequence[tuple[str, str | None]]) -> list[dict[str, Any]]:
    """One row per change of a variant's classification (or stars) along the releases (name,
    date), absence included: the first release that lists it, then each release where it
    differs from the one before."""
    by_key: dict[tuple[Any, ...], dict[str, Mapping[str, Any]]] = {}
    for r in records:
        if r.get("classification") is None:
            continue  # a release that does not list it: the gap below says "absent"
        key = (r.get("sample"), r.get("chrom"), r.get("pos"), r.get("ref"), r.get("alt"))
        by_key.setdefault(key, {})[str(r.get("snapshot"))] = r
    out: list[dict[str, Any]] = []
    for key, seen in by_key.items():
        first = next(iter(seen.values()))
        before: Mapping[str, Any] | None = None
        started = False
        for name, date in releases:
            now = seen.get(name)
            state = (now.get("classification"), now.get("stars")) if now else None
            last = (before.get("classification"), before.get("stars")) if before else None
            if (started and state != last) or (not started and now is not None):
                out.append({"sample": key[0], "chrom": key[1], "pos": key[2], "ref": key[3],
                            "alt": key[4], "gene": first.get("gene"), "release_date": date,
                            "variant": variant_cell(first),
                            "classes": transition(before.get("classification") if before
                                                  else None, now.get("classification") if now
                                                  else None) if started else
                            words.classification_abbrev(_text(now.get("classification")
                                                              if now else None)),
                            "stars": stars_change(before.get("stars") if before else None,
                                                  now.get("stars") if now else None)})
                started = True
            before = now
    return out


LEGEND = words.ABBREVIATION_LEGEND


def _file_name(path: object) -> str | None:
    """A full path wraps a terminal table; the file name is what a person looks for."""
    text = _text(path)
    return None if text is None else PurePath(text).name


COHORT_COLUMNS = [
    Column("patient", "patient"),  # identifiers: whole, never wrapped, the last to give way
    Column("sample", "sample", optional=True),
    Column("assembly", "build"),
    Column("reviewed", "reviewed against", wrap=True),
    Column("alleles", "alleles", justify="right"),
    Column("replaced", "replaced", optional=True),
    Column("group", "group", max_width=12, optional=True),
    Column("vcf", "VCF", shrink=8),
]


def cohort_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`cohort list` records as table cells: the sample only when some patient's id is not its
    sample's name, "yes" for a re-registered patient, the VCF's file name."""
    differ = any(r.get("sample") != r.get("patient") for r in records)
    return [{**r, "sample": r.get("sample") if differ else None,
             "replaced": "yes" if r.get("replaced") else None,
             "vcf": _file_name(r.get("source"))} for r in records]


STATUS_COLUMNS = [
    Column("patient", "patient"),
    Column("reviewed", "reviewed against", wrap=True),
    Column("state", "state", wrap=True),
    Column("high", "high", justify="right"),
    Column("medium", "medium", justify="right"),
    Column("low", "low", justify="right"),
    Column("vcf", "VCF", shrink=8),
]


def status_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`cohort status` records as table cells: the lineage and the snapshot last reviewed in
    one cell (as `cohort list` shows them), the state in words, the VCF's file name. The
    target (one per lineage) and the reasons of failing patients go under the table
    (`status_caption`): a reason is a sentence, which no column fits at 80 columns."""
    return [{**r, "reviewed": f"{r.get('lineage')}: {r.get('reviewed_snapshot')}",
             "state": words.state_words(_text(r.get("state"))),
             "vcf": _file_name(r.get("source"))} for r in records]


def status_caption(records: Sequence[Mapping[str, Any]], summary: str) -> str:
    """Under the `cohort status` table: why each failing patient fails, the snapshot each
    lineage would be reanalyzed against ("target: clinvar/GRCh38 → clinvar-GRCh38-2024-06-02"),
    then `summary`."""
    reasons = [f"{r.get('patient')} ({r.get('lineage')}) is "
               f"{words.state_words(_text(r.get('state')))}: {r.get('reason')}"
               for r in records if _text(r.get("reason")) is not None]
    targets: dict[str, list[str]] = {}
    for r in records:
        lineage, target = _text(r.get("lineage")), _text(r.get("target_snapshot"))
        if lineage is not None and target is not None and \
                target not in targets.setdefault(lineage, []):
            targets[lineage].append(target)
    shown = [f"{lineage} → {', '.join(names)}" for lineage, names in sorted(targets.items())
             if names]
    return "\n".join([*reasons, *([f"target: {'; '.join(shown)}"] if shown else []), summary])
