"""The patient HTML report: escaping, links, unknown fields and QC marks on the rendered text, then
the same report in headless Chromium (no errors, no network, one card per change, timelines with
the right points, screenshots and A4/Letter PDFs whose pages carry the patient id and page number
and never split a card).

Browser tests skip when /usr/bin/chromium or the playwright package is absent (CI installs both);
they share one browser and one loaded page per module to stay within a few seconds."""

from __future__ import annotations

import io
import re
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from html.parser import HTMLParser
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from varreinterp.errors import EnvironmentIOError
from varreinterp.output.html_report import (
    CHROMIUM,
    ChangeCard,
    PatientReport,
    SnapshotRef,
    TimelinePoint,
    build_timeline,
    clinvar_url,
    css_string,
    launched_chromium,
    render_html,
    save_screenshot,
    screenshot_png,
)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

HOSTILE = "<script>alert(1)</script>"
CLINVAR_LINK = re.compile(r"^https://www\.ncbi\.nlm\.nih\.gov/clinvar/variation/[0-9]+/$")
PATH_TIERS = [("Uncertain_significance", "uncertain"), ("Likely_pathogenic", "pathogenic"),
              (None, None), ("Conflicting_classifications_of_pathogenicity", "conflicting"),
              ("Benign", "benign"), ("drug_response", "other")]


def timeline(n: int, year: int) -> tuple[TimelinePoint, ...]:
    """n monthly points in `year` (unique to one card, so a PDF page can be told by its dates),
    cycling through every tier and absence."""
    points = []
    for i in range(n):
        cls, tier = PATH_TIERS[i % len(PATH_TIERS)]
        date = f"{year + i // 12}-{i % 12 + 1:02d}-15"
        points.append(TimelinePoint(f"snap_{year}_{i}", date, cls, tier, 1 if cls else None))
    return tuple(points)


def card(i: int, **overrides: Any) -> ChangeCard:
    base = ChangeCard(
        chrom="17", pos=43_000_000 + i, ref="G", alt="A", gene=f"GENE{i}X",
        hgvs=f"NM_007294.4:c.{i}G>A", consequence="SO:0001583|missense_variant",
        conditions="Hereditary_breast_ovarian_cancer_syndrome|not_provided",
        change="upgrade", priority="high", before="Uncertain_significance",
        after="Likely_pathogenic", tier_before="uncertain", tier_after="pathogenic",
        stars_before=1, stars_after=2, review_before="criteria_provided,_single_submitter",
        review_after="criteria_provided,_multiple_submitters,_no_conflicts",
        last_evaluated="2024-02-01", zygosity="het", filter="PASS",
        variation_id=str(90_000 + i), timeline=timeline(3, 2000 + i),
    )
    return replace(base, **overrides)


def report(cards: list[ChangeCard], **overrides: Any) -> PatientReport:
    base = PatientReport(
        patient_id="PT-0001", sample="NA12878", source_file="/data/pt1.vcf.gz",
        assembly="GRCh38",
        from_snapshot=SnapshotRef("clinvar_20230101", "2023-01-01", "GRCh38", "clinvar_vcf",
                                  "a" * 64, "b" * 64),
        to_snapshot=SnapshotRef("clinvar_20240101", "2024-01-01", "GRCh38", "clinvar_vcf",
                                "c" * 64, "d" * 64),
        min_priority="medium", cards=cards,
        counts_by_priority={"high": sum(c.priority == "high" for c in cards),
                            "medium": sum(c.priority == "medium" for c in cards),
                            "low": sum(c.priority == "low" for c in cards)},
        tool_version="0.1.0", command="varreinterp report pt1.vcf.gz --from A --to B",
        generated_at="2024-05-01T10:00:00+00:00",
    )
    return replace(base, **overrides)


