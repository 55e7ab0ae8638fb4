"""`snapshot diff` and `diff`: real ClinVar and MacArthur release pairs (../shared/data, skipped
when absent), hand-made rename pairs, the bundled sample_vcfs against their README, and the exit
code / stdout contracts.

The expected changes are computed in the tests: the source files are parsed with plain Python
(gzip, split on tabs and ';'), terms are normalized with varreinterp.vocabulary, and the rules are
applied one variant at a time with naive_changes.naive_change, the plain-Python reference
implementation of the SQL rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from conftest import MAPPINGS, ROOT, SAMPLES, invoke, shared
from conftest import CliResult as Result
from naive_changes import naive_change
from oracle import bare, carried_calls, open_any

from varreinterp.assembly import Assembly
from varreinterp.snapshots import SourceFormat, add_snapshot
from varreinterp.store import Store
from varreinterp.vocabulary import classify, review_status

C37 = "clinvar/GRCh37"
OLD37 = f"{C37}/clinvar_20191202.chr1_949k-977k.vcf.gz"
NEW37 = f"{C37}/clinvar_20230710.chr1_69k-981k.vcf.gz"
MAC17 = "clinvar/custom_format/macarthur_clinvar_alleles.b38.release20170202.vcf"
MAC18 = "clinvar/custom_format/macarthur_clinvar_alleles.b38.release201803.vcf"
KGENOMES = "patients/GRCh37/1kg_exome.16_samples.vcf"
GIAB = ["patients/GRCh38/HG004.giab.chr1_0.6-1.3Mb.vcf.gz",
        "patients/GRCh38/HG006.giab.chr1_0.6-1.3Mb.vcf.gz"]
WINDOW = (949392, 976665)

PATIENT_COLUMNS = ["sample", "chrom", "pos", "ref", "alt", "zygosity", "gene", "change",
                   "priority", "before", "after", "tier_before", "tier_after", "stars_before",
                   "stars_after", "from_snapshot", "to_snapshot"]
VARIANT_COLUMNS = [c for c in PATIENT_COLUMNS if c not in ("sample", "zygosity")]


# ------------------------------------------------------------------------------ helpers


def diff_json(r: Result) -> tuple[dict, list[dict]]:
    """(first line, change rows) of a JSON Lines diff report."""
    assert r.code in (0, 1), r.err
    lines = [json.loads(ln) for ln in r.out.splitlines() if ln.strip()]
    assert lines and "provenance" in lines[0], r.out[:500]
    head, rows = lines[0], lines[1:]
    assert head["changes"] == len(rows)
    return head, rows


def change_map(rows: list[dict], with_sample: bool = False) -> dict[tuple, tuple[str, str]]:
    out = {}
    for r in rows:
        key = ((r["sample"],) if with_sample else ()) + (r["chrom"], r["pos"], r["ref"], r["alt"])
        assert key not in out, f"variant reported twice: {key}"
        out[key] = (r["change"], r["priority"])
    return out




State = tuple[str, str, int | None, str | None]  # classification, tier, stars, review status


def clinvar_states(path: Path, window: tuple[int, int] | None = None) -> dict[tuple, State]:
    """Per allele key, the normalized state of a ClinVar VCF read with plain Python; records
    without CLNSIG classify nothing and count as absent."""
    states: dict[tuple, State] = {}
    with open_any(path) as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            f = line.rstrip("\n").split("\t")
            pos = int(f[1])
            if window and not window[0] <= pos <= window[1]:
                continue
            if not re.fullmatch(r"[ACGTN]+", f[4]):
                continue
            info = dict(kv.split("=", 1) for kv in f[7].split(";") if "=" in kv)
            if "CLNSIG" not in info:
                continue
            cls = classify(info["CLNSIG"])
            rev = review_status(info["CLNREVSTAT"]) if "CLNREVSTAT" in info else None
            key = (bare(f[0]), pos, f[3].upper(), f[4].upper())
            assert key not in states, f"duplicate key {key} in {path}"
            states[key] = (cls.term, cls.tier.value, rev.stars if rev else None,
                           rev.term if rev else None)
    return states


def parquet_states(store: Path, name: str) -> dict[tuple, State]:
    """A stored snapshot's classified rows (the importer is tested elsewhere)."""
    import pyarrow.parquet as pq

    table = pq.read_table(Store(store).get(name).variants)
    return {(r["chrom"], r["pos"], r["ref"], r["alt"]):
            (r["classification"], r["tier"], r["stars"], r["review_status"])
            for r in table.to_pylist() if r["classification"] is not None}


