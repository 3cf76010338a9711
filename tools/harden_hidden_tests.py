"""Rewrite hidden-test calls in solutions/*/*.py to the tamper-resistant form.

    check("name", fn, hidden=True)
becomes
    from grader_tests.sandbox import check_isolated  # fresh import: a redefined `check` cannot interfere
    check_isolated("name", fn)

Idempotent; run by the maintainer after writing a notebook (the build test fails otherwise).
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PATTERN = re.compile(r'^(?P<indent>[ \t]*)check\((?P<args>"[^"]+",\s*[^\n]*?),\s*hidden=True\)\s*$', re.M)
IMPORT = "from grader_tests.sandbox import check_isolated  # fresh import: a redefined `check` cannot interfere"


def harden(text: str) -> str:
    def repl(m):
        return f"{m.group('indent')}{IMPORT}\n{m.group('indent')}check_isolated({m.group('args')})"

    return PATTERN.sub(repl, text)


def main() -> int:
    changed = 0
    for path in sorted((ROOT / "solutions").glob("*/*.py")):
        text = path.read_text()
        new = harden(text)
        if new != text:
            path.write_text(new)
            changed += 1
            print(f"hardened {path.relative_to(ROOT)}")
    return 0 if changed >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
