"""Keep scipy's BLAS from fighting numpy's while an optimiser runs.

pip's numpy and scipy wheels each bring their own OpenBLAS, with a thread pool each.  An
optimiser such as L-BFGS-B alternates between the two: scipy's compiled step (its own BLAS)
and nncore's gradient (numpy's BLAS).  OpenBLAS threads spin for a while after each call
before they sleep, so each library keeps finding the cores busy with the other's idle
threads.  On this project's 2-core machine that made L-BFGS-B on the digits network about ten
times slower (``docs/benchmarks.md``, "Two BLAS libraries").

The optimiser's own linear algebra is vector work on ``n_params`` numbers, which gains
nothing from threads; so :func:`limit_scipy_blas` limits every BLAS library except numpy's to
one thread, with threadpoolctl, and leaves numpy's (the matrix products of the network) as
it is.  :func:`nncore.train` runs inside it.  Without threadpoolctl (``pip install
threadpoolctl``; the ``threads`` extra of a checkout), or when numpy's BLAS cannot be told apart
(a single shared library, as conda installs it, where the problem does not arise), it changes
nothing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np


def _numpy_dirs() -> tuple[str, ...]:
    """Where numpy's own shared libraries live: its package and the wheel's vendored
    ``numpy.libs`` (``.dylibs`` inside the package on macOS)."""
    pkg = os.path.realpath(os.path.dirname(np.__file__))
    return (pkg + os.sep, pkg + ".libs" + os.sep)


def _controller():
    """A threadpoolctl controller over the loaded libraries (scipy's BLAS loaded first, as an
    optimiser would), or None without threadpoolctl."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:
        return None
    import scipy.linalg  # noqa: F401

    return ThreadpoolController()


def _not_numpys(controller) -> list[str]:
    blas = [lib.filepath for lib in controller.lib_controllers if lib.user_api == "blas"]
    mine = _numpy_dirs()
    ours = [p for p in blas if os.path.realpath(p).startswith(mine)]
    if not ours:  # numpy's BLAS is not a file of its own: leave everything as it is
        return []
    return [p for p in blas if p not in ours]


def scipy_blas_paths() -> list[str]:
    """File paths of the loaded BLAS libraries that are not numpy's; empty when threadpoolctl
    is missing or numpy's BLAS is not among them as a separate file."""
    controller = _controller()
    return [] if controller is None else _not_numpys(controller)


_CACHE: list = []
"""``[(controller, paths)]`` once :func:`limit_scipy_blas` has run: scanning the loaded
libraries costs 3-6 ms, a large share of a small fit (``benchmarks/bench_sklearn.py``'s
breast_cancer network trains in about 20 ms), so it happens once per process.  BLAS
libraries loaded after that first use are not limited."""


def _cached_limits() -> tuple:
    """The cached ``(controller, paths)``; ``(None, [])`` without threadpoolctl."""
    try:
        import threadpoolctl  # noqa: F401  (cheap once imported)
    except ImportError:
        return None, []
    if not _CACHE:
        controller = _controller()
        _CACHE.append((controller, _not_numpys(controller)))
    return _CACHE[0]


@contextlib.contextmanager
def limit_scipy_blas() -> Iterator[list[str]]:
    """Within the block, every BLAS library but numpy's runs on one thread.

    Yields the file paths it limited (empty when it changed nothing).  Use it around
    ``scipy.optimize.minimize`` when the objective does its matrix products in numpy::

        with nncore.limit_scipy_blas():
            res = minimize(obj.fun_and_jac, theta0, jac=True, method="L-BFGS-B")
    """
    controller, paths = _cached_limits()
    if not paths:
        yield []
        return
    with controller.select(filepath=paths).limit(limits=1):
        yield paths
