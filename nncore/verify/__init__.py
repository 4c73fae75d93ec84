r"""Gradient verification for any scalar function, and for nncore networks.

:func:`check_gradient` compares a gradient with independent oracles, each with its own
error bar (see ``docs/verification.md``):

* central differences per coordinate, ``h_i = eps^(1/3) max(1, |x_i|)``, for ``n`` up to
  :data:`COORDINATE_LIMIT`; beyond it, ``k`` seeded random unit directions, and a
  bisection over blocks and halves that finds a bad coordinate in ``O(log n)`` checks;
* a Taylor test, whose remainder must shrink at rate 2 (rate 1 means a wrong gradient);
* ``scipy.optimize.check_grad`` as is, for comparison;
* for networks, the independent JAX implementation (:mod:`nncore.jax_reference`);
* for a ``hessp``: central differences of the gradient, symmetry, and a Taylor rate of 3.

A coordinate passes when ``|g_i - fd_i| <= FD_RTOL |fd_i| + FD_SAFETY e_i``, with ``e_i``
the difference's own error estimate: relative where the gradient is large, and down to the
scheme's truncation and rounding error where it is near zero.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy.optimize import check_grad as scipy_check_grad

from .._validation import as_real_array, require_finite
from ._report import BlockError, Coordinate, GradientReport
from ._schemes import (
    EPS,
    EVAL_ROUNDING,
    FD_RTOL,
    FD_SAFETY,
    FD_STEP,
    Counter,
    coordinates,
    direction_check,
    step_for,
    taylor,
    tolerance,
    unit_direction,
)

__all__ = [
    "BlockError",
    "Coordinate",
    "GradientReport",
    "check_gradient",
    "agree",
    "rounding_scale",
    "near_kink",
    "COORDINATE_LIMIT",
    "EPS",
    "EVAL_ROUNDING",
    "FD_RTOL",
    "FD_SAFETY",
    "FD_STEP",
    "JAX_RTOL",
    "ROUNDING_ATOL",
]

COORDINATE_LIMIT = 2000
"""Above this many parameters the default mode is random directions plus bisection."""
N_DIRECTIONS = 8
"""Random directions checked in directions mode."""
JAX_RTOL = 1e-9
"""Allowed relative error against the JAX reference (two float64 evaluations of the same
formulas differ by rounding only, ~1e-14)."""
ROUNDING_ATOL = 512 * EPS
"""Absolute floor, in units of ``max(1, |J|)``, below which two derivatives are equal to
rounding: where the terms of an entry cancel (a softmax vjp at uniform outputs, a confident
correct cross-entropy) its exact value is ~0 and both implementations return rounding noise
of the size of the cancelled terms, for which a relative error means nothing.  512 eps ~
1.1e-13 covers the few hundred roundings of a small network."""
UNCOVERED = "(in no block)"
"""The block of the coordinates that none of a user's blocks covers."""
KINK_REDRAWS = 5
"""Directions drawn for the Hessian's difference check before giving up at relu kinks."""
SYMMETRY_RTOL = 1e-10
"""``|u.Hv - v.Hu|`` allowed relative to ``|u|.|Hv| + |v|.|Hu|``: both sides are exact up to
the rounding of the products."""


KINK_ROUNDING = 1e3
"""A relu-like pre-activation within ``KINK_ROUNDING * eps`` times the size of its terms of 0
may land on either side of the kink depending on the order of summation."""


def near_kink(net: Any, theta: np.ndarray, X: np.ndarray) -> bool:
    """True when a pre-activation of a relu-like layer lies within rounding of its kink.

    ``|Z_l| <= KINK_ROUNDING * eps * (|A_{l-1}| |W_l|^T + |b_l|)`` with nonzero terms: two
    correct implementations that sum in different orders (nncore's ``(W A^T)^T``, JAX's
    ``A W^T``) can then take different branches and legitimately disagree.  Property tests
    against an independent implementation discard such points (``hypothesis.assume``); exact
    zeros of every term are kept.  A subnormal pre-activation counts as at the kink too: XLA
    flushes subnormals to 0 on the CPU, so JAX takes the other branch there (Hypothesis found
    ``z = 0.5 * 2.2e-308``, where JAX's Hessian-vector product saw a dead unit).
    """
    cache = net.forward(theta, X)
    eps, tiny = np.finfo(np.float64).eps, np.finfo(np.float64).tiny
    for k, ((W, b), act) in enumerate(zip(net.unpack(theta), net._acts)):
        if act.kink:
            size = np.abs(cache.A[k]) @ np.abs(W).T + np.abs(b)
            z = np.abs(cache.Z[k])
            near = (z <= KINK_ROUNDING * eps * size) | (z < tiny)  # subnormal: 0 for XLA
            if (near & (size > 0)).any():
                return True
    return False


