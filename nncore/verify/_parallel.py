"""Evaluating ``f`` at many points ``x + s e_i`` in parallel: the ``workers`` of a check.

Owns scipy's ``workers`` convention (as in ``scipy.optimize.differential_evolution``):
``1`` evaluates in this process, in order; an int ``k > 1`` opens a pool of ``k`` processes
for the check and closes it after; any map-like callable (``multiprocessing.Pool.map``,
``concurrent.futures.Executor.map``, a Dask client's ``map``) is used as given.  The points
are sent in chunks (``x``, ``fun`` and its arguments once per chunk, then the coordinates and
offsets); each value is computed by the same expression wherever it runs, so that results do
not depend on ``workers``, bit for bit.
"""

from __future__ import annotations

import itertools
import multiprocessing
import numbers
import pickle
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np

CHUNKS_PER_WORKER = 4
"""Chunks sent to each process of an int pool: enough to even out uneven chunks."""
MAP_CHUNKS = 16
"""Chunks sent through a map-like callable, whose number of workers is unknown."""

Mapper = Callable[[Callable, Any], Any]


def point(x: np.ndarray, index: int, offset: float) -> np.ndarray:
    """``x`` with ``x[index] + offset`` in place of ``x[index]`` (a new array)."""
    z = x.copy()
    z[index] = x[index] + offset
    return z


def real_scalar(value: Any, what: str) -> float:
    """``value`` as a float, or a TypeError naming ``what`` returned."""
    if type(value) is float or type(value) is np.float64:  # the usual case, checked cheaply
        return float(value)
    arr = np.asarray(value)
    if arr.shape != () or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype.kind in "fb"):
        raise TypeError(
            f"{what} must return a real scalar, got {type(value).__name__}"
            + (f" of shape {arr.shape}" if arr.shape != () else f" of dtype {arr.dtype}")
        )
    return float(arr)


_KEYS = itertools.count()
"""Keys of :data:`_INHERITED`, one per pool (so that concurrent checks never share one)."""
_INHERITED: dict[int, tuple] = {}
"""``(fun, args, x)`` of the checks running a forked pool, by key: forked processes find them
here, so that their tasks carry the key and the coordinates only."""


def _evaluate_chunk(task: tuple) -> np.ndarray:
    """``fun(point(x, i, s), *args)`` for the ``(i, s)`` of one chunk (runs in a worker);
    ``task`` is ``(fun, args, x, index, offset)`` or ``(key, index, offset)``."""
    if len(task) == 3:
        key, index, offset = task
        fun, args, x = _INHERITED[key]
    else:
        fun, args, x, index, offset = task
    return np.array(
        [real_scalar(fun(point(x, int(i), float(s)), *args), "fun") for i, s in zip(index, offset)],
        dtype=np.float64,
    )


def check_workers(workers: Any) -> None:
    """A positive int or a callable, or a TypeError/ValueError saying what came."""
    if callable(workers):
        return
    if isinstance(workers, bool) or not isinstance(workers, numbers.Integral):
        raise TypeError(
            "workers must be a positive int or a map-like callable (such as "
            f"multiprocessing.Pool.map), got {type(workers).__name__}"
        )
    if workers < 1:
        raise ValueError(f"workers must be a positive int or a map-like callable, got {workers}")


def _start_method() -> Any:
    """``fork`` where the platform has it and JAX is not loaded (a process starts in
    milliseconds, with ``fun`` already imported), else ``spawn`` (JAX's threads do not
    survive a fork)."""
    if "fork" in multiprocessing.get_all_start_methods() and "jax" not in sys.modules:
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


