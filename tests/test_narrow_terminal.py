"""`cohort list` and `cohort status` on an 80-column terminal (issue 12): they went through
the generic table, which broke identifiers inside the word ("PATIE/NT01", "up_to_/date").
They now use the shared table code: identifiers whole, long cells wrapped at spaces, the VCF
name cut with an ellipsis only when there is no room, and the state in words (TABLE only;
TSV and JSON keep the machine values). The width is pinned through $COLUMNS, as in
test_tables_golden.py."""

from __future__ import annotations

import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES, invoke, tsv_lines

from varreinterp.output import tables, words
from varreinterp.reanalyze import TrackState

OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
PATIENTS = ("CHILD01", "FATHER01", "MOTHER01", "PATIENT01")
LONG_ID = "NA12878-2024-R2"  # a patient id that is not its sample's name (PATIENT01)
STATE_WORDS = {TrackState.UP_TO_DATE: "up to date", TrackState.WAITING: "waiting",
               TrackState.FAILING: "failing", TrackState.OUT_OF_SCOPE: "out of scope"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four patients reported against the older release, the newer one stored: all waiting."""
    store = tmp_path_factory.mktemp("narrow") / "store"
    for args in (("snapshot", "add", SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"),
                 ("cohort", "add", SAMPLES / "patient_single.vcf.gz", SAMPLES / "trio.vcf",
                  "--baseline", OLD),
                 ("snapshot", "add", SAMPLES / "clinvar_GRCh38_2024-06-02.vcf")):
        r = invoke(store, *args)
        assert r.code == 0, r.err
    return store


def table(store: Path, monkeypatch: pytest.MonkeyPatch, *command: str) -> str:
    monkeypatch.setenv("COLUMNS", "80")
    r = invoke(store, *command, "--format", "table")
    assert r.code == 0, r.err
    for line in r.out.splitlines():
        assert len(line) <= 80, line
    return r.out


def whole(text: str, word: str) -> bool:
    """`word` stands whole in `text`, between white space or line ends."""
    return re.search(rf"(?<!\S){re.escape(word)}(?!\S)", text) is not None


def assert_not_split(text: str, identifier: str) -> None:
    assert whole(text, identifier), f"{identifier} not whole in:\n{text}"
    for cut in range(2, len(identifier) - 1):  # no line ends in a piece of it
        assert not re.search(rf"(?<!\S){re.escape(identifier[:cut])}$", text, re.M), \
            f"{identifier} split after {identifier[:cut]!r}:\n{text}"


def test_cohort_list_keeps_identifiers_whole_at_80_columns(
        cohort: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = table(cohort, monkeypatch, "cohort", "list")
    for identifier in (*PATIENTS, OLD, "clinvar/GRCh38:", "GRCh38", "trio.vcf",
                       "patient_single.vcf.gz"):
        assert_not_split(out, identifier)
    header = next(ln for ln in out.splitlines() if ln.startswith("patient"))
    assert "sample" not in header  # every patient id is its sample's name
    assert "replaced" not in header and "group" not in header  # nobody is
    assert "4 patient(s)" in out


def test_cohort_list_shows_samples_when_an_id_is_not_the_sample_name(
        cohort: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = tmp_path / "store"
    shutil.copytree(cohort, store)
    r = invoke(store, "cohort", "add", SAMPLES / "patient_single.vcf.gz", "--patient-id",
               LONG_ID, "--baseline", OLD)
    assert r.code == 0, r.err
    out = table(store, monkeypatch, "cohort", "list")
    assert "sample" in next(ln for ln in out.splitlines() if ln.startswith("patient"))
    row = next(ln for ln in out.splitlines() if ln.startswith(LONG_ID))
    assert whole(row, "PATIENT01")
    for identifier in (*PATIENTS, LONG_ID, OLD):
        assert_not_split(out, identifier)


def test_cohort_status_keeps_identifiers_whole_and_says_the_state_in_words(
        cohort: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = table(cohort, monkeypatch, "cohort", "status")
    for identifier in (*PATIENTS, OLD, "trio.vcf"):
        assert_not_split(out, identifier)
    for state in TrackState:
        assert state.value not in out or "_" not in state.value
    for patient in PATIENTS:
        row = next(ln for ln in out.splitlines() if ln.startswith(patient))
        assert whole(row, "waiting")
    # The target is one per lineage: said once, whole, under the table.
    assert f"target: clinvar/GRCh38 → {NEW}" in " ".join(out.split())
    child = next(ln for ln in out.splitlines() if ln.startswith("CHILD01"))
    assert re.search(r"\bwaiting\s+1\s+3\s+1\b", child)  # high, medium, low (README table)


def test_cohort_status_machine_formats_keep_machine_values(
        cohort: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    shutil.copytree(cohort, store)
    assert invoke(store, "reanalyze").code == 0
    out = table(store, monkeypatch, "cohort", "status")
    assert "up to date" in out and "up_to_date" not in out
    for identifier in PATIENTS:
        assert_not_split(out, identifier)
    tsv = tsv_lines(invoke(store, "cohort", "status", "--format", "tsv").out)
    header = tsv[0].split("\t")
    assert {dict(zip(header, ln.split("\t"), strict=True))["state"] for ln in tsv[1:]} == \
        {"up_to_date"}
    rows = [json.loads(ln) for ln in
            invoke(store, "cohort", "status", "--format", "json").out.splitlines()]
    assert {r["state"] for r in rows} == {"up_to_date"}
    assert {r["source"] for r in rows} == {str(SAMPLES / "trio.vcf"),
                                           str(SAMPLES / "patient_single.vcf.gz")}


def test_status_table_with_a_failing_patient_and_long_paths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A failing patient's reason (a sentence) is said under the table; a long VCF name gives
    way (ellipsis) before any identifier or word is cut."""
    monkeypatch.setenv("COLUMNS", "80")
    records: list[dict[str, Any]] = [
        {"patient": "PATIENT01", "lineage": "clinvar/GRCh38", "reviewed_snapshot": OLD,
         "target_snapshot": NEW, "state": "failing", "high": None, "medium": None,
         "low": None, "reason": "snapshot clinvar-GRCh38-2024-01-07 cannot be read",
         "source": "/data/cohort/2024/run-17/PATIENT01.deepvariant.vcf.gz"},
        {"patient": "CHILD01", "lineage": "clinvar/GRCh38", "reviewed_snapshot": NEW,
         "target_snapshot": NEW, "state": "up_to_date", "high": 0, "medium": 0, "low": 0,
         "reason": None, "source": "/data/trio.vcf"}]
    fh = io.StringIO()
    tables.print_rows(fh, tables.STATUS_COLUMNS, tables.status_rows(records),
                      caption=tables.status_caption(records, "1 failing, 1 up to date"))
    out = fh.getvalue()
    for line in out.splitlines():
        assert len(line) <= 80, line
    for identifier in ("PATIENT01", "CHILD01", OLD, NEW, "failing", "cannot"):
        assert_not_split(out, identifier)
    assert "PATIENT01.d" in out and "…" in out  # the file name, shortened
    flat = " ".join(out.split())
    assert "up to date" in flat
    assert f"PATIENT01 (clinvar/GRCh38) is failing: snapshot {OLD} cannot be read" in flat
    assert f"target: clinvar/GRCh38 → {NEW}" in flat


@pytest.mark.parametrize("state", list(TrackState))
def test_every_state_has_plain_words(state: TrackState) -> None:
    assert words.state_words(state.value) == STATE_WORDS[state]
