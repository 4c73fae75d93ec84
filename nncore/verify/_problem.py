"""The arguments of a check, validated into a :class:`~nncore.verify._finding.Problem`.

Owns what a user hands the checker (``fun``, ``grad``, ``x0``, names, blocks, mode, the
number of directions) and what ``fun``, ``grad`` and ``hessp`` hand back: anything of the
wrong kind or shape is a ``TypeError`` or ``ValueError`` that says what came, before
anything is judged.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .._validation import as_real_array, require_finite
from ._finding import Problem
from ._parallel import check_workers, real_scalar
from ._schemes import PROFILES, Counter

COORDINATE_LIMIT = 10_000
"""Above this many parameters the default mode is random directions plus bisection (fast
profile: about ``2 n`` evaluations in coordinates mode)."""
THOROUGH_COORDINATE_LIMIT = 2000
"""The same for the thorough profile, whose coordinates mode costs ``4 n``."""
N_DIRECTIONS = 8
"""Random directions checked in directions mode."""
UNCOVERED = "(in no block)"
"""The block of the coordinates that none of a user's blocks covers."""


def make_problem(
    fun: Callable[..., float],
    grad: Callable[..., np.ndarray],
    x0: Any,
    args: Any,
    names: Sequence[str] | Callable[[int], str] | None,
    blocks: Sequence[tuple[str, Any]] | None,
    rng: int | np.random.Generator | None,
    mode: str,
    n_directions: int,
    profile: str = "fast",
    workers: Any = 1,
) -> Problem:
    """Validate the arguments, evaluate ``f(x0)`` and ``grad(x0)`` (counted), resolve
    ``mode="auto"`` (coordinates up to :data:`COORDINATE_LIMIT` parameters, or
    :data:`THOROUGH_COORDINATE_LIMIT` in the thorough profile)."""
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
    if profile not in PROFILES:
        raise ValueError(f"profile must be 'fast' or 'thorough', got {profile!r}")
    check_workers(workers)
    if isinstance(n_directions, bool) or not isinstance(n_directions, numbers.Integral):
        raise TypeError(f"n_directions must be a positive int, got {type(n_directions).__name__}")
    if n_directions < 1:
        raise ValueError(f"n_directions must be a positive int, got {n_directions}")
    if not (
        rng is None
        or isinstance(rng, np.random.Generator)
        or (isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0)
    ):  # anything else numpy takes as a seed is made now, and a bad one raises numpy's error
        rng = np.random.default_rng(rng)
    if not isinstance(args, tuple):
        args = (args,)
    n = x.size
    name_of = _names(names, n)
    named_blocks = _blocks(blocks, n)
    f = Counter(lambda z: real_scalar(fun(z, *args), "fun"))
    gr = Counter(lambda z: real_vector(grad(z, *args), n, "grad"))
    f0 = f(x)
    if not np.isfinite(f0):
        raise ValueError(f"fun(x0) is {f0}: a gradient can only be checked where fun is finite")
    g = gr(x)
    if mode == "auto":
        limit = COORDINATE_LIMIT if profile == "fast" else THOROUGH_COORDINATE_LIMIT
        mode = "coordinates" if n <= limit else "directions"
    return Problem(
        f,
        gr,
        x,
        f0,
        g,
        args,
        name_of,
        named_blocks,
        rng,
        mode,
        n_directions,
        profile,
        fun,
        workers,
    )


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


def real_vector(value: Any, n: int, what: str) -> np.ndarray:
    """``value`` as a float64 array of shape ``(n,)``, or a TypeError/ValueError naming
    ``what`` returned."""
    arr = as_real_array(value, f"what {what} returns")
    if arr.shape != (n,):
        raise ValueError(f"{what} must return shape ({n},), got {arr.shape}")
    return arr
