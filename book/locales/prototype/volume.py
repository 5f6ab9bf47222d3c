"""Translation volume: English words of prose per page, from the .pot files (what a translator sees)."""
import re, sys
from pathlib import Path
from babel.messages.pofile import read_po
root = Path(sys.argv[1] if len(sys.argv) > 1 else "book/_build/gettext")
total = [0, 0, 0, 0]
print(f"{'page':40} {'messages':>8} {'words':>7} {'cjk-only':>8} {'no-words':>8}")
for pot in sorted(root.rglob("*.pot")):
    msgs = [m for m in read_po(pot.open("rb")) if m.id]
    words = cjk = empty = 0
    for m in msgs:
        t = re.sub(r"\{[a-z:]+\}`[^`]*`", " ", m.id)       # roles: {cite:p}`...`, {doc}`...`
        t = re.sub(r"`[^`]*`", " ", t)                       # inline code
        t = re.sub(r"\$[^$]*\$", " ", t)                     # inline math
        n = len(re.findall(r"[A-Za-z][A-Za-z'’-]*", t))
        if "\\" in m.id and not re.search(r"[a-z]{3,} [a-z]{3,}", t): n = 0   # display math
        words += n
        if n == 0:
            if re.search(r"[\u4e00-\u9fff]", m.id): cjk += 1
            else: empty += 1
    name = str(pot.relative_to(root).with_suffix(""))
    print(f"{name:40} {len(msgs):8} {words:7} {cjk:8} {empty:8}")
    for i, v in enumerate((len(msgs), words, cjk, empty)): total[i] += v
print(f"{'TOTAL':40} {total[0]:8} {total[1]:7} {total[2]:8} {total[3]:8}")
