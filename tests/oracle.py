"""Independent reference helpers for tests: deliberately written apart from the product code,
so a test that uses them checks the product against a second implementation."""

from __future__ import annotations

import gzip
import os
import re
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
    """Shared trailing bases, then shared leading bases, each allele keeping one base: counted
    with os.path.commonprefix rather than stripped a base at a time as the product does."""
    keep = max(0, min(len(ref), len(alt)) - 1)
    tail = min(len(os.path.commonprefix([ref[::-1], alt[::-1]])), keep)
    ref, alt = ref[:len(ref) - tail], alt[:len(alt) - tail]
    head = min(len(os.path.commonprefix([ref, alt])), min(len(ref), len(alt)) - 1)
    return pos + head, ref[head:], alt[head:]


def carried_calls(path: Path) -> tuple[int, list[tuple]]:
    """(number of data lines, [(sample, chrom as written, pos, ref, alt, bare chrom)]) read with
    plain Python: a sample carries ALT i when i is in its fully called GT."""
    out, n = [], 0
    samples: list[str] = []
    with open_any(path) as fh:
        for line in fh:
            if line.startswith("##"):
                continue
            fields = line.rstrip("\r\n").split("\t")
            if line.startswith("#"):
                samples = fields[9:]
                continue
            n += 1
            chrom, pos, ref, alts = fields[0], int(fields[1]), fields[3].upper(), fields[4]
            gt_index = fields[8].split(":").index("GT") if len(fields) > 8 else None
            for i, alt in enumerate(alts.split(","), start=1):
                if not re.fullmatch(r"[ACGTN]+", alt.upper()):
                    continue
                p, r, a = trim(pos, ref, alt.upper())
                for sample, call in zip(samples, fields[9:], strict=True):
                    gt = re.split(r"[/|]", call.split(":")[gt_index]) if gt_index is not None \
                        else ["."]
                    if "." not in gt and str(i) in gt:
                        out.append((sample, chrom, p, r, a, bare(chrom)))
    return n, out
