# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""A linear SVM (squared hinge, L2) solved by dual coordinate descent, as liblinear's
``L2R_L2LOSS_SVC_DUAL`` (Hsieh et al., 2008) with its shrinking and stopping rule.

It exists for one reason: scikit-learn's liblinear draws its coordinate order from one
random generator shared by the whole process, so one-vs-rest problems solved on threads
draw from it in whatever order the threads run and the model changes from run to run. Here
each call owns its generator and releases the GIL: the classes run on threads, the result
depends only on the data and the seed.
"""

from libc.math cimport INFINITY
from libc.stdint cimport uint64_t
from libc.stdlib cimport free, malloc


cdef inline uint64_t _next(uint64_t* state) noexcept nogil:
    """xorshift64*: a fast generator owned by one call."""
    cdef uint64_t x = state[0]
    x ^= x >> 12
    x ^= x << 25
    x ^= x >> 27
    state[0] = x
    return x * 2685821657736338717ULL


def dual_cd(
    const double[::1] data,
    const int[::1] indices,
    const long long[::1] indptr,
    const signed char[::1] sign,
    const double[::1] cost,
    double bias,
    double tol,
    int max_iter,
    unsigned long long seed,
    double[::1] w,
) -> int:
    """Fit ``w`` (``n_features + 1`` numbers, the last the bias's weight, zero on entry) on
    the CSR rows ``data, indices, indptr`` with labels ``sign`` (+1 / -1) and per-row ``cost``
    (C times the row's class weight); the bias is a constant feature of value ``bias`` (0:
    none). Stops when the projected gradient's spread is at most ``tol`` over all rows, or
    after ``max_iter`` passes; returns the passes made (``max_iter``: not converged)."""
    cdef Py_ssize_t n = sign.shape[0]
    cdef Py_ssize_t nf = w.shape[0] - 1
    cdef Py_ssize_t i, j, s, active, p, tmp
    cdef double G, PG, d, old, xw, PGmax_old = INFINITY, PGmin_old = -INFINITY
    cdef double PGmax, PGmin
    cdef int it = 0
    cdef uint64_t state = seed * 6364136223846793005ULL + 1442695040888963407ULL
    cdef double* alpha = <double*>malloc(n * sizeof(double))
    cdef double* diag = <double*>malloc(n * sizeof(double))
    cdef double* qd = <double*>malloc(n * sizeof(double))
    cdef Py_ssize_t* index = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    if alpha == NULL or diag == NULL or qd == NULL or index == NULL:
        free(alpha)
        free(diag)
        free(qd)
        free(index)
        raise MemoryError()
    if state == 0:
        state = 88172645463325252ULL
    with nogil:
        for i in range(n):
            alpha[i] = 0.0
            diag[i] = 0.5 / cost[i]
            d = bias * bias
            for p in range(indptr[i], indptr[i + 1]):
                d += data[p] * data[p]
            qd[i] = diag[i] + d
            index[i] = i
        active = n
        while it < max_iter:
            PGmax = -INFINITY
            PGmin = INFINITY
            for j in range(active):
                s = j + <Py_ssize_t>(_next(&state) % <uint64_t>(active - j))
                tmp = index[j]
                index[j] = index[s]
                index[s] = tmp
            s = 0
            while s < active:
                i = index[s]
                xw = w[nf] * bias
                for p in range(indptr[i], indptr[i + 1]):
                    xw += w[indices[p]] * data[p]
                G = sign[i] * xw - 1.0 + alpha[i] * diag[i]
                PG = 0.0
                if alpha[i] == 0.0:
                    if G > PGmax_old:  # at the bound and pushing out: shrink it away
                        active -= 1
                        tmp = index[s]
                        index[s] = index[active]
                        index[active] = tmp
                        continue
                    elif G < 0.0:
                        PG = G
                else:
                    PG = G
                if PG > PGmax:
                    PGmax = PG
                if PG < PGmin:
                    PGmin = PG
                if PG > 1e-12 or PG < -1e-12:
                    old = alpha[i]
                    alpha[i] = old - G / qd[i]
                    if alpha[i] < 0.0:
                        alpha[i] = 0.0
                    d = (alpha[i] - old) * sign[i]
                    for p in range(indptr[i], indptr[i + 1]):
                        w[indices[p]] += d * data[p]
                    w[nf] += d * bias
                s += 1
            it += 1
            if PGmax - PGmin <= tol:
                if active == n:
                    break
                active = n  # converged on the active rows: check all of them once more
                PGmax_old = INFINITY
                PGmin_old = -INFINITY
                continue
            PGmax_old = PGmax if PGmax > 0.0 else INFINITY
            PGmin_old = PGmin if PGmin < 0.0 else -INFINITY
    free(alpha)
    free(diag)
    free(qd)
    free(index)
    return it
