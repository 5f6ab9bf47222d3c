"""Run Sphinx's own client-side search on the Chinese edition in headless Chromium: query -> result pages."""
import sys, time
from pathlib import Path
from shot import serve
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

site = Path(sys.argv[1]); queries = sys.argv[2:]
server, port = serve(site)
o = webdriver.ChromeOptions(); o.binary_location = "/usr/bin/chromium"
for f in ("--headless=new", "--no-sandbox", "--disable-gpu"): o.add_argument(f)
d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
try:
    for q in queries:
        d.get(f"http://127.0.0.1:{port}/zh/search.html?q={q}")
        for _ in range(40):
            items = d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
            status = d.find_elements(By.CSS_SELECTOR, "#search-results .search-summary")
            if status and status[0].text.strip():
                break
            time.sleep(0.25)
        items = d.find_elements(By.CSS_SELECTOR, "#search-results ul.search li")
        print(f"{q}: {len(items)} results:", [i.find_element(By.TAG_NAME, 'a').text[:30] for i in items[:4]])
finally:
    d.quit(); server.shutdown()
