"""Issue 13, "Done when": a cron-style night, end to end, in real processes.

Each command runs as cron runs it: `env -i` with only PATH and HOME (a fresh folder: no config
file, no VARREINTERP_* variable, no proxy), no terminal (a new session), stdin from /dev/null,
stdout and stderr captured. The store holds the older sample release and the four sample
patients registered with baseline 2024-01-07; the loopback mirror publishes the newer release
as latest. Night 1 fetches it and reanalyzes: one report folder, one notification naming exactly
the patients with high-priority changes, exit 1 (--exit-code: changes delivered), nothing on
stdout or stderr (--quiet). Night 2 runs the same two lines: nothing to fetch, nothing to
deliver, nothing sent, exit 0, one more line in runs.jsonl.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import invoke
from ncbi_mirror import NcbiMirror
from test_lab_routine import (
    HIGH_PATIENTS,
    NEW,
    OLD,
    OLD_VCF,
    PATIENT,
    TRIO,
    HookServer,
    bgzip_releases,
    ncbi_path,
    ok,
    report_folders,
    serve,
    stored,
)

VARREINTERP = Path(sys.executable).parent / "varreinterp"
CRON_PATH = "/usr/bin:/bin"  # cron's default
FOLDER_NAME = re.compile(r"^\d{4}-\d{2}-\d{2}-[0-9a-f]+$")  # {date}-{run_id}


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@dataclass
class Night:
    fetch: Ran
    reanalyze: Ran
    posts: list[bytes]  # what the hook received during this night
    requested: list[tuple[str, str]]  # (method, path) the mirror received during this night
    folders: list[Path]  # report folders after this night
    runs_lines: int  # lines of STORE/runs.jsonl after this night


@dataclass
class Cron:
    store: Path
    nights: list[Night] = field(default_factory=list)


def cron_run(home: Path, *args: str) -> Ran:
    env_binary = shutil.which("env")
    assert env_binary is not None
    done = subprocess.run(
        [env_binary, "-i", f"PATH={CRON_PATH}", f"HOME={home}", str(VARREINTERP), *args],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, start_new_session=True,
        timeout=120, check=False)
    return Ran(done.returncode, done.stdout, done.stderr)


def runs_lines(store: Path) -> int:
    log = store / "runs.jsonl"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture(scope="module")
def cron(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cron]:
    if not VARREINTERP.exists():
        pytest.skip(f"no console script at {VARREINTERP} (install the package)")
    base = tmp_path_factory.mktemp("cron")
    home = base / "home"
    home.mkdir()
    store = base / "S"
    ok(invoke(store, "snapshot", "add", OLD_VCF))
    ok(invoke(store, "cohort", "add", PATIENT, TRIO, "--baseline", "2024-01-07"))
    hook = HookServer().start()
    try:
        with NcbiMirror(base / "mirror") as mirror:
            serve(mirror, bgzip_releases(base / "releases"))
            result = Cron(store)
            for _ in range(2):
                posted, asked = len(hook.posts), len(mirror.requests)
                fetch = cron_run(home, "--store", str(store), "--quiet", "snapshot", "fetch",
                                 "--mirror", mirror.base_url)
                reanalyze = cron_run(home, "--store", str(store), "--quiet", "reanalyze",
                                     "--exit-code", "--notify", hook.url,
                                     "-o", f"{store}/reports/{{date}}-{{run_id}}")
                result.nights.append(Night(
                    fetch, reanalyze, [p.body for p in hook.posts[posted:]],
                    [(q.method, q.path) for q in mirror.requests[asked:]],
                    report_folders(store), runs_lines(store)))
            yield result
        assert not mirror.errors, mirror.errors[0]
    finally:
        hook.stop()


def test_night_1_fetch_imports_the_newer_release_silently(cron: Cron) -> None:
    night = cron.nights[0]
    assert (night.fetch.code, night.fetch.out, night.fetch.err) == (0, "", "")
    assert stored(cron.store) == [OLD, NEW]
    assert ("GET", "/pub/clinvar/" + ncbi_path("2024-06-02")) in night.requested


def test_night_1_reanalyze_delivers_one_report_folder(cron: Cron) -> None:
    night = cron.nights[0]
    assert len(night.folders) == 1, night.reanalyze.err
    folder = night.folders[0]
    run = json.loads((folder / "run.json").read_text())
    assert FOLDER_NAME.match(folder.name) and folder.name.endswith(run["run_id"])
    assert (folder / "changes.tsv").is_file()
    assert sorted(p.stem for p in (folder / "patients").glob("*.html")) == HIGH_PATIENTS


def test_night_1_posts_one_notification_naming_exactly_the_high_priority_patients(
        cron: Cron) -> None:
    night = cron.nights[0]
    assert len(night.posts) == 1, night.reanalyze.err
    body = json.loads(night.posts[0])
    assert body["patients"]["high_priority"] == HIGH_PATIENTS
    assert len(night.folders) == 1
    run = json.loads((night.folders[0] / "run.json").read_text())
    assert (body["run_id"], body["report_path"]) == (run["run_id"], str(night.folders[0]))
    assert [n["ok"] for n in run["notifications"]] == [True]


def test_night_1_reanalyze_is_quiet_and_exits_1_for_changes_delivered(cron: Cron) -> None:
    night = cron.nights[0]
    assert (night.reanalyze.code, night.reanalyze.out, night.reanalyze.err) == (1, "", "")


def test_night_2_fetch_is_a_noop(cron: Cron) -> None:
    night = cron.nights[1]
    assert (night.fetch.code, night.fetch.out, night.fetch.err) == (0, "", "")
    downloads = [path for method, path in night.requested
                 if method == "GET" and not path.endswith("/")]
    assert downloads == []  # at most the listing, to learn what "latest" is
    assert stored(cron.store) == [OLD, NEW]


def test_night_2_reanalyze_delivers_nothing_sends_nothing_and_exits_0(cron: Cron) -> None:
    first, second = cron.nights
    assert (second.reanalyze.code, second.reanalyze.out, second.reanalyze.err) == (0, "", "")
    assert second.folders == first.folders  # no new folder
    assert second.posts == []
    assert second.runs_lines == first.runs_lines + 1  # the run is still logged
    last = json.loads((cron.store / "runs.jsonl").read_text().splitlines()[-1])
    assert (last["report"], last["exit_code"]) == (None, 0)
