"""The book as a reader gets it: it builds with no warnings, and its pages work in a real browser offline.

One build of a copy of ``book/`` (``jupyter-book build -W -n --keep-going``) is shared by every test here.
The built site is served on 127.0.0.1 and each page (the home page, every other page of ``_toc.yml`` and
every page built under ``chapters/``) is opened once in headless Chromium, which resolves no other host.
The tests then check that the page shows its title, that MathJax (shipped with the book) typeset its
math, that every image loaded and has a caption or alt text, that the console logged no error, and that
nothing was requested from another host. A screenshot of each page is saved under
``test-output/screenshots/``.

Chromium and its driver come from Debian (``apt-get install chromium chromium-driver``; ``.ci/run``
installs them). Without them the browser tests skip, unless ``ROOTS_REQUIRE_BROWSER`` is set, as CI
sets it: then they fail. ``ROOTS_BOOK_DIR`` points the build at another book folder (for development).
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import yaml

from pipelines.publish import jupyter_book_command

ROOT = Path(__file__).resolve().parent.parent
BOOK = Path(os.environ.get("ROOTS_BOOK_DIR") or ROOT / "book")
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1280,900",
                  # no host name resolves but this machine's: the site must work with no network, and
                  # a page that still points elsewhere fails at once instead of reaching out
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1")
PAGE_TIMEOUT_S = 60

pytestmark = pytest.mark.slow


# --- the build ----------------------------------------------------------------------------------

@dataclass
class Build:
    html: Path
    returncode: int
    output: str
    seconds: float


@pytest.fixture(scope="session")
def built_book(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """A copy of the book (sources only) built the strict way, as a reader's site would be."""
    if not (BOOK / "_config.yml").is_file():
        raise AssertionError(f"{BOOK} is not a Jupyter Book folder (no _config.yml)")
    book = tmp_path_factory.mktemp("site") / "book"
    shutil.copytree(BOOK, book, ignore=lambda folder, names: [n for n in names if Path(folder) == BOOK
                                                              and (n == "_build" or n.startswith("."))])
    command = [*jupyter_book_command(), "build", "-W", "-n", "--keep-going", str(book)]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=book.parent, check=False)
    output = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # Sphinx colours even a pipe
    return Build(book / "_build" / "html", result.returncode, output, time.perf_counter() - start)


def test_the_book_builds_with_no_warnings(built_book: Build):
    warnings = [line for line in built_book.output.splitlines() if "WARNING" in line]
    shown = warnings[:40] + ([f"... and {len(warnings) - 40} more"] if len(warnings) > 40 else [])
    assert built_book.returncode == 0 and not warnings, (
        f"jupyter-book build -W -n --keep-going exited {built_book.returncode} with {len(warnings)} warning(s):\n"
        + "\n".join(shown or built_book.output.splitlines()[-30:]))
    assert (built_book.html / "index.html").is_file()


def test_the_site_ships_mathjax_and_links_nothing_offsite(built_book: Build):
    assert (built_book.html / "_static" / "mathjax" / "tex-mml-chtml.js").is_file(), "MathJax was not copied"
    offsite = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=\"(?:https?:)?//[^\"]*\"", re.IGNORECASE)
    found = {page.relative_to(built_book.html).as_posix(): offsite.findall(page.read_text(encoding="utf-8"))
             for page in built_book.html.rglob("*.html")}
    found = {page: tags for page, tags in found.items() if tags}
    assert not found, f"pages load assets from other hosts: {found}"


def test_mathjax_path_must_name_a_shipped_file():
    """The extension refuses a CDN address or a file MathJax does not have, naming the problem."""
    from types import SimpleNamespace

    from sphinx.errors import ConfigError

    # no __pycache__ in book/: publishing takes a source newer than the built site as a reason to rebuild
    sys.path.insert(0, str(ROOT / "book" / "_ext"))
    sys.dont_write_bytecode, before = True, sys.dont_write_bytecode
    try:
        import offline_mathjax
    finally:
        sys.path.remove(str(ROOT / "book" / "_ext"))
        sys.dont_write_bytecode = before
    offline_mathjax.check_mathjax_path(None, SimpleNamespace(mathjax_path="mathjax/tex-mml-chtml.js"))
    for wrong in ("https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js", "mathjax/no-such-file.js",
                  "tex-mml-chtml.js"):
        with pytest.raises(ConfigError, match="mathjax_path"):
            offline_mathjax.check_mathjax_path(None, SimpleNamespace(mathjax_path=wrong))


