"""The README's short tour runs as written (issue 13: `cohort add sample_vcfs/*.vcf*` exited 3,
the glob also picking up the ClinVar releases and the .tbi index).

Every `varreinterp ...` line of the tour's code block runs in order with the CLI in-process,
against a private store (`--store`, where the tour exports VARREINTERP_HOME), from a folder
where `sample_vcfs/` is the repository's: what the tour writes (`-o CHILD01.html`) lands in a
temporary folder, not in the checkout. A shell glob is expanded as the shell would. Exit 1 means
"changes found" with `--exit-code` (README, exit codes); 2 and above is a failure."""

from __future__ import annotations

import glob
import re
import shlex
from pathlib import Path

import pytest
from conftest import ROOT, invoke

TOUR_HEADING = "## A short tour"


def tour_commands(readme: str) -> list[list[str]]:
    """The argument lists of the `varreinterp` lines in the first sh block after the tour's
    heading (comments dropped)."""
    section = readme.split(TOUR_HEADING, 1)[1]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None, "the tour has no ```sh block"
    return [shlex.split(line, comments=True)[1:] for line in block.group(1).splitlines()
            if line.startswith("varreinterp ")]


def expanded(args: list[str]) -> list[str]:
    """Shell globbing: a pattern that matches nothing stays as written (bash's default)."""
    out: list[str] = []
    for arg in args:
        matches = sorted(glob.glob(arg)) if any(c in arg for c in "*?[") else []
        out.extend(matches or [arg])
    return out


def test_tour_is_found() -> None:
    commands = tour_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    assert [c[:2] for c in commands if c[0] == "cohort"] == [["cohort", "add"],
                                                             ["cohort", "status"]]
    assert len(commands) >= 10


def test_globs_expand_as_in_the_shell(monkeypatch: pytest.MonkeyPatch) -> None:
    """So the test catches the bug: the old line's glob picks up files that are not
    patients (a ClinVar release, an index), and `cohort add` refuses them with exit 3."""
    monkeypatch.chdir(ROOT)
    names = {Path(p).name for p in expanded(["sample_vcfs/*.vcf*"])}
    assert "patient_single.vcf.gz.tbi" in names and "clinvar_GRCh38_2024-01-07.vcf" in names


def test_every_tour_command_succeeds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commands = tour_commands((ROOT / "README.md").read_text(encoding="utf-8"))
    work = tmp_path / "work"
    work.mkdir()
    (work / "sample_vcfs").symlink_to(ROOT / "sample_vcfs")
    monkeypatch.chdir(work)
    store = tmp_path / "store"
    for args in commands:
        r = invoke(store, *expanded(args))
        assert r.code < 2, f"varreinterp {shlex.join(args)} exited {r.code}: {r.err}"
    assert (work / "CHILD01.html").is_file()
    assert {p.name for p in work.iterdir()} == {"sample_vcfs", "CHILD01.html"}
