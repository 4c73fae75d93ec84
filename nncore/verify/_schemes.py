r"""Difference schemes and their error bars, for any ``f: R^n -> R``.

Every estimate comes with an estimate of its own error, so that a verdict never rests on a
guessed tolerance:

* central difference with step ``h``: ``D(h) = (f(x + h u) - f(x - h u)) / (2 h)`` has
  truncation error ``c h^2 + O(h^4)``, so ``|D(h) - D(2h)| / 3`` estimates it; the rounding of
  the two values adds up to ``EVAL_ROUNDING * max|f| / h``;
* the Taylor remainder ``|f(x + h v) - f(x) - h g.v|`` is ``O(h^2)`` for the right gradient
  and ``O(h)`` for a wrong one; the observed rate is read off the smallest steps whose
  remainder stands clear of round-off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EPS = float(np.finfo(np.float64).eps)
FD_STEP = EPS ** (1.0 / 3.0)
"""Relative central-difference step: balances truncation (h^2) and rounding (eps/h)."""
FD_RTOL = 1e-6
"""Allowed relative error of a central difference beyond its own error bar."""
FD_SAFETY = 10.0
"""How far beyond its own error estimate (truncation by step doubling, plus rounding) a
central difference may miss before the derivative is blamed."""
EVAL_ROUNDING = 64 * EPS
"""Relative rounding error allowed for one float64 evaluation of ``f`` (accumulated over
the forward pass and the sums); ``EVAL_ROUNDING * |f| / h`` is the rounding floor of a
central difference with step ``h``."""
TINY = float(np.finfo(np.float64).tiny)
"""Below the smallest normal number the spacing of float64 is absolute, ``eps * TINY =
2^-1074``: the values a rounding floor is taken relative to are never counted smaller than
``TINY``, so that ``EVAL_ROUNDING * TINY`` allows 64 roundings of that spacing (Hypothesis
found a loss of ``3e-322``, whose differences are 0 while its gradient is ``6e-322``)."""
TAYLOR_CLEARANCE = 1e3
"""A Taylor remainder counts only when it is this many times above its round-off level."""
TAYLOR_SETTLED = 0.5
"""A failing Taylor rate counts only when the slopes it is the median of lie within this of
each other: the remainder follows one power of ``h`` over those steps.  Otherwise the steps
clear of round-off are still the large ones where higher-order terms compete with the leading
one, and the test is inconclusive."""

Vector = np.ndarray


class Counter:
    """Wrap a callable and count its calls."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return self.fn(*args)


def step_for(x: Vector, index: int | None = None) -> float:
    """``eps^(1/3) * max(1, |x_i|)`` for a coordinate, ``eps^(1/3) * max(1, ||x||_inf)`` for a
    direction."""
    scale = abs(x[index]) if index is not None else (np.abs(x).max() if x.size else 0.0)
    return FD_STEP * max(1.0, float(scale))


@dataclass
class Difference:
    """A central-difference estimate of a directional derivative and its error bar."""

    value: float
    error: float


def central(
    f: Callable[[Vector], float], x: Vector, u: Vector, h: float, f0: float, scale: float = 0.0
) -> Difference:
    """``D(h)`` of ``f`` along ``u`` at ``x`` (``f0 = f(x)``), with its error estimate.

    The error is the truncation estimate ``|D(h) - D(2h)| / 3``, plus the rounding floor
    ``EVAL_ROUNDING * max(|f|, scale) / h`` (``scale``: the size of the terms ``f`` sums,
    when cancellation makes ``|f|`` smaller than they are), plus the evaluation noise seen
    in the five values: the
    fourth difference ``f(x+2h) - 4 f(x+h) + 6 f(x) - 4 f(x-h) + f(x-2h)`` is ``h^4`` times
    the fourth derivative plus about ``8 sigma`` for evaluations carrying rounding noise
    ``sigma``, while ``D(h)`` carries about ``0.7 sigma / h``; its size over ``4 h`` bounds
    that noise where ``f`` loses digits to cancellation (a log-sum-exp of large logits), which
    a floor relative to ``|f|`` cannot see.
    """
    values, biggest = [], max(abs(f0), scale, TINY)
    for step in (h, 2.0 * h):
        fp, fm = f(x + step * u), f(x - step * u)
        values.append((fp, fm))
        biggest = max(biggest, abs(fp), abs(fm))
    (p1, m1), (p2, m2) = values
    d1 = (p1 - m1) / (2.0 * h)
    return Difference(d1, float(doubling_bar(f0, p1, m1, p2, m2, h, biggest)))