# --- serving and browsing -----------------------------------------------------------------------

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # the base class's signature
        pass


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """``folder`` over HTTP on 127.0.0.1 (a free port), from a thread; yields the base URL."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=folder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        message = ("Debian's chromium and chromium-driver are not installed "
                   "(apt-get install -y chromium chromium-driver)")
        if os.environ.get("ROOTS_REQUIRE_BROWSER"):
            pytest.fail(message + "; ROOTS_REQUIRE_BROWSER is set, so the browser tests may not skip")
        pytest.skip(message + "; set ROOTS_REQUIRE_BROWSER=1 to make this a failure")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # Both paths given, so Selenium never runs its manager (which would try to download a driver).
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    session.set_page_load_timeout(PAGE_TIMEOUT_S)
    session.set_script_timeout(PAGE_TIMEOUT_S)
    try:
        yield session
    finally:
        session.quit()


# Run in the page once it has loaded: load lazy images, wait for MathJax, then describe the page.
INSPECT_PAGE = r"""
const done = arguments[arguments.length - 1];
const settle = (img) => img.complete ? Promise.resolve()
  : new Promise((ok) => { img.addEventListener('load', ok); img.addEventListener('error', ok); });
(async () => {
  const images = Array.from(document.images);
  images.forEach((img) => { img.loading = 'eager'; });
  await Promise.race([Promise.all(images.map(settle)), new Promise((ok) => setTimeout(ok, 30000))]);
  let mathjax = 'absent';
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
    try { await MathJax.startup.promise; mathjax = 'typeset'; } catch (e) { mathjax = 'failed: ' + e; }
  }
  const main = document.querySelector('article') || document.querySelector('main') || document.body;
  const heading = main.querySelector('h1');
  done({
    title: document.title,
    heading: heading ? heading.innerText.replace(/[#\u00b6]\s*$/, '').trim() : '',
    headingShown: heading ? heading.getBoundingClientRect().height > 0 : false,
    mathjax: mathjax,
    typeset: document.querySelectorAll('mjx-container').length,
    images: images.map((img) => {
      const figure = img.closest('figure');
      const caption = figure && figure.querySelector('figcaption');
      return {src: img.currentSrc || img.src, alt: (img.getAttribute('alt') || '').trim(),
              loaded: img.complete && img.naturalWidth > 0, inMain: main.contains(img),
              caption: caption ? caption.innerText.trim() : ''};
    }),
    resources: performance.getEntriesByType('resource').map((entry) => entry.name),
  });
})();
"""


@dataclass
class PageReport:
    name: str
    url: str
    has_math: bool
    facts: dict = field(default_factory=dict)
    severe: list[str] = field(default_factory=list)
    screenshot: Path | None = None


def page_has_math(html_file: Path) -> bool:
    """Sphinx marks every equation (inline or display, from markdown or a notebook output) with class math."""
    return re.search(r"class=\"[^\"]*\bmath\b", html_file.read_text(encoding="utf-8")) is not None


def inspect_page(browser, base_url: str, html_file: Path, site: Path, name: str,
                 screenshots: Path | None) -> PageReport:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what an earlier page left
    browser.get(base_url + html_file.relative_to(site).as_posix())
    # index.html redirects to the root page: wait until a page with a heading has finished loading,
    # then judge the page the reader ended on
    WebDriverWait(browser, PAGE_TIMEOUT_S).until(lambda b: b.execute_script(
        "return document.readyState === 'complete' && document.querySelector('h1') !== null"))
    url = browser.current_url
    shown = site / unquote(urlparse(url).path).lstrip("/")
    report = PageReport(name, url, shown.is_file() and page_has_math(shown))
    report.facts = browser.execute_async_script(INSPECT_PAGE)
    report.severe = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    if screenshots is not None:
        screenshots.mkdir(parents=True, exist_ok=True)
        report.screenshot = screenshots / f"{name}.png"
        browser.save_screenshot(str(report.screenshot))
    return report


def toc_files(entry) -> list[str]:
    """Every page a table of contents names (``root`` and each ``file``), however deeply nested."""
    if isinstance(entry, list):
        return [name for item in entry for name in toc_files(item)]
    if not isinstance(entry, dict):
        return []
    own = [str(entry[key]) for key in ("root", "file") if key in entry]
    return own + [name for value in entry.values() for name in toc_files(value)]


def page_name(page: str) -> str:
    """``chapters/01_representation(.ipynb)`` -> ``chapters_01_representation``: fit for a file name."""
    return "_".join(Path(re.sub(r"\.(ipynb|md|html)$", "", page)).parts)


def site_pages(site: Path, toc: dict) -> dict[str, Path]:
    """The home page, every other page of the table of contents, and every page built under chapters/."""
    root = page_name(str(toc.get("root", "")))
    pages = {"index": site / "index.html"}  # redirects to the root page
    built = {page_name(page.relative_to(site).as_posix()): page for page in sorted(site.rglob("*.html"))}
    for name in [page_name(file) for file in toc_files(toc)] + sorted(n for n in built if n.startswith("chapters_")):
        if name != root and name in built:
            pages[name] = built[name]
    return pages


@pytest.fixture(scope="module")
def page_reports(built_book: Build, browser, request: pytest.FixtureRequest) -> list[PageReport]:
    # --keep-going writes the site even when the build warned: check the pages all the same
    if not (built_book.html / "index.html").is_file():
        pytest.fail(f"the build wrote no site (exit {built_book.returncode}):\n{built_book.output[-3000:]}")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    start = time.perf_counter()
    with serve(built_book.html) as base_url:
        pages = site_pages(built_book.html, yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8")))
        reports = [inspect_page(browser, base_url, page, built_book.html, name, SCREENSHOTS)
                   for name, page in pages.items()]
    terminal = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if terminal is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown even though pytest captures output
            terminal.write_line(f"\nbook site: built in {built_book.seconds:.0f} s; {len(reports)} page(s) checked "
                                f"in Chromium in {time.perf_counter() - start:.0f} s; screenshots in {SCREENSHOTS}")
    return reports


# --- what a page must satisfy (each returns the problems it found; tested below on a broken page) --

def title_problems(report: PageReport) -> list[str]:
    facts = report.facts
    if not (facts["heading"] and facts["headingShown"]):
        return ["no visible h1 heading"]
    if facts["heading"] not in facts["title"]:
        return [f"the window title {facts['title']!r} does not name the page {facts['heading']!r}"]
    return []


def math_problems(report: PageReport) -> list[str]:
    if not report.has_math:
        return []
    if report.facts["mathjax"] != "typeset":
        return [f"the page has math but MathJax is {report.facts['mathjax']}"]
    return [] if report.facts["typeset"] > 0 else ["MathJax ran but typeset no equation"]


def image_problems(report: PageReport) -> list[str]:
    return [f"image did not load: {image['src']}" for image in report.facts["images"] if not image["loaded"]]


def describes(alt: str, src: str) -> bool:
    """docutils uses an image's path as its alt text when none was given: that describes nothing."""
    return bool(alt) and Path(alt).name != Path(urlparse(src).path).name


def caption_problems(report: PageReport) -> list[str]:
    return [f"image has neither alt text nor a caption: {image['src']}" for image in report.facts["images"]
            if image["inMain"] and not describes(image["alt"], image["src"]) and not image["caption"]]


def console_problems(report: PageReport) -> list[str]:
    return [f"console error: {message}" for message in report.severe]


def offsite_problems(report: PageReport) -> list[str]:
    origin = "{0.scheme}://{0.netloc}/".format(urlparse(report.url))
    return [f"requested from elsewhere: {url}" for url in report.facts["resources"]
            if not url.startswith((origin, "data:", "blob:"))]


def problems_by_page(reports: list[PageReport], check) -> str:
    """What ``check`` found on each page, one line per problem ("" when none)."""
    return "\n".join(f"{report.name}: {problem}" for report in reports for problem in check(report))


def test_every_page_is_visited(page_reports: list[PageReport]):
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text(encoding="utf-8"))
    expected = {page_name(file) for file in toc_files(toc)} - {page_name(str(toc["root"]))} | {"index"}
    missing = expected - {report.name for report in page_reports}
    assert not missing, f"_toc.yml lists pages the site lacks: {sorted(missing)}"
    assert all(report.screenshot and report.screenshot.stat().st_size > 0 for report in page_reports)


