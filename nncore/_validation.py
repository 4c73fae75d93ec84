"""Input checks shared by every public entry point.

Each helper converts one argument to the array nncore computes with, or raises a
``TypeError`` (wrong kind of object) or ``ValueError`` (right kind, wrong content) whose
message says what was expected and what arrived.  Nothing here modifies its input.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def as_real_array(value: Any, name: str) -> np.ndarray:
    """Return ``value`` as a float64 ndarray, or raise ``TypeError`` if it is not real numbers.

    The result is the input itself when it already is a float64 array (no copy), so
    callers must never write into it.
    """
    if value is None or isinstance(value, (str, bytes, np.ma.MaskedArray)):
        raise TypeError(f"{name} must be an array of real numbers, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as err:  # ragged nested sequences
        raise TypeError(f"{name} must be an array of real numbers: {err}") from err
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be an array of real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


SMALL_ARRAY = 4096
"""Up to this many entries :func:`all_finite` tests them directly; above, it sums first."""


def all_finite(arr: np.ndarray) -> bool:
    """True when every entry of ``arr`` is finite.

    A sum is finite only if every term is (an inf or NaN term makes it inf or NaN), so for
    large arrays a finite sum settles the question without a boolean temporary; only a
    non-finite sum (which may also be overflow of huge finite entries) needs the
    element-wise test.  Small arrays are tested directly, which is cheaper than the floating
    point state the sum has to silence.
    """
    if arr.size <= SMALL_ARRAY:
        return bool(np.isfinite(arr).all())
    with np.errstate(over="ignore", invalid="ignore"):
        if math.isfinite(arr.sum()):
            return True
    return bool(np.isfinite(arr).all())


def require_finite_result(value: Any, what: str) -> Any:
    """Return ``value`` (a float or an array) when it is finite; otherwise raise
    ``ValueError``: float64 overflowed on inputs too large for the network, and an inf or
    NaN result would only carry the overflow further."""
    if isinstance(value, float):
        finite = math.isfinite(value)
    else:  # a dot product is finite only if every entry is (or it overflowed: look closer)
        flat = value.reshape(-1)
        finite = math.isfinite(flat.dot(flat)) or all_finite(flat)
    if not finite:
        raise ValueError(
            f"{what} is not finite: float64 overflowed on these inputs (theta, X or y too "
            "large for the network); scale them down"
        )
    return value


def check_seed(seed: Any) -> None:
    """A seed for :func:`numpy.random.default_rng`: None, a non-negative int, a Generator, a
    BitGenerator or a SeedSequence."""
    seeders = (np.random.Generator, np.random.BitGenerator, np.random.SeedSequence)
    if seed is None or isinstance(seed, seeders):
        return
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int or numpy.random.Generator, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")


def require_finite(arr: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` naming the first non-finite entry of ``arr``."""
    if not all_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise ValueError(f"{name} must be finite, got {arr[tuple(bad)]} at index [{where}]")


def check_theta(theta: Any, n_params: int) -> FloatArray:
    """Validate a flat parameter vector: 1-D float64 of length ``n_params``, finite.

    Returns a C-contiguous float64 array (the input itself when it already is one).
    """
    if type(theta) is np.ndarray and theta.dtype == np.float64:  # the hot path: no conversion
        arr = theta
    else:
        arr = as_real_array(theta, "theta")
    if arr.shape != (n_params,):
        raise ValueError(f"theta must have shape ({n_params},), got {arr.shape}")
    require_finite(arr, "theta")
    return np.ascontiguousarray(arr)


def check_X(X: Any, n_in: int) -> FloatArray:
    """Validate inputs: 2-D float64 of shape ``(N, n_in)`` with ``N >= 1``, finite."""
    arr = as_real_array(X, "X")
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D with shape (n_samples, {n_in}), got shape {arr.shape}")
    if arr.shape[1] != n_in:
        raise ValueError(f"X must have {n_in} features (columns), got shape {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError("X must have at least one sample (row), got 0")
    require_finite(arr, "X")
    return arr


def check_sample_weight(sample_weight: Any, n_samples: int) -> FloatArray | None:
    """Validate sample weights and return ``omega = w / sum(w)`` (or ``None`` for no weights).

    Weights must be 1-D of length ``n_samples``, finite, non-negative and not all zero.
    """
    if sample_weight is None:
        return None
    w = check_weight_values(sample_weight, n_samples)
    with np.errstate(over="ignore"):  # an overflowing sum is handled below
        total = w.sum()
    if not total > 0:
        raise ValueError("sample_weight must not be all zero")
    if not math.isfinite(total):  # finite weights whose sum overflows: only w / sum(w) matters
        w = w / w.max()
        total = w.sum()
    return w / total


def check_weight_values(sample_weight: Any, n_samples: int) -> FloatArray:
    """The checks of :func:`check_sample_weight` that hold row by row (1-D of length
    ``n_samples``, finite, non-negative); returns the weights as float64, not normalised."""
    w = as_real_array(sample_weight, "sample_weight")
    if w.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {w.shape}")
    require_finite(w, "sample_weight")
    if (w < 0).any():
        i = int(np.argmax(w < 0))
        raise ValueError(f"sample_weight must be non-negative, got {w[i]} at index {i}")
    return w


def check_vector(v: Any, n_params: int, name: str = "v") -> FloatArray:
    """Validate a direction vector of the parameter space (same rules as ``theta``)."""
    arr = as_real_array(v, name)
    if arr.shape != (n_params,):
        raise ValueError(f"{name} must have shape ({n_params},), got {arr.shape}")
    require_finite(arr, name)
    return arr


def check_out(out: Any, n_params: int, **inputs: Any) -> None:
    """Validate an ``out=`` array for a gradient: a writeable, C-contiguous float64 ndarray of
    shape ``(n_params,)`` that overlaps none of ``inputs`` (theta, X, y, sample_weight as
    given: the kernels read theta's weights and the data after writing a layer's gradient)."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != np.float64 or out.shape != (n_params,):
        raise ValueError(
            f"out must be a float64 array of shape ({n_params},), got {out.dtype} {out.shape}"
        )
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise ValueError("out must be C-contiguous and writeable")
    for name, value in inputs.items():
        if isinstance(value, np.ndarray) and np.may_share_memory(out, value):
            raise ValueError(f"out must not share memory with {name}")