def naive_diff(a: dict[tuple, State], b: dict[tuple, State]) -> dict[tuple, tuple[str, str]]:
    out = {}
    for key in a.keys() | b.keys():
        found = naive_change(a.get(key), b.get(key))
        if found:
            out[key] = (found[0].value, found[1].value)
    return out



def carried(path: Path) -> set[tuple]:
    """(sample, chrom as written, pos, ref, alt) of every fully called carried ALT."""
    return {call[:5] for call in carried_calls(path)[1]}


def naive_patient_diff(vcf: Path, a: dict, b: dict) -> dict[tuple, tuple[str, str]]:
    out = {}
    for sample, chrom, pos, ref, alt in carried(vcf):
        key = (bare(chrom), pos, ref, alt)
        found = naive_change(a.get(key), b.get(key))
        if found:
            out[(sample, chrom, pos, ref, alt)] = (found[0].value, found[1].value)
    return out


@pytest.fixture(scope="module")
def real(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("real") / "store"


def add_clinvar(store: Path, relative: str) -> str:
    return add_snapshot(Store(store), shared(relative)).snapshot.name


def add_macarthur(store: Path, relative: str) -> str:
    return add_snapshot(Store(store), shared(relative), fmt=SourceFormat.TABLE,
                        mapping_path=MAPPINGS / "macarthur-vcf.toml",
                        assembly=Assembly.GRCh38).snapshot.name


@pytest.fixture(scope="module")
def grch37_pair(real) -> tuple[Path, str, str]:
    return real, add_clinvar(real, OLD37), add_clinvar(real, NEW37)


@pytest.fixture(scope="module")
def macarthur_pair(real) -> tuple[Path, str, str]:
    return real, add_macarthur(real, MAC17), add_macarthur(real, MAC18)


@pytest.fixture(scope="module")
def bundled(tmp_path_factory) -> tuple[Path, str, str]:
    store = tmp_path_factory.mktemp("bundled") / "store"
    a = add_snapshot(Store(store), SAMPLES / "clinvar_GRCh38_2024-01-07.vcf").snapshot.name
    b = add_snapshot(Store(store), SAMPLES / "clinvar_GRCh38_2024-06-02.vcf").snapshot.name
    return store, a, b


# ------------------------------------------------------------------------------ real ClinVar
def test_grch37_pair_window_equals_naive_computation(grch37_pair):
    store, old, new = grch37_pair
    head, rows = diff_json(invoke(store, "snapshot", "diff", old, new, "--all", "--format",
                                  "json"))
    assert head["min_priority"] == "low"
    assert head["provenance"]["from_snapshot"]["snapshot"] == old
    assert head["provenance"]["to_snapshot"]["snapshot"] == new
    in_window = [r for r in rows if r["chrom"] == "1" and WINDOW[0] <= r["pos"] <= WINDOW[1]]
    for r in in_window:
        assert set(VARIANT_COLUMNS) <= set(r)
        assert (r["from_snapshot"], r["to_snapshot"]) == (old, new)

    a = clinvar_states(shared(OLD37), WINDOW)
    b = clinvar_states(shared(NEW37), WINDOW)
    assert len(a) == 71 and a.keys() <= b.keys()  # README: all 71 older variants are in the newer
    assert len(b) - len(a) == 280
    expected = naive_diff(a, b)
    assert change_map(in_window) == expected

    # Before/after columns carry the normalized states the rules saw.
    for r in in_window:
        key = (r["chrom"], r["pos"], r["ref"], r["alt"])
        before, after = a.get(key), b.get(key)
        assert (r["before"], r["tier_before"], r["stars_before"]) == (
            before[:3] if before else (None, None, None))
        assert (r["after"], r["tier_after"], r["stars_after"]) == (
            after[:3] if after else (None, None, None))

    # README: 9 variants changed CLNSIG, and the newer release adds 280 in the window.
    kinds = [k for k, _ in expected.values()]
    assert kinds.count("new") == 280
    assert sum(k in ("upgrade", "downgrade", "conflict", "resolved", "reclassified")
               for k in kinds) == 9
    assert "gone" not in kinds


def test_grch37_pair_anchors(grch37_pair):
    store, old, new = grch37_pair
    _, rows = diff_json(invoke(store, "snapshot", "diff", old, new, "--all", "--format", "json"))
    by_key = {(r["chrom"], r["pos"], r["ref"], r["alt"]): r for r in rows}

    p_to_other = by_key[("1", 957693, "A", "T")]
    assert (p_to_other["before"], p_to_other["tier_before"]) == ("Pathogenic", "pathogenic")
    assert (p_to_other["after"], p_to_other["tier_after"]) == ("not_provided", "other")
    assert (p_to_other["change"], p_to_other["priority"]) == ("downgrade", "high")

    vus_to_lb = by_key[("1", 955654, "C", "T")]
    assert (vus_to_lb["before"], vus_to_lb["after"]) == ("Uncertain_significance",
                                                         "Likely_benign")
    assert (vus_to_lb["change"], vus_to_lb["priority"]) == ("downgrade", "medium")

    p_to_lp = by_key[("1", 949739, "G", "T")]
    assert (p_to_lp["before"], p_to_lp["after"]) == ("Pathogenic", "Likely_pathogenic")
    assert (p_to_lp["change"], p_to_lp["priority"]) == ("reclassified", "low")

    vus_to_conflict = by_key[("1", 949518, "C", "T")]
    assert vus_to_conflict["after"] == "Conflicting_classifications_of_pathogenicity"
    assert (vus_to_conflict["change"], vus_to_conflict["priority"]) == ("conflict", "medium")


def test_grch37_pair_priority_thresholds(grch37_pair):
    store, old, new = grch37_pair

    def window(*extra: str) -> dict[tuple, tuple[str, str]]:
        _, rows = diff_json(invoke(store, "snapshot", "diff", old, new, "--format", "json",
                                   *extra))
        return change_map([r for r in rows if WINDOW[0] <= r["pos"] <= WINDOW[1]])

    everything = window("--all")
    assert window("--min-priority", "low") == everything
    default = window()
    assert default == window("--min-priority", "medium")
    assert default == {k: v for k, v in everything.items() if v[1] in ("medium", "high")}
    high = window("--min-priority", "high")
    assert high == {k: v for k, v in everything.items() if v[1] == "high"}
    assert ("1", 949739, "G", "T") not in default  # the low-priority reclassification
    assert ("1", 957693, "A", "T") in high

    # 'new' rows: pathogenic ones are high, every other one medium; all are in the default.
    b = clinvar_states(shared(NEW37), WINDOW)
    new_rows = {k: v for k, v in everything.items() if v[0] == "new"}
    assert len(new_rows) == 280
    for key, (_, priority) in new_rows.items():
        assert priority == ("high" if b[key][1] == "pathogenic" else "medium")
        assert key in default
        assert (key in high) == (priority == "high")
    assert sum(p == "high" for _, p in new_rows.values()) < 280


def test_grch37_patient_diff_exit_code_follows_min_priority(grch37_pair):
    store, old, new = grch37_pair
    vcf = shared(KGENOMES)
    # The 1kg carriers' two ClinVar variants are absent from the 2019 window: 'new', benign.
    r = invoke(store, "diff", vcf, "--from", old, "--to", new, "--format", "json",
               "--exit-code")
    assert r.code == 1
    _, rows = diff_json(r)
    assert {(x["sample"], x["pos"], x["change"], x["priority"]) for x in rows} == {
        ("HG00731", 878314, "new", "medium"), ("HG00733", 878314, "new", "medium"),
        ("NA19679", 878314, "new", "medium"), ("NA20876", 874734, "new", "medium")}
    for x in rows:
        assert set(PATIENT_COLUMNS) <= set(x)
        assert x["zygosity"] == "het"
    quiet = invoke(store, "diff", vcf, "--from", old, "--to", new, "--format", "json",
                   "--exit-code", "--min-priority", "high")
    assert quiet.code == 0
    assert diff_json(quiet)[1] == []


# ------------------------------------------------------------------------------ MacArthur
def test_macarthur_snapshot_diff_equals_naive(macarthur_pair):
    store, a, b = macarthur_pair
    # These subsets of two releases differ in size (698 and 515 alleles), so the newer is
    # marked suspect: refused as a target until accepted.
    refused = invoke(store, "snapshot", "diff", a, b, "--all", "--format", "json")
    assert refused.code == 4 and "suspect" in refused.err and "515" in refused.err
    head, rows = diff_json(invoke(store, "snapshot", "diff", a, b, "--all", "--format", "json",
                                  "--accept-suspect"))
    sa, sb = parquet_states(store, a), parquet_states(store, b)
    assert len(sa) == 698 and len(sb) == 515
    assert len(sa.keys() & sb.keys()) == 256  # README: 256 alleles shared
    assert change_map(rows) == naive_diff(sa, sb)
    kinds = {r["change"] for r in rows}
    assert {"new", "gone", "reclassified", "review"} <= kinds


def test_giab_patient_diff_equals_naive(macarthur_pair):
    store, a, b = macarthur_pair
    vcfs = [shared(p) for p in GIAB]
    _, rows = diff_json(invoke(store, "diff", *vcfs, "--from", a, "--to", b, "--all",
                               "--format", "json", "--accept-suspect"))
    sa, sb = parquet_states(store, a), parquet_states(store, b)
    expected: dict[tuple, tuple[str, str]] = {}
    for vcf in vcfs:
        expected |= naive_patient_diff(vcf, sa, sb)
    assert expected, "the GIAB files carry changed MacArthur variants"
    assert change_map(rows, with_sample=True) == expected
    assert {r["sample"] for r in rows} == {"HG004", "HG006"}
    for r in rows:
        assert set(PATIENT_COLUMNS) <= set(r)
        assert r["chrom"] == "chr1"

    _, default = diff_json(invoke(store, "diff", *vcfs, "--from", a, "--to", b, "--format",
                                  "json", "--accept-suspect"))
    assert change_map(default, with_sample=True) == {
        k: v for k, v in expected.items() if v[1] != "low"}


# ------------------------------------------------------------------------------ renames
CLINVAR_HEADER = """##fileformat=VCFv4.1
##fileDate={date}
##reference={assembly}
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="x">
##INFO=<ID=CLNREVSTAT,Number=.,Type=String,Description="x">
##INFO=<ID=CLNSIGCONF,Number=.,Type=String,Description="x">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
"""

# The same four variants in the pre-2024 and the post-2024 vocabulary (DOMAIN.md).
PRE_2024 = [
    ("13", 100, "C", "T", "CLNSIG=Conflicting_interpretations_of_pathogenicity;"
     "CLNREVSTAT=criteria_provided,_conflicting_interpretations;"
     "CLNSIGCONF=Likely_pathogenic(1),Uncertain_significance(2)"),
    ("6", 200, "G", "A", "CLNSIG=not_provided;CLNREVSTAT=no_assertion_provided"),
    ("1", 300, "G", "A", "CLNSIG=Benign,_association;"
     "CLNREVSTAT=criteria_provided,_multiple_submitters,_no_conflicts"),
    ("19", 400, "G", "A", "CLNSIG=Pathogenic/Likely_pathogenic,_risk_factor;"
     "CLNREVSTAT=no_interpretation_for_the_single_variant"),
]
POST_2024 = [
    ("13", 100, "C", "T", "CLNSIG=Conflicting_classifications_of_pathogenicity;"
     "CLNREVSTAT=criteria_provided,_conflicting_classifications;"
     "CLNSIGCONF=Likely_pathogenic(1)|Uncertain_significance(2)"),
    ("6", 200, "G", "A", "CLNSIG=not_provided;CLNREVSTAT=no_classification_provided"),
    ("1", 300, "G", "A", "CLNSIG=Benign|association;"
     "CLNREVSTAT=criteria_provided,_multiple_submitters,_no_conflicts"),
    ("19", 400, "G", "A", "CLNSIG=Pathogenic/Likely_pathogenic|risk_factor;"
     "CLNREVSTAT=no_classification_for_the_single_variant"),
]


def write_clinvar(path: Path, records, date: str, assembly: str = "GRCh38") -> Path:
    body = "".join(f"{c}\t{p}\t{i}\t{r}\t{a}\t.\t.\t{info}\n"
                   for i, (c, p, r, a, info) in enumerate(records, start=1))
    path.write_text(CLINVAR_HEADER.format(date=date, assembly=assembly) + body)
    return path


@pytest.fixture
def rename_store(tmp_path) -> tuple[Path, str, str]:
    store = tmp_path / "store"
    pre = add_snapshot(Store(store), write_clinvar(tmp_path / "pre.vcf", PRE_2024, "2023-12-04"),
                       name="pre").snapshot
    post = add_snapshot(Store(store), write_clinvar(tmp_path / "post.vcf", POST_2024,
                                                    "2024-02-05"), name="post").snapshot
    assert pre.manifest.records == post.manifest.records == 4
    assert not pre.manifest.unknown_terms and not post.manifest.unknown_terms
    return store, "pre", "post"


def test_renamed_terms_are_not_changes(rename_store, tmp_path):
    store, pre, post = rename_store
    for args in ((pre, post), (post, pre)):
        r = invoke(store, "snapshot", "diff", *args, "--all", "--format", "json",
                   "--exit-code")
        assert r.code == 0, r.err
        head, rows = diff_json(r)
        assert rows == [] and head["changes"] == 0

    # A patient carrying all four: nothing to report either.
    vcf = tmp_path / "p.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##reference=GRCh38\n"
                   '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP\n"
                   + "".join(f"{c}\t{p}\t.\t{r}\t{a}\t.\tPASS\t.\tGT\t0/1\n"
                             for c, p, r, a, _ in PRE_2024))
    r = invoke(store, "diff", vcf, "--from", pre, "--to", post, "--all", "--format", "json")
    assert r.code == 0, r.err
    assert diff_json(r)[1] == []

    # Not vacuous: a real change next to the renames is reported, and only it.
    changed = [*POST_2024[:3], ("19", 400, "G", "A", "CLNSIG=Uncertain_significance;"
                                "CLNREVSTAT=criteria_provided,_single_submitter")]
    add_snapshot(Store(store), write_clinvar(tmp_path / "post2.vcf", changed, "2024-03-04"),
                 name="post2")
    _, rows = diff_json(invoke(store, "snapshot", "diff", pre, "post2", "--all", "--format",
                               "json"))
    assert change_map(rows) == {("19", 400, "G", "A"): ("downgrade", "high")}


