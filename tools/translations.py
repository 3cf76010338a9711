"""Keep the gettext catalogues in step with the English sources (Babel does the merging).

    python tools/translations.py update ja    # add new English text, mark changed text fuzzy
    python tools/translations.py check ja     # list what is untranslated, fuzzy or stale

Two kinds of catalogue, both keyed by the English text:
  translations/<lang>/<zone>.po                  one per notebook: its markdown, paragraph by
                                                paragraph (a fenced block or $$ math stays whole)
  lib/attnlab/locale/<lang>/LC_MESSAGES/attnlab.po   every `tr("...")` / `N_("...")` message of
                                                the library, the graders and the notebooks' code,
                                                and the graders' hints and input labels
When an English paragraph changes, `update` keeps its old translation but marks it fuzzy: the
edition shows the English until a translator checks it, and `check` (a test) fails until then.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

import jupytext
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_file
from babel.messages.pofile import read_po, write_po
from cell_metadata import grade_ids

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
NOTEBOOK_LOCALE = ROOT / "translations"
LIBRARY_LOCALE = ROOT / "lib" / "attnlab" / "locale"
# Where the runtime messages live: the library, the graders, the notebooks' code cells.
MESSAGE_SOURCES = [ROOT / "lib" / "attnlab", ROOT / "grader_tests", SOLUTIONS]
KEYWORDS = {"tr": None, "N_": None}


def zones() -> list[Path]:
    return sorted(p for p in SOLUTIONS.glob("*/*.py") if p.stem == p.parent.name)


def markdown_blocks(text: str) -> list[str]:
    """Split markdown into paragraphs at blank lines, keeping ``` fences and $$ math whole."""
    blocks, current, fence = [], [], None
    for line in text.split("\n"):
        stripped = line.strip()
        if fence is None and not stripped:
            if current:
                blocks.append("\n".join(current))
                current = []
            continue
        current.append(line)
        if fence == "```":
            fence = None if stripped.startswith("```") else fence
        elif fence == "$$":
            fence = None if stripped.endswith("$$") else fence
        elif stripped.startswith("```"):
            fence = "```"
        elif stripped.startswith("$$") and (stripped == "$$" or not stripped.endswith("$$")):
            fence = "$$"
    if current:
        blocks.append("\n".join(current))
    return blocks


def translate_markdown(text: str, strings: dict[str, str]) -> str:
    """The markdown with each paragraph replaced by its translation (English where none)."""
    return "\n\n".join(strings.get(b, b) for b in markdown_blocks(text))


def notebook_template(py_path: Path) -> Catalog:
    """The catalogue of one notebook's prose, as the English source has it now."""
    nb = jupytext.reads(py_path.read_text(encoding="utf-8"), fmt="py:percent")
    template = Catalog(project=f"attnlab {py_path.stem}", fuzzy=False)
    for cell, where in zip(nb.cells, grade_ids(nb), strict=True):
        if cell.cell_type != "markdown":
            continue
        for block in markdown_blocks(cell.source):
            if block.strip():
                template.add(block, locations=[(f"{py_path.stem}.py#{where}", None)])
    return template


def message_template() -> Catalog:
    """The catalogue of every tr("...") / N_("...") message in the Python sources."""
    template = Catalog(project="attnlab", fuzzy=False)
    for base in MESSAGE_SOURCES:
        for path in sorted(base.rglob("*.py")):
            if "locale" in path.parts:
                continue
            for lineno, message, comments, _context in extract_from_file(
                "python", str(path), keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
            ):
                if isinstance(message, str) and message:
                    template.add(
                        message,
                        locations=[(str(path.relative_to(ROOT)), lineno)],
                        auto_comments=comments,
                    )
    for message, where in grader_messages():
        if message not in template:
            template.add(message, locations=[(where, None)])
    return template


def grader_messages() -> list[tuple[str, str]]:
    """(message, where) for every catalogued mistake's hint and every input's label: data of
    the exercise registry, translated where they are shown (grader_tests/checking.py)."""
    from grader_tests import REGISTRY  # registers every exercise

    found = []
    for name, ex in REGISTRY.items():
        found += [(m.hint, f"grader_tests:{name}:{m.name}") for m in ex.mutants]
        found += [(case.label, f"grader_tests:{name}:case") for case in ex.cases()]
    import attnlab  # the quiz's explanations, shown by its graders (grader_tests/exercises/quiz.py)

    for part, questions in attnlab.QUIZ.items():
        found += [(q.explanation, f"attnlab.QUIZ:{part}:{key}") for key, q in questions.items()]
    return found


def catalogues(lang: str) -> list[tuple[Path, Catalog]]:
    """(path of the .po, English template) for every catalogue of a language."""
    found = [(NOTEBOOK_LOCALE / lang / f"{z.stem}.po", notebook_template(z)) for z in zones()]
    found.append((LIBRARY_LOCALE / lang / "LC_MESSAGES" / "attnlab.po", message_template()))
    return found


