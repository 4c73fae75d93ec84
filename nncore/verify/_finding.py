"""The common currency of the oracles: what each one is handed and what it hands back.

* :class:`Problem`: the validated point of a check, ``f`` and its gradient (counted), ``x``,
  ``f(x)``, ``g(x)``, the names, blocks, mode and random generator (made on first use);
* :class:`Context`: what a caller knows beyond ``f`` and ``g`` (the network form: kink tests,
  the size of the loss's terms and of the gradient's, the JAX values); empty for a plain
  function;
* :class:`Finding`: one oracle's verdict, whether it resolved the gradient, its fields of the
  :class:`~nncore.verify.GradientReport` and its sentences for the reasons.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._schemes import Counter

KinkTest = Callable[[np.ndarray, np.ndarray, float], bool]
"""``crosses(x, u, h)``: does ``x +- h u`` cross a kink of ``f`` (of the gradient, for the
Hessian's checks) that ``x`` does not sit on?"""


@dataclass
class Problem:
    """A validated check: ``f(x0)`` finite, ``g = grad(x0)`` of shape ``(n,)``.

    ``f`` and ``gr`` count their calls (``nfev``, ``ngev``); ``blocks`` are the named
    ``(name, slice or index array)`` pairs, with ``(in no block)`` for coordinates none
    covers; ``mode`` is ``"coordinates"`` or ``"directions"`` (``auto`` resolved);
    ``profile`` is ``"fast"`` or ``"thorough"``; ``fun`` the user's function (uncounted, for
    the workers) and ``workers`` as given; ``evaluate(index, offset)`` gives
    ``f(x + offset[k] e_{index[k]})`` through the workers while a check runs (counted).
    """

    f: Counter
    gr: Counter
    x: np.ndarray
    f0: float
    g: np.ndarray
    args: tuple
    name_of: Callable[[int], str]
    blocks: list[tuple[str, Any]]
    seed: int | np.random.Generator | None
    mode: str
    n_directions: int
    profile: str = "fast"
    fun: Callable[..., float] | None = None
    workers: Any = 1
    evaluate: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None

    @property
    def n(self) -> int:
        """Number of coordinates."""
        return self.x.size

    @functools.cached_property
    def rng(self) -> np.random.Generator:
        """``np.random.default_rng(seed)`` (``0`` for ``None``), made when an oracle first
        draws from it: coordinates mode alone draws nothing."""
        return np.random.default_rng(0 if self.seed is None else self.seed)


@dataclass(frozen=True)
class Context:
    """What the oracles may use beyond ``f`` and ``g``; the defaults know nothing more.

    Attributes
    ----------
    crosses_kink : callable ``crosses(x, u, h) -> bool`` or None
        A difference or Taylor step of ``f`` that crosses a kink (relu-like layers): such a
        step is judged apart, never against the gradient.
    crosses_kink2 : callable or None
        The same for the Hessian's checks, whose gradient also jumps where ``f''`` does (elu).
    f_scale : float
        The size of the terms ``f`` sums, when cancellation makes ``|f|`` smaller: the
        rounding floor of the differences and the Taylor remainders follows it.
    g_scale : ndarray of shape (n,) or None
        The same per gradient component, for the differences of the gradient.
    jax_grad : (float, ndarray of shape (n,)) or None
        ``(J, g)`` of an independent implementation (:mod:`nncore.jax_reference`).
    jax_hessp : callable ``jax_hessp(x, v) -> ndarray`` or None
        Its Hessian-vector product.
    jax_binding : bool
        Whether the JAX comparisons count toward the verdict (not where a relu-like
        pre-activation lies within rounding of its kink: :func:`~nncore.verify.near_kink`).
    notes : tuple of str
        Sentences for the end of the reasons (a comparison that could not be made).
    """

    crosses_kink: KinkTest | None = None
    crosses_kink2: KinkTest | None = None
    f_scale: float = 0.0
    g_scale: np.ndarray | None = None
    jax_grad: tuple[float, np.ndarray] | None = None
    jax_hessp: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    jax_binding: bool = True
    notes: tuple[str, ...] = ()


@dataclass
class Finding:
    """What one oracle found.

    Attributes
    ----------
    passed : bool
        False when the oracle found an error that counts toward the verdict.
    resolved : bool
        Whether the oracle could tell this gradient from a wrong one (a gradient of zeros).
    fields : dict
        Its fields of the :class:`~nncore.verify.GradientReport` (``blocks``, ``taylor``, ...).
    reasons : list of str
        Its sentences for ``report.reasons``: what it measured, against which tolerance,
        and its verdict.
    coarse : list of str
        Blocks whose single entries the oracle resolved more coarsely than its target (or
        not at all): a pass leaves them unresolved.
    complete : bool
        Whether the oracle saw every entry to rounding (JAX, where it binds): it resolves the
        blocks another oracle left coarse.
    """

    passed: bool = True
    resolved: bool = False
    fields: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    coarse: list[str] = field(default_factory=list)
    complete: bool = False
