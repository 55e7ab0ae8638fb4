"""The patient report for genetic counselors: one self-contained HTML file (inline CSS and SVG, no
script, no font or image to fetch) that opens in any browser and prints cleanly to A4 or Letter.

The integrator builds a `PatientReport` from real diffs; `render_html` only presents it. Every
string from an input file reaches the page through Jinja2 with autoescaping on, and the one
string that goes into CSS (the patient id in the printed page margins) is CSS-escaped, so a hostile
VCF sample name or condition cannot inject markup."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from varreinterp.errors import EnvironmentIOError
from varreinterp.output import words

if TYPE_CHECKING:
    import jinja2
    from markupsafe import Markup
    from playwright.sync_api import Browser

TEMPLATE_PACKAGE = "varreinterp.output"
TEMPLATE_DIR = "templates"
TEMPLATE = "report.html.j2"
CARD_TEMPLATE = "card.html.j2"
STYLESHEET = "report.css"

CLINVAR_VARIATION_URL = "https://www.ncbi.nlm.nih.gov/clinvar/variation/{}/"
_VARIATION_ID = re.compile(r"[0-9]+")  # ASCII digits only: str.isdigit() also accepts "²"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run")


# ------------------------------------------------------------------ the report model


@dataclass(frozen=True)
class SnapshotRef:
    """One snapshot as the report names it (None: not recorded)."""

    name: str
    release_date: str | None = None
    assembly: str | None = None
    source_kind: str | None = None
    source_sha256: str | None = None
    snapshot_sha256: str | None = None


@dataclass(frozen=True)
class TimelinePoint:
    """The variant in one snapshot. `classification` None means absent from that snapshot."""

    snapshot: str
    release_date: str | None
    classification: str | None
    tier: str | None = None
    stars: int | None = None


@dataclass(frozen=True, kw_only=True)
class ChangeCard:
    """One change for one carried variant. Text fields are None when the snapshot does not record
    them; the page then says "not recorded" or "unknown", never a guess."""

    chrom: str
    pos: int
    ref: str
    alt: str
    change: str
    priority: str
    gene: str | None = None
    hgvs: str | None = None
    consequence: str | None = None
    conditions: str | None = None  # CLNDN text, '|' between conditions
    before: str | None = None
    after: str | None = None
    tier_before: str | None = None
    tier_after: str | None = None
    stars_before: int | None = None
    stars_after: int | None = None
    review_before: str | None = None
    review_after: str | None = None
    conflicts: str | None = None  # CLNSIGCONF text of the after-snapshot
    last_evaluated: str | None = None
    zygosity: str | None = None
    filter: str | None = None  # the patient's VCF FILTER column
    variation_id: str | None = None
    timeline: Sequence[TimelinePoint] = ()

    def __post_init__(self) -> None:
        # a tuple, so that a card is hashable (rendered cards are cached by card)
        object.__setattr__(self, "timeline", tuple(self.timeline))


@dataclass(frozen=True, kw_only=True)
class PatientReport:
    """Everything one patient's report shows; cards in the order given (most urgent first)."""

    patient_id: str
    sample: str | None
    source_file: str | None
    assembly: str | None
    from_snapshot: SnapshotRef
    to_snapshot: SnapshotRef
    min_priority: str
    cards: Sequence[ChangeCard]
    counts_by_priority: Mapping[str, int]
    tool_version: str
    command: str
    generated_at: str
    notes: Sequence[str] = field(default_factory=tuple)


def clinvar_url(variation_id: object) -> str | None:
    """The ClinVar record of a Variation ID, only for an id of ASCII digits (anything else would
    be a link built from untrusted text)."""
    if variation_id is None:
        return None
    text = str(variation_id).strip()
    if not _VARIATION_ID.fullmatch(text):
        return None
    return CLINVAR_VARIATION_URL.format(text)


# ------------------------------------------------------------------ timeline geometry

