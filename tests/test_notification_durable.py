"""A notification is never lost to a run that dies while sending it.

`reanalyze` records its patients as reviewed and then notifies; a run killed in between (kill
-9 while a webhook hangs: three attempts with backoff take half a minute) left nothing that
would ever send it, and the next run found nothing new. The run now notes the notification in
the store (`cohort/pending_notification.json`) before recording; the next run sends a noted
notification of a recorded run (and records the answer), and drops the note of a run that died
before recording (that run is redone and notifies in full). Here the run dies with os._exit in
a subprocess (no `finally`, no handler: as kill -9) at either step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT, SAMPLES, CliResult, invoke
from loopback import serving

OLD_VCF = SAMPLES / "clinvar_GRCh38_2024-01-07.vcf"
NEW_VCF = SAMPLES / "clinvar_GRCh38_2024-06-02.vcf"
OLD = "clinvar-GRCh38-2024-01-07"
NOTE = Path("cohort") / "pending_notification.json"

DRIVER = textwrap.dedent('''
    import os
    import sys

    import varreinterp.notify as notify
    import varreinterp.reanalyze as core


    def crash(*args, **kwargs):
        os._exit(9)


    STEP = os.environ["NOTIFY_TEST_STEP"]
    if STEP == "while_notifying":
        notify.send_notifications = crash
    elif STEP == "before_logging":
        core.append_run = crash
    else:
        core._record_reviewed = crash

    if __name__ == "__main__":
        from varreinterp.entry import main

        sys.exit(main())
''')


def ok(res: CliResult, *codes: int) -> CliResult:
    assert res.code in (codes or (0,)), (res.code, res.err)
    return res


@pytest.fixture
def store(tmp_path: Path) -> Path:
    store = tmp_path / "store"
    ok(invoke(store, "snapshot", "add", OLD_VCF))
    ok(invoke(store, "snapshot", "add", NEW_VCF))
    ok(invoke(store, "cohort", "add", SAMPLES / "trio.vcf", "--baseline", OLD))
    return store


def crashed_run(store: Path, step: str, url: str, tmp_path: Path) -> None:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "NOTIFY_TEST_STEP": step,
           "PYTHONPATH": str(ROOT) + (os.pathsep + path if path else "")}
    done = subprocess.run([sys.executable, str(driver), "--store", str(store), "reanalyze",
                           "--notify", url], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=180, check=False)
    assert done.returncode == 9, done.stderr


def runs(store: Path) -> list[dict]:
    return [json.loads(line) for line in (store / "runs.jsonl").read_text().splitlines()]


def test_a_run_killed_while_notifying_is_notified_by_the_next(store: Path,
                                                              tmp_path: Path) -> None:
    with serving() as hook:
        crashed_run(store, "while_notifying", hook.url, tmp_path)
        assert hook.bodies == []
        assert (store / NOTE).is_file()
        (killed,) = [r for r in runs(store) if "exit_code" in r]
        res = ok(invoke(store, "reanalyze", "--notify", hook.url))
        assert "was never answered" in res.err and killed["run_id"] in res.err
        (body,) = [json.loads(b) for b in hook.bodies]
        assert body["run_id"] == killed["run_id"]
        assert body["changes"]["total"] > 0 and body["report_path"] == killed["report"]
        assert not (store / NOTE).exists()
        # recorded like any answer: in that run's run.json and in the run log
        report = json.loads((Path(killed["report"]) / "run.json").read_text())
        assert [n["ok"] for n in report["notifications"]] == [True]
        assert [r["run_id"] for r in runs(store) if "notifications" in r] == [killed["run_id"]]
        # sent once: the next run has nothing to say
        ok(invoke(store, "reanalyze", "--notify", hook.url))
        assert len(hook.bodies) == 1


def test_a_run_killed_after_recording_before_its_log_line_is_notified(store: Path,
                                                                     tmp_path: Path) -> None:
    """The patients are recorded (the registry holds the run's report) but runs.jsonl never
    got the run: that is still a recorded run, whose notification the next run sends."""
    with serving() as hook:
        crashed_run(store, "before_logging", hook.url, tmp_path)
        assert (store / NOTE).is_file()
        res = ok(invoke(store, "reanalyze", "--notify", hook.url))
        assert "was never answered" in res.err
        (body,) = [json.loads(b) for b in hook.bodies]
        assert body["changes"]["total"] > 0 and Path(body["report_path"]).is_dir()
        assert "0 patient(s) reanalyzed" in res.err  # nothing redone: it was recorded


def test_a_run_killed_before_recording_is_redone_and_notified_once(store: Path,
                                                                   tmp_path: Path) -> None:
    with serving() as hook:
        crashed_run(store, "before_record", hook.url, tmp_path)
        assert (store / NOTE).is_file()
        assert not (store / "runs.jsonl").exists() or not any(
            "exit_code" in r for r in runs(store))
        ok(invoke(store, "reanalyze", "--notify", hook.url))
        (body,) = [json.loads(b) for b in hook.bodies]
        (done,) = [r for r in runs(store) if "exit_code" in r]
        assert body["run_id"] == done["run_id"]  # the redone run's, not the dead one's
        assert body["changes"]["total"] > 0
        assert not (store / NOTE).exists()


def test_a_failed_resend_is_exit_8_and_recorded(store: Path, tmp_path: Path) -> None:
    with serving() as hook:
        url = hook.url
        crashed_run(store, "while_notifying", url, tmp_path)
    # the hook is gone: the resend fails (quickly: connection refused, three attempts)
    res = invoke(store, "reanalyze")
    assert res.code == 8, res.err
    assert "notification to" in res.err and "failed" in res.err
    assert not (store / NOTE).exists()
    (answer,) = [r for r in runs(store) if "notifications" in r]
    assert [n["ok"] for n in answer["notifications"]] == [False]


def test_a_damaged_note_stops_the_run_naming_it(store: Path, tmp_path: Path) -> None:
    with serving() as hook:
        crashed_run(store, "while_notifying", hook.url, tmp_path)
        (store / NOTE).write_text('{"summary": {"run_id": 1}}')
        res = invoke(store, "reanalyze", "--notify", hook.url)
        assert res.code == 4, res.err
        assert str(store / NOTE) in res.err and hook.bodies == []