def doubling_bar(f0: float, p1: Any, m1: Any, p2: Any, m2: Any, h: Any, biggest: Any) -> Any:
    """The error bar of :func:`central` from its five values ``f(x)``, ``f(x +- h u)``,
    ``f(x +- 2h u)`` (scalars or arrays, ``biggest`` the largest magnitude among them or the
    term scale): step doubling ``|D(h) - D(2h)| / 3``, rounding ``EVAL_ROUNDING biggest / h``
    and the fourth difference over ``4 h``."""
    d1, d2 = (p1 - m1) / (2.0 * h), (p2 - m2) / (4.0 * h)
    noise = np.abs(p2 - 4.0 * p1 + 6.0 * f0 - 4.0 * m1 + m2) / (4.0 * h)
    return np.abs(d1 - d2) / 3.0 + EVAL_ROUNDING * biggest / h + noise


def tolerance(estimate: Any, error: Any) -> Any:
    """``FD_RTOL |estimate| + FD_SAFETY error``: how far a derivative may be from its
    difference before it is blamed."""
    return FD_RTOL * np.abs(estimate) + FD_SAFETY * error


def within(estimate: float, exact: float, error: float) -> bool:
    """``|exact - estimate| <= tolerance(estimate, error)``."""
    return abs(exact - estimate) <= tolerance(estimate, error)


def resolves(estimate: Any, error: Any) -> Any:
    """Whether a difference tells its derivative from 0: ``tolerance < |estimate|``.  Where
    it does not, a derivative of 0 (a missing term) would pass as well: the comparison only
    bounds ``|exact - estimate|`` by the tolerance."""
    return tolerance(estimate, error) < np.abs(estimate)


PROFILES = ("fast", "thorough")
"""``fast``: one central difference per coordinate, and the thorough scheme's extra values
only where that difference does not settle the verdict; ``thorough``: every coordinate with
step doubling and a fourth difference (``4 n`` evaluations)."""


@dataclass
class Coordinates:
    """Per-coordinate central differences (``O(n)`` evaluations)."""

    fd: Vector
    error: Vector
    at_kink: np.ndarray
    ok: np.ndarray
    resolved: np.ndarray  # see :func:`resolves`; False at kinks
    extra: np.ndarray  # the coordinates given the thorough scheme's error bar
    nondiff: np.ndarray  # a kink of f at x, g between its one-sided derivatives

    def rel_error(self, g: Vector) -> Vector:
        """``|g_i - fd_i| / |fd_i|`` (inf where fd_i is 0 and g_i is not)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(g - self.fd) / np.abs(self.fd)
        return np.where(g == self.fd, 0.0, rel)


Evaluate = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``evaluate(index, offset)``: ``f(x + offset[k] e_{index[k]})`` for every ``k``."""


def coordinate_steps(x: Vector) -> Vector:
    """``h_i = eps^(1/3) max(1, |x_i|)`` for every coordinate (:func:`step_for`)."""
    return FD_STEP * np.maximum(1.0, np.abs(x))


def rounding_bar(biggest: Vector, h: Vector) -> Vector:
    """``EVAL_ROUNDING * biggest / h``: the rounding of a central difference with step ``h``
    of values no larger than ``biggest``."""
    return EVAL_ROUNDING * biggest / h


