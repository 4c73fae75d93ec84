r"""Activation functions, each defined next to its first and second derivative.

One :class:`Activation` record per name holds ``f``, ``f'`` and ``f''`` together, so the
forward pass, backprop and (later) the Hessian-vector product read from the same table and
the derivatives cannot drift away from the function.  Derivatives take both the
pre-activation ``z`` and the activation ``a = f(z)`` so each can use whichever is cheaper
and more accurate (``tanh' = 1 - a**2``, but ``elu' = exp(z)`` for ``z <= 0`` because
``a + 1`` cancels for very negative ``z``).

At a kink (``z = 0`` for relu, leaky_relu and elu) the derivatives are those of the
``z <= 0`` branch, as DESIGN.md fixes: ``relu'(0) = 0``, ``leaky_relu'(0) = 0.01``,
``elu'(0) = elu''(0) = 1``.

``softmax`` is not element-wise; it acts on the last axis and is allowed only as the
output activation.  Its Jacobian is ``diag(a) - a a^T`` per row, applied by
:meth:`Activation.vjp`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

Array = np.ndarray
_SQRT2 = np.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)
LEAKY_SLOPE = 0.01


@dataclass(frozen=True)
class Activation:
    """An activation ``f`` with its derivatives.

    Attributes
    ----------
    name : str
        Canonical name.
    f : callable ``f(z, out=None) -> a``
        The function, element-wise (or row-wise for softmax); written into ``out`` (an array
        of ``z``'s shape) when given.
    df : callable ``df(z, a, out=None) -> f'(z)`` or None
        Element-wise first derivative, written into ``out`` (of ``z``'s shape and dtype
        :attr:`df_dtype`) when given; ``None`` for softmax (see :meth:`vjp`).
    d2f : callable ``d2f(z, a) -> f''(z)`` or None
        Element-wise second derivative; ``None`` for softmax.
    kink : bool
        True when ``f'`` jumps at ``z = 0`` (relu, leaky_relu): finite differences whose
        step crosses ``z = 0`` are not accurate there.
    he_init : bool
        True for relu-like activations, initialised He-style; others Glorot-style.
    kink2 : bool
        True when ``f''`` jumps at ``z = 0`` while ``f'`` is continuous (elu): differences of
        the gradient, and Hessian checks, are not accurate across it.
    df_dtype : numpy dtype
        The dtype ``df`` writes: ``bool`` for relu (its derivative is a 0/1 mask, an eighth of
        the memory traffic of float64; returned viewed as ``uint8``, which numpy multiplies
        floats by faster), float64 for the others.
    """

    name: str
    f: Callable[[Array], Array]
    df: Callable[[Array, Array], Array] | None
    d2f: Callable[[Array, Array], Array] | None
    kink: bool = False
    he_init: bool = False
    kink2: bool = False
    df_dtype: type = np.float64

    def vjp(self, g: Array, z: Array, a: Array, scratch: Array | None = None) -> Array:
        r"""Return :math:`\partial J / \partial Z` from :math:`G = \partial J / \partial A`.

        Element-wise: ``G * f'(Z)``.  Softmax, per row ``i``:
        ``a_i * (g_i - <g_i, a_i>)``.  ``g`` (shape ``(N, n)``) is overwritten and returned.
        ``scratch`` (shape ``(N, n)``, dtype :attr:`df_dtype`) receives ``f'(Z)`` when given,
        instead of a new temporary.
        """
        if self.name == "identity":
            return g
        if self.df is None:  # softmax
            g -= np.einsum("ij,ij->i", g, a)[:, None]
            g *= a
            return g
        g *= self.df(z, a, scratch)
        return g

    def jvp(
        self, u: Array, z: Array, a: Array, out: Array | None = None, scratch: Array | None = None
    ) -> Array:
        r"""The directional derivative :math:`R\{A\} = f'(Z)[U]` for a tangent ``U`` of ``Z``.

        The Jacobian of every activation is symmetric (diagonal, or ``diag(a) - a a^T`` for
        softmax), so this is :meth:`vjp` on a copy of ``u``: into ``out`` when given (``scratch``
        as for :meth:`vjp`), else a new ``(N, n)`` array.
        """
        if out is None:
            return self.vjp(u.copy(), z, a)
        np.copyto(out, u)
        return self.vjp(out, z, a, scratch)

    def vjp_tangent(
        self,
        g: Array,
        rg: Array,
        z: Array,
        a: Array,
        rz: Array,
        overwrite_rg: bool = False,
        scratch: Array | None = None,
    ) -> Array:
        r"""Directional derivative of :meth:`vjp` when ``G`` moves by ``RG`` and ``Z`` by ``RZ``.

        Element-wise: :math:`R\{G \odot f'(Z)\} = RG \odot f'(Z) + G \odot f''(Z) \odot RZ`.
        Softmax, per row, with :math:`Ra = a \odot (RZ - \langle a, RZ\rangle)`:
        :math:`Ra \odot (g - \langle g, a\rangle) + a \odot (Rg - \langle Rg, a\rangle
        - \langle g, Ra\rangle)`.  Returns a new ``(N, n)`` array, or, with ``overwrite_rg``
        (element-wise activations), ``rg`` itself, overwritten (``scratch`` as for
        :meth:`vjp`).  The other inputs are not modified.
        """
        if self.name == "identity":
            return rg if overwrite_rg else rg.copy()
        if self.df is None:  # softmax
            ra = self.jvp(rz, z, a)
            out = ra * (g - np.einsum("ij,ij->i", g, a)[:, None])
            out += a * (rg - (np.einsum("ij,ij->i", rg, a) + np.einsum("ij,ij->i", g, ra))[:, None])
            return out
        curv = self.d2f(z, a)  # G f''(Z) RZ, the one temporary
        curv *= g
        curv *= rz
        out = rg if overwrite_rg else rg.copy()
        out *= self.df(z, a, scratch)
        out += curv
        return out


def _into(out: Array | None, value: Array) -> Array:
    """``value``, copied into ``out`` when one is given (for the rarer activations, whose
    formulas need temporaries anyway)."""
    if out is None:
        return value
    np.copyto(out, value)
    return out


def _identity(z: Array, out: Array | None = None) -> Array:
    return z if out is None else _into(out, z)


def _identity_df(z: Array, a: Array, out: Array | None = None) -> Array:
    return _into(out, np.ones_like(z))


def _zero_d2f(z: Array, a: Array) -> Array:
    return np.zeros_like(z)


def _tanh(z: Array, out: Array | None = None) -> Array:
    return np.tanh(z, out=out)


def _tanh_df(z: Array, a: Array, out: Array | None = None) -> Array:
    out = np.multiply(a, a, out=out)
    return np.subtract(1.0, out, out=out)  # 1 - a^2


def _tanh_d2f(z: Array, a: Array) -> Array:
    return -2.0 * a * (1.0 - a * a)


def _sigmoid(z: Array, out: Array | None = None) -> Array:
    return special.expit(z, out=out)


def _sigmoid_df(z: Array, a: Array, out: Array | None = None) -> Array:
    out = np.subtract(1.0, a, out=out)
    out *= a  # a (1 - a)
    return out


def _sigmoid_d2f(z: Array, a: Array) -> Array:
    return a * (1.0 - a) * (1.0 - 2.0 * a)


def _relu(z: Array, out: Array | None = None) -> Array:
    # numpy's maximum has no SIMD loop for a scalar operand, but has one for a zero column
    # when z is feature-major (contiguous down the rows), the layout of the kernels' buffers
    feature_major = z.ndim == 2 and z.flags.f_contiguous and not z.flags.c_contiguous
    return np.maximum(z, np.zeros((z.shape[0], 1)) if feature_major else 0.0, out=out)


def _relu_df(z: Array, a: Array, out: Array | None = None) -> Array:
    # a 0/1 mask, an eighth of the memory of floats; viewed as uint8, float64 times mask takes a
    # faster numpy loop than it does for bool
    return np.greater(z, 0.0, out=out).view(np.uint8)


def _leaky_relu(z: Array, out: Array | None = None) -> Array:
    return _into(out, np.where(z > 0, z, LEAKY_SLOPE * z))


def _leaky_relu_df(z: Array, a: Array, out: Array | None = None) -> Array:
    return _into(out, np.where(z > 0, 1.0, LEAKY_SLOPE))


def _softplus(z: Array, out: Array | None = None) -> Array:
    return np.logaddexp(0.0, z, out=out)


def _softplus_df(z: Array, a: Array, out: Array | None = None) -> Array:
    return special.expit(z, out=out)


def _elu(z: Array, out: Array | None = None) -> Array:
    return _into(out, np.where(z > 0, z, np.expm1(np.minimum(z, 0.0))))


def _elu_df(z: Array, a: Array, out: Array | None = None) -> Array:
    # exp(z), not a + 1: a + 1 loses all digits of exp(z) when z << 0
    return _into(out, np.where(z > 0, 1.0, np.exp(np.minimum(z, 0.0))))


def _elu_d2f(z: Array, a: Array) -> Array:
    return np.where(z > 0, 0.0, np.exp(np.minimum(z, 0.0)))


def _gelu(z: Array, out: Array | None = None) -> Array:
    # 0.5 z (1 + erf(z / sqrt 2)) == z * Phi(z); erfc keeps Phi accurate for z << 0
    return _into(out, z * (0.5 * special.erfc(-z / _SQRT2)))


def _gelu_df(z: Array, a: Array, out: Array | None = None) -> Array:
    return _into(out, 0.5 * special.erfc(-z / _SQRT2) + z * _INV_SQRT_2PI * np.exp(-0.5 * z * z))


def _gelu_d2f(z: Array, a: Array) -> Array:
    return _INV_SQRT_2PI * np.exp(-0.5 * z * z) * (2.0 - z * z)


def _silu(z: Array, out: Array | None = None) -> Array:
    return _into(out, z * special.expit(z))


def _silu_df(z: Array, a: Array, out: Array | None = None) -> Array:
    s = special.expit(z)
    return _into(out, s * (1.0 + z * (1.0 - s)))


def _silu_d2f(z: Array, a: Array) -> Array:
    s = special.expit(z)
    return s * (1.0 - s) * (2.0 + z * (1.0 - 2.0 * s))


def _softplus_d2f(z: Array, a: Array) -> Array:
    s = special.expit(z)
    return s * (1.0 - s)


def _softmax(z: Array, out: Array | None = None) -> Array:
    return _into(out, special.softmax(z, axis=-1))


_TABLE = (
    Activation("identity", _identity, _identity_df, _zero_d2f),
    Activation("tanh", _tanh, _tanh_df, _tanh_d2f),
    Activation("sigmoid", _sigmoid, _sigmoid_df, _sigmoid_d2f),
    Activation("relu", _relu, _relu_df, _zero_d2f, kink=True, he_init=True, df_dtype=np.bool_),
    Activation("leaky_relu", _leaky_relu, _leaky_relu_df, _zero_d2f, kink=True, he_init=True),
    Activation("softplus", _softplus, _softplus_df, _softplus_d2f, he_init=True),
    Activation("elu", _elu, _elu_df, _elu_d2f, he_init=True, kink2=True),
    Activation("gelu", _gelu, _gelu_df, _gelu_d2f, he_init=True),
    Activation("silu", _silu, _silu_df, _silu_d2f, he_init=True),
    Activation("softmax", _softmax, None, None),
)

ACTIVATIONS: dict[str, Activation] = {act.name: act for act in _TABLE}
"""Every activation by canonical name."""

_ALIASES = {"logistic": "sigmoid"}


def get_activation(name: object) -> Activation:
    """Look an activation up by name (``"logistic"`` is an alias of ``"sigmoid"``).

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        If the name is unknown; the message lists the valid names.
    """
    if not isinstance(name, str):
        raise TypeError(f"activation names must be strings, got {type(name).__name__}")
    key = _ALIASES.get(name, name)
    if key not in ACTIVATIONS:
        valid = ", ".join(sorted([*ACTIVATIONS, *_ALIASES]))
        raise ValueError(f"unknown activation {name!r}; valid names are: {valid}")
    return ACTIVATIONS[key]
