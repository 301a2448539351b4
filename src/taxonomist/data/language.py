"""Detect the language of texts with py3langid (its model ships inside the package).

Detection is restricted to widely used languages: on short, noisy product titles an
unrestricted model often answers with a rare language that merely shares a few n-grams.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

LANGUAGES = [
    "ar",
    "bg",
    "ca",
    "cs",
    "da",
    "de",
    "el",
    "en",
    "es",
    "et",
    "fa",
    "fi",
    "fr",
    "he",
    "hi",
    "hr",
    "hu",
    "id",
    "it",
    "ja",
    "ko",
    "lt",
    "lv",
    "ms",
    "nl",
    "no",
    "pl",
    "pt",
    "ro",
    "ru",
    "sk",
    "sl",
    "sr",
    "sv",
    "th",
    "tr",
    "uk",
    "vi",
    "zh",
]


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ident.set_languages(LANGUAGES)
    return ident


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text``'s language; ``"unknown"`` when there are no letters."""
    if sum(ch.isalpha() for ch in text[:200]) < 3:
        return "unknown"
    return str(_identifier().classify(text[:1000])[0])


def language_distribution(texts: Iterable[str], *, sample: int = 300) -> dict[str, float]:
    """Share of each language among up to ``sample`` non-empty texts, largest first."""
    picked = [t for t in texts if isinstance(t, str) and t.strip()][:sample]
    if not picked:
        return {}
    counts = Counter(detect_language(t) for t in picked)
    return {lang: n / len(picked) for lang, n in counts.most_common()}


def main_language(distribution: dict[str, float]) -> str:
    """The most frequent language, or ``"unknown"``."""
    return next(iter(distribution), "unknown")
