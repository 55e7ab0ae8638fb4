"""Allele normalization, matching `bcftools norm -m -any [-f ref.fa]`:
trim shared trailing then leading bases (keeping at least one base in each allele), and, with a
reference, left-align indels through repeats."""

from __future__ import annotations

from typing import Protocol


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


_WINDOW = 100


def left_align(fasta: Reference, contig: str, pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Shift an indel left while its last bases are equal, pulling in reference bases in front.

    Only simple indels (one allele a prefix of the other after trimming) move; SNVs and
    complex substitutions are returned trimmed but unshifted. `pos` is 1-based."""
    pos, ref, alt = trim(pos, ref, alt)
    if len(ref) == len(alt) or (ref[0] != alt[0]):
        return pos, ref, alt
    while True:
        if ref[-1] != alt[-1] or pos <= 1:
            break
        start = max(0, pos - 1 - _WINDOW)
        upstream = fasta.fetch(contig, start, pos - 1).upper()
        if not upstream:
            break
        moved = False
        for base in reversed(upstream):
            if ref[-1] != alt[-1] or pos <= 1:
                break
            ref, alt = base + ref[:-1], base + alt[:-1]
            pos -= 1
            moved = True
        if not moved:
            break
    return trim(pos, ref, alt)