def coordinates(
    evaluate: Evaluate,
    x: Vector,
    f0: float,
    g: Vector,
    crosses_kink: Callable[[Vector, Vector, float], bool] | None = None,
    scale: float = 0.0,
    profile: str = "fast",
) -> Coordinates:
    """Central differences ``D_i(h_i)`` along every ``e_i``, ``h_i = eps^(1/3) max(1, |x_i|)``,
    each with an error bar.

    ``thorough``: every coordinate gets the error bar of :func:`central` (step doubling,
    rounding and the fourth difference: ``4 n`` evaluations).  ``fast``: first the values at
    ``x +- h_i e_i`` only (``2 n``), judged against the rounding part of that bar,
    ``EVAL_ROUNDING max(|f0|, |f(x +- h_i e_i)|, scale) / h_i``, which is never larger than the
    whole bar; a coordinate that passes this passes the thorough test too (same ``D_i``, a
    larger tolerance there).  The others (truncation or noise beyond rounding, a kink, an
    error), and those whose difference lies within that tolerance of 0 (unresolved), get the
    values at ``x +- 2 h_i e_i`` and the thorough bar: so both profiles judge
    every coordinate alike, and the fast one spends ``2 n + 2 m`` evaluations for ``m`` such
    coordinates.  Kinks are looked for (``crosses_kink``) where the thorough bar is used.
    """
    if profile not in PROFILES:
        raise ValueError(f"profile must be 'fast' or 'thorough', got {profile!r}")
    n = x.size
    h = coordinate_steps(x)
    every = np.arange(n)
    both = np.concatenate([every, every])
    values = evaluate(both, np.concatenate([h, -h]))
    fp, fm = values[:n], values[n:]
    fd = (fp - fm) / (2.0 * h)
    biggest = np.maximum(max(abs(f0), scale, TINY), np.maximum(np.abs(fp), np.abs(fm)))
    err = rounding_bar(biggest, h)
    if profile == "fast":
        # disagreeing (NaN too), or unresolved: a difference within its tolerance of 0 cannot
        # settle a verdict, and a kink at x shows only with the values at 2h (one_sided)
        extra = ~(np.abs(g - fd) <= tolerance(fd, err)) | ~resolves(fd, err)
    else:
        extra = np.ones(n, dtype=bool)
    hard = np.flatnonzero(extra)
    if hard.size:
        hh = h[hard]
        values = evaluate(np.concatenate([hard, hard]), np.concatenate([2.0 * hh, -2.0 * hh]))
        p2, m2 = values[: hard.size], values[hard.size :]
        big = np.maximum(biggest[hard], np.maximum(np.abs(p2), np.abs(m2)))
        err[hard] = doubling_bar(f0, fp[hard], fm[hard], p2, m2, hh, big)
    at_kink = np.zeros(n, dtype=bool)
    nondiff = np.zeros(n, dtype=bool)
    if crosses_kink is not None:
        e = np.zeros(n)
        for i in hard:
            e[i] = 1.0
            at_kink[i] = crosses_kink(x, e, 2.0 * h[i])
            e[i] = 0.0
    elif hard.size:
        nondiff[hard] = one_sided(f0, fp[hard], fm[hard], p2, m2, hh, big, err[hard], g[hard])
    ok = np.abs(g - fd) <= tolerance(fd, err)
    at_kink |= nondiff
    resolved = resolves(fd, err) & ~at_kink
    return Coordinates(fd, err, at_kink, ok | at_kink, resolved, extra, nondiff)


def one_sided(
    f0: float, p1: Any, m1: Any, p2: Any, m2: Any, h: Any, biggest: Any, err: Any, g: Any
) -> Any:
    """Where ``f`` has a kink at ``x`` along the coordinate and ``g`` is one of its one-sided
    derivatives or between them (one-sided differences, as Chainer's
    ``detect_nondifferentiable`` uses).

    The three second differences of the five values, left ``f(x-2h) - 2f(x-h) + f(x)``,
    centre ``f(x-h) - 2f(x) + f(x+h)`` and right ``f(x) - 2f(x+h) + f(x+2h)``, are all about
    ``h^2 f''`` where ``f`` is smooth.  A kink at ``x`` puts the jump of the slope, times
    ``h``, into the centre one only, both sides staying linear: flagged where
    ``|centre| > FD_SAFETY (|left| + |right| + 4 EVAL_ROUNDING biggest)``.  There the
    one-sided differences ``R = (-3 f(x) + 4 f(x+h) - f(x+2h)) / 2h`` and
    ``L = (3 f(x) - 4 f(x-h) + f(x-2h)) / 2h`` are the slopes on each side, and ``g`` must
    lie between them (within their tolerance).  A kink off the centre (within ``2h``) is not
    flagged: the error bar's fourth difference covers it, as before.
    """
    left = np.abs(m2 - 2.0 * m1 + f0)
    centre = np.abs(m1 - 2.0 * f0 + p1)
    right_ = np.abs(f0 - 2.0 * p1 + p2)
    rounding = 4.0 * EVAL_ROUNDING * biggest
    kink = centre > FD_SAFETY * (left + right_ + rounding)
    r = (-3.0 * f0 + 4.0 * p1 - p2) / (2.0 * h)
    l_ = (3.0 * f0 - 4.0 * m1 + m2) / (2.0 * h)
    bar = (rounding + left + right_) / h
    lo, hi = np.minimum(l_, r), np.maximum(l_, r)
    slack = tolerance(np.maximum(np.abs(lo), np.abs(hi)), bar)
    return kink & (g >= lo - slack) & (g <= hi + slack)