def test_every_page_shows_its_title(page_reports: list[PageReport]):
    assert not (found := problems_by_page(page_reports, title_problems)), "\n" + found


def test_math_is_typeset_by_the_shipped_mathjax(page_reports: list[PageReport]):
    assert not (found := problems_by_page(page_reports, math_problems)), "\n" + found


def test_every_image_loads(page_reports: list[PageReport]):
    assert not (found := problems_by_page(page_reports, image_problems)), "\n" + found


def test_every_image_has_a_caption_or_alt_text(page_reports: list[PageReport]):
    assert not (found := problems_by_page(page_reports, caption_problems)), "\n" + found


def test_the_console_shows_no_errors(page_reports: list[PageReport]):
    assert not (found := problems_by_page(page_reports, console_problems)), "\n" + found


def test_nothing_is_requested_from_another_host(page_reports: list[PageReport]):
    assert not (found := problems_by_page(page_reports, offsite_problems)), "\n" + found


# --- the checks catch a broken page -------------------------------------------------------------

def tiny_png() -> bytes:
    """A valid 1x1 green PNG, written by hand so the test needs no image library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00\xff\x00")) \
        + chunk(b"IEND", b"")


BROKEN_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Somewhere else</title></head>
<body><article><h1>A broken page</h1>
<p>Math no MathJax will typeset: <span class="math notranslate nohighlight">\\(x^2\\)</span></p>
<img src="missing.png" alt="a plot that is not there">
<img src="plot.png">
<img src="plot.png?path-as-alt" alt="plot.png">
<figure><img src="plot.png?captioned"><figcaption>A described plot</figcaption></figure>
<img src="plot.png?described" alt="A green dot">
<img src="http://localhost:{port}/plot.png?offsite" alt="A green dot from another origin">
<script>console.error("a script failed");</script>
</article></body></html>
"""


def test_the_checks_find_what_is_wrong_with_a_broken_page(browser, tmp_path: Path):
    (tmp_path / "plot.png").write_bytes(tiny_png())
    with serve(tmp_path) as base_url:
        port = urlparse(base_url).port
        (tmp_path / "page.html").write_text(BROKEN_PAGE.format(port=port), encoding="utf-8")
        report = inspect_page(browser, base_url, tmp_path / "page.html", tmp_path, "broken", None)
    assert title_problems(report) == [
        "the window title 'Somewhere else' does not name the page 'A broken page'"]
    assert math_problems(report) == ["the page has math but MathJax is absent"]
    assert image_problems(report) == [f"image did not load: {base_url}missing.png"]
    assert caption_problems(report) == [f"image has neither alt text nor a caption: {base_url}plot.png",
                                        f"image has neither alt text nor a caption: {base_url}plot.png?path-as-alt"]
    assert any("a script failed" in problem for problem in console_problems(report))
    assert any("missing.png" in problem for problem in console_problems(report))  # the 404
    assert offsite_problems(report) == [f"requested from elsewhere: http://localhost:{port}/plot.png?offsite"]
