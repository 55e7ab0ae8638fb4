#!/usr/bin/env python3
"""Benchmark varreinterp against bcftools on the synthetic data of bench/generate.py.

Prints a Markdown table and writes <work>/results.json. Each group creates what it needs (data,
snapshots); wall time is perf_counter around the child, peak RSS the child's max RSS.
A failing varreinterp command is recorded as FAIL with the last line of its stderr; the run goes on.
"""

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Peak RSS: each command runs under `/usr/bin/time -f %M` if present, else os.wait4's ru_maxrss.
# The latter starts at the parent's peak RSS (Linux keeps it across fork+exec), so run.py imports
# neither numpy nor pyarrow and generates data in a child process, to stay small.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VR = ROOT / ".venv" / "bin" / "varreinterp"
TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
CHROMS = [str(i) for i in range(1, 23)] + ["X", "Y", "MT"]
JOINT = (100, 1000, 2504)  # as bench/generate.py's JOINT_SAMPLES
GROUPS = ["snapshot", "annotate", "diff", "cohort", "joint", "scale"]
GB = 1024**3
# target spec "kind+limit" -> table label
LABELS = {"ratio<=": "ratio <= {}", "ratio>=": ">= {}x reference", "secs<": "< {} s",
          "rss<": "RSS < {} GB", "metric<": "< {}", "metric<=": "<= {}",
          "metric>=": ">= {}"}  # fmt: skip


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def rel(p):
    p = Path(p)
    return str(p.relative_to(ROOT)) if p.is_absolute() and p.is_relative_to(ROOT) else str(p)


def words(template, **kw):
    """'annotate {wgs} -o /dev/null' -> argv, placeholders filled after splitting."""
    return [w.format(**kw) for w in template.split()]


@dataclass
class Run:
    ok: bool
    seconds: float | None = None
    rss: int | None = None  # bytes
    error: str = ""
    stdout: str = ""
    cmd: str = ""


def kill_group(pid):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def execute(argv, timeout, ok_codes=(0,), capture=False):
    """Run argv from the repo root; stdout to /dev/null (or captured), stderr kept for the error."""
    argv = [str(a) for a in argv]
    log("  $ " + " ".join(argv))
    tmp = tempfile.TemporaryFile
    with tmp() as err, tmp() as out, tempfile.NamedTemporaryFile("r") as rss_file:
        cmd = [TIME, "-f", "%M", "-o", rss_file.name, *argv] if TIME else argv
        t0 = time.perf_counter()
        try:
            p = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stderr=err,
                                 stdout=out if capture else subprocess.DEVNULL,
                                 start_new_session=True)  # fmt: skip
        except OSError as e:
            return Run(False, error=f"{argv[0]}: {e.strerror}")
        timer = threading.Timer(timeout, kill_group, (p.pid,))
        timer.start()
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.perf_counter() - t0
        timer.cancel()
        p.returncode = code = os.waitstatus_to_exitcode(status)
        err.seek(0)
        out.seek(0)
        lines = [ln for ln in err.read().decode(errors="replace").splitlines() if ln.strip()]
        kib = ru.ru_maxrss
        if TIME:
            kib = next((int(x) for x in reversed(rss_file.read().split()) if x.isdigit()), None)
            lines = [ln for ln in lines if not ln.startswith("Command exited with non-zero")]
        stdout = out.read().decode("utf-8", "replace")
        r = Run(code in ok_codes, secs, kib and kib * 1024, stdout=stdout, cmd=" ".join(argv))
        if not r.ok:
            last = lines[-1] if lines else "(no stderr)"
            r.error = (
                f"timeout after {timeout}s" if code == -signal.SIGKILL else f"exit {code}: {last}"
            )
            log(f"    FAILED: {r.error}")
        return r


def ensure_bcftools():
    def missing():
        return [t for t in ("bcftools", "tabix", "bgzip") if not shutil.which(t)]

    if missing() and os.geteuid() == 0 and shutil.which("apt-get"):
        log(f"installing {missing()} with apt-get ...")
        install = ["apt-get", "install", "-y", "bcftools", "tabix"]
        if subprocess.run(install).returncode:
            subprocess.run(["apt-get", "update"])
            subprocess.run(install)
    if missing():
        log(f"WARNING: {', '.join(missing())} not found and cannot be installed (not root): "
            "bcftools comparisons are skipped (reported as SKIP).")  # fmt: skip
        return False
    return True