def rounding_scale(net: Any, theta: np.ndarray, J: float) -> float:
    """``max(1, |J|) * prod_l max(1, ||W_l||_inf)``: the size of the rounding of a gradient.

    Backprop multiplies the deltas by ``W_l`` layer after layer, so rounding made near the
    output reaches the first layers amplified by up to the product of the weights' row-sum
    norms; where the exact gradient is 0 by cancellation (equal weights before a softmax),
    that amplified rounding is all two summation orders can agree on.
    """
    amp = 1.0
    for W, _ in net.layout.unpack(np.ascontiguousarray(theta, dtype=np.float64)):
        amp *= max(1.0, float(np.abs(W).sum(axis=1).max()))
    return max(1.0, abs(J)) * amp


def agree(a: Any, b: Any, J: float, rtol: float = JAX_RTOL) -> bool:
    """``||a - b|| <= rtol ||b|| + ROUNDING_ATOL max(1, |J|)``: two evaluations of the same
    derivative of an objective of value ``J`` agree to ``rtol`` or to rounding."""
    diff = float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
    return diff <= rtol * float(np.linalg.norm(b)) + ROUNDING_ATOL * max(1.0, abs(J))


def check_gradient(fun: Any, *args: Any, **kwargs: Any) -> GradientReport:
    """Check a gradient against finite differences, a Taylor test, scipy and JAX.

    Two forms, told apart by the first argument::

        check_gradient(fun, grad, x0, args=(), *, names=None, blocks=None, hessp=None,
                       rng=None, mode="auto", n_directions=8)
        check_gradient(net, theta, X, y, sample_weight=None, *, hessp=False, rng=None,
                       mode="auto", n_directions=8)

    Parameters
    ----------
    fun : callable ``fun(x, *args) -> float``, or an :class:`~nncore.MLP`
    grad : callable ``grad(x, *args) -> ndarray of shape (n,)``
    x0 : ndarray of shape (n,)
        The point to check at; never modified (nor are the args).
    args : tuple
        Extra arguments of ``fun``, ``grad`` and ``hessp``.
    names : sequence of str or callable ``names(i) -> str``, optional
        Names of the coordinates, for the report.
    blocks : sequence of (str, slice), optional
        Named groups of coordinates, checked and ranked together.
    hessp : callable ``hessp(x, v, *args) -> ndarray`` (network form: bool), optional
        Also check Hessian-vector products (network form: ``True`` checks ``net.hessp``).
    rng : int or numpy.random.Generator, optional
        Seeds the random directions (default 0: a repeatable check).
    mode : {"auto", "coordinates", "directions"}
        ``auto`` checks every coordinate up to :data:`COORDINATE_LIMIT` parameters and
        random directions with bisection beyond.
    n_directions : int
        Random directions in directions mode.

    Network form: ``theta``, ``X``, ``y``, ``sample_weight`` as for ``net.loss``; names and
    blocks (``layer l: W``, ``layer l: b``) come from the network, coordinates whose
    difference step crosses a relu-like kink are judged apart, and the gradient is also
    compared with :mod:`nncore.jax_reference` when JAX is installed.

    Returns
    -------
    GradientReport
        ``report.passed``, ``print(report)`` for a table, ``report.to_dict()``.
    """
    from ..network import MLP

    if isinstance(fun, MLP):
        return _check_network(fun, *args, **kwargs)
    return _check_function(fun, *args, **kwargs)


