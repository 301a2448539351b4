"""Types of the compiled linear SVM solver (``_svm.pyx``)."""

import numpy as np

def dual_cd(
    data: np.ndarray,
    indices: np.ndarray,
    indptr: np.ndarray,
    sign: np.ndarray,
    cost: np.ndarray,
    bias: float,
    tol: float,
    max_iter: int,
    seed: int,
    w: np.ndarray,
) -> int: ...
