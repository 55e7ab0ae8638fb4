"""`varreinterp report` and reanalyze's patients/<id>.html end to end: the cards are exactly the
changes `diff` lists at the same --min-priority, with the fields the releases carry, checked in
headless Chromium (skipped with a reason without it). Also produces docs/report.png, the README
screenshot (copied into docs/ with UPDATE_DOCS=1)."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, SAMPLES, invoke, shared

C37_OLD = "clinvar/GRCh37/clinvar_20191202.chr1_949k-977k.vcf.gz"
C37_NEW = "clinvar/GRCh37/clinvar_20230710.chr1_69k-981k.vcf.gz"
KGENOMES = "patients/GRCh37/1kg_exome.16_samples.vcf"
OLD, NEW = "clinvar-GRCh38-2024-01-07", "clinvar-GRCh38-2024-06-02"
LINK = re.compile(r"^https://www\.ncbi\.nlm\.nih\.gov/clinvar/variation/\d+/$")


class Cards(HTMLParser):
    """The cards of a report: their class attribute, text and links."""

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, Any]] = []
        self.depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        cls = dict(attrs).get("class") or ""
        if tag == "article" and "card" in cls.split():
            self.cards.append({"text": "", "links": []})
        if self.cards and tag == "a":
            self.cards[-1]["links"].append(dict(attrs).get("href"))

    def handle_data(self, data: str) -> None:
        if self.cards:
            self.cards[-1]["text"] += data


def cards_of(html: str) -> list[dict[str, Any]]:
    parser = Cards()
    parser.feed(html)
    return parser.cards


def diff_rows(store: Path, *args: Any) -> list[dict[str, Any]]:
    r = invoke(store, "diff", *args, "--format", "json")
    assert r.code == 0, r.err
    return [json.loads(line) for line in r.out.splitlines()[1:]]


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("report") / "store"
    for date in ("2024-01-07", "2024-06-02"):
        assert invoke(store, "snapshot", "add", SAMPLES / f"clinvar_GRCh38_{date}.vcf").code == 0
    return store


def test_a_1kg_sample_report_shows_exactly_the_diff(tmp_path: Path) -> None:
    """The real 1000 Genomes exome between the real 2019-12-02 and 2023-07-10 windows."""
    store = tmp_path / "store"
    for rel in (C37_OLD, C37_NEW):
        assert invoke(store, "snapshot", "add", shared(rel)).code == 0
    vcf = shared(KGENOMES)
    old, new = "clinvar-GRCh37-2019-12-02", "clinvar-GRCh37-2023-07-10"
    everyone = diff_rows(store, vcf, "--from", old, "--to", new, "--all")
    carriers = sorted({r["sample"] for r in everyone})
    assert carriers, "the 1kg exome carries variants of the 2023 window"
    for sample in carriers:
        for extra in ([], ["--all"]):
            listed = diff_rows(store, vcf, "--from", old, "--to", new, "--sample", sample,
                               *extra)
            out = tmp_path / f"{sample}{''.join(extra)}.html"
            r = invoke(store, "report", vcf, "--sample", sample, "--from", old, "--to", new,
                       *extra, "-o", out)
            assert r.code == 0, r.err
            cards = cards_of(out.read_text())
            assert len(cards) == len(listed)
            for row, card in zip(sorted(listed, key=lambda r: r["pos"]),
                                 sorted(cards, key=lambda c: int(re.search(
                                     r":(\d+) ", c["text"]).group(1))), strict=True):
                text = " ".join(card["text"].split())
                assert f"{row['pos']}" in text
                if row["gene"]:
                    assert row["gene"] in text
                if row["hgvs"]:
                    assert row["hgvs"] in text
                if row["variation_id"]:
                    assert f"https://www.ncbi.nlm.nih.gov/clinvar/variation/" \
                           f"{row['variation_id']}/" in card["links"]
                for link in card["links"]:
                    assert LINK.match(link)


def test_report_needs_a_sample_when_the_vcf_holds_several(sample_store: Path) -> None:
    r = invoke(sample_store, "report", SAMPLES / "trio.vcf", "--from", OLD, "--to", NEW)
    assert r.code == 2 and "--sample" in r.err and "CHILD01" in r.err
    assert r.out == ""


def test_pass_only_report_leaves_out_a_failed_call(sample_store: Path, tmp_path: Path) -> None:
    """PATIENT01's BRCA1 17:43071000 call is FILTER=LowQual (sample_vcfs/README.md)."""
    single = SAMPLES / "patient_single.vcf.gz"
    base = ["report", single, "--from", OLD, "--to", NEW, "--all", "-o"]
    r = invoke(sample_store, *base, tmp_path / "all.html")
    assert r.code == 0, r.err
    every = " ".join(c["text"] for c in cards_of((tmp_path / "all.html").read_text()))
    assert "LowQual" in every
    r = invoke(sample_store, *base, tmp_path / "pass.html", "--pass-only")
    assert r.code == 0, r.err
    passing = cards_of((tmp_path / "pass.html").read_text())
    assert "LowQual" not in " ".join(c["text"] for c in passing)
    assert len(passing) == len(cards_of((tmp_path / "all.html").read_text())) - 1


# ------------------------------------------------------------------------------ browser
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from varreinterp.output.html_report import CHROMIUM, launched_chromium

    if not CHROMIUM.exists():
        pytest.skip(f"headless Chromium not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as pw, launched_chromium(pw) as chromium:
        yield chromium


def test_reanalyze_reports_open_cleanly_and_match_the_tsv(sample_store: Path, tmp_path: Path,
                                                         browser: Any) -> None:
    from pypdf import PdfReader

    store = tmp_path / "store"
    shutil.copytree(sample_store, store)
    assert invoke(store, "cohort", "add", SAMPLES / "trio.vcf", SAMPLES / "patient_single.vcf.gz",
                  "--baseline", OLD).code == 0
    out = tmp_path / "REPORT"
    r = invoke(store, "reanalyze", "--report-dir", out, "--min-priority", "low")
    assert r.code == 0, r.err
    run = json.loads((out / "run.json").read_text())
    for pid, rel in run["changes"]["patient_reports"].items():
        tsv = [ln for ln in (out / run["changes"]["patient_files"][pid]).read_text().splitlines()
               if not ln.startswith("#")][1:]
        page = browser.new_page(viewport={"width": 1000, "height": 800})
        errors: list[str] = []
        requests: list[str] = []
        page.on("console", lambda msg, e=errors: e.append(msg.text) if msg.type == "error"
                else None)
        page.on("pageerror", lambda exc, e=errors: e.append(str(exc)))
        page.on("request", lambda req, q=requests: q.append(req.url))
        url = (out / rel).as_uri()
        page.goto(url, wait_until="load")
        assert errors == [] and requests == [url]
        assert page.locator(".card").count() == len(tsv)
        for href in page.locator("a").evaluate_all("els => els.map(e => e.href)"):
            assert LINK.match(href), href
        pages = len(PdfReader(__import__("io").BytesIO(page.pdf(format="A4"))).pages)
        assert 1 <= pages <= 1 + len(tsv)
        if pid == "CHILD01":
            png = tmp_path / "report.png"
            png.write_bytes(page.screenshot(full_page=True, type="png"))
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            if os.environ.get("UPDATE_DOCS"):
                (ROOT / "docs").mkdir(exist_ok=True)
                shutil.copy(png, ROOT / "docs" / "report.png")
        page.close()