def _check_network(
    net: Any,
    theta: Any,
    X: Any,
    y: Any,
    sample_weight: Any = None,
    *,
    hessp: bool = False,
    rng: int | np.random.Generator | None = None,
    mode: str = "auto",
    n_directions: int = N_DIRECTIONS,
) -> GradientReport:
    from .._validation import check_theta

    if not isinstance(hessp, (bool, np.bool_)):
        raise TypeError(
            "the network form checks net.hessp: hessp must be True or False, got "
            f"{type(hessp).__name__} (to check another product, use the function form)"
        )
    theta = check_theta(theta, net.n_params).copy()
    objective = net.objective(X, y, sample_weight)
    batch = objective.batch
    kink_layers = [k for k, act in enumerate(net._acts) if act.kink]
    crosses = _kink_crossing(net, theta, batch.X, kink_layers)
    # the Hessian also jumps where f'' does (elu): its checks avoid those points too
    kink2_layers = [k for k, act in enumerate(net._acts) if act.kink or act.kink2]
    crosses2 = _kink_crossing(net, theta, batch.X, kink2_layers)

    jax_grad = None
    try:
        from .. import jax_reference
    except ImportError:
        jax_reference = None
    if jax_reference is not None:
        J_ref, g_ref = jax_reference.loss_and_grad(net, theta, batch.X, y, sample_weight)
        jax_grad = (J_ref, g_ref)
        jax_hessp = lambda x, v: jax_reference.hessp(net, x, v, batch.X, y, sample_weight)  # noqa: E731

    at_kink = bool(kink_layers) and near_kink(net, theta, batch.X)
    report = _check_function(
        objective.fun,
        objective.jac,
        theta,
        names=net.param_name,
        blocks=net.layout.blocks(),
        hessp=objective.hessp if hessp else None,
        rng=rng,
        mode=mode,
        n_directions=n_directions,
        _crosses_kink=crosses,
        _crosses_kink2=crosses2,
        _jax=jax_grad,
        _jax_hessp=jax_hessp if (hessp and jax_reference is not None) else None,
        _jax_binding=not at_kink,
        f_scale=_term_scale(net, theta, batch),
        g_scale=_gradient_scale(net, theta, batch) if hessp else None,
    )
    if jax_reference is None:
        report.reasons.append(
            "JAX reference skipped: JAX is not installed (pip install jax jaxlib, "
            'or pip install ".[jax]" in a checkout of nncore)'
        )
    return report


def _kink_crossing(net: Any, theta: np.ndarray, X: np.ndarray, layers: list[int]):
    """``crosses(x, u, h)``: does ``x +- h u`` change the sign of a pre-activation of one of
    ``layers`` relative to ``theta``?  ``None`` when there are no such layers."""
    if not layers:
        return None

    def signature(x: np.ndarray) -> list[np.ndarray]:
        cache = net._forward(net.layout.unpack(x), X)
        return [cache.Z[k] > 0 for k in layers]

    base = signature(theta)

    def crosses(x: np.ndarray, u: np.ndarray, h: float) -> bool:
        for point in (x + h * u, x - h * u):
            if any((s != s0).any() for s, s0 in zip(signature(point), base)):
                return True
        return False

    return crosses


def _term_scale(net: Any, theta: np.ndarray, batch: Any) -> float:
    """The size of the terms the loss sums, for the rounding floor of the differences.

    Cross-entropy and bce are differences of large numbers when the logits are large
    (``logsumexp(z) - z_label``): ``J`` is small while its rounding error follows ``|z|``.
    mse sums ``(a - y)^2``, whose rounding follows ``(|a| + |y|)^2``.
    """
    cache = net._forward(net.layout.unpack(theta), batch.X)
    if net.loss_name == "mse":
        return float(np.mean((np.abs(cache.A[-1]) + np.abs(batch.Y)) ** 2))
    return float(np.mean(np.abs(cache.Z[-1]).max(axis=1)))