def verdict(run, ref, spec, ratio, metric):
    kind, limit = re.fullmatch(r"([a-z]+[<>]=?)([\d.]+)", spec).groups()
    limit = float(limit) * (GB if kind == "rss<" else 1)
    value = {"ratio<=": ratio, "ratio>=": ratio, "secs<": run.seconds, "rss<": run.rss,
             "metric<": metric, "metric<=": metric, "metric>=": metric}[kind]  # fmt: skip
    if not run.ok:
        return "FAIL"
    if value is None:
        return "SKIP" if ref is None else "FAIL"
    ok = {"ratio<=": value <= limit, "ratio>=": value >= limit, "metric<=": value <= limit,
          "metric>=": value >= limit}.get(kind, value < limit)  # fmt: skip
    return "PASS" if ok else "FAIL"


class Bench:
    def __init__(self, a):
        self.a, self.work = a, a.work
        self.store, self.cstore = self.work / "store", self.work / "cohort_store"
        self.results, self.cache, self.data = [], {}, {}
        self.bcftools = ensure_bcftools()

    # -- helpers -------------------------------------------------------------------------------
    def f(self, name):
        return rel(self.work / name)

    def vr(self, template, store=None, capture=False, **kw):
        argv = [rel(VR), "--store", rel(store or self.store), *words(template, **kw)]
        return execute(argv, self.a.timeout, self.a.ok_exit, capture)

    def bcf(self, template, **kw):
        return (
            execute(["bcftools", *words(template, **kw)], self.a.timeout) if self.bcftools else None
        )

    def need(self, *names):
        """Generate (in a child process) what of `names` is missing or stale; load the stamps."""
        argv = [sys.executable, HERE / "generate.py", "--out", self.work, "--scale", self.a.scale,
                "--only", ",".join(names)]  # fmt: skip
        if self.a.cohort_size:
            argv += ["--cohort-size", self.a.cohort_size]
        subprocess.run([str(x) for x in argv], check=True, stdout=sys.stderr)
        for n in names:
            self.data[n] = json.loads((self.work / f".stamp.{n}.json").read_text())

    def ensure_snapshot(self, name, vcf, store=None):
        r = self.vr("snapshot list", store=store, capture=True)
        if r.ok and name in r.stdout.replace(",", " ").replace('"', " ").split():
            return
        log(f"  (setup) adding snapshot {name}")
        self.vr("snapshot add {vcf} --name {name}", store=store, vcf=self.f(vcf), name=name)

    def record(self, group, name, run, ref=None, ref_label="", checks=(), metric=None, cmd="",
               note=""):  # fmt: skip
        """checks: specs like 'ratio<=3.0', 'ratio>=20', 'secs<2', 'rss<2' (GB), 'metric<20'."""
        ratio = run.seconds / ref.seconds if run.ok and ref and ref.ok and ref.seconds else None
        verdicts = [verdict(run, ref, c, ratio, metric) for c in checks]
        result = "FAIL" if "FAIL" in verdicts or not run.ok else "SKIP" if "SKIP" in verdicts \
            else "PASS" if verdicts else "info"  # fmt: skip
        if ref is not None and not ref.ok:
            note = "; ".join(x for x in (f"reference failed: {ref.error or '?'}", note) if x)
        targets = [LABELS[k].format(v) for k, v in (re.match(r"([a-z]+[<>]=?)(.*)", c).groups()
                                                   for c in checks)]  # fmt: skip
        row = dict(group=group, name=name, cmd=cmd or run.cmd, ok=run.ok, seconds=run.seconds,
                   peak_rss_bytes=run.rss, reference=ref_label if ref else None,
                   ref_seconds=ref.seconds if ref and ref.ok else None, ratio=ratio,
                   metric=metric, target=", ".join(targets), result=result, error=run.error,
                   note=note)  # fmt: skip
        self.results.append(row)
        secs = f" {run.seconds:.2f}s" if run.seconds else ""
        log(f"  => {name}: {result}{secs} {run.error}")
        self.save()
        return row

    def save(self):
        data = {k: dict(params=v["params"], meta=v["meta"]) for k, v in self.data.items()}
        meta = dict(date=time.strftime("%Y-%m-%d %H:%M:%S"), quick=self.a.quick,
                    scale=self.a.scale, machine=f"{platform.machine()} {os.cpu_count()} cpus",
                    data=data)  # fmt: skip
        out = json.dumps(dict(meta=meta, results=self.results), indent=1)
        (self.work / "results.json").write_text(out)

    # -- groups ---------------------------------------------------------------------------------
    def g_snapshot(self):
        self.need("clinvar")
        self.vr("snapshot remove benchA")
        cmd = "snapshot add {a} --name benchA"
        run = self.vr(cmd, a=self.f("clinvar_A.vcf.gz"))
        q = r"%CHROM\t%POS\t%REF\t%ALT\t%INFO/CLNSIG\t%INFO/CLNREVSTAT\n"
        ref = self.bcf("query -f {q} {a}", q=q, a=self.f("clinvar_A.vcf.gz"))
        self.record("snapshot", "snapshot add clinvar_A", run, ref, "bcftools query",
                    ["ratio<=2.0", "rss<2"])  # fmt: skip

    def annotate_ref(self):
        """bcftools annotate of the WGS (timed once), against a chr-renamed clinvar_A (setup)."""
        if "annotate_ref" not in self.cache and self.bcftools:
            src, chr_vcf = self.work / "clinvar_A.vcf.gz", self.work / "clinvar_A.chr.vcf.gz"
            if not chr_vcf.exists() or chr_vcf.stat().st_mtime < src.stat().st_mtime:
                log("  (setup) chr-renamed copy of clinvar_A for bcftools")
                mapping = self.work / "chr_rename.txt"
                mapping.write_text("".join(f"{c}\tchr{c.replace('MT', 'M')}\n" for c in CHROMS))
                rename = words("bcftools annotate --threads 2 --rename-chrs {m} -Oz -o {o} {i}",
                               m=mapping, o=chr_vcf, i=src)  # fmt: skip
                subprocess.run(rename, check=True)
                subprocess.run(["tabix", "-f", "-p", "vcf", chr_vcf], check=True)
            self.cache["annotate_ref"] = self.bcf(
                "annotate -a {a} -c INFO/CLNSIG,INFO/CLNREVSTAT -Ou -o /dev/null {w}",
                a=self.f("clinvar_A.chr.vcf.gz"), w=self.f("wgs.vcf.gz"))  # fmt: skip
        return self.cache.get("annotate_ref")

    def annotate_wgs_tsv(self):
        cmd = "annotate {w} --snapshot benchA --format tsv -o /dev/null"
        if "annotate_wgs" not in self.cache:
            self.cache["annotate_wgs"] = (cmd, self.vr(cmd, w=self.f("wgs.vcf.gz")))
        return self.cache["annotate_wgs"]

    def g_annotate(self):
        self.need("clinvar", "wgs", "exome")
        self.ensure_snapshot("benchA", "clinvar_A.vcf.gz")
        ref = self.annotate_ref()
        cmd, run = self.annotate_wgs_tsv()
        self.record("annotate", "annotate WGS -> tsv", run, ref, "bcftools annotate",
                    ["ratio<=0.3", "rss<2"])  # fmt: skip
        cmd = "annotate {e} --snapshot benchA --format tsv -o /dev/null"
        run = self.vr(cmd, e=self.f("exome.vcf.gz"))
        self.record("annotate", "annotate exome -> tsv", run, checks=["secs<2"])
        cmd = "annotate {w} --snapshot benchA --format vcf -o {o}"
        run = self.vr(cmd, w=self.f("wgs.vcf.gz"), o=self.f("out.vcf"))
        self.record("annotate", "annotate WGS -> vcf", run, ref, "bcftools annotate",
                    ["ratio<=1.0"])  # fmt: skip

    def g_diff(self):
        self.need("clinvar", "wgs")
        self.ensure_snapshot("benchA", "clinvar_A.vcf.gz")
        self.ensure_snapshot("benchB", "clinvar_B.vcf.gz")
        cmd = "snapshot diff benchA benchB --format tsv"
        run = self.vr(cmd)
        shutil.rmtree(self.work / "isec_out", ignore_errors=True)
        ref = self.bcf("isec -p {o} {a} {b}", o=self.f("isec_out"),
                       a=self.f("clinvar_A.vcf.gz"), b=self.f("clinvar_B.vcf.gz"))  # fmt: skip
        shutil.rmtree(self.work / "isec_out", ignore_errors=True)  # 2 GB of plain VCF
        self.record("diff", "snapshot diff A B", run, ref, "bcftools isec",
                    ["ratio<=0.25", "rss<2"])  # fmt: skip
        _, ann = self.annotate_wgs_tsv()
        cmd = "diff {w} --from benchA --to benchB --format tsv -o /dev/null"
        run = self.vr(cmd, w=self.f("wgs.vcf.gz"))
        self.record("diff", "diff WGS A->B", run, ann, "varreinterp annotate WGS",
                    ["ratio<=1.3"])  # fmt: skip

    def g_cohort(self):
        self.need("clinvar", "cohort")
        carried = self.data["cohort"]["meta"]["alleles_total"]
        # Fresh cohort store every run: `cohort add` is really timed, the first reanalyze sees
        # every allele as new, and the second one is the "nothing new" case.
        shutil.rmtree(self.cstore, ignore_errors=True)
        for name in ("benchA", "benchB"):
            self.ensure_snapshot(name, f"clinvar_{name[-1]}.vcf.gz", store=self.cstore)
        files, batch = sorted((self.work / "cohort").glob("P*.vcf.gz")), self.a.cohort_batch
        add = Run(True, 0.0, 0)
        for i in range(0, len(files), batch):
            paths = " ".join(rel(f) for f in files[i : i + batch])
            r = self.vr(f"cohort add {paths} --baseline benchA", store=self.cstore)
            add = r if not r.ok else Run(True, add.seconds + r.seconds, max(add.rss, r.rss))
            if not r.ok:
                break
        cmd = f"cohort add {self.f('cohort')}/*.vcf.gz --baseline benchA (batches of {batch})"
        self.record("cohort", f"cohort add {len(files)} patients", add, cmd=cmd)

        idx = self.cstore / "cohort"
        ok = add.ok and idx.is_dir()
        size = sum(p.stat().st_size for p in idx.rglob("*") if p.is_file()) if ok else None
        note = f"{size} bytes / {carried} carried alleles (generation metadata)" if ok else ""
        st = self.vr("cohort status --format json", store=self.cstore, capture=True)
        reported = find_allele_count(st.stdout) if ok and st.ok else None
        if reported is not None:
            note += f"; cohort status reports {reported} alleles"
        error = "" if ok else add.error or f"{rel(idx)} missing"
        per = size / carried if ok else None
        self.record("cohort", "cohort index size", Run(ok, error=error), checks=["metric<20"],
                    metric=per, cmd=f"du {rel(idx)}", note=note)  # fmt: skip

        cmd = "reanalyze --to benchB --out {o}"
        shutil.rmtree(self.work / "reanalyze_out", ignore_errors=True)
        re1 = self.vr(cmd, store=self.cstore, o=self.f("reanalyze_out"))
        self.record("cohort", "reanalyze cohort A->B", re1, checks=["secs<30"])

        n = min(self.a.diff_sample, len(files))
        dcmd = "diff {p} --from benchA --to benchB --format tsv -o /dev/null"
        runs = [self.vr(dcmd, store=self.cstore, p=rel(f)) for f in files[:n]]
        failed = [r for r in runs if not r.ok]
        mean = sum(r.seconds for r in runs) / max(n, 1)
        if failed:
            scaled = Run(False, error=f"{len(failed)}/{n} failed, first: {failed[0].error}")
        else:
            scaled = Run(True, mean * len(files), max((r.rss for r in runs), default=0))
        name = f"diff per patient x {len(files)} (from {n})"
        self.record("cohort", name, scaled, re1, "reanalyze", ["ratio>=20"],
                    cmd=runs[0].cmd if runs else "", note=f"mean {mean:.3f} s/patient")  # fmt: skip

        shutil.rmtree(self.work / "reanalyze_out2", ignore_errors=True)
        run = self.vr(cmd, store=self.cstore, o=self.f("reanalyze_out2"))
        self.record("cohort", "reanalyze again (nothing new)", run, checks=["secs<2"])


    # -- issue 14: joint-called cohorts ------------------------------------------------------
    def g_joint(self):
        names = [f"joint{k}" for k in JOINT]
        self.need("clinvar", *names)
        self.ensure_snapshot("benchA", "clinvar_A.vcf.gz")
        per_mgt = {}
        for k in JOINT:
            vcf = self.f(f"joint_{k}.vcf.gz")
            ref = self.bcf("view -Ou -o /dev/null {v}", v=vcf)
            run = self.vr("annotate {v} --snapshot benchA --format tsv -o /dev/null", v=vcf)
            mgt = self.data[f"joint{k}"]["meta"]["records"] * k / 1e6
            per_mgt[k] = run.seconds / mgt if run.ok else None
            note = f"{per_mgt[k]:.3f} s per million genotypes" if per_mgt[k] else ""
            self.record("joint", f"annotate joint {k} samples", run, ref,
                        "bcftools view -Ou", ["ratio<=2.0"], note=note)  # fmt: skip
        lo, hi = per_mgt.get(JOINT[0]), per_mgt.get(JOINT[-1])
        scaling = hi / lo if lo and hi else None
        self.record("joint", f"s/Mgt at {JOINT[-1]} / s/Mgt at {JOINT[0]}",
                    Run(scaling is not None, error="" if scaling else "annotate failed"),
                    checks=["metric<=1.3"], metric=scaling,
                    note=f"{hi or 0:.3f} vs {lo or 0:.3f} s per million genotypes")  # fmt: skip
        store = self.work / "joint_store"
        shutil.rmtree(store, ignore_errors=True)
        self.ensure_snapshot("benchA", "clinvar_A.vcf.gz", store=store)
        vcf = self.f(f"joint_{JOINT[-1]}.vcf.gz")
        ref = self.bcf("view -Ou -o /dev/null {v}", v=vcf)
        run = self.vr("cohort add {v} --baseline benchA", store=store, v=vcf)
        self.record("joint", f"cohort add joint {JOINT[-1]} samples", run, ref,
                    "bcftools view -Ou", ["ratio<=3.0", "rss<2"])  # fmt: skip
        shutil.rmtree(store, ignore_errors=True)

    # -- issue 15: the inverted index and the engine ------------------------------------------
    def fresh_store(self, name):
        store = self.work / name
        shutil.rmtree(store, ignore_errors=True)
        for snap in ("benchA", "benchB"):
            self.ensure_snapshot(snap, f"clinvar_{snap[-1]}.vcf.gz", store=store)
        return store

    def reanalyze_pair(self, store, label, carried):
        out = self.work / f"{label}_reports"
        shutil.rmtree(out, ignore_errors=True)
        run = self.vr("reanalyze --to benchB -o {o}", store=store, o=self.f(out.name))
        read = total = rows = None
        if run.ok and (out / "run.json").is_file():
            report = json.loads((out / "run.json").read_text())
            read, total = report["index_bytes"]["read"], report["index_bytes"]["total"]
            rows = report["changes"]["total"]
        note = (f"read {read} of {total} index bytes ({read / total:.1%}); {rows} change rows; "
                f"{total / carried:.2f} bytes per carried allele" if total else "")
        target = ["secs<60"] if label == "scale10k" else ["secs<30"]
        self.record("scale", f"reanalyze A->B {label}", run, checks=target, note=note)
        again = self.vr("reanalyze --to benchB", store=store)
        self.record("scale", f"reanalyze again (nothing new) {label}", again, checks=["secs<2"])
        size = total / carried if total else None
        self.record("scale", f"index size {label}", Run(size is not None),
                    checks=["metric<5"], metric=size, note=note)  # fmt: skip
        shutil.rmtree(out, ignore_errors=True)

    def g_scale(self):
        self.need("clinvar", "cohort", "cohort_bulk")
        files = sorted((self.work / "cohort").glob("P*.vcf.gz"))
        paths = " ".join(rel(f) for f in files)
        runs = {}
        for workers in (1, 2):
            store = self.fresh_store(f"scale_w{workers}")
            runs[workers] = self.vr(f"cohort add {paths} --baseline benchA --workers {workers}",
                                    store=store)
            self.record("scale", f"cohort add {len(files)} exomes, {workers} worker(s)",
                        runs[workers], checks=["secs<100"] if workers == 2 else [],
                        cmd=f"cohort add cohort/*.vcf.gz --workers {workers}")  # fmt: skip
        speedup = runs[1].seconds / runs[2].seconds if runs[1].ok and runs[2].ok else None
        self.record("scale", "cohort add speedup, 2 workers vs 1", Run(speedup is not None),
                    checks=["metric>=1.6"], metric=speedup)  # fmt: skip
        carried = self.data["cohort"]["meta"]["alleles_total"]
        self.reanalyze_pair(self.work / "scale_w2", "scale1k", carried)
        shutil.rmtree(self.work / "scale_w1", ignore_errors=True)
        store = self.fresh_store("scale10k")
        bulk = " ".join(rel(f) for f in sorted((self.work / "cohort_bulk").glob("B*.vcf.gz")))
        add = self.vr(f"cohort add {bulk} --baseline benchA", store=store)
        n = self.data["cohort_bulk"]["meta"]["patients"]
        self.record("scale", f"cohort add {n} exomes (bulk VCFs of 1000)", add,
                    cmd="cohort add cohort_bulk/*.vcf.gz")  # fmt: skip
        self.reanalyze_pair(store, "scale10k", self.data["cohort_bulk"]["meta"]["alleles_total"])

