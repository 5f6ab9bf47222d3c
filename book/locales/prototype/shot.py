"""Open pages of the built site in headless Chromium (Debian's chromium + chromedriver, via selenium),
wait for MathJax, report per page: title, math typeset, images loaded, language link, console errors;
optionally screenshot an element found by its text.

    python shot.py SITE PAGE[#TEXT] ...      e.g.  python shot.py book/_build/html zh/intro "zh/chapters/02_optimization#计数还可以"

The site is served on 127.0.0.1 (a file:// page cannot load MathJax's components in every browser).
"""

from __future__ import annotations

import functools
import http.server
import sys
import threading
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def serve(root: Path) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler = type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a, **k: None})
    handler = functools.partial(handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def main(site: Path, pages: list[str]) -> int:
    server, port = serve(site)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,900",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    out = Path("shots")
    out.mkdir(exist_ok=True)
    bad = 0
    try:
        for spec in pages:
            page, _, text = spec.partition("#")
            driver.get(f"http://127.0.0.1:{port}/{page}.html")
            deadline = time.time() + 30
            while time.time() < deadline:
                done = driver.execute_script(
                    "return !window.MathJax || (MathJax.startup && MathJax.startup.promise"
                    " && (window.__mjDone || (MathJax.startup.promise.then(()=>{window.__mjDone=true}), false)));")
                if done:
                    break
                time.sleep(0.3)
            info = driver.execute_script("""
                const imgs=[...document.querySelectorAll('article img')];
                const link=document.querySelector('a.roots-language-link');
                return {title: document.title, lang: document.documentElement.lang,
                        math: document.querySelectorAll('mjx-container').length,
                        raw_math: [...document.querySelectorAll('.math')].filter(e=>!e.querySelector('mjx-container')).length,
                        images: imgs.length, broken: imgs.filter(i=>!(i.complete && i.naturalWidth>0)).length,
                        link: link ? link.getAttribute('href') + ' ' + link.textContent.trim() : null};""")
            errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
            ok = info["title"] and not info["raw_math"] and not info["broken"] and info["link"] and not errors
            bad += not ok
            print(f"{'OK ' if ok else 'BAD'} {page}: {info} errors={errors[:2]}")
            name = page.replace("/", "_")
            if text:
                element = driver.find_element(By.XPATH, f"//p[contains(., '{text}')]")
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
                time.sleep(0.5)
                driver.save_screenshot(str(out / f"{name}_{len(text)}.png"))
            else:
                driver.save_screenshot(str(out / f"{name}.png"))
    finally:
        driver.quit()
        server.shutdown()
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2:]))