def _gradient_scale(net: Any, theta: np.ndarray, batch: Any) -> np.ndarray:
    """The size of the terms each gradient component sums, shape ``(n_params,)``, for the
    rounding floor of the differences of the gradient (the ``hessp`` check).

    A gradient can be far smaller than the numbers it is computed from: at a saturated tanh,
    ``f'(z) = 1 - a^2`` is about 1e-8 while its rounding error follows ``1``, so the
    gradient's relative error is about ``eps / f'(z)``, not ``eps``.  That error drifts
    smoothly between nearby points, where neither Richardson's truncation estimate nor a
    fourth difference sees it, and a difference of gradients over ``2h`` inherits it divided
    by ``h``.  This is backprop with every factor replaced by its size: ``|W_l|``,
    ``|A_{l-1}|``, ``|A_L| + |Y|`` for the residual ``A_L - Y`` every loss's output gradient
    contains, and for the derivative of an activation the size of the terms it is computed
    from, ``max(|f'(z)|, 1)`` (``|f'(z)|`` itself for identity and relu-like activations,
    whose derivatives are exact; ``|a| (|g| + <|g|, |a|>)`` row by row for softmax).
    """
    params = net.layout.unpack(theta)
    cache = net._forward(params, batch.X)
    acts = net._acts

    def through(act, G, k):  # |dJ/dZ| from |dJ/dA| at layer k + 1
        z, a = cache.Z[k], cache.A[k + 1]
        if act.df is None:  # softmax: a * (g - <g, a>)
            return np.abs(a) * (G + np.einsum("ij,ij->i", G, np.abs(a))[:, None])
        df = np.abs(np.asarray(act.df(z, a), dtype=np.float64))
        return G * (df if act.kink or act.name == "identity" else np.maximum(df, 1.0))

    n_out = net.sizes[-1]
    D = np.abs(cache.A[-1]) + np.abs(batch.Y)
    if net.loss_name == "mse":  # d l / d A_L = 2 (A_L - Y) / n_out, then f'_L
        D = through(acts[-1], D * (2.0 / n_out), len(acts) - 1)
    elif net.loss_name == "bce":  # d l / d Z_L = (A_L - Y) / n_out
        D /= n_out
    else:  # cross_entropy: d l / d Z_L = s A_L - Y, s the row sums of Y
        D = np.abs(cache.A[-1]) * np.abs(batch.Y.sum(axis=1))[:, None] + np.abs(batch.Y)
    D *= (1.0 / D.shape[0]) if batch.omega is None else batch.omega[:, None]
    out = np.empty(net.n_params)
    for k in range(len(params) - 1, -1, -1):
        (W, _), (gW, gb) = params[k], net.layout.unpack(out)[k]
        gW[...] = D.T @ np.abs(cache.A[k])
        if net.l2:
            gW += net.l2 * np.abs(W)
        gb[...] = D.sum(axis=0)
        if k > 0:
            D = through(acts[k - 1], D @ np.abs(W), k - 1)
    return out


def _names(names: Sequence[str] | Callable[[int], str] | None, n: int) -> Callable[[int], str]:
    if names is None:
        return lambda i: f"x[{i}]"
    if callable(names):
        return names
    if isinstance(names, str):
        raise TypeError("names must be a sequence of n strings or a callable, got a str")
    seq = [str(name) for name in names]
    if len(seq) != n:
        raise ValueError(f"names must name all {n} coordinates, got {len(seq)} names")
    return lambda i: seq[i]


def _blocks(blocks: Sequence[tuple[str, Any]] | None, n: int) -> list[tuple[str, Any]]:
    """The named blocks, each a non-empty ``(name, slice or index array)``; coordinates in no
    block form one more, ``(in no block)``, so that an error there is found and placed."""
    if blocks is None:
        return [("all", slice(0, n))]
    out, covered, seen = [], np.zeros(n, dtype=bool), {UNCOVERED}
    for item in blocks:
        try:
            name, where = item
            idx = np.arange(n)[where]
        except (TypeError, ValueError, IndexError) as err:
            raise ValueError(
                f"blocks must be (name, slice or index array) pairs within {n} coordinates, "
                f"got {item!r}"
            ) from err
        if idx.ndim != 1:
            raise ValueError(
                f"block {name!r} must select coordinates by a slice or an index array, "
                f"got {where!r}"
            )
        if idx.size == 0:
            raise ValueError(f"block {name!r} selects no coordinates of the {n}")
        if str(name) in seen:
            raise ValueError(f"block names must be unique (and not {UNCOVERED!r}), got {name!r}")
        seen.add(str(name))
        covered[idx] = True
        out.append((str(name), where))
    if not covered.all():
        out.append((UNCOVERED, np.flatnonzero(~covered)))
    return out


def _real_scalar(value: Any, what: str) -> float:
    """``value`` as a float, or a TypeError naming ``what`` returned."""
    arr = np.asarray(value)
    if arr.shape != () or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype.kind in "fb"):
        raise TypeError(
            f"{what} must return a real scalar, got {type(value).__name__}"
            + (f" of shape {arr.shape}" if arr.shape != () else f" of dtype {arr.dtype}")
        )
    return float(arr)


def _real_vector(value: Any, n: int, what: str) -> np.ndarray:
    """``value`` as a float64 array of shape ``(n,)``, or a TypeError/ValueError naming
    ``what`` returned."""
    arr = as_real_array(value, f"what {what} returns")
    if arr.shape != (n,):
        raise ValueError(f"{what} must return shape ({n},), got {arr.shape}")
    return arr


