"""Options a command cannot honour are said to be ignored, never silently dropped: a lab that
re-runs `cohort add --baseline OLD` to correct a registration must learn that the patient still
stands where it stood (else the changes since OLD are never delivered), and a diff asked to go
back in time says that its upgrades read backwards."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

from builders import store_with_sample_releases
from conftest import SAMPLES, invoke

OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
PATIENT = SAMPLES / "patient_single.vcf.gz"


def _reviewed(store: Path) -> dict[str, str]:
    res = invoke(store, "cohort", "list", "-f", "tsv")
    assert res.code == 0, res.err
    rows = csv.DictReader(io.StringIO("\n".join(
        ln for ln in res.out.splitlines() if not ln.startswith("#"))), delimiter="\t")
    return {r["patient"]: r["reviewed"] for r in rows}


def test_baseline_of_an_already_registered_patient_is_said_not_applied(tmp_path: Path) -> None:
    store = store_with_sample_releases(tmp_path / "store")
    assert invoke(store, "cohort", "add", PATIENT).code == 0  # default baseline: the latest
    assert _reviewed(store) == {"PATIENT01": f"clinvar/GRCh38: {NEW}"}

    again = invoke(store, "cohort", "add", PATIENT, "--baseline", OLD)
    assert again.code == 0, again.err  # a daily re-run of one command must keep working
    assert f"--baseline {OLD} was not applied to 1 patient(s)" in again.err
    assert "PATIENT01, reported up to " + NEW in again.err
    assert _reviewed(store) == {"PATIENT01": f"clinvar/GRCh38: {NEW}"}

    same = invoke(store, "cohort", "add", PATIENT, "--baseline", NEW)
    assert same.code == 0 and "not applied" not in same.err  # nothing it would change

    config = tmp_path / "config.toml"
    config.write_text('[panels.cardio]\ngenes = ["MYH7"]\n\n[groups.cardio]\npanel = "cardio"\n')
    regroup = invoke(store, "--config", config, "cohort", "add", PATIENT, "--group", "cardio")
    assert regroup.code == 0, regroup.err
    assert "--group cardio was not applied to 1 patient(s)" in regroup.err
    assert "in no group" in regroup.err

    # The way the warning names: remove, then register again from the corrected baseline.
    assert invoke(store, "cohort", "remove", "PATIENT01").code == 0
    assert invoke(store, "cohort", "add", PATIENT, "--baseline", OLD).code == 0
    assert _reviewed(store) == {"PATIENT01": f"clinvar/GRCh38: {OLD}"}


def test_a_diff_back_in_time_says_so(tmp_path: Path) -> None:
    store = store_with_sample_releases(tmp_path / "store")
    back = invoke(store, "diff", PATIENT, "--from", NEW, "--to", OLD, "-f", "tsv")
    assert back.code == 0, back.err
    assert f"comparing back in time: --from {NEW} (2024-06-02) is newer than --to {OLD}" \
        in back.err
    ahead = invoke(store, "diff", PATIENT, "--from", OLD, "--to", NEW, "-f", "tsv")
    assert ahead.code == 0 and "back in time" not in ahead.err
    snap = invoke(store, "snapshot", "diff", NEW, OLD, "-f", "tsv")
    assert snap.code == 0 and "comparing back in time" in snap.err


def test_all_with_min_priority_is_refused(tmp_path: Path) -> None:
    """--all lists every change; a threshold given beside it would be silently dropped."""
    store = store_with_sample_releases(tmp_path / "store")
    for args in (["diff", PATIENT, "--from", OLD, "--to", NEW],
                 ["snapshot", "diff", OLD, NEW]):
        res = invoke(store, *args, "--all", "--min-priority", "high", "-f", "tsv")
        assert res.code == 2, res.err
        assert "--all lists every change" in res.err
        assert invoke(store, *args, "--all", "-f", "tsv").code == 0


def test_baseline_given_with_replace_is_said_not_applied(tmp_path: Path) -> None:
    """A replacement keeps what the patient was reported against; a --baseline beside it
    that would move it was dropped without a word (the next run then repeats changes)."""
    store = store_with_sample_releases(tmp_path / "store")
    assert invoke(store, "cohort", "add", PATIENT, "--baseline", OLD).code == 0
    recalled = tmp_path / "recalled.vcf"
    recalled.write_text(gzip.decompress(PATIENT.read_bytes()).decode().replace(
        "\tPASS\t", "\t.\t", 1))
    res = invoke(store, "cohort", "add", recalled, "--replace", "--baseline", NEW)
    assert res.code == 0, res.err
    assert f"--baseline {NEW} was not applied to patient PATIENT01 (replaced)" in res.err
    assert _reviewed(store) == {"PATIENT01": f"clinvar/GRCh38: {OLD}"}
    same = invoke(store, "cohort", "add", recalled, "--replace", "--baseline", OLD)
    assert same.code == 0 and "not applied" not in same.err
