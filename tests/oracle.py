"""Independent reference helpers for tests: deliberately written apart from the product code,
so a test that uses them checks the product against a second implementation."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import IO


def open_any(path: Path) -> IO[str]:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rt") if gz else open(path)


def bare(chrom: str) -> str:
    c = chrom[3:] if chrom.lower().startswith("chr") else chrom
    return "MT" if c.upper() in ("M", "MT") else c


def trim(pos: int, ref: str, alt: str) -> tuple[int, str, str]:
    """Shared trailing bases, then shared leading bases."""
    while len(ref) > 1 and len(alt) > 1 and ref[-1] == alt[-1]:
        ref, alt = ref[:-1], alt[:-1]
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        ref, alt, pos = ref[1:], alt[1:], pos + 1
    return pos, ref, alt
