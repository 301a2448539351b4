# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""The compiled n-gram counter: the same hash buckets as ``text._count_chunk_numpy``, bit for
bit, counted per text in C without the GIL.

Per text: every character n-gram's polynomial hash is rolled from its start (a multiply-add
per character), words are the maximal runs of alphanumeric characters, bigrams pair
consecutive words. Counts go to a dense array; a two-level bitmap of the touched columns gives
them back in increasing order without a sort, and is cleared as it is read, so the work arrays
(one set per thread, kept by the caller) are all zeros between calls.
"""

from cpython.unicode cimport PyUnicode_Check
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

import numpy as np


cdef extern from "Python.h":
    int PyUnicode_KIND(object o)
    void* PyUnicode_DATA(object o)
    Py_ssize_t PyUnicode_GET_LENGTH(object o)


cdef extern from *:
    int __builtin_ctzll(unsigned long long) nogil
    void __builtin_prefetch(const void*) nogil


cdef enum:
    ALNUM_LIMIT = 0x30000
    PREFETCH = 12


cdef inline uint64_t _cp(int kind, const void* data, Py_ssize_t i) noexcept nogil:
    if kind == 1:
        return (<const uint8_t*>data)[i]
    if kind == 2:
        return (<const unsigned short*>data)[i]
    return (<const unsigned int*>data)[i]


cdef struct Out:
    int32_t* indices
    float* data
    int64_t size
    int64_t capacity


cdef struct Work:
    int32_t* counts
    uint64_t* bits0
    uint64_t* bits1
    int64_t width
    const int32_t* columns  # bucket -> column (-1: dropped), or NULL
    uint64_t n_features
    bint pow2
    int64_t* buf  # the buckets of the current text
    int64_t n_buf
    int64_t buf_capacity


cdef inline void _emit(Work* w, uint64_t h, uint64_t salt) noexcept nogil:
    """Queue the bucket of one n-gram (the buffer is sized for the text beforehand)."""
    cdef uint64_t mixed = ((h ^ salt) * <uint64_t>0x9E3779B97F4A7C15ULL) >> 24
    if w.pow2:
        w.buf[w.n_buf] = <int64_t>(mixed & (w.n_features - 1))
    else:
        w.buf[w.n_buf] = <int64_t>(mixed % w.n_features)
    w.n_buf += 1


cdef void _count_buffer(Work* w) noexcept nogil:
    """Map the queued buckets to columns and count them.

    The bucket -> column map (4-8 MB) and the counts are read at random: one cache miss per
    n-gram. Prefetching a few n-grams ahead keeps several misses in flight, and the bitmaps
    are set without a branch on the count (which the CPU cannot predict)."""
    cdef int64_t i, col, n = w.n_buf
    cdef int64_t* buf = w.buf
    if w.columns != NULL:
        for i in range(n):
            if i + PREFETCH < n:
                __builtin_prefetch(&w.columns[buf[i + PREFETCH]])
            buf[i] = w.columns[buf[i]]
    for i in range(n):
        if i + PREFETCH < n and buf[i + PREFETCH] >= 0:
            __builtin_prefetch(&w.counts[buf[i + PREFETCH]])
        col = buf[i]
        if col < 0:
            continue
        w.bits0[col >> 6] |= (<uint64_t>1) << (col & 63)
        w.bits1[col >> 12] |= (<uint64_t>1) << ((col >> 6) & 63)
        w.counts[col] += 1
    w.n_buf = 0


cdef int _flush(Work* w, Out* out) noexcept nogil:
    """Append the touched columns in increasing order with their counts; clear them.
    Returns -1 when the output cannot grow (out of memory)."""
    cdef int64_t n1 = (w.width + 4095) >> 12
    cdef int64_t i1, i0, col
    cdef uint64_t b1, b0
    cdef int64_t need
    cdef int32_t* ni
    cdef float* nd
    for i1 in range(n1):
        b1 = w.bits1[i1]
        while b1:
            i0 = (i1 << 6) + __builtin_ctzll(b1)
            b1 &= b1 - 1
            b0 = w.bits0[i0]
            w.bits0[i0] = 0
            need = out.size + 64
            if need > out.capacity:
                while need > out.capacity:
                    out.capacity *= 2
                ni = <int32_t*>realloc(out.indices, out.capacity * sizeof(int32_t))
                if ni == NULL:
                    return -1
                out.indices = ni
                nd = <float*>realloc(out.data, out.capacity * sizeof(float))
                if nd == NULL:
                    return -1
                out.data = nd
            while b0:
                col = (i0 << 6) + __builtin_ctzll(b0)
                b0 &= b0 - 1
                out.indices[out.size] = <int32_t>col
                out.data[out.size] = <float>w.counts[col]
                out.size += 1
                w.counts[col] = 0
        w.bits1[i1] = 0
    return 0


cdef void _count_text(
    Work* w,
    int kind,
    const void* data,
    Py_ssize_t n,
    int cmin,
    int cmax,
    const uint64_t* char_salts,
    bint w1,
    bint w2,
    uint64_t salt_w1,
    uint64_t salt_w2,
    const uint8_t* alnum,
) noexcept nogil:
    cdef Py_ssize_t i, j
    cdef uint64_t h, p, c, prev = 0
    cdef bint have_prev = False
    cdef bint in_word = False
    cdef uint64_t P = 0x100000001B3ULL
    cdef uint64_t wh = 0, wp = 1
    if cmax > 0:
        for i in range(n):
            h = 0
            p = 1
            for j in range(cmax):
                if i + j >= n:
                    break
                c = _cp(kind, data, i + j)
                if c == 0:
                    break
                h += (c + 1) * p
                p *= P
                if j + 1 >= cmin:
                    _emit(w, h, char_salts[j + 1])
    if not (w1 or w2):
        return
    for i in range(n + 1):
        if i < n:
            c = _cp(kind, data, i)
            if alnum[c if c < ALNUM_LIMIT else ALNUM_LIMIT - 1]:
                if not in_word:
                    in_word = True
                    wh = 0
                    wp = 1
                wh += (c + 1) * wp
                wp *= P
                continue
        if in_word:
            in_word = False
            if w1:
                _emit(w, wh, salt_w1)
            if w2 and have_prev:
                _emit(w, prev * <uint64_t>0x165667B19E3779F9ULL + wh, salt_w2)
            prev = wh
            have_prev = True


def count_ngrams(
    list texts,
    int cmin,
    int cmax,
    const uint64_t[::1] char_salts,
    bint w1,
    bint w2,
    uint64_t salt_w1,
    uint64_t salt_w2,
    uint64_t n_features,
    const uint8_t[::1] alnum,
    object columns,
    int64_t n_columns,
    int32_t[::1] counts,
    uint64_t[::1] bits0,
    uint64_t[::1] bits1,
):
    """CSR parts ``(data float32, indices int32, indptr int64)`` of the n-gram counts of
    ``texts`` (already lowercased if wanted). ``char_salts[k]`` salts the k-grams
    (``cmax = 0``: no character n-grams); with ``columns`` (bucket -> column, -1 dropped) the
    counts are over ``n_columns`` columns. The work arrays must be zeros, sized for the width."""
    cdef Py_ssize_t n_docs = len(texts)
    cdef Work w
    cdef Out out
    cdef const int32_t[::1] cols_view
    cdef Py_ssize_t d, need
    cdef int failed = 0
    cdef const void** datas = <const void**>malloc(max(n_docs, 1) * sizeof(void*))
    cdef int* kinds = <int*>malloc(max(n_docs, 1) * sizeof(int))
    cdef Py_ssize_t* lengths = <Py_ssize_t*>malloc(max(n_docs, 1) * sizeof(Py_ssize_t))
    cnp_indptr = np.zeros(n_docs + 1, dtype=np.int64)
    cdef int64_t[::1] indptr = cnp_indptr
    if datas == NULL or kinds == NULL or lengths == NULL:
        free(datas)
        free(kinds)
        free(lengths)
        raise MemoryError()
    for d in range(n_docs):
        t = texts[d]
        if not PyUnicode_Check(t):
            free(datas)
            free(kinds)
            free(lengths)
            raise TypeError(f"texts[{d}] is {type(t).__name__}, not str")
        datas[d] = PyUnicode_DATA(t)
        kinds[d] = PyUnicode_KIND(t)
        lengths[d] = PyUnicode_GET_LENGTH(t)
    w.buf_capacity = 4096
    w.n_buf = 0
    w.buf = <int64_t*>malloc(w.buf_capacity * sizeof(int64_t))
    w.counts = &counts[0]
    w.bits0 = &bits0[0]
    w.bits1 = &bits1[0]
    w.n_features = n_features
    w.pow2 = (n_features & (n_features - 1)) == 0
    if columns is None:
        w.columns = NULL
        w.width = <int64_t>n_features
    else:
        cols_view = columns
        w.columns = &cols_view[0]
        w.width = n_columns
    out.capacity = 1024
    out.size = 0
    out.indices = <int32_t*>malloc(out.capacity * sizeof(int32_t))
    out.data = <float*>malloc(out.capacity * sizeof(float))
    if out.indices == NULL or out.data == NULL or w.buf == NULL:
        failed = -1
    with nogil:
        if failed == 0:
            for d in range(n_docs):
                need = lengths[d] * (max(cmax - cmin + 1, 0) + 2) + 2
                if need > w.buf_capacity:
                    w.buf_capacity = need
                    free(w.buf)
                    w.buf = <int64_t*>malloc(need * sizeof(int64_t))
                    if w.buf == NULL:
                        failed = -1
                        break
                _count_text(
                    &w, kinds[d], datas[d], lengths[d], cmin, cmax, &char_salts[0],
                    w1, w2, salt_w1, salt_w2, &alnum[0],
                )
                _count_buffer(&w)
                if _flush(&w, &out) != 0:
                    failed = -1
                    break
                indptr[d + 1] = out.size
    free(datas)
    free(kinds)
    free(lengths)
    free(w.buf)
    if failed:
        free(out.indices)
        free(out.data)
        counts[:] = 0
        bits0[:] = 0
        bits1[:] = 0
        raise MemoryError("out of memory counting n-grams")
    indices = np.empty(out.size, dtype=np.int32)
    values = np.empty(out.size, dtype=np.float32)
    cdef int32_t[::1] iv = indices
    cdef float[::1] vv = values
    if out.size:
        memcpy(&iv[0], out.indices, out.size * sizeof(int32_t))
        memcpy(&vv[0], out.data, out.size * sizeof(float))
    free(out.indices)
    free(out.data)
    return values, indices, cnp_indptr