def read_catalogue(path: Path, lang: str) -> Catalog:
    with open(path, "rb") as fh:
        return read_po(fh, locale=lang)


def write_catalogue(catalog: Catalog, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        write_po(
            fh,
            catalog,
            width=100,
            omit_header=False,
            sort_output=False,
            ignore_obsolete=True,
            include_previous=True,
        )


def update_catalogue(path: Path, template: Catalog, lang: str) -> Catalog:
    """Merge an English template into one .po: new messages added, a changed one kept with its
    old translation but marked fuzzy (Babel's fuzzy matching), a removed one dropped."""
    catalog = read_catalogue(path, lang) if path.exists() else Catalog(locale=lang, fuzzy=False)
    catalog.update(template, update_header_comment=False)
    catalog.project = template.project
    write_catalogue(catalog, path)
    return catalog


def update(lang: str) -> None:
    """Merge the English sources into every catalogue of the language."""
    for path, template in catalogues(lang):
        update_catalogue(path, template, lang)
        print(f"{path.relative_to(ROOT)}: {len(template)} messages")


# What a translation must carry over unchanged: code, mathematics, links, numbers, structure.
_CODE = re.compile(r"`[^`]+`")
_MATH = re.compile(r"\$\$.+?\$\$|\$[^$]+\$", re.S)
_LINK = re.compile(r"\]\(([^)]+)\)")
_TAG = re.compile(r"</?[a-zA-Z][^>]*>")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


def translation_problems(english: str, translated: str) -> list[str]:
    """Why a translation does not keep the English's code, maths, links, numbers or layout."""
    found = []
    for name, pattern in (("code", _CODE), ("maths", _MATH), ("links", _LINK), ("html", _TAG)):
        want, got = Counter(pattern.findall(english)), Counter(pattern.findall(translated))
        if want != got:
            found.append(
                f"{name} differs: missing {sorted((want - got).elements())}, "
                f"added {sorted((got - want).elements())}"
            )
    plain = lambda t: _TAG.sub(" ", _LINK.sub(" ", _MATH.sub(" ", _CODE.sub(" ", t))))
    missing = Counter(_NUMBER.findall(plain(english))) - Counter(_NUMBER.findall(plain(translated)))
    if missing:
        found.append(f"numbers missing: {sorted(missing.elements())}")
    for name, pattern in (
        ("heading", r"^#+ "),
        ("table row", r"^\|"),
        ("list item", r"^\s*(?:[-*]|\d+\.) "),
        ("code fence", r"^\s*```"),
        ("quote", r"^>"),
    ):
        if len(re.findall(pattern, english, re.M)) != len(re.findall(pattern, translated, re.M)):
            found.append(f"{name} count differs")
    if english.startswith("#") and english.split(" ")[0] != translated.split(" ")[0]:
        found.append("heading level differs")
    return found


_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def message_problems(english: str, translated: str) -> list[str]:
    """For a message the code formats: the same {placeholders}, and the same leading and
    trailing blank space (indents and line breaks the code's layout relies on)."""
    found = translation_problems(english, translated)
    if Counter(_PLACEHOLDER.findall(english)) != Counter(_PLACEHOLDER.findall(translated)):
        found.append(
            f"placeholders differ: {sorted(_PLACEHOLDER.findall(english))} vs "
            f"{sorted(_PLACEHOLDER.findall(translated))}"
        )
    lead = lambda t: t[: len(t) - len(t.lstrip())]
    trail = lambda t: t[len(t.rstrip()) :]
    if lead(english) != lead(translated) or trail(english) != trail(translated):
        found.append("leading or trailing spaces / line breaks differ")
    return found


def problems(lang: str) -> list[str]:
    """What stops the catalogues from matching the English sources, one line per message."""
    found = []
    for path, template in catalogues(lang):
        name = path.relative_to(ROOT)
        if not path.exists():
            found.append(f"{name}: missing (run: python tools/translations.py update {lang})")
            continue
        catalog = read_catalogue(path, lang)
        for message in template:
            if not message.id:
                continue
            entry = catalog.get(message.id)
            if entry is None:
                found.append(f"{name}: not in the catalogue: {message.id[:70]!r}")
            elif entry.fuzzy:
                found.append(f"{name}: fuzzy (the English changed): {message.id[:70]!r}")
            elif not entry.string:
                found.append(f"{name}: untranslated: {message.id[:70]!r}")
            else:
                judge = message_problems if path.name == "attnlab.po" else translation_problems
                found += [
                    f"{name}: {why}: {message.id[:70]!r}" for why in judge(message.id, entry.string)
                ]
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["update", "check"])
    parser.add_argument("lang", nargs="?", default="ja")
    args = parser.parse_args(argv)
    if args.action == "update":
        update(args.lang)
        return 0
    found = problems(args.lang)
    print("\n".join(found) or f"{args.lang}: every message translated")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