TL_WIDTH = 640
_TL_MARGIN = 48
# Below this spacing (px in the 640-wide viewBox) horizontal dates (about 60 px at 10 px) would
# touch, so they are turned 45 degrees; 24 points leave 24 px, i.e. 17 px between turned lines.
_TL_ROTATE_BELOW = 72
_TL_CHAR_PX = 6.0  # width of one 10 px character, for placing class labels without overlap
_KNOWN_TIERS = {"pathogenic", "uncertain", "benign", "conflicting", "other"}


@dataclass(frozen=True)
class _Dot:
    x: float
    state: str  # a tier, "absent" or "unknown": the CSS class
    label: str | None  # class abbreviation, shown where the class changes and there is room
    label_y: int
    date: str
    title: str
    endpoint: bool  # the report's from/to snapshot


@dataclass(frozen=True)
class _Segment:
    x1: float
    x2: float
    dashed: bool


@dataclass(frozen=True)
class _Timeline:
    dots: Sequence[_Dot]
    segments: Sequence[_Segment]
    height: int
    rotated: bool
    date_y: int
    summary: str


def _dot_state(point: TimelinePoint) -> str:
    if point.classification is None:
        return "absent"
    tier = (point.tier or "").lower()
    return tier if tier in _KNOWN_TIERS else "unknown"


def _dot_abbrev(point: TimelinePoint) -> str:
    return "absent" if point.classification is None else words.classification_abbrev(
        point.classification)


def _dot_title(point: TimelinePoint) -> str:
    date = point.release_date or "release date not recorded"
    if point.classification is None:
        return f"{point.snapshot} ({date}): absent from this snapshot"
    cls = words.classification_words(point.classification)
    return f"{point.snapshot} ({date}): {cls}, {words.stars_text(point.stars)}"


def _xs(n: int) -> list[float]:
    if n == 1:
        return [TL_WIDTH / 2]
    step = (TL_WIDTH - 2 * _TL_MARGIN) / (n - 1)
    return [_TL_MARGIN + i * step for i in range(n)]


def _place_labels(xs: list[float], labels: list[str]) -> list[tuple[str | None, int]]:
    """A class label where the class changes, on the first of two rows where it fits."""
    row_ys = (30, 16)
    row_end = [float("-inf"), float("-inf")]
    placed: list[tuple[str | None, int]] = []
    previous = None
    for x, label in zip(xs, labels, strict=True):
        if label == previous:
            placed.append((None, row_ys[0]))
            continue
        previous = label
        half = len(label) * _TL_CHAR_PX / 2 + 2
        for row, y in enumerate(row_ys):
            if x - half > row_end[row]:
                row_end[row] = x + half
                placed.append((label, y))
                break
        else:  # no room: colour and tooltip still say it
            placed.append((None, row_ys[0]))
    return placed


def build_timeline(points: Sequence[TimelinePoint], endpoints: tuple[str, str]) -> _Timeline:
    """Geometry of one timeline (the template only draws it)."""
    xs = _xs(len(points)) if points else []
    rotated = len(points) > 1 and (xs[1] - xs[0]) < _TL_ROTATE_BELOW
    labels = _place_labels(xs, [_dot_abbrev(p) for p in points])
    dots = [
        _Dot(x=round(x, 1), state=_dot_state(p), label=label, label_y=label_y,
             date=p.release_date or "date ?", title=_dot_title(p),
             endpoint=p.snapshot in endpoints)
        for x, p, (label, label_y) in zip(xs, points, labels, strict=True)
    ]
    segments = [_Segment(a.x, b.x, "absent" in (a.state, b.state))
                for a, b in zip(dots, dots[1:], strict=False)]
    summary = "; ".join(d.title for d in dots)
    return _Timeline(dots=dots, segments=segments, height=112 if rotated else 80,
                     rotated=rotated, date_y=62 if rotated else 70, summary=summary)


# ------------------------------------------------------------------ what the template reads


@dataclass(frozen=True)
class _Side:
    words: str
    abbrev: str
    state: str
    review: str
    stars: str
    glyphs: str


@dataclass(frozen=True)
class _CardView:
    priority: str
    priority_label: str
    change_label: str
    gene: str
    gene_known: bool
    hgvs: str
    consequence: str
    location: str
    conditions: Sequence[str]
    before: _Side
    after: _Side
    show_conflicts: bool
    conflicts: Sequence[tuple[str, str]]
    last_evaluated: str
    zygosity: str
    filter_text: str
    filter_failed: bool
    reason: str
    variation_id: str
    clinvar_url: str | None
    timeline: _Timeline


_LONG_ALLELE = 24


def _allele(seq: str) -> str:
    if len(seq) <= _LONG_ALLELE:
        return seq
    return f"{seq[:10]}...({len(seq)} bp)"


def _missing_side(change: str, side: str) -> str:
    kind = change.strip().lower()
    if side == "before" and kind == "new":
        return "absent from the earlier snapshot"
    if side == "after" and kind == "gone":
        return "absent from the newer snapshot"
    return words.NOT_RECORDED


def _side(card: ChangeCard, side: str) -> _Side:
    term = card.before if side == "before" else card.after
    tier = card.tier_before if side == "before" else card.tier_after
    stars = card.stars_before if side == "before" else card.stars_after
    review = card.review_before if side == "before" else card.review_after
    if term is None:
        state = "absent" if "absent" in _missing_side(card.change, side) else "unknown"
    else:
        state = (tier or "").lower() if (tier or "").lower() in _KNOWN_TIERS else "unknown"
    return _Side(
        words=words.classification_words(term, missing=_missing_side(card.change, side)),
        abbrev=words.classification_abbrev(term),
        state=state,
        review=words.review_words(review, missing="review status not recorded"),
        stars=words.stars_text(stars),
        glyphs=words.stars_glyphs(stars),
    )


def _card_view(card: ChangeCard, endpoints: tuple[str, str]) -> _CardView:
    priority = card.priority.strip().lower()
    show_conflicts = ((card.tier_after or "").lower() == "conflicting"
                      or card.change.strip().lower() == "conflict")
    return _CardView(
        priority=priority if priority in ("high", "medium", "low") else "unknown",
        priority_label=words.priority_words(card.priority),
        change_label=words.change_words(card.change),
        gene=card.gene.strip() if card.gene and card.gene.strip() else "Gene not recorded",
        gene_known=bool(card.gene and card.gene.strip()),
        hgvs=card.hgvs if card.hgvs and card.hgvs.strip() else "HGVS not recorded",
        consequence=words.consequence_words(card.consequence,
                                            missing="consequence not recorded"),
        location=f"{card.chrom}:{card.pos} {_allele(card.ref)}>{_allele(card.alt)}",
        conditions=words.condition_list(card.conditions),
        before=_side(card, "before"),
        after=_side(card, "after"),
        show_conflicts=show_conflicts,
        conflicts=[(term, words.submissions_text(n))
                   for term, n in words.conflict_breakdown(card.conflicts)],
        last_evaluated=card.last_evaluated or words.NOT_RECORDED,
        zygosity=words.zygosity_words(card.zygosity),
        filter_text=words.filter_words(card.filter),
        filter_failed=words.filter_failed(card.filter),
        reason=words.priority_reason(card.change, card.priority, card.tier_before,
                                     card.tier_after, card.stars_before, card.stars_after,
                                     before=card.before, after=card.after),
        variation_id=(str(card.variation_id).strip() if card.variation_id is not None
                      else words.NOT_RECORDED),
        clinvar_url=clinvar_url(card.variation_id),
        timeline=build_timeline(card.timeline, endpoints),
    )


def _counts(report: PatientReport) -> list[tuple[str, str, int]]:
    """(css class, label, count): high, medium, low first, then anything else given."""
    order = ["high", "medium", "low"]
    keys = order + sorted(k for k in report.counts_by_priority if k.lower() not in order)
    lowered = {k.lower(): v for k, v in report.counts_by_priority.items()}
    return [(k if k in order else "unknown", words.priority_words(k), lowered.get(k.lower(), 0))
            for k in keys]


# ------------------------------------------------------------------ rendering


def css_string(text: object) -> str:
    """`text` as a quoted CSS string in which every character but ASCII letters and digits is a
    hex escape: nothing can close the string, the rule or the <style> element."""
    out = []
    for ch in str(text):
        if ch.isascii() and ch.isalnum():
            out.append(ch)
        else:
            out.append(f"\\{ord(ch):x} ")
    return '"' + "".join(out) + '"'