# ------------------------------------------------------------------------------ contracts
def test_different_assemblies_exit_3(tmp_path):
    store = tmp_path / "store"
    old37 = add_snapshot(Store(store), shared(OLD37)).snapshot.name
    a38 = add_snapshot(Store(store), SAMPLES / "clinvar_GRCh38_2024-01-07.vcf").snapshot.name
    out = tmp_path / "o.json"
    r = invoke(store, "snapshot", "diff", old37, a38, "--format", "json", "-o", out)
    assert r.code == 3
    assert "GRCh37" in r.err and "GRCh38" in r.err
    assert not out.exists()
    r = invoke(store, "diff", SAMPLES / "trio.vcf", "--from", a38, "--to", old37, "--format",
               "json", "-o", out)
    assert r.code == 3
    assert "GRCh37" in r.err and "GRCh38" in r.err
    assert not out.exists()


def test_exit_code_option(bundled):
    store, a, b = bundled
    single = SAMPLES / "patient_single.vcf.gz"
    assert invoke(store, "snapshot", "diff", a, b, "--exit-code", "-f", "json").code == 1
    assert invoke(store, "snapshot", "diff", a, a, "--exit-code", "-f", "json").code == 0
    assert invoke(store, "snapshot", "diff", a, b, "-f", "json").code == 0  # without the flag
    assert invoke(store, "diff", single, "--from", a, "--to", b, "--exit-code",
                  "-f", "json").code == 1
    same = invoke(store, "diff", single, "--from", b, "--to", b, "--exit-code", "--all",
                  "-f", "json")
    assert same.code == 0
    assert diff_json(same)[1] == []
    tsv = invoke(store, "snapshot", "diff", a, a, "--all", "--exit-code", "-f", "tsv")
    assert tsv.code == 0
    assert tsv.out.splitlines()[0].startswith("#")
    assert len(tsv.out.splitlines()) == 2  # provenance and header, no rows


