"""Allele normalization, matching `bcftools norm -m -any [-f ref.fa]`:
trim shared trailing then leading bases (keeping at least one base in each allele), and, with a
reference, left-align indels through repeats."""

from __future__ import annotations

import re
from typing import Protocol

# A usable allele: bases only (any case). Everything else ('-', 'T/A', a trailing blank, IUPAC
# codes) can never match, and every reader skips it as invalid_allele by this one rule.
ALLELE = "[ACGTNacgtn]+"
ALLELE_RE = re.compile(ALLELE)


def invalid_allele_sql(*columns: str) -> str:
    """SQL: true when any of `columns` is not a usable allele (the ALLELE rule)."""
    return " OR ".join(f"NOT regexp_full_match({c}, '{ALLELE}')" for c in columns)


class Reference(Protocol):
    def fetch(self, contig: str, start: int, end: int) -> str: ...


def trim(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Remove bases shared by REF and ALT: suffix first, then prefix (as bcftools does)."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt


def needs_trim(ref: str, alt: str) -> bool:
    return len(ref) > 1 and len(alt) > 1 and (ref[-1] == alt[-1] or ref[0] == alt[0])


def can_shift_left_sql(pos: str = "pos", ref: str = "ref", alt: str = "alt") -> str:
    """SQL: true when `left_align` would move this (trimmed) allele, decided without the
    reference: an indel whose REF and ALT end in the same base (`G>GG`, `AAA>A`) can drop that
    base for the one before it, unless it starts at the contig's first base. A trimmed allele
    for which this is false is already what `left_align` returns."""
    return (f"(length({ref}) <> length({alt}) AND {ref}[-1] = {alt}[-1] AND {pos} > 1)")


_WINDOW = 128


def left_align(fasta: Reference, contig: str, pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Left-align an indel against the reference (the algorithm of Tan et al. 2015, as in
    vt and bcftools norm): drop a shared last base; when an allele becomes empty, prepend the
    reference base before it; repeat; then trim shared leading bases. Handles left- and
    right-anchored input alike. `pos` is 1-based; REF must already agree with the FASTA."""
    if len(ref) == len(alt):
        return trim(pos, ref, alt)
    pos, ref, alt = trim(pos, ref, alt)
    start, window = pos, ""  # window holds reference bases [start - len(window), start)

    def base_before(p: int) -> str:
        nonlocal start, window
        if p - 1 < start - len(window) or not window:
            lo = max(0, p - 1 - _WINDOW)
            window, start = fasta.fetch(contig, lo, p - 1).upper(), p
        return window[len(window) - (start - p) - 1] if window else ""

    while ref[-1] == alt[-1]:
        if len(ref) == 1 or len(alt) == 1:
            # Dropping the shared base would empty an allele: pull in the base before first.
            # At the contig's first base there is none, and the allele stays anchored there.
            base = base_before(pos) if pos > 1 else ""
            if not base:
                break
            ref, alt, pos = base + ref, base + alt, pos - 1
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt
