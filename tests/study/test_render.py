"""The CPU study's report as a reader sees it: headless Chromium at 1400×1000 shows the answer without scrolling."""

import base64
import re
import shutil
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.study.headline import VERDICT_BY_WORD

REPO = Path(__file__).resolve().parents[2]
STUDY_RUNS = sorted((REPO / "docs" / "cpu_study" / "runs").glob("*"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FOLD = (1400, 1000)
# Written into a copy of the page: where the headline block and its figure end, read back from the DOM.
PROBE = (
    "<script>window.addEventListener('load',()=>{const r=s=>document.querySelector(s).getBoundingClientRect();"
    "document.body.setAttribute('data-probe',[r('#headline').bottom,r('#headline-figure').bottom,r('#runs-table').top]"
    ".join(' '))})</script>"
)


class Page(HTMLParser):
    """Element ids in document order and each <img> with the id of the section it sits in."""

    def __init__(self):
        super().__init__()
        self.ids, self.imgs, self.section = [], [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        if tag == "section":
            self.section = a.get("id")
        if tag == "img":
            self.imgs.append((self.section, a.get("src", "")))

    def handle_endtag(self, tag):
        if tag == "section":
            self.section = None


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The committed CPU study's report, regenerated from its committed runs."""
    from app.study.report import build_report

    out = tmp_path_factory.mktemp("report")
    build_report(STUDY_RUNS, out, "GSM8K SFT study, CPU scale (SmolLM2-135M)", note=lambda *_: None)
    return out


def chromium(*args: str) -> subprocess.CompletedProcess:
    size = f"--window-size={FOLD[0]},{FOLD[1]}"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", size, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_the_headline_block_comes_first_and_its_figure_is_inlined(report):
    page, page_html = Page(), (report / "report.html").read_text()
    page.feed(page_html)
    assert page.ids.index("headline") < page.ids.index("headline-figure") < page.ids.index("runs-table")
    headline_imgs = [src for section, src in page.imgs if section == "headline"]
    assert len(headline_imgs) == 1
    block = page_html.split("<section id='headline'>")[1].split("</section>")[0]
    verdicts = re.findall(r"<div class='crit'><h2><span class='badge (v-\w+)'>([^<]+)</span>", block)
    assert len(verdicts) == 3 and all(word.split(" ", 1)[1] in VERDICT_BY_WORD for _, word in verdicts)
    for _, src in page.imgs:  # every figure in the page decodes to a PNG
        assert png_size(base64.b64decode(src.removeprefix("data:image/png;base64,")))[0] > 100
    md = (report / "report.md").read_text()
    assert md.index("## The answer") < md.index("format.png") < md.index("## Runs")
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):  # every image of report.md is a file beside it
        assert (report / name).is_file(), name


@pytest.mark.skipif(CHROMIUM is None, reason="needs headless Chromium (apt-get install chromium)")
def test_a_1400x1000_screenshot_shows_the_verdicts_and_the_format_figure(report, tmp_path):
    shot = tmp_path / "top.png"
    chromium(f"--screenshot={shot}", (report / "report.html").as_uri())
    assert png_size(shot.read_bytes()) == FOLD
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.std() > 0.1 and len({tuple(p) for p in pixels[::7, ::7, :3].reshape(-1, 3).tolist()}) > 50

    probe = tmp_path / "probe.html"
    probe.write_text((report / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    dom = chromium("--dump-dom", "--virtual-time-budget=5000", probe.as_uri()).stdout
    headline, figure, table = map(float, re.search(r'data-probe="([^"]+)"', dom).group(1).split())
    assert 0 < headline <= FOLD[1] and 0 < figure <= FOLD[1], (headline, figure)  # above the fold
    assert table >= headline  # the runs table starts below the answer