def _check_function(
    fun: Callable[..., float],
    grad: Callable[..., np.ndarray],
    x0: Any,
    args: tuple = (),
    *,
    names: Sequence[str] | Callable[[int], str] | None = None,
    blocks: Sequence[tuple[str, slice]] | None = None,
    hessp: Callable[..., np.ndarray] | None = None,
    rng: int | np.random.Generator | None = None,
    mode: str = "auto",
    n_directions: int = N_DIRECTIONS,
    _crosses_kink: Callable | None = None,
    _crosses_kink2: Callable | None = None,
    _jax: tuple[float, np.ndarray] | None = None,
    _jax_hessp: Callable | None = None,
    _jax_binding: bool = True,
    f_scale: float = 0.0,
    g_scale: np.ndarray | None = None,
) -> GradientReport:
    if not callable(fun) or not callable(grad):
        raise TypeError(
            "check_gradient needs fun and grad callables (or an MLP first), got "
            f"{type(fun).__name__} and {type(grad).__name__}"
        )
    x = as_real_array(x0, "x0")
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x0 must be a non-empty 1-D array, got shape {x.shape}")
    require_finite(x, "x0")
    x = x.copy()  # never a reference to the caller's array
    if mode not in ("auto", "coordinates", "directions"):
        raise ValueError(f"mode must be 'auto', 'coordinates' or 'directions', got {mode!r}")
    if isinstance(n_directions, bool) or not isinstance(n_directions, numbers.Integral):
        raise TypeError(f"n_directions must be a positive int, got {type(n_directions).__name__}")
    if n_directions < 1:
        raise ValueError(f"n_directions must be a positive int, got {n_directions}")
    if not isinstance(args, tuple):
        args = (args,)
    n = x.size
    name_of = _names(names, n)
    blocks = _blocks(blocks, n)
    rng = np.random.default_rng(0 if rng is None else rng)
    f = Counter(lambda z: _real_scalar(fun(z, *args), "fun"))
    gr = Counter(lambda z: _real_vector(grad(z, *args), n, "grad"))
    f0 = f(x)
    if not np.isfinite(f0):
        raise ValueError(f"fun(x0) is {f0}: a gradient can only be checked where fun is finite")
    g = gr(x)
    if mode == "auto":
        mode = "coordinates" if n <= COORDINATE_LIMIT else "directions"

    reasons: list[str] = []
    passed = True
    fd_rel = None
    block_rows: list[BlockError] = []
    worst: list[Coordinate] = []
    located = None
    dir_info = None
    kink_params: list[str] = []
    unresolved: list[str] = []
    resolved = False  # whether some oracle could tell this gradient from a wrong one

    if mode == "coordinates":
        c = coordinates(f, x, f0, g, _crosses_kink, f_scale)
        smooth = ~c.at_kink
        kink_params = [name_of(i) for i in np.flatnonzero(c.at_kink)]
        if smooth.any():
            denom = np.linalg.norm(c.fd[smooth])
            diff = np.linalg.norm((g - c.fd)[smooth])
            fd_rel = float(diff / denom) if denom > 0 else float(diff)
        else:
            fd_rel = 0.0
        rel = c.rel_error(g)
        for bname, sl in blocks:
            idx = np.arange(n)[sl]
            keep = idx[smooth[idx]]
            fd_b, g_b = c.fd[keep], g[keep]
            norm = np.linalg.norm(fd_b)
            block_rows.append(
                BlockError(
                    name=bname,
                    size=idx.size,
                    rel_error=float(np.linalg.norm(g_b - fd_b) / norm)
                    if norm > 0
                    else float(np.linalg.norm(g_b)),
                    ratio=float(g_b @ fd_b / norm**2) if norm > 0 else float("nan"),
                    n_bad=int((~c.ok[idx]).sum()),
                    passed=bool(c.ok[idx].all()),
                )
            )
        block_rows.sort(key=lambda b: (b.passed, -b.n_bad, -b.rel_error))
        order = np.lexsort((-np.where(smooth, np.abs(g - c.fd), 0.0), c.ok))
        worst = [
            Coordinate(
                name_of(int(i)),
                int(i),
                float(g[i]),
                float(c.fd[i]),
                float(c.error[i]),
                float(rel[i]),
                bool(c.ok[i]),
            )
            for i in order[:10]
        ]
        n_bad = int((~c.ok).sum())
        ok = n_bad == 0
        passed &= ok
        resolved |= bool(c.resolved.any())
        unresolved = [name_of(int(i)) for i in np.flatnonzero(smooth & ~c.resolved)]
        reasons.append(
            f"central differences, every coordinate: {'agree' if ok else 'DISAGREE'} "
            f"({n_bad} of {n} outside |g - fd| <= {FD_RTOL:.0e} |fd| + {FD_SAFETY:g} x error bar; "
            f"relative error {fd_rel:.1e})"
            + (f"; {len(unresolved)} of {n} unresolved" if unresolved else "")
        )
        if kink_params:
            reasons.append(
                f"{len(kink_params)} coordinate(s) move a relu-like pre-activation across 0 "
                "within the difference step: judged by the other oracles only"
            )
    else:
        checks = []
        for _ in range(n_directions):
            u = unit_direction(rng, n)
            checks.append(direction_check(f, x, f0, g, u, _crosses_kink, f_scale))
        bad = [ch for ch in checks if not ch.ok]
        usable = [ch for ch in checks if not ch.at_kink]
        dir_info = {
            "k": len(checks),
            "failed": len(bad),
            "at_kink": len(checks) - len(usable),
            "unresolved": sum(not ch.resolved for ch in usable),
            "worst_rel_error": max((ch.rel_error for ch in usable), default=0.0),
        }
        resolved |= any(ch.resolved for ch in checks)
        # localise: a direction per block, then bisect the worst bad block
        for bname, sl in blocks:
            idx = np.arange(n)[sl]
            ch = direction_check(f, x, f0, g, unit_direction(rng, n, idx), _crosses_kink, f_scale)
            resolved |= ch.resolved
            block_rows.append(
                BlockError(bname, idx.size, ch.rel_error, ch.ratio, int(not ch.ok), ch.ok)
            )
        block_rows.sort(key=lambda b: (b.passed, -b.rel_error))
        ok = not bad and all(b.passed for b in block_rows)
        if not ok:
            located = _bisect(f, x, f0, g, rng, block_rows, blocks, name_of, _crosses_kink, f_scale)
        passed &= ok
        reasons.append(
            f"{len(checks)} random directions: {'agree' if not bad else 'DISAGREE'} "
            f"({len(bad)} outside |g.u - fd| <= {FD_RTOL:.0e} |fd| + {FD_SAFETY:g} x error bar; "
            f"worst relative error {dir_info['worst_rel_error']:.1e}"
            + (f"; {dir_info['unresolved']} unresolved" if dir_info["unresolved"] else "")
            + f"); {sum(not b.passed for b in block_rows)} of {len(block_rows)} blocks fail"
        )

    # Taylor test along a seeded direction
    v = unit_direction(rng, n)
    gv = float(g @ v)
    h0 = 0.1 * max(1.0, float(np.abs(x).max()))

    f_at: dict[float, float] = {}  # f(x + h v), kept for the zero-gradient replay below
    kinked: dict[float, bool] = {}

    def remainder(h: float) -> tuple[float, float]:
        fh = f_at[h] = f(x + h * v)
        return abs(fh - f0 - h * gv), _round_off(fh, f0, f_scale) + EPS * abs(h * gv)

    def unusable(h: float) -> bool:
        if h not in kinked:
            kinked[h] = _crosses_kink is not None and bool(_crosses_kink(x, v, h))
        return kinked[h]

    t = taylor(remainder, h0, 2, unusable=unusable)
    taylor_info = _taylor_dict(t)
    passed &= t.passed
    # The test resolves the gradient only if it would have failed a gradient of zeros, whose
    # remainder |f(x + h v) - f(x)| is known already: where |f| is large, only steps whose h^2
    # term dominates clear round-off, and there any g.v passes.
    t0 = taylor(
        lambda h: (abs(f_at[h] - f0), _round_off(f_at[h], f0, f_scale)), h0, 2, unusable=unusable
    )
    resolved |= t0.verdict == "failed"
    reasons.append(_taylor_reason("Taylor test of the gradient", t))

    # scipy's own check
    direction = "all" if mode == "coordinates" else "random"
    cg = float(scipy_check_grad(lambda z: f(z), lambda z: gr(z), x, direction=direction, seed=rng))
    reasons.append(f"scipy.optimize.check_grad ({direction}): {cg:.1e} (absolute; for comparison)")

    jax_rel = None
    if _jax is not None:
        J_ref, g_ref = _jax
        norm = np.linalg.norm(g_ref)
        jax_rel = float(np.linalg.norm(g - g_ref) / norm) if norm > 0 else float(np.linalg.norm(g))
        ok = agree(g, g_ref, J_ref)
        if _jax_binding:
            passed &= ok
            resolved = True
        reasons.append(
            f"JAX autodiff: {'agrees' if ok else 'DISAGREES'} (relative error {jax_rel:.1e}; "
            f"tol {JAX_RTOL:.0e}, or rounding below {ROUNDING_ATOL:.0e} max(1, |J|))"
            + (
                ""
                if _jax_binding
                else "; not binding: a relu-like pre-activation lies within rounding of its "
                "kink, where two summation orders may take different branches"
            )
        )

    hessp_info = None
    nhev = 0
    if hessp is not None:
        if not callable(hessp):
            raise TypeError(f"hessp must be a callable, got {type(hessp).__name__}")
        hp = Counter(lambda z, w: _real_vector(hessp(z, w, *args), n, "hessp"))
        hessp_info, ok, lines = _check_hessp(
            f,
            gr,
            hp,
            x,
            f0,
            g,
            rng,
            _jax_hessp if _jax_binding else None,
            _crosses_kink2,
            f_scale,
            g_scale,
            name_of,
        )
        passed &= ok
        reasons += lines
        nhev = hp.calls

    verdict = "failed" if not passed else "passed" if resolved else "inconclusive"
    if verdict == "inconclusive":
        reasons.append(
            "INCONCLUSIVE: no oracle resolved the gradient. Every difference lies within its "
            "tolerance of 0 (or crosses a kink), and the Taylor test would pass a gradient of "
            "zeros as well"
        )
    return GradientReport(
        passed=verdict == "passed",
        verdict=verdict,
        unresolved=unresolved,
        reasons=reasons,
        n=n,
        mode=mode,
        fd_rel_error=fd_rel,
        blocks=block_rows,
        worst=worst,
        located=located,
        directions=dir_info,
        taylor=taylor_info,
        check_grad=cg,
        jax_rel_error=jax_rel,
        hessp=hessp_info,
        kink_params=kink_params,
        nfev=f.calls,
        ngev=gr.calls,
        nhev=nhev,
    )


