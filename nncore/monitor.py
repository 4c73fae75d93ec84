"""Watching a training run: the per-iteration :class:`History`, the ways a run is stopped
(the callback, validation patience, a time budget, Ctrl-C) and the progress bar.

:func:`nncore.train` makes one :class:`Monitor` per call and tells it about every iteration
of every start (:meth:`Monitor.record`) and every evaluation (:meth:`Monitor.check_time`).
The monitor keeps the records, the best point of the current start and of the whole call,
and raises :class:`Stop` when the run must end; ``train`` catches it outside scipy and builds
the result from the point the monitor kept, so that every method stops the same way
(scipy's own handling of ``StopIteration`` does not reach ``lm``, ``TNC`` or a stop inside a
line search).  Nothing here computes a loss or a gradient: the numbers come from the
objective ``train`` passes in.
"""

from __future__ import annotations

import sys
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from scipy.optimize import OptimizeResult

STOPS = {
    "callback": (99, "the callback stopped training (raised StopIteration or returned True)"),
    "patience": (100, "the validation objective did not improve for {patience} iterations"),
    "max_time": (101, "the time budget of {max_time:g} s ran out"),
    "interrupted": (102, "interrupted (KeyboardInterrupt): the best point so far"),
}
"""The ``status`` and ``message`` of a result that nncore stopped, by reason (99 is scipy's
status for a callback's ``StopIteration``)."""

MEMO_SIZE = 4
"""Gradients of this many recent points are kept, so that an iteration's gradient norm is
read, not recomputed, when the optimiser evaluated it (a trust-region method reports its old
point after rejecting a step)."""


@dataclass(frozen=True)
class History:
    """One record per iteration of every start of :func:`nncore.train`, in run order.

    Each start contributes its starting point (``iteration`` 0) and then one record per
    iteration.  All fields are arrays of the same length; each parameter is kept as the
    attribute of the same name.

    Parameters
    ----------
    start : ndarray of int
        Index of the start the record belongs to.
    iteration : ndarray of int
        Iteration within that start (0 at its starting point).
    objective : ndarray of float64
        The training objective ``J`` at the iterate.
    grad_norm : ndarray of float64
        ``||dJ/dtheta||_2`` at the iterate (NaN where no gradient was computed there).
    nfev, njev : ndarray of int
        Forward and backward passes over the training data so far, over all starts.
    elapsed : ndarray of float64
        Seconds since ``train`` was called.
    validation : ndarray of float64
        The objective on the validation data (NaN without ``validation``).

    Notes
    -----
    Indexing, iterating and :func:`numpy.asarray` give the ``objective`` column, so
    ``res.history[0]`` is the objective at the first starting point, as it was when the
    history was an array of objective values.
    """

    start: np.ndarray
    iteration: np.ndarray
    objective: np.ndarray
    grad_norm: np.ndarray
    nfev: np.ndarray
    njev: np.ndarray
    elapsed: np.ndarray
    validation: np.ndarray

    @classmethod
    def from_rows(cls, rows: list[tuple]) -> History:
        """A history from tuples in field order.

        Parameters
        ----------
        rows : list of tuple
            One tuple per record: ``(start, iteration, objective, grad_norm, nfev, njev,
            elapsed, validation)``.  An empty list gives an empty history.

        Returns
        -------
        History
        """
        columns = list(zip(*rows)) if rows else [()] * len(fields(cls))
        kinds = (np.int64, np.int64, np.float64, np.float64, np.int64, np.int64) + (np.float64,) * 2
        return cls(*(np.array(c, dtype=k) for c, k in zip(columns, kinds)))

    @property
    def restarts(self) -> np.ndarray:
        """Indices of the records where start 1, 2, ... begin (empty for one start)."""
        return np.flatnonzero(np.diff(self.start)) + 1

    def of_start(self, k: int) -> History:
        """The records of start ``k`` alone.

        Parameters
        ----------
        k : int
            Index of the start, from 0.

        Returns
        -------
        History
            A new history holding only the records whose ``start`` is ``k``.
        """
        keep = self.start == k
        return History(*(getattr(self, f.name)[keep] for f in fields(self)))

    def __len__(self) -> int:
        return len(self.objective)

    def __getitem__(self, index: Any) -> Any:
        return self.objective[index]

    def __iter__(self) -> Iterator[float]:
        return iter(self.objective)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.objective if dtype is None else self.objective.astype(dtype)

    def __repr__(self) -> str:
        return f"History({len(self)} records, {len(self.restarts) + 1} start(s))"