@contextmanager
def mapper(workers: Any, fun: Callable, args: tuple) -> Iterator[tuple[Mapper | None, int]]:
    """``(map, chunks)`` for ``workers``: ``(None, 1)`` for 1 (evaluate here, in order); for
    an int ``k > 1`` the map of a pool of ``k`` processes (:func:`_start_method`), closed on
    exit (``fun`` and
    ``args`` must pickle); a callable as given, with :data:`MAP_CHUNKS` chunks."""
    check_workers(workers)
    if callable(workers):
        yield workers, MAP_CHUNKS
        return
    if workers == 1:
        yield None, 1
        return
    try:
        pickle.dumps((fun, args))
    except Exception as err:  # noqa: BLE001 (pickle raises several kinds)
        raise TypeError(
            f"workers={workers} runs fun in {workers} processes, so fun and args must pickle "
            f"(a module-level function or a bound method of a picklable object): {err}. "
            "For threads, pass workers=concurrent.futures.ThreadPoolExecutor(k).map"
        ) from None
    context = _start_method()
    if context.get_start_method() != "fork":
        with ProcessPoolExecutor(int(workers), mp_context=context) as pool:
            yield pool.map, CHUNKS_PER_WORKER * int(workers)
        return
    key = next(_KEYS)
    _INHERITED[key] = (fun, args, None)  # x is filled in by evaluate_points
    try:
        with ProcessPoolExecutor(int(workers), mp_context=context) as pool:
            yield _Inherited(pool.map, key), CHUNKS_PER_WORKER * int(workers)
    finally:
        _INHERITED.pop(key, None)


class _Inherited:
    """The map of a forked pool whose processes inherit ``(fun, args, x)`` under ``key``."""

    def __init__(self, map_: Mapper, key: int) -> None:
        self.map, self.key = map_, key

    def __call__(self, fn: Callable, tasks: Any) -> Any:
        return self.map(fn, [(self.key, t[3], t[4]) for t in tasks])


def evaluate_points(
    f: Callable[[np.ndarray], float],
    fun: Callable,
    args: tuple,
    x: np.ndarray,
    index: np.ndarray,
    offset: np.ndarray,
    map_: Mapper | None,
    chunks: int,
) -> tuple[np.ndarray, int]:
    """``fun(point(x, index[k], offset[k]), *args)`` for every ``k``, and how many evaluations
    ran outside ``f`` (the counted, validated function of the problem, used when ``map_`` is
    None)."""
    index, offset = np.asarray(index, dtype=np.intp), np.asarray(offset, dtype=np.float64)
    if index.size == 0:
        return np.empty(0), 0
    if map_ is None:
        return np.array([f(point(x, int(i), float(s))) for i, s in zip(index, offset)]), 0
    if isinstance(map_, _Inherited):  # before the first task forks the processes
        fun_args_x = _INHERITED[map_.key]
        if fun_args_x[2] is None:
            _INHERITED[map_.key] = (fun, args, x)
    parts = np.array_split(np.arange(index.size), min(chunks, index.size))
    tasks = [(fun, args, x, index[part], offset[part]) for part in parts]
    results = list(map_(_evaluate_chunk, tasks))
    results = [r.result() if hasattr(r, "result") else r for r in results]  # futures (Dask)
    values = np.concatenate([np.asarray(r, dtype=np.float64) for r in results])
    if values.shape != index.shape:
        raise ValueError(
            f"workers returned {values.size} values for {index.size} points: a map-like callable "
            "must return one result per item, in order"
        )
    return values, index.size


def bound_evaluate(p: Any, evaluate: Any = None) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``evaluate`` if given, else ``evaluate(index, offset)`` for ``p`` (a
    :class:`~nncore.verify._finding.Problem`) in this process, through its counted ``p.f``."""
    if evaluate is not None:
        return evaluate
    return lambda index, offset: evaluate_points(p.f, p.fun, p.args, p.x, index, offset, None, 1)[0]


@contextmanager
def workers_of(p: Any) -> Iterator[Callable[[np.ndarray, np.ndarray], np.ndarray]]:
    """``evaluate(index, offset)`` for ``p`` through ``p.workers`` while the context lasts;
    evaluations made elsewhere are added to ``p.f.calls``."""
    with mapper(p.workers, p.fun, p.args) as (map_, chunks):

        def evaluate(index: np.ndarray, offset: np.ndarray) -> np.ndarray:
            values, outside = evaluate_points(p.f, p.fun, p.args, p.x, index, offset, map_, chunks)
            p.f.calls += outside
            return values

        yield evaluate