def _bisect(f, x, f0, g, rng, block_rows, blocks, name_of, crosses, f_scale=0.0) -> str:
    """Halve the worst failing block until one coordinate is left: ``O(log n)`` checks.

    With no failing block (errors each below what a block's direction resolves), the halving
    starts from every coordinate.  Where neither half fails it stops and returns the range
    left, ``first .. last``; where both halves fail, each holds an error, and the result
    says that more than one coordinate is wrong (the halving follows the worse half)."""
    failing = [b.name for b in block_rows if not b.passed]
    n = x.size
    idx = np.arange(n)[dict(blocks)[failing[0]]] if failing else np.arange(n)
    spread = False
    while idx.size > 1:
        halves = np.array_split(idx, 2)
        checks = [
            direction_check(f, x, f0, g, unit_direction(rng, n, h), crosses, f_scale)
            for h in halves
        ]
        bad = [k for k, ch in enumerate(checks) if not ch.ok]
        if not bad:  # the error lies below the resolution of a half: stop here
            break
        spread |= len(bad) == 2
        idx = halves[max(bad, key=lambda k: checks[k].rel_error)]
    where = (
        name_of(int(idx[0]))
        if idx.size == 1
        else f"{name_of(int(idx[0]))} .. {name_of(int(idx[-1]))}"
    )
    if spread:
        where += " (the worse of several: both halves failed at a split, so more than one is wrong)"
    return where


