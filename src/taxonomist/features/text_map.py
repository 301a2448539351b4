"""A 2-D map of texts (TF-IDF, SVD, t-SNE) for exploring a dataset: which classes their words
already separate."""

from __future__ import annotations

import numpy as np
import pandas as pd

from taxonomist.errors import InvalidParameterError

MAX_MAP_ROWS = 3000


def text_map(
    df: pd.DataFrame,
    column: str,
    label: str | None = None,
    *,
    sample: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """t-SNE of the TF-IDF (reduced to 50 dimensions by SVD) of a sample of ``column``'s texts:
    columns ``x``, ``y``, ``label`` (when given) and ``text`` (the first 120 characters).

    Texts that share words land near each other; colour by class to see which classes the
    words already separate.
    """
    from sklearn.decomposition import TruncatedSVD
    from sklearn.manifold import TSNE

    from taxonomist.features.text import HashedTfidfVectorizer

    if not 10 <= sample <= MAX_MAP_ROWS:
        raise InvalidParameterError(f"The map's sample must be 10 to {MAX_MAP_ROWS} rows.")
    texts = df[column].fillna("").astype(str)
    keep = texts.str.strip() != ""
    rows = df.loc[keep]
    if len(rows) < 10:
        raise InvalidParameterError(f"Column '{column}' has fewer than 10 non-empty texts.")
    rows = rows.sample(min(sample, len(rows)), random_state=seed)
    tfidf = HashedTfidfVectorizer(char_ngrams=None, min_df=1).fit_transform(rows[column])
    k = int(min(50, tfidf.shape[1] - 1, len(rows) - 1))
    reduced = TruncatedSVD(k, random_state=seed).fit_transform(tfidf) if k >= 2 else tfidf.toarray()
    perplexity = float(min(30, (len(rows) - 1) / 3))
    xy = TSNE(2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        np.asarray(reduced, dtype=np.float32)
    )
    out = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], "text": rows[column].str.slice(0, 120)})
    if label:
        out["label"] = rows[label].astype(str).to_numpy()
    return out.reset_index(drop=True)