class Parsed(HTMLParser):
    """Every start tag with its attributes, and the visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def with_class(self, tag: str, cls: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags
                if t == tag and cls in (a.get("class") or "").split()]

    @property
    def plain(self) -> str:
        return " ".join(" ".join(self.text).split())


def parse(html: str) -> Parsed:
    parsed = Parsed()
    parsed.feed(html)
    parsed.close()
    return parsed


# ------------------------------------------------------------------ rendered text


def test_every_input_string_is_escaped() -> None:
    hostile = card(1, gene=HOSTILE, conditions=f"{HOSTILE}|Breast_cancer", hgvs=HOSTILE,
                   consequence=HOSTILE, filter=HOSTILE, zygosity=HOSTILE, conflicts=HOSTILE,
                   tier_after="conflicting", last_evaluated=HOSTILE, variation_id=HOSTILE,
                   review_after=HOSTILE, before=HOSTILE, change=HOSTILE, priority=HOSTILE,
                   timeline=(TimelinePoint(HOSTILE, HOSTILE, HOSTILE, HOSTILE, 1),))
    rep = report([hostile], patient_id=HOSTILE, sample=HOSTILE, source_file=HOSTILE,
                 assembly=HOSTILE, command=HOSTILE, notes=(HOSTILE,), generated_at=HOSTILE,
                 from_snapshot=SnapshotRef(HOSTILE, HOSTILE, HOSTILE, HOSTILE, HOSTILE),
                 min_priority=HOSTILE, counts_by_priority={HOSTILE: 1})
    html = render_html(rep)
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    # the patient id also goes into the print margins, as a CSS string: it cannot end <style>
    assert html.lower().count("</style") == 2
    assert len(parse(html).with_class("article", "card")) == 1


def test_css_string_escapes_everything_but_letters_and_digits() -> None:
    for text in (HOSTILE, 'a"b\\c;}</style>', "PT 7\n\u00e9\u2603", ""):
        quoted = css_string(text)
        assert re.fullmatch(r'"[A-Za-z0-9\\ ]*"', quoted)
        decoded = re.sub(r"\\([0-9a-f]{1,6}) ", lambda m: chr(int(m.group(1), 16)),
                         quoted[1:-1])
        assert decoded == text


def test_clinvar_links_only_for_numeric_ids() -> None:
    ids = ["12345", "abc", "123abc", "12 3", "\u00b2", "-1", "javascript:alert(1)", "", None,
           " 678 "]
    cards = [card(i, variation_id=v) for i, v in enumerate(ids)]
    parsed = parse(render_html(report(cards)))
    hrefs = [a["href"] for t, a in parsed.tags if t == "a"]
    assert hrefs == ["https://www.ncbi.nlm.nih.gov/clinvar/variation/12345/",
                     "https://www.ncbi.nlm.nih.gov/clinvar/variation/678/"]
    assert clinvar_url(12345) == "https://www.ncbi.nlm.nih.gov/clinvar/variation/12345/"
    assert "Variation ID abc (no link)" in parsed.plain


def test_nothing_to_fetch_in_the_document() -> None:
    html = render_html(report([card(1), card(2, variation_id=None)]))
    parsed = parse(html)
    assert not [t for t, a in parsed.tags if t in ("script", "img", "link", "iframe", "object")]
    assert not [a for _, a in parsed.tags if "src" in a]
    assert "url(" not in html and "@import" not in html
    urls = re.findall(r"https?://[^\s\"'<)]+", html)
    assert urls and all(CLINVAR_LINK.match(u) for u in urls)


def test_unknown_fields_are_rendered_as_unknown() -> None:
    bare = ChangeCard(chrom="1", pos=100, ref="C", alt="T", change="review", priority="low")
    plain = parse(render_html(report([bare], sample=None, source_file=None))).plain
    for expected in ("Gene not recorded", "HGVS not recorded", "consequence not recorded",
                     "unknown zygosity", "stars unknown", "review status not recorded",
                     "Variation ID not recorded (no link)", "Last evaluated not recorded",
                     "No classification history recorded", "Sample not recorded",
                     "Conditions not recorded", "Call QC (FILTER) not recorded"):
        assert expected in plain


def test_absent_sides_say_absent_not_unknown() -> None:
    new = card(1, change="new", before=None, tier_before=None, stars_before=None)
    gone = card(2, change="gone", priority="high", before="Pathogenic",
                tier_before="pathogenic", after=None, tier_after=None)
    plain = parse(render_html(report([new, gone]))).plain
    assert "absent from the earlier snapshot" in plain
    assert "absent from the newer snapshot" in plain


def test_failed_filter_is_marked_prominently() -> None:
    cards = [card(1, filter="LowQual"), card(2, filter="PASS"), card(3, filter="."),
             card(4, filter=None), card(5, filter="LowQual;q10")]
    parsed = parse(render_html(report(cards)))
    badges = parsed.with_class("span", "qc-failed")
    assert len(badges) == 2
    assert "FAILED QC: LowQual " in parsed.plain + " "
    assert "FAILED QC: LowQual; q10" in parsed.plain
    assert parsed.plain.count("FAILED QC") == 4  # badge and detail line of each failed call


def test_conflict_breakdown_is_a_readable_list() -> None:
    conf = card(1, change="conflict", priority="high", after=PATH_TIERS[3][0],
                tier_after="conflicting", conflicts="Pathogenic(1)|Uncertain_significance(2)")
    plain = parse(render_html(report([conf]))).plain
    assert "Pathogenic: 1 submission" in plain
    assert "Uncertain significance: 2 submissions" in plain
    assert "Submitters" not in parse(render_html(report([card(2)]))).plain


def test_card_contents_in_plain_words_and_order_kept() -> None:
    cards = [card(3, priority="low", change="review"), card(1), card(2)]
    plain = parse(render_html(report(cards))).plain
    assert plain.index("GENE3X") < plain.index("GENE1X") < plain.index("GENE2X")
    for expected in ("Uncertain significance", "Likely pathogenic", "missense variant",
                     "Hereditary breast ovarian cancer syndrome", "heterozygous",
                     "criteria provided, multiple submitters, no conflicts", "2 stars",
                     "High: the classification moved into the pathogenic tier",
                     "not itself a clinical interpretation", "a" * 64, "d" * 64,
                     "varreinterp report pt1.vcf.gz --from A --to B", "2024-05-01T10:00:00"):
        assert expected in plain


def test_empty_report_says_no_changes_at_the_threshold() -> None:
    html = render_html(report([], min_priority="high"))
    parsed = parse(html)
    assert not parsed.with_class("article", "card")
    assert "No changes at or above high priority" in parsed.plain


def test_template_ships_as_package_data() -> None:
    folder = files("varreinterp.output") / "templates"
    assert (folder / "report.html.j2").is_file()
    assert (folder / "report.css").is_file()


@pytest.mark.parametrize("n", [1, 2, 5, 12, 24])
def test_timeline_class_labels_never_overlap(n: int) -> None:
    tl = build_timeline(timeline(n, 2000), ("", ""))
    assert len(tl.dots) == n and len(tl.segments) == max(0, n - 1)
    rows: dict[int, list[tuple[float, float]]] = {}
    for dot in tl.dots:
        if dot.label:
            half = len(dot.label) * 3.0
            rows.setdefault(dot.label_y, []).append((dot.x - half, dot.x + half))
    for spans in rows.values():
        assert all(a[1] < b[0] for a, b in zip(spans, spans[1:], strict=False))
    assert tl.rotated is (n > 8)


def test_save_screenshot_refuses_without_chromium(tmp_path: Path) -> None:
    with pytest.raises(EnvironmentIOError, match="Chromium is not installed"):
        save_screenshot("<p>x</p>", tmp_path / "x.png", chromium=tmp_path / "no-chromium")
    assert not (tmp_path / "x.png").exists()


# ------------------------------------------------------------------ in the browser

BROWSER_CARDS = [
    card(1, timeline=timeline(1, 2001)),
    card(2, gene=HOSTILE, conditions=f"{HOSTILE}|Lynch_syndrome", timeline=timeline(2, 2002)),
    card(3, filter="LowQual", change="conflict", priority="medium", before="Likely_benign",
         tier_before="benign", after=PATH_TIERS[3][0], tier_after="conflicting",
         conflicts="Pathogenic(1)|Uncertain_significance(2)", timeline=timeline(5, 2003)),
    card(4, variation_id="not-a-number", timeline=timeline(12, 2004)),
    card(5, change="review", priority="low", before="Pathogenic", after="Pathogenic",
         tier_before="pathogenic", timeline=timeline(24, 2006)),
    card(6, gene=None, hgvs=None, conditions=None, zygosity=None, filter=None,
         variation_id=None, timeline=timeline(3, 2009)),
]
# The printed id must survive the CSS-string escaping of the page margins.
BROWSER_PATIENT = "PT-7 \"O'Brien\" <b>&"


def pdf_pages(data: bytes) -> list[str]:
    from pypdf import PdfReader

    return [page.extract_text() or "" for page in PdfReader(io.BytesIO(data)).pages]


@dataclass
class Loaded:
    page: Page
    url: str
    requests: list[str]
    console_errors: list[str]
    page_errors: list[str]
    dialogs: list[str]
    pdfs: dict[str, list[str]]
    screenshot: bytes


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"headless Chromium not installed at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="the playwright Python package is not installed")
    with sync_api.sync_playwright() as pw, launched_chromium(pw) as chromium:
        yield chromium


@pytest.fixture(scope="module")
def loaded(browser: Browser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    html = render_html(report(BROWSER_CARDS, patient_id=BROWSER_PATIENT, sample=HOSTILE))
    path = tmp_path_factory.mktemp("report") / "patient.html"
    path.write_text(html, encoding="utf-8")
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    result = Loaded(page, path.as_uri(), [], [], [], [], {}, b"")
    page.on("request", lambda req: result.requests.append(req.url))
    page.on("console", lambda msg: result.console_errors.append(msg.text)
            if msg.type == "error" else None)
    page.on("pageerror", lambda exc: result.page_errors.append(str(exc)))

    def on_dialog(dialog: Any) -> None:
        result.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    page.goto(result.url, wait_until="load")
    result.screenshot = page.screenshot(full_page=True, type="png")
    for fmt in ("A4", "Letter"):
        result.pdfs[fmt] = pdf_pages(page.pdf(format=fmt))
    try:
        yield result
    finally:
        page.close()


def test_loads_without_errors_or_network(loaded: Loaded) -> None:
    assert loaded.console_errors == []
    assert loaded.page_errors == []
    assert loaded.dialogs == []  # the hostile gene name did not run
    assert loaded.requests == [loaded.url]


def test_one_card_per_change_with_well_formed_links(loaded: Loaded) -> None:
    assert loaded.page.locator(".card").count() == len(BROWSER_CARDS)
    hrefs = loaded.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")
    assert len(hrefs) == 4  # cards 1, 2, 3 and 5: card 4's id is not a number, card 6 has none
    assert all(CLINVAR_LINK.match(h) for h in hrefs)
    assert loaded.page.locator(".qc-failed").count() == 1
    assert "FAILED QC: LowQual" in loaded.page.locator("#card-3 .qc-failed").inner_text()


def test_each_timeline_has_its_points(loaded: Loaded) -> None:
    for i, c in enumerate(BROWSER_CARDS, start=1):
        svg = loaded.page.locator(f"#card-{i} svg.timeline")
        assert svg.locator("circle.tl-point").count() == len(c.timeline)
        states = svg.locator("circle.tl-point").evaluate_all(
            "els => els.map(e => e.dataset.state)")
        assert states == ["absent" if p.classification is None else p.tier for p in c.timeline]
        absent = svg.locator("circle.tl-point.absent").first
        if "absent" in states:  # drawn hollow and dashed, unlike any class
            style = absent.evaluate("e => [getComputedStyle(e).fill, "
                                    "getComputedStyle(e).strokeDasharray]")
            assert style[0] == "rgb(255, 255, 255)" and style[1] not in ("none", "")


def test_timeline_labels_stay_inside_and_apart(loaded: Loaded) -> None:
    for i in range(1, len(BROWSER_CARDS) + 1):
        svg = loaded.page.locator(f"#card-{i} svg.timeline")
        box = svg.bounding_box()
        assert box is not None
        for selector in ("text.tl-date", "text.tl-label"):
            rects = svg.locator(selector).evaluate_all(
                "els => els.map(e => { const r = e.getBoundingClientRect(); "
                "return [r.left, r.top, r.right, r.bottom]; })")
            for left, top, right, bottom in rects:
                assert box["x"] - 0.5 <= left and right <= box["x"] + box["width"] + 0.5
                assert box["y"] - 0.5 <= top and bottom <= box["y"] + box["height"] + 0.5
            if selector == "text.tl-label" or len(rects) <= 8:  # upright text: boxes apart
                for a, b in zip(rects, rects[1:], strict=False):
                    same_row = abs(a[1] - b[1]) < 1
                    assert not same_row or a[2] <= b[0]


def test_screenshot_is_a_png_of_the_page(loaded: Loaded, browser: Browser) -> None:
    png = loaded.screenshot
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width == 1000 and height > 1500  # six cards, full page
    small = screenshot_png(browser, render_html(report([card(1)])), width=700)
    assert small[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", small[16:24])[0] == 700


@pytest.mark.parametrize("fmt", ["A4", "Letter"])
def test_pdf_pages_carry_patient_and_page_number(loaded: Loaded, fmt: str) -> None:
    pages = loaded.pdfs[fmt]
    # summary and one card, then two cards a page (measured: 4 pages in A4 and Letter)
    assert 3 <= len(pages) <= 5
    for number, text in enumerate(pages, start=1):
        assert f"Patient {BROWSER_PATIENT}" in text
        assert f"Page {number} of {len(pages)}" in text


@pytest.mark.parametrize("fmt", ["A4", "Letter"])
def test_pdf_never_splits_a_card(loaded: Loaded, fmt: str) -> None:
    pages = loaded.pdfs[fmt]

    def page_of(marker: str) -> int:
        found = [i for i, text in enumerate(pages) if marker in text]
        assert len(found) == 1, (marker, found)
        return found[0]

    for c in BROWSER_CARDS:
        top = page_of(f"{c.chrom}:{c.pos} ")
        bottom = page_of(c.timeline[-1].release_date or "")
        assert top == bottom


def test_empty_report_prints_on_one_page(browser: Browser) -> None:
    page = browser.new_page()
    try:
        page.set_content(render_html(report([])))
        pages = pdf_pages(page.pdf(format="A4"))
    finally:
        page.close()
    assert len(pages) == 1
    assert "No changes at or above medium priority" in pages[0]


def test_save_screenshot_writes_a_png(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"headless Chromium not installed at {CHROMIUM}")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    # its own process: playwright's sync API cannot start inside this module's running browser
    out = tmp_path / "docs" / "report.png"
    code = ("import sys; from pathlib import Path; "
            "from varreinterp.output.html_report import save_screenshot; "
            "save_screenshot('<h1>report</h1>', Path(sys.argv[1]), width=640)")
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=60)
    assert struct.unpack(">II", out.read_bytes()[16:24])[0] == 640


# ------------------------------------------------------------------ cached card rendering
def card_ids_and_zygosity(html: str) -> list[tuple[str, str]]:
    """(card id, its zygosity text) in page order."""
    out = []
    for block in html.split('<article class="card ')[1:]:
        cid = re.search(r'id="(card-\d+)"', block)
        zyg = re.search(r"<dt>Zygosity</dt><dd>([^<]*)</dd>", block)
        assert cid and zyg
        out.append((cid.group(1), zyg.group(1)))
    return out


def test_a_cached_card_is_reused_only_for_an_identical_card() -> None:
    """Cards are rendered once per distinct card: the same change in two patients' pages
    reads the same, while a card differing in one field (zygosity here, or the page's
    snapshots) is rendered afresh, and each page numbers its cards itself."""
    het, hom = card(1), card(1, zygosity="hom")
    first = render_html(report([het, card(2)]))
    second = render_html(report([card(2), het, hom]))
    assert card_ids_and_zygosity(first) == [("card-1", "heterozygous"),
                                            ("card-2", "heterozygous")]
    assert card_ids_and_zygosity(second) == [("card-1", "heterozygous"),
                                             ("card-2", "heterozygous"),
                                             ("card-3", "homozygous")]
    other_pair = render_html(report([het], to_snapshot=SnapshotRef("clinvar_20240101")))
    assert ">clinvar_20240101<" in other_pair
    # the timeline marks the page's endpoints: another pair of snapshots, another card
    ends = replace(het, timeline=(TimelinePoint("snap_a", "2023-01-01", "Benign", "benign", 1),
                                  TimelinePoint("snap_b", "2024-01-01", "Benign", "benign", 1)))
    on_a = render_html(report([ends], from_snapshot=SnapshotRef("snap_a"),
                              to_snapshot=SnapshotRef("snap_b")))
    elsewhere = render_html(report([ends]))
    assert on_a.count("tl-date endpoint") == 2
    assert elsewhere.count("tl-date endpoint") == 0


def test_a_card_with_a_list_timeline_is_still_hashable() -> None:
    listed = card(3, timeline=list(timeline(2, 2010)))
    assert isinstance(listed.timeline, tuple)
    assert render_html(report([listed])) == render_html(report([card(3, timeline=timeline(
        2, 2010))]))
