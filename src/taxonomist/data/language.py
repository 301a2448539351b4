"""Languages: detection with py3langid (its model ships inside the package), and each
language's Snowball stemmer and stop words (retrieval's BM25 and the TF-IDF's word n-grams).

Detection is restricted to widely used languages: on short, noisy product titles an
unrestricted model often answers with a rare language that merely shares a few n-grams.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterable
from functools import cache, lru_cache
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


# ISO 639-1 -> (Snowball stemmer, bm25s stop-word list)
SNOWBALL: dict[str, tuple[str, str | None]] = {
    "en": ("english", "STOPWORDS_EN"),
    "fr": ("french", "STOPWORDS_FRENCH"),
    "ru": ("russian", "STOPWORDS_RUSSIAN"),
    "de": ("german", "STOPWORDS_GERMAN"),
    "es": ("spanish", "STOPWORDS_SPANISH"),
    "it": ("italian", "STOPWORDS_ITALIAN"),
    "pt": ("portuguese", "STOPWORDS_PORTUGUESE"),
    "nl": ("dutch", "STOPWORDS_DUTCH"),
    "sv": ("swedish", "STOPWORDS_SWEDISH"),
    "no": ("norwegian", "STOPWORDS_NORWEGIAN"),
    "da": ("danish", "STOPWORDS_DANISH"),
    "tr": ("turkish", "STOPWORDS_TURKISH"),
    "fi": ("finnish", None),
    "hu": ("hungarian", None),
    "ro": ("romanian", None),
    "el": ("greek", None),
    "ar": ("arabic", None),
    "id": ("indonesian", None),
    "lt": ("lithuanian", None),
    "ca": ("catalan", None),
    "cs": ("czech", None),
    "pl": ("polish", None),
}


@cache
def stop_words(language: str) -> frozenset[str]:
    """The stop words of ``language`` (ISO 639-1); empty when there is no list for it."""
    import bm25s.stopwords

    name = SNOWBALL.get(language, ("", None))[1]
    return frozenset(getattr(bm25s.stopwords, name)) if name else frozenset()


_stemmers = threading.local()


def stemmer(language: str) -> Any:
    """This thread's Snowball stemmer for ``language`` (ISO 639-1; PyStemmer's objects are
    not thread-safe); None when Snowball has none."""
    import Stemmer

    if language not in SNOWBALL:
        return None
    made = _stemmers.__dict__.setdefault("by_language", {})
    if language not in made:
        made[language] = Stemmer.Stemmer(SNOWBALL[language][0])
    return made[language]