class Stop(Exception):
    """Raised through scipy to end a run; ``reason`` is a key of :data:`STOPS`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Point:
    """A recorded iterate: a copy of ``x``, its objective, gradient and validation value."""

    x: np.ndarray
    fun: float
    jac: np.ndarray | None
    validation: float
    start: int
    iteration: int


class Monitor:
    """The state of one :func:`nncore.train` call (see the module notes).

    Parameters
    ----------
    callback : callable or None
        The user's ``callback(intermediate_result)``.
    validate : callable or None
        ``theta -> float``, the validation objective.
    patience : int or None
    max_time : float or None
    progress : bool or "always"
    n_starts : int
    """

    def __init__(
        self,
        callback: Callable[[OptimizeResult], Any] | None,
        validate: Callable[[np.ndarray], float] | None,
        patience: int | None,
        max_time: float | None,
        progress: bool | str,
        n_starts: int,
    ) -> None:
        self.callback, self.validate = callback, validate
        self.patience, self.max_time = patience, max_time
        self.n_starts = n_starts
        self.t0 = time.perf_counter()
        self.rows: list[tuple] = []
        self.best: Point | None = None  # over all starts
        self.bar = _progress_bar(progress)
        self._done = (0, 0)  # nfev, njev of the starts before this one

    # -- starts ----------------------------------------------------------------------
    def begin(self, start: int, objective: Any) -> None:
        """Start ``start`` runs on ``objective`` (its counters start at 0)."""
        if start:
            self._done = self._counts()
        self.start, self.objective = start, objective
        self.iteration = -1
        self.last: Point | None = None
        self.start_best: Point | None = None
        self._memo: OrderedDict[bytes, np.ndarray] = OrderedDict()
        if self.bar is not None:
            self.bar.set_description(f"start {start + 1}/{self.n_starts}")

    def _counts(self) -> tuple[int, int]:
        return self._done[0] + self.objective.nfev, self._done[1] + self.objective.njev

    def key(self, point: Point) -> float:
        """What "best" means: the validation objective when there is one, else ``J``."""
        return point.validation if self.validate is not None else point.fun

    # -- gradients -------------------------------------------------------------------
    def remember(self, x: np.ndarray, g: np.ndarray) -> None:
        """The gradient ``g`` of ``J`` at ``x`` (copied)."""
        self._memo[x.tobytes()] = np.array(g, dtype=np.float64)
        while len(self._memo) > MEMO_SIZE:
            self._memo.popitem(last=False)

    def gradient(self, x: np.ndarray, compute: bool) -> np.ndarray | None:
        """The gradient at ``x``: remembered, else (``compute``) the objective's."""
        g = self._memo.get(np.asarray(x, dtype=np.float64).tobytes())
        if g is None and compute:
            g = self.objective.jac(x)
            self.remember(x, g)
        return g

    # -- iterations ------------------------------------------------------------------
    def record(self, x: np.ndarray, fun: float, compute_grad: bool = True) -> None:
        """Iteration ``self.iteration + 1`` of this start ended at ``x`` with ``J = fun``.

        Records it, updates the bests and the bar, calls the user's callback (not at the
        starting point) and raises :class:`Stop` when the run must end.
        """
        self.iteration += 1
        x = np.array(x, dtype=np.float64)
        g = self.gradient(x, compute_grad)
        val = np.nan if self.validate is None else float(self.validate(x))
        point = Point(x, float(fun), g, val, self.start, self.iteration)
        nfev, njev = self._counts()
        gnorm = np.nan if g is None else float(np.linalg.norm(g))
        elapsed = time.perf_counter() - self.t0
        self.rows.append((self.start, self.iteration, point.fun, gnorm, nfev, njev, elapsed, val))
        self.last = point
        if self.start_best is None or self.key(point) < self.key(self.start_best):
            self.start_best = point
        if self.best is None or self.key(point) < self.key(self.best):
            self.best = point
        if self.bar is not None:
            self.bar.set_postfix_str(_postfix(point.fun, gnorm, nfev, njev, val), refresh=False)
            self.bar.update(1 if self.iteration else 0)
        if self.callback is not None and self.iteration:
            counts = {"nfev": self.objective.nfev, "njev": self.objective.njev}
            info = OptimizeResult(
                x=x.copy(), fun=point.fun, nhev=self.objective.nhev, nit=self.iteration, **counts
            )
            info.grad_norm, info.elapsed = gnorm, elapsed
            info.validation = None if self.validate is None else val
            try:
                stop = self.callback(info)
            except StopIteration:
                stop = True
            if stop is True:
                raise Stop("callback")
        if (
            self.patience is not None
            and self.iteration - self.start_best.iteration >= self.patience
        ):
            raise Stop("patience")
        self.check_time()

    def patch_grad_norm(self, x: np.ndarray, g: np.ndarray) -> None:
        """Fill in the gradient norm of the last record when it is at ``x`` and had none
        (least squares: the gradient at the start comes with scipy's first Jacobian)."""
        if self.last is not None and self.last.jac is None and np.array_equal(self.last.x, x):
            self.last.jac = np.array(g)
            row = list(self.rows[-1])
            row[3] = float(np.linalg.norm(g))
            self.rows[-1] = tuple(row)

    def check_time(self) -> None:
        """Raise :class:`Stop` when the time budget has run out."""
        if self.max_time is not None and time.perf_counter() - self.t0 > self.max_time:
            raise Stop("max_time")

    # -- the end ---------------------------------------------------------------------
    def history(self) -> History:
        """The records so far."""
        return History.from_rows(self.rows)

    def stopped_point(self, reason: str) -> Point | None:
        """The point a start stopped for ``reason`` returns: the iterate the callback saw
        (unless there is validation data), else this start's best."""
        if reason == "callback" and self.validate is None:
            return self.last
        return self.start_best

    def message(self, reason: str) -> tuple[int, str]:
        """``(status, message)`` for a stop."""
        status, text = STOPS[reason]
        return status, text.format(patience=self.patience, max_time=self.max_time or 0.0)

    def close(self) -> None:
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()


def _postfix(fun: float, gnorm: float, nfev: int, njev: int, val: float) -> str:
    text = f"J={fun:.4g} |g|={gnorm:.2g} nfev={nfev} njev={njev}"
    return text if np.isnan(val) else f"{text} val={val:.4g}"


def _progress_bar(progress: bool | str) -> Any:
    """A tqdm bar on stderr, or None: ``progress=True`` draws it only when stderr is a
    terminal, ``"always"`` draws it anyway."""
    if progress is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError as err:
        raise ImportError(
            "progress=True needs tqdm: pip install tqdm "
            '(or pip install ".[progress]" in a checkout of nncore)'
        ) from err
    if progress is True and not sys.stderr.isatty():
        return None
    return tqdm(total=None, unit="it", file=sys.stderr, dynamic_ncols=True, leave=True)