def test_subprocess_json_on_stdout_logs_on_stderr(bundled):
    exe = ROOT / ".venv" / "bin" / "varreinterp"
    if not exe.exists():
        pytest.skip(f"{exe} is not installed")
    store, a, b = bundled
    env = {k: v for k, v in os.environ.items() if k != "VARREINTERP_HOME"}
    proc = subprocess.run(
        [str(exe), "--store", str(store), "diff", str(SAMPLES / "patient_single.vcf.gz"),
         "--from", a, "--to", b, "--format", "json"],
        capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    parsed = [json.loads(ln) for ln in lines]  # every stdout line is JSON
    assert "provenance" in parsed[0]
    assert parsed[0]["changes"] == len(parsed) - 1 == 4  # PATIENT01: 4 at medium or above
    assert "INFO" in proc.stderr
    assert "change(s)" in proc.stderr
    for line in proc.stderr.splitlines():
        assert not line.lstrip().startswith("{")


# ------------------------------------------------------------------------------ sample_vcfs
README_VARIANT = re.compile(r"`(\w+):(\d+) ([ACGT]+)>([ACGT]+)`")

# The README's "expected change kind" column, in this tool's kind and priority names.
README_KINDS = {
    "UP1": ("upgrade VUS->LP (high)", "upgrade", "high"),
    "UP2": ("upgrade VUS->LP (high)", "upgrade", "high"),
    "DOWN": ("downgrade P->VUS (high)", "downgrade", "high"),
    "LB2VUS": ("class changed LB->VUS (medium)", "upgrade", "medium"),
    "VUS2CONF": ("conflict appeared", "conflict", "medium"),
    "CONF2LB": ("conflict resolved (->LB)", "resolved", "medium"),
    "LP2P": ("reclassified within tier LP->P (low)", "reclassified", "low"),
    "REV1": ("review status only, 1->3 stars", "review", "low"),
    "REV2": ("review status only, 1->2 stars", "review", "low"),
    "GONE": ("gone (absent in new; not benign)", "gone", "high"),
    "NEW1": ("new (absent in old), P", "new", "high"),
    "NEW2": ("new (absent in old), VUS", "new", "medium"),
    "RENAME": ("NO CHANGE (renamed conflict terms only)", None, None),
    "NOCLASS": ("NO CHANGE (renamed review status only)", None, None),
    "NOSINGLE": ("NO CHANGE (renamed review status only; no CLNSIG)", None, None),
}


def readme_changes() -> list[dict]:
    rows = []
    for line in (SAMPLES / "README.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        if len(cells) != 7:
            continue  # the unchanged table
        m = README_VARIANT.fullmatch(cells[0])
        assert m, cells[0]
        rows.append({"chrom": m.group(1), "pos": int(m.group(2)), "ref": m.group(3),
                     "alt": m.group(4), "label": cells[2], "kind_text": cells[5],
                     "calls": [(s, gt.replace("\\|", "|"))
                               for s, gt in re.findall(r"(\w+) `([^`]+)`", cells[6])]})
    return rows


def reported(gt: str) -> bool:
    """This tool's policy: a call is reported when fully called and holding an ALT (a half-call
    such as ./1 is counted, not reported)."""
    alleles = re.split(r"[/|]", gt)
    return "." not in alleles and any(a != "0" for a in alleles)


def test_readme_table_is_what_we_transcribed():
    rows = readme_changes()
    assert {r["label"]: r["kind_text"] for r in rows} == {
        k: text for k, (text, _, _) in README_KINDS.items()}


def test_bundled_snapshot_diff_equals_readme(bundled):
    store, a, b = bundled
    _, rows = diff_json(invoke(store, "snapshot", "diff", a, b, "--all", "--format", "json"))
    expected = {(r["chrom"], r["pos"], r["ref"], r["alt"]): README_KINDS[r["label"]][1:]
                for r in readme_changes() if README_KINDS[r["label"]][1]}
    assert change_map(rows) == expected
    # And the rename-only rows are in both snapshots, just unchanged.
    assert ("13", 32340300, "C", "T") in parquet_states(store, a)
    assert ("13", 32340300, "C", "T") in parquet_states(store, b)


@pytest.mark.parametrize("min_priority", ["low", "medium", "high"])
def test_bundled_patient_diff_equals_readme(bundled, min_priority):
    store, a, b = bundled
    rank = {"low": 0, "medium": 1, "high": 2}
    r = invoke(store, "diff", SAMPLES / "patient_single.vcf.gz", SAMPLES / "trio.vcf",
               "--from", a, "--to", b, "--min-priority", min_priority, "--format", "json")
    _, rows = diff_json(r)
    expected = {}
    for row in readme_changes():
        _, kind, priority = README_KINDS[row["label"]]
        if kind is None or rank[priority] < rank[min_priority]:
            continue
        for sample, gt in row["calls"]:
            if reported(gt):
                chrom = row["chrom"]
                if sample == "PATIENT01":
                    chrom = "chrM" if chrom == "MT" else f"chr{chrom}"
                expected[(sample, chrom, row["pos"], row["ref"], row["alt"])] = (kind, priority)
    assert change_map(rows, with_sample=True) == expected
    if min_priority == "low":
        samples = {}
        for (sample, *_), (kind, _) in expected.items():
            samples.setdefault(sample, set()).add(kind)
        assert samples == {
            "PATIENT01": {"upgrade", "downgrade", "review", "gone", "new"},
            "CHILD01": {"upgrade", "conflict", "resolved", "reclassified"},
            "MOTHER01": {"upgrade", "conflict", "resolved", "review"},
            "FATHER01": {"downgrade", "upgrade", "resolved", "reclassified"},
        }
        zyg = {(x["sample"], x["pos"]): x["zygosity"] for x in rows}
        assert zyg[("CHILD01", 117509100)] == "hom"
        assert zyg[("PATIENT01", 43057100)] == "het"  # second ALT of a 1/2 call


@pytest.mark.parametrize("command", ["diff", "history"])
def test_malformed_patient_vcf_exits_3_and_writes_nothing(bundled, tmp_path, command):
    store, a, b = bundled
    vcf = tmp_path / "bad.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n##reference=GRCh38\n"
                   "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tP\n"
                   "1\t100\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\n"
                   "1\t1O1\t.\tA\tG\t.\tPASS\t.\tGT\t0/1\n")
    out = tmp_path / "out.json"
    args = ["--from", a, "--to", b] if command == "diff" else []
    r = invoke(store, command, vcf, *args, "--format", "json", "-o", out)
    assert r.code == 3
    assert f"{vcf}:5:" in r.err
    assert not out.exists()


def test_unknown_sample_in_diff_exits_2(bundled):
    store, a, b = bundled
    r = invoke(store, "diff", SAMPLES / "trio.vcf", "--from", a, "--to", b, "--sample",
               "NOBODY", "--format", "json")
    assert r.code == 2
    assert "NOBODY" in r.err
