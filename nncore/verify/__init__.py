r"""Gradient verification for any scalar function, and for nncore networks.

:func:`check_gradient` compares a gradient with independent oracles, each with its own
error bar (see ``docs/verification.md``):

* central differences per coordinate, ``h_i = eps^(1/3) max(1, |x_i|)``, for ``n`` up to
  :data:`COORDINATE_LIMIT` (about ``2 n`` evaluations: step doubling only where one
  difference does not settle a coordinate, or everywhere with ``profile="thorough"``);
  beyond it, ``k`` seeded random unit directions, and a
  bisection over blocks and halves that finds a bad coordinate in ``O(log n)`` checks;
* a Taylor test, whose remainder must shrink at rate 2 (rate 1 means a wrong gradient);
* ``scipy.optimize.check_grad`` as is, for comparison;
* for networks, the independent JAX implementation (:mod:`nncore.jax_reference`);
* for a ``hessp``: central differences of the gradient, symmetry, and a Taylor rate of 3.

A coordinate passes when ``|g_i - fd_i| <= FD_RTOL |fd_i| + FD_SAFETY e_i``, with ``e_i``
the difference's own error estimate: relative where the gradient is large, and down to the
scheme's truncation and rounding error where it is near zero.

Each oracle is a function returning a :class:`~nncore.verify._finding.Finding` (its verdict,
whether it resolved the gradient, its report fields and reasons), in a module of its own:

* ``_coordinates``, ``_directions`` (with the bisection), ``_taylor``, ``_hessp``, ``_jax``;
* ``_schemes``: the difference schemes and the Taylor test they use, with their error bars;
* ``_problem``: the arguments validated into a ``Problem``; ``_finding``: ``Problem``,
  ``Context`` and ``Finding``;
* ``_check``: runs the oracles that apply and composes the findings into the report
  (``_report``: :class:`GradientReport`);
* ``_network``: the network form, the only module that reads the network: it hands the
  oracles a ``Context`` (kink tests, term and gradient scales, the JAX values).
"""

from __future__ import annotations

from typing import Any

from ._check import _check_function
from ._hessp import KINK_REDRAWS, SYMMETRY_RTOL  # noqa: F401 (re-exported)
from ._jax import JAX_RTOL, ROUNDING_ATOL, agree
from ._network import KINK_ROUNDING, _check_network, near_kink, rounding_scale  # noqa: F401
from ._problem import (  # noqa: F401 (re-exported)
    COORDINATE_LIMIT,
    N_DIRECTIONS,
    THOROUGH_COORDINATE_LIMIT,
    UNCOVERED,
)
from ._report import BlockError, Coordinate, GradientReport
from ._schemes import EPS, EVAL_ROUNDING, FD_RTOL, FD_SAFETY, FD_STEP

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


def check_gradient(fun: Any, *args: Any, **kwargs: Any) -> GradientReport:
    """Check a gradient against finite differences, a Taylor test, scipy and JAX.

    Two forms, told apart by the first argument::

        check_gradient(fun, grad, x0, args=(), *, names=None, blocks=None, hessp=None,
                       rng=None, mode="auto", n_directions=8, profile="fast", workers=1)
        check_gradient(net, theta, X, y, sample_weight=None, *, hessp=False, rng=None,
                       mode="auto", n_directions=8, profile="fast", workers=1)

    Network form: names and blocks (``layer l: W``, ``layer l: b``) come from the network,
    coordinates whose difference step crosses a relu-like kink are judged apart, and the
    gradient is also compared with :mod:`nncore.jax_reference` when JAX is installed.

    Parameters
    ----------
    fun : callable ``fun(x, *args) -> float``, or an :class:`~nncore.MLP`
        The function whose gradient is checked (function form), or the network whose
        ``net.loss`` and gradient are checked (network form).
    *args
        The rest of either form's positional arguments (each may also be given by name).

        Function form, ``grad, x0, args=()``:

        grad : callable ``grad(x, *args) -> ndarray of shape (n,)``
            The gradient to check.
        x0 : ndarray of shape (n,)
            The point to check at; never modified (nor are the args).
        args : tuple
            Extra arguments of ``fun``, ``grad`` and ``hessp``.

        Network form, ``theta, X, y, sample_weight=None``, as for ``net.loss``:

        theta : ndarray of shape (n_params,)
            The point to check at; never modified.
        X : ndarray of shape (n_samples, n_in)
            The inputs.
        y : ndarray of shape (n_samples,) or (n_samples, n_out)
            The targets, as ``net.loss`` takes them.
        sample_weight : ndarray of shape (n_samples,), optional
            Non-negative, not all zero; only ``w / sum(w)`` matters.  None: equal weights.
    **kwargs
        Keyword-only options, the same in both forms except ``names`` and ``blocks``
        (function form only) and ``hessp``:

        names : sequence of str or callable ``names(i) -> str``, optional
            Names of the coordinates, for the report.
        blocks : sequence of (str, slice), optional
            Named groups of coordinates, checked and ranked together.
        hessp : callable ``hessp(x, v, *args) -> ndarray`` (network form: bool), optional
            Also check Hessian-vector products (network form: ``True`` checks
            ``net.hessp``).
        rng : int or numpy.random.Generator, optional
            Seeds the random directions (default 0: a repeatable check).
        mode : {"auto", "coordinates", "directions"}
            ``auto`` checks every coordinate up to :data:`COORDINATE_LIMIT` parameters
            (2,000 in the thorough profile) and random directions with bisection beyond.
        n_directions : int
            Random directions in directions mode.
        profile : {"fast", "thorough"}
            ``fast``: one central difference per coordinate (``2 n`` evaluations), with step
            doubling and a fourth difference (2 more) only for the coordinates it does not
            settle, and the Taylor test only where the coordinates leave something
            unresolved; every coordinate is judged as the thorough profile judges it.
            ``thorough``: step doubling for every coordinate (``4 n``), the Taylor test (28)
            and ``scipy.optimize.check_grad`` (``n + 1``) always.
        workers : int or map-like callable
            Evaluates the coordinates' differences through a pool: ``1`` here, in order; an
            int ``k > 1`` in ``k`` processes (``fun`` and ``args`` must pickle); or a
            callable like ``multiprocessing.Pool.map`` or
            ``concurrent.futures.Executor.map``.  The results do not depend on it.

    Returns
    -------
    GradientReport
        ``report.passed``, ``print(report)`` for a table, ``report.to_dict()``.

    Raises
    ------
    TypeError
        For a missing argument (the network form needs ``theta``, ``X`` and ``y``), a
        network-form ``hessp`` that is not a bool, or an option of the wrong type.
    ValueError
        For an empty or non-1-D ``x0``, an unknown ``mode`` or ``profile``, names or blocks
        that do not fit the coordinates, a ``fun(x0)`` that is not finite, a ``grad``
        of the wrong shape, or (network form) a ``theta`` or data that ``net.loss``
        refuses.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.optimize import rosen, rosen_der
    >>> report = check_gradient(rosen, rosen_der, np.array([0.5, -1.0, 2.0]))
    >>> report.verdict, report.mode, report.nfev
    ('passed', 'coordinates', 7)
    """
    from ..network import MLP

    if isinstance(fun, MLP):
        return _check_network(fun, *args, **kwargs)
    return _check_function(fun, *args, **kwargs)
