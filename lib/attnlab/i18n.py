"""Translations: the course in English (the source) and Japanese, from gettext catalogues.

Messages are keyed by their English text. `tr("...")` returns the text in the reader's
language, or the English when a catalogue has no (or only a fuzzy) translation, so an
out-of-date translation never shows a wrong sentence. The language is, in this order:
`ATTNLAB_LANG` ("en" or "ja"); the `language` in the metadata of the notebook this kernel
was started for (Jupyter tells the kernel its notebook in `JPY_SESSION_NAME`; the Japanese
edition's notebooks say "ja"); the locale (`LC_ALL`, `LC_MESSAGES`, `LANG`); English.

Catalogues are Babel/gettext `.po` files: `lib/attnlab/locale/<lang>/LC_MESSAGES/attnlab.po`
for what the library and the graders print, `translations/<lang>/<zone>.po` for the
notebooks' prose (tools/translations.py keeps both in step with the English sources).
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

__all__ = ["language", "tr"]

LANGUAGES = ("en", "ja")
LOCALE_DIR = Path(__file__).resolve().parent / "locale"


def language() -> str:
    """The reader's language code: "en" or "ja"."""
    chosen = os.environ.get("ATTNLAB_LANG", "").strip().lower()
    if chosen:
        code = chosen.replace("-", "_").split("_")[0]
        if code not in LANGUAGES:
            raise ValueError(f"ATTNLAB_LANG={chosen!r}: expected one of {', '.join(LANGUAGES)}")
        return code
    notebook_lang = _notebook_language(os.environ.get("JPY_SESSION_NAME", ""))
    if notebook_lang:
        return notebook_lang
    for var in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(var, "")
        if value:
            return "ja" if value.lower().startswith("ja") else "en"
    return "en"


@functools.cache
def _notebook_language(path: str) -> str | None:
    """The "language" of a notebook's metadata ("ja" for the Japanese edition), if it has one."""
    if not path.endswith(".ipynb"):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            lang = json.load(fh).get("metadata", {}).get("language")
    except (OSError, ValueError, AttributeError):
        return None
    return lang if lang in LANGUAGES else None


@functools.cache
def catalogue(lang: str, path: Path | None = None) -> dict[str, str]:
    """English -> translated text for the finished (translated, not fuzzy) entries of a .po file."""
    if lang == "en":
        return {}
    from babel.messages.pofile import read_po

    path = path or LOCALE_DIR / lang / "LC_MESSAGES" / "attnlab.po"
    if not path.exists():
        return {}
    with open(path, "rb") as fh:
        cat = read_po(fh, locale=lang)
    return {m.id: m.string for m in cat if m.id and m.string and not m.fuzzy}


def tr(message: str, /, **values: object) -> str:
    """`message` in the reader's language, then `.format(**values)` when values are given.

    >>> tr("{n} tokens", n=3)        # "3 tokens" in English, "3 個のトークン" in Japanese
    """
    text = catalogue(language()).get(message, message)
    return text.format(**values) if values else text


def N_(message: str) -> str:
    """Marks a message for the catalogue without translating it yet (translated where shown)."""
    return message
