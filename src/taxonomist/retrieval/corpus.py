"""QA datasets: passages (contexts) and the questions each one answers.

Reads SQuAD-style JSON (``data[].paragraphs[].context`` and ``.qas[]``) or a table (CSV, TSV,
Parquet, JSON Lines) with a context, a question and optionally an answer column. Identical
contexts become one passage; rows without a context or a question are dropped and counted.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from taxonomist.data import load_table
from taxonomist.data.language import language_distribution, main_language, stop_words
from taxonomist.data.limits import default_limits
from taxonomist.data.schema import require_column
from taxonomist.errors import DataError, EmptyDataError, FileFormatError
from taxonomist.retrieval.text import Tokenizer


@dataclass
class QADataset:
    """``passages``: passage_id, context. ``questions``: question_id, question, passage_id,
    answer (may be empty). ``report``: what loading found and changed."""

    passages: pd.DataFrame
    questions: pd.DataFrame
    report: dict[str, Any] = field(default_factory=dict)


def _passage_id(context: str) -> str:
    return hashlib.sha1(context.strip().encode()).hexdigest()[:16]


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON list (anything else in it skipped); [] for a non-list."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _from_squad(data: dict[str, Any], path: Path) -> pd.DataFrame:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise FileFormatError(
            f'\'{path.name}\' is JSON but not SQuAD-style: expected {{"data": [{{"paragraphs": '
            '[{"context": ..., "qas": [...]}]}]}}. For other shapes, give a table with '
            "context and question columns.",
            details={"file": path.name},
        )
    rows = []
    for article in _dicts(data["data"]):
        for paragraph in _dicts(article.get("paragraphs")):
            context = paragraph.get("context")
            if not isinstance(context, str):
                continue  # counted with the rows without a context
            for qa in _dicts(paragraph.get("qas")) or [{}]:
                answers = _dicts(qa.get("answers"))
                question = qa.get("question")
                answer = answers[0].get("text") if answers else None
                rows.append(
                    {
                        "context": context,
                        "question": question if isinstance(question, str) else None,
                        "answer": answer if isinstance(answer, str) else None,
                        "question_id": qa.get("id"),
                    }
                )
    if not rows and data["data"]:
        raise FileFormatError(
            f"'{path.name}' has a 'data' list but no paragraph in it has a text 'context': "
            'each entry must look like {"paragraphs": [{"context": "...", "qas": [{"question": '
            '"..."}]}]}.',
            details={"file": path.name},
        )
    return pd.DataFrame(rows, columns=["context", "question", "answer", "question_id"])


def load_qa(
    source: str | Path | pd.DataFrame,
    *,
    context: str = "context",
    question: str = "question",
    answer: str | None = "answer",
) -> QADataset:
    """Load and validate a QA dataset; column names are configurable for tables."""
    if isinstance(source, pd.DataFrame):
        table = source
    else:
        path = Path(source)
        if path.suffix.lower() == ".json" and path.exists():
            default_limits().check_bytes(path.stat().st_size, path.name, what="")
            try:
                data = json.loads(path.read_text(encoding="utf-8-sig"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise FileFormatError(
                    f"'{path.name}' is not valid JSON ({exc}). Give SQuAD-style JSON or a table.",
                    details={"file": path.name},
                ) from exc
            table = _from_squad(data, path)
            context, question, answer = "context", "question", "answer"
        else:
            table = load_table(path)
    columns = [str(c) for c in table.columns]
    require_column(context, columns, what="context")
    require_column(question, columns, what="question")
    if answer is not None and answer not in columns:
        answer = None
    for role, column in (("context", context), ("question", question)):
        values = table[column]
        if values.notna().any() and (
            pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)
        ):
            raise DataError(
                f"The {role} column '{column}' holds numbers, not text: choose the column with "
                f"the {role}s (columns: {', '.join(columns[:20])})."
            )
    n_rows = len(table)
    ctx = table[context].astype("object").where(table[context].notna(), None)
    ctx = ctx.map(lambda v: v.strip() if isinstance(v, str) else v)
    qs = table[question].astype("object").where(table[question].notna(), None)
    qs = qs.map(lambda v: v.strip() if isinstance(v, str) else v)
    no_context = ctx.isna() | (ctx == "")
    no_question = qs.isna() | (qs == "")
    if bool(no_context.all()):
        raise EmptyDataError(
            f"Every row's '{context}' is empty: there are no passages to search. Fill in the "
            "contexts, or choose the column that holds them."
        )
    contexts = ctx[~no_context].astype(str)
    passages = (
        pd.DataFrame({"context": contexts.unique()})
        .assign(passage_id=lambda d: d["context"].map(_passage_id))
        .loc[:, ["passage_id", "context"]]
    )
    keep = ~no_context & ~no_question
    questions = pd.DataFrame(
        {
            "question": qs[keep].astype(str).to_numpy(),
            "passage_id": ctx[keep].astype(str).map(_passage_id).to_numpy(),
            "answer": table.loc[keep, answer].to_numpy() if answer else None,
        }
    )
    ids = table.loc[keep, "question_id"] if "question_id" in table else None
    questions.insert(
        0,
        "question_id",
        ids.astype(str).to_numpy() if ids is not None else [f"q{i}" for i in range(len(questions))],
    )
    duplicates = int(questions.duplicated(["question", "passage_id"]).sum())
    warnings = []
    if int((no_context & ~no_question).sum()):
        warnings.append(
            f"{int((no_context & ~no_question).sum())} questions have no passage and are left out."
        )
    if duplicates:
        warnings.append(f"{duplicates} questions are asked twice of the same passage.")
    report = {
        "rows": n_rows,
        "passages": len(passages),
        "questions": len(questions),
        "rows_without_context": int(no_context.sum()),
        "rows_without_question": int(no_question.sum()),
        "duplicate_questions": duplicates,
        "unanswered": int(questions["answer"].isna().sum()) if answer else None,
        "warnings": warnings,
    }
    return QADataset(passages.reset_index(drop=True), questions, report)


def explore(dataset: QADataset, *, sample: int = 5000, top: int = 60) -> dict[str, Any]:
    """What the exploration page draws: words per context and per question (a sample), the
    language, and the most frequent words, stop words apart."""
    contexts = dataset.passages["context"]
    questions = dataset.questions["question"]
    language = main_language(language_distribution(contexts.head(300)))
    stops = set(stop_words(language))
    if language == "en":  # BM25's list is Lucene's short one; people expect "what" and "who"
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

        stops |= ENGLISH_STOP_WORDS
    plain = Tokenizer(language, stem=False, stopwords=False)
    words: Counter[str] = Counter()
    for text in list(contexts.head(sample)) + list(questions.head(sample)):
        words.update(plain.tokens(text))
    return {
        "language": language,
        "passages": len(contexts),
        "questions": len(questions),
        "questions_per_passage": round(len(questions) / max(len(contexts), 1), 2),
        "words_per_context": contexts.head(sample).str.split().str.len().tolist(),
        "words_per_question": questions.head(sample).str.split().str.len().tolist(),
        "frequent_words": [[w, n] for w, n in words.most_common() if w not in stops][:top],
        "frequent_stop_words": [[w, n] for w, n in words.most_common() if w in stops][:top],
        "stop_word_list": bool(stops),
    }