def _taylor_dict(t) -> dict[str, Any]:
    return {
        "h": t.h,
        "remainder": t.remainder,
        "noise": t.noise,
        "expected_rate": t.expected_rate,
        "rate": t.rate,
        "used": t.used,
        "verdict": t.verdict,
    }


def _taylor_reason(what: str, t) -> str:
    if t.rate is None:
        return f"{what}: inconclusive (the remainder never rises clear of round-off)"

    lo, hi = t.used
    return (
        f"{what}: rate {t.rate:.2f} (expected {t.expected_rate}) over h = "
        f"{t.h[hi - 1]:.1e}..{t.h[lo]:.1e}: {t.verdict}"
    )


def _round_off(fh: float, f0: float, f_scale: float) -> float:
    """Round-off of ``f(x + h v) - f(x)`` in a Taylor remainder: each value's rounding
    follows the larger of ``|f|`` and the size of the terms it sums (``f_scale``), as for the
    differences."""
    return EVAL_ROUNDING * (max(abs(fh), f_scale) + max(abs(f0), f_scale))


def _check_hessp(f, gr, hp, x, f0, g, rng, jax_hessp, crosses, f_scale, g_scale, name_of):
    n = x.size
    lines = []
    ok_all = True
    # central differences of the gradient along v, with the same error bar as for f (the
    # rounding floor following the size of the terms of each component, ``g_scale``, where
    # known: _gradient_scale); the gradient jumps at a relu kink, so directions whose stencil
    # crosses one are redrawn
    h = step_for(x)
    for _ in range(KINK_REDRAWS):
        v = unit_direction(rng, n)
        if crosses is None or not crosses(x, v, 2.0 * h):
            break
    Hv = hp(x, v)
    if crosses is not None and crosses(x, v, 2.0 * h):
        fd_rel, bad_entries = None, []
        lines.append(
            "Hessian-vector product vs central differences of the gradient: skipped "
            f"(all {KINK_REDRAWS} directions cross a relu kink within the step)"
        )
    else:
        diffs, biggest = [], 0.0
        for step in (h, 2.0 * h):
            gp, gm = gr(x + step * v), gr(x - step * v)
            diffs.append((gp - gm) / (2.0 * step))
            biggest = max(biggest, float(np.abs(gp).max()), float(np.abs(gm).max()))
        size = biggest if g_scale is None else np.maximum(biggest, g_scale)
        err = np.abs(diffs[0] - diffs[1]) / 3.0 + EVAL_ROUNDING * size / h
        miss, tol = np.abs(Hv - diffs[0]), tolerance(diffs[0], err)
        bad = np.flatnonzero(~(miss <= tol))  # NaN counts as outside
        with np.errstate(over="ignore", invalid="ignore"):  # a zero tolerance: inf, the worst
            excess = miss[bad] / np.maximum(tol[bad], np.finfo(float).tiny)
        excess = np.nan_to_num(excess, nan=np.inf)
        bad = bad[np.argsort(-excess, kind="stable")]  # the worst first
        fd_ok = bad.size == 0
        norm = np.linalg.norm(diffs[0])
        fd_rel = (
            float(np.linalg.norm(Hv - diffs[0]) / norm) if norm > 0 else float(np.linalg.norm(Hv))
        )
        ok_all &= fd_ok
        bad_entries = [
            {"name": name_of(int(i)), "index": int(i), "Hv": float(Hv[i]), "fd": float(diffs[0][i])}
            for i in bad[:10]
        ]
        lines.append(
            f"Hessian-vector product vs central differences of the gradient: "
            f"{'agree' if fd_ok else 'DISAGREE'} (relative error {fd_rel:.1e}"
            + (
                f"; {bad.size} of {n} entries outside, worst "
                + ", ".join(
                    f"{e['name']} (Hv {e['Hv']:.6g}, fd {e['fd']:.6g})" for e in bad_entries[:3]
                )
                if bad.size
                else ""
            )
            + ")"
        )
    # symmetry u.Hv = v.Hu
    u = unit_direction(rng, n)
    Hu = hp(x, u)
    asym = abs(u @ Hv - v @ Hu)
    scale = np.abs(u) @ np.abs(Hv) + np.abs(v) @ np.abs(Hu)
    sym_ok = bool(asym <= SYMMETRY_RTOL * scale + ROUNDING_ATOL * max(1.0, abs(f0)))
    ok_all &= sym_ok
    lines.append(
        f"symmetry |u.Hv - v.Hu| = {asym:.1e} (scale {scale:.1e}): "
        f"{'ok' if sym_ok else 'ASYMMETRIC'}"
    )
    # Taylor test of order 3
    gv, vHv = float(g @ v), float(v @ Hv)
    h0 = 0.1 * max(1.0, float(np.abs(x).max()))

    def remainder(hh: float) -> tuple[float, float]:
        fh = f(x + hh * v)
        r = abs(fh - f0 - hh * gv - 0.5 * hh * hh * vHv)
        return r, _round_off(fh, f0, f_scale) + EPS * (abs(hh * gv) + abs(hh * hh * vHv))

    unusable = (lambda hh: crosses(x, v, hh)) if crosses is not None else None
    t = taylor(remainder, h0, 3, unusable=unusable)
    ok_all &= t.passed
    lines.append(_taylor_reason("Taylor test of the Hessian", t))
    info = {
        "fd_rel_error": fd_rel,
        "bad_entries": bad_entries,
        "asymmetry": float(asym),
        "taylor": _taylor_dict(t),
    }
    if jax_hessp is not None:
        ref = jax_hessp(x, v)
        jr = float(np.linalg.norm(Hv - ref) / max(np.linalg.norm(ref), np.finfo(float).tiny))
        jok = agree(Hv, ref, f0)
        ok_all &= jok
        info["jax_rel_error"] = jr
        lines.append(
            f"JAX Hessian-vector product: {'agrees' if jok else 'DISAGREES'} "
            f"(relative error {jr:.1e})"
        )
    return info, bool(ok_all), lines
