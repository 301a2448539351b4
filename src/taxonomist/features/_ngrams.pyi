"""Types of the compiled n-gram counter (``_ngrams.pyx``)."""

import numpy as np

def count_ngrams(
    texts: list[str],
    cmin: int,
    cmax: int,
    char_salts: np.ndarray,
    w1: bool,
    w2: bool,
    salt_w1: int,
    salt_w2: int,
    n_features: int,
    alnum: np.ndarray,
    columns: np.ndarray | None,
    n_columns: int,
    counts: np.ndarray,
    bits0: np.ndarray,
    bits1: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...
