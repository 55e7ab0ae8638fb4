"""A gene symbol no compared release knows is refused on the counselor's commands too.

On annotate, diff and report a typo (`--genes BRAC1`) would otherwise empty the panel and
read as "nothing changed in BRCA1": exit 2, one line naming the symbol with the nearest known
one, and no output file. A real symbol, any case, still works.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import SAMPLES, invoke

OLD = "clinvar-GRCh38-2024-01-07"
NEW = "clinvar-GRCh38-2024-06-02"
PATIENT = SAMPLES / "patient_single.vcf.gz"
TRIO = SAMPLES / "trio.vcf"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("typos") / "store"
    for day in ("2024-01-07", "2024-06-02"):
        r = invoke(store, "snapshot", "add", SAMPLES / f"clinvar_GRCh38_{day}.vcf")
        assert r.code == 0, r.err
    return store


COMMANDS = {
    "annotate": ["annotate", PATIENT, "--snapshot", NEW, "-f", "tsv"],
    "diff": ["diff", PATIENT, "--from", OLD, "--to", NEW, "--all", "-f", "tsv"],
    "report": ["report", TRIO, "--sample", "CHILD01", "--from", OLD, "--to", NEW],
}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_typo_is_refused_with_the_nearest_symbol(store: Path, tmp_path: Path,
                                                   command: str) -> None:
    out = tmp_path / "out"
    r = invoke(store, *COMMANDS[command], "--genes", "BRAC1", "-o", out)
    assert r.code == 2, r.err
    errors = [line for line in r.err.splitlines() if "error" in line]
    assert len(errors) == 1, r.err
    assert "BRAC1" in errors[0] and "did you mean BRCA1?" in errors[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_known_symbol_in_any_case_still_works(store: Path, tmp_path: Path,
                                                command: str) -> None:
    out = tmp_path / "out"
    r = invoke(store, *COMMANDS[command], "--genes", "brca1", "-o", out)
    assert r.code == 0, r.err
    assert out.is_file() and "BRCA1" in out.read_text()
