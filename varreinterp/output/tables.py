"""Terminal tables for people: they must read at 80 columns.

Classifications are abbreviated in tables only (P, LP, VUS, LB, B, Conflicting; a one-line
legend under the table), long alleles are shortened, and cells wrap at spaces or end in an
ellipsis: never inside a word. TSV and JSON keep the exact normalized terms."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(file=fh, soft_wrap=False, width=table_width(fh),
                      force_terminal=None if fh is sys.stdout else False)
    table = Table(title=title, caption=caption, caption_justify="left", box=box.SIMPLE_HEAD,
                  pad_edge=False, collapse_padding=True)
    for c in columns:
        table.add_column(c.header, min_width=c.min_width, max_width=c.max_width,
                         no_wrap=not c.wrap, overflow="fold" if c.wrap else "ellipsis",
                         justify=c.justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*("" if _text(row.get(c.key)) is None else str(row.get(c.key))
                        for c in columns), style=style_row(row) if style_row else None)
    console.print(table)


CHANGE_COLUMNS = [
    Column("priority", "priority", min_width=6), Column("change", "change", max_width=12,
                                                         wrap=True),
    Column("variant", "variant", min_width=15), Column("gene", "gene", max_width=7),
    Column("classes", "before → after", min_width=16, max_width=26, wrap=True),
    Column("stars", "★", min_width=3),
]


def change_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "variant": variant(r), "classes": transition(r.get("before"), r.get("after")),
             "stars": stars_change(r.get("stars_before"), r.get("stars_after")),
             "change": str(r.get("change", "")).replace("_", " ")} for r in records]


ANNOTATION_COLUMNS = [
    Column("sample", "sample", max_width=9), Column("variant", "variant", min_width=15),
    Column("zygosity", "zyg.", min_width=4), Column("gene", "gene", max_width=7),
    Column("class", "class", min_width=12, max_width=14, wrap=True),
    Column("stars", "★", min_width=1), Column("conditions", "condition", max_width=24),
]


def annotation_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "variant": variant(r),
             "class": words.classification_abbrev(_text(r.get("classification"))),
             "stars": "-" if _text(r.get("stars")) is None else str(int(float(str(r["stars"])))),
             "conditions": "; ".join(words.condition_list(_text(r.get("conditions")))) or ""}
            for r in records]


HISTORY_COLUMNS = [
    Column("sample", "sample", max_width=12), Column("variant", "variant"),
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
                            "variant": variant(first),
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