def unit_direction(
    rng: np.random.Generator, n: int, support: np.ndarray | slice | None = None
) -> Vector:
    """A direction uniform on the unit sphere (of the coordinates in ``support``)."""
    u = np.zeros(n)
    idx = np.arange(n) if support is None else np.arange(n)[support]
    w = rng.standard_normal(idx.size)
    u[idx] = w / np.linalg.norm(w)
    return u


@dataclass
class DirectionCheck:
    """One directional comparison ``g.u`` against ``D_u(h)``."""

    exact: float
    fd: float
    error: float
    at_kink: bool

    @property
    def ok(self) -> bool:
        return self.at_kink or within(self.fd, self.exact, self.error)

    @property
    def resolved(self) -> bool:
        """The difference tells ``g.u`` from 0 (:func:`resolves`), away from a kink."""
        return not self.at_kink and bool(resolves(self.fd, self.error))

    @property
    def ratio(self) -> float:
        """``g.u / D_u``: -1 for a flipped sign, 2 for a doubled block (nan when unresolved)."""
        return self.exact / self.fd if self.resolved else float("nan")

    @property
    def rel_error(self) -> float:
        diff = abs(self.exact - self.fd)
        return diff / abs(self.fd) if self.fd else (0.0 if diff == 0 else float("inf"))


def direction_check(
    f: Callable[[Vector], float],
    x: Vector,
    f0: float,
    g: Vector,
    u: Vector,
    crosses_kink: Callable[[Vector, Vector, float], bool] | None = None,
    scale: float = 0.0,
) -> DirectionCheck:
    h = step_for(x)
    d = central(f, x, u, h, f0, scale)
    kink = bool(crosses_kink(x, u, 2.0 * h)) if crosses_kink is not None else False
    return DirectionCheck(float(g @ u), d.value, d.error, kink)


@dataclass
class Taylor:
    """The Taylor test along one direction: remainders over a geometric sequence of steps."""

    h: Vector
    remainder: Vector
    noise: Vector
    expected_rate: int
    rate: float | None
    used: tuple[int, int] | None
    verdict: str  # "passed", "failed" or "inconclusive"
    slopes: Vector = field(default_factory=lambda: np.empty(0))

    @property
    def passed(self) -> bool:
        return self.verdict != "failed"


def taylor(
    remainder: Callable[[float], tuple[float, float]],
    h0: float,
    expected_rate: int,
    steps: int = 28,
    unusable: Callable[[float], bool] | None = None,
) -> Taylor:
    """Run a Taylor test.

    ``remainder(h)`` returns ``(r(h), noise(h))``: the Taylor remainder at step ``h`` and
    its round-off level.  Steps are ``h0 / 2^k``; the rate is the median slope
    ``log2(r(h) / r(h / 2))`` over the smallest steps (up to 5 pairs) whose remainders are
    at least ``TAYLOR_CLEARANCE`` times their round-off.  The verdict passes a rate within
    0.25 of ``expected_rate`` or above it (a vanishing leading term gives a higher order),
    fails a rate at or below ``expected_rate - 0.75`` measured over at least two pairs whose
    slopes agree within :data:`TAYLOR_SETTLED`, and is inconclusive when fewer than
    two steps stand clear of round-off (``f`` is of degree ``< expected_rate`` along the
    direction), the rate lies in between, or a failing rate is not settled.  Steps for
    which ``unusable(h)`` is True (the segment crosses a kink of ``f``) never count.
    """
    h = h0 / 2.0 ** np.arange(steps)
    r, noise = np.empty(steps), np.empty(steps)
    for k, hk in enumerate(h):
        r[k], noise[k] = remainder(float(hk))
    clear = r > TAYLOR_CLEARANCE * noise
    if unusable is not None:
        clear &= ~np.array([bool(unusable(float(hk))) for hk in h])
    pairs = np.flatnonzero(clear[:-1] & clear[1:])
    slopes = np.log2(r[pairs] / r[pairs + 1]) if pairs.size else np.empty(0)
    if pairs.size == 0:
        return Taylor(h, r, noise, expected_rate, None, None, "inconclusive", slopes)
    tail = pairs[-5:]
    tail_slopes = np.log2(r[tail] / r[tail + 1])
    rate = float(np.median(tail_slopes))
    settled = tail.size >= 2 and float(np.ptp(tail_slopes)) <= TAYLOR_SETTLED
    if rate >= expected_rate - 0.25:
        verdict = "passed"
    elif rate <= expected_rate - 0.75 and settled:
        verdict = "failed"
    else:
        verdict = "inconclusive"
    return Taylor(
        h, r, noise, expected_rate, rate, (int(tail[0]), int(tail[-1]) + 1), verdict, slopes
    )