def find_allele_count(text):
    """Sum over the JSON document(s) (one, or JSON Lines) of the first integer under a key
    containing 'allele' (any depth) in each; None if there is none."""
    try:
        docs = [json.loads(text)]
    except ValueError:
        try:
            docs = [json.loads(ln) for ln in text.splitlines() if ln.strip()]
        except ValueError:
            return None
    total = None
    for doc in docs:
        stack = [doc]
        while stack:
            x = stack.pop(0)
            if isinstance(x, dict):
                hits = [v for k, v in x.items() if "allele" in k.lower() and type(v) is int]
                if hits:
                    total = (total or 0) + hits[0]
                    break
                stack.extend(x.values())
            elif isinstance(x, list):
                stack.extend(x)
    return total


def fmt(x, spec):
    return "" if x is None else format(x, spec)


def table(results):
    rows = ["| group | measurement | time (s) | peak RSS (MiB) | reference | ref (s) "
            "| ratio / metric | target | result |", "|" + "---|" * 9]  # fmt: skip
    for r in results:
        m = r["metric"]
        metric = fmt(r["ratio"], ".3f") if m is None else f"{m:.2f}"
        why = (r["error"] or r["note"]) if r["result"] == "FAIL" else ""
        res = (r["result"] + (f" ({why})" if why else "")).replace("|", "/")
        rss = r["peak_rss_bytes"] and r["peak_rss_bytes"] / 2**20
        rows.append(f"| {r['group']} | {r['name']} | {fmt(r['seconds'], '.2f')} | "
                    f"{fmt(rss, '.0f')} | {r['reference'] or ''} | {fmt(r['ref_seconds'], '.2f')}"
                    f" | {metric} | {r['target']} | {res} |")  # fmt: skip
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    add = ap.add_argument
    add("--only", help=f"comma list of groups: {','.join(GROUPS)}")
    add("--quick", action="store_true", help="all sizes / 10, in .bench/quick (smoke run)")
    add("--work", type=Path, help="work dir (default .bench, or .bench/quick with --quick)")
    add("--scale", type=float, help="size multiplier (default 1, or 0.1 with --quick)")
    add("--cohort-size", type=int, help="number of cohort patients (default 1000 x scale)")
    add("--cohort-batch", type=int, default=1000, help="VCFs per `cohort add` call")
    add("--diff-sample", type=int, default=50, help="patients diffed one by one (default 50)")
    add("--timeout", type=float, default=3600, help="per-command timeout in seconds")
    add("--ok-exit", default="0", help="exit codes counted as success (default 0)")
    a = ap.parse_args()
    a.scale = a.scale or (0.1 if a.quick else 1.0)
    a.work = (a.work or ROOT / ".bench" / ("quick" if a.quick else "")).resolve()
    a.work.mkdir(parents=True, exist_ok=True)
    a.ok_exit = tuple(int(x) for x in a.ok_exit.split(","))
    groups = a.only.split(",") if a.only else GROUPS
    if unknown := set(groups) - set(GROUPS):
        ap.error(f"unknown group(s): {', '.join(sorted(unknown))}")
    if not VR.exists():
        log(f"WARNING: {rel(VR)} not found: every varreinterp measurement will FAIL")
    b = Bench(a)
    for g in [g for g in GROUPS if g in groups]:
        log(f"== {g}")
        getattr(b, "g_" + g)()
    b.save()
    if a.scale != 1.0:
        print(f"_Scaled run (x{a.scale}): targets are for full-size data; PASS/FAIL is "
              "indicative only._\n")  # fmt: skip
    print(table(b.results))
    print(f"\nresults: {rel(a.work / 'results.json')}")
    return 1 if any(r["result"] == "FAIL" for r in b.results) else 0


if __name__ == "__main__":
    sys.exit(main())