def _resource(name: str) -> str:
    from importlib.resources import files

    return (files(TEMPLATE_PACKAGE) / TEMPLATE_DIR / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    import jinja2
    from markupsafe import Markup

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_resource),
        autoescape=True,  # every input string is escaped unless marked safe here
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # css_string's output is letters, digits, backslashes, spaces and two quotes: safe in HTML.
    env.filters["css_string"] = lambda value: Markup(css_string(value))
    return env


# Distinct cards kept rendered: a nightly run's pages repeat the same changes (the same
# variant, change and zygosity in many patients: 142 distinct cards on 529,003 in the bench's
# 10,000 exomes). A card is 6 KB with 2 releases in its timeline and 137 KB with 104 (two
# years of weekly releases): 1,000 bound a page worker's cache to about 140 MB.
CARD_CACHE = 1_000


@lru_cache(maxsize=CARD_CACHE)
def _card_html(card: ChangeCard, endpoints: tuple[str, str]) -> tuple[str, Markup]:
    """(priority CSS class, the card's inner HTML, escaped by the card template)."""
    from markupsafe import Markup

    view = _card_view(card, endpoints)
    html = _environment().get_template(CARD_TEMPLATE).render(c=view, na=words.NOT_RECORDED)
    return view.priority, Markup(html)  # rendered with autoescaping: safe to insert


def render_html(report: PatientReport) -> str:
    """The whole report as one self-contained HTML document."""
    from markupsafe import Markup

    endpoints = (report.from_snapshot.name, report.to_snapshot.name)
    cards = [(i, *_card_html(c, endpoints)) for i, c in enumerate(report.cards, start=1)]
    template = _environment().get_template(TEMPLATE)
    return template.render(
        r=report,
        cards=cards,
        counts=_counts(report),
        legend=words.ABBREVIATION_LEGEND,
        tiers=[("pathogenic", "Pathogenic tier"), ("uncertain", "Uncertain significance"),
               ("benign", "Benign tier"), ("conflicting", "Conflicting"),
               ("other", "Other"), ("absent", "Absent from snapshot")],
        min_priority=words.priority_words(report.min_priority).lower(),
        na=words.NOT_RECORDED,
        # trusted package data, not input: the stylesheet ships with the tool
        stylesheet=Markup(_resource(STYLESHEET)),
    )


def screenshot_png(browser: Browser, html: str, *, width: int = 1000) -> bytes:
    """A full-page PNG of `html` in an open Chromium, offline: any request is refused."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    try:
        page.route("**/*", lambda route: route.abort())
        page.set_content(html, wait_until="load")
        return page.screenshot(full_page=True, type="png")
    finally:
        page.close()


@contextlib.contextmanager
def launched_chromium(pw: Any, chromium: Path = CHROMIUM) -> Iterator[Any]:
    """Headless Chromium with a throwaway profile: its config and cache folders (Crash
    Reports...) go to a temporary folder, never to the user's XDG folders."""
    import os
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vri-chromium-") as home:
        env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": f"{home}/config",
               "XDG_CACHE_HOME": f"{home}/cache"}
        browser = pw.chromium.launch(executable_path=str(chromium), args=list(CHROMIUM_ARGS),
                                     env=env)
        try:
            yield browser
        finally:
            browser.close()


def save_screenshot(html: str, png_path: Path, *, width: int = 1000,
                    chromium: Path = CHROMIUM) -> Path:
    """Write a full-page PNG of `html` taken with headless Chromium (for the README picture).
    Raises EnvironmentIOError when Chromium or the playwright package is missing."""
    if not chromium.exists():
        raise EnvironmentIOError(chromium, "headless Chromium is not installed "
                                 "(apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise EnvironmentIOError("playwright", "the Python package is not installed "
                                 "(pip install playwright)") from None
    with sync_playwright() as pw, launched_chromium(pw, chromium) as browser:
        png = screenshot_png(browser, html, width=width)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.write_bytes(png)
    return png_path
