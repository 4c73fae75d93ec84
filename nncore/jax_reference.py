"""Independent JAX reference implementation of nncore's definitions.

This module is a second implementation of the network, losses and derivatives
fixed in ``DESIGN.md``, written from that page only and not from the numpy
kernels: it shares the sizes, activation names and flat parameter layout,
nothing else.  Every derivative here comes from JAX autodiff, so it serves as
an oracle for the hand-derived numpy code.

All public functions take numpy arrays and return numpy float64 arrays
(python ``float`` for scalars).  The ``net`` argument only needs the attributes
``sizes``, ``activations``, ``loss_name``, ``l2`` and ``n_params``.

Side effects on import
----------------------
Importing this module enables 64-bit floats in JAX globally
(``jax.config.update("jax_enable_x64", True)``) and, when JAX's backends are not
yet initialised, restricts JAX to the CPU platform (``jax_platforms="cpu"``).
Both settings affect every other user of JAX in the same process.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

try:
    import jax
    import jax.numpy as jnp
    from jax.scipy.special import erf as _erf
except ImportError as err:  # pragma: no cover - exercised only without jax
    raise ImportError(
        "nncore.jax_reference needs JAX: pip install jax jaxlib "
        '(or pip install ".[jax]" in a checkout of nncore)'
    ) from err

jax.config.update("jax_enable_x64", True)
try:  # pin CPU; harmless failure if a backend is already initialised
    jax.config.update("jax_platforms", "cpu")
except Exception:  # noqa: BLE001, S110  # pragma: no cover
    pass

__all__ = [
    "canonical_targets",
    "gnvp",
    "grad",
    "hessp",
    "jacobian",
    "loss",
    "loss_and_grad",
    "loss_fn",
    "predict",
    "residuals",
]

# --------------------------------------------------------------------------
# Activations.  Kinks (z = 0) take the z <= 0 branch, as DESIGN.md requires:
# relu'(0) = 0, leaky_relu'(0) = 0.01, elu'(0) = elu''(0) = 1.  All branch
# selection is done with ``jnp.where(z > 0, ...)``; the untaken branch is
# finite everywhere, so no NaN leaks into gradients.  (``jnp.minimum`` is
# avoided: its derivative at a tie is 0.5, and ``jax.nn.leaky_relu`` has
# derivative 1 at 0.)


def _elu(z):
    neg = jnp.where(z > 0, 0.0, z)  # derivative 1 at z == 0, unlike minimum
    return jnp.where(z > 0, z, jnp.expm1(neg))


def _softmax(z):
    e = jnp.exp(z - jax.lax.stop_gradient(jnp.max(z, axis=-1, keepdims=True)))
    return e / jnp.sum(e, axis=-1, keepdims=True)


_ACTIVATIONS: dict[str, Callable] = {
    "identity": lambda z: z,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "logistic": jax.nn.sigmoid,
    "relu": lambda z: jnp.where(z > 0, z, 0.0),
    "leaky_relu": lambda z: jnp.where(z > 0, z, 0.01 * z),
    "softplus": lambda z: jnp.logaddexp(0.0, z),
    "elu": _elu,
    "gelu": lambda z: 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0))),
    "silu": lambda z: z * jax.nn.sigmoid(z),
    "softmax": _softmax,
}

# --------------------------------------------------------------------------
# Network structure


def _shapes(net) -> list[tuple[int, int]]:
    s = tuple(int(k) for k in net.sizes)
    return [(s[i + 1], s[i]) for i in range(len(s) - 1)]


def _check_net(net) -> None:
    shapes = _shapes(net)
    if len(net.activations) != len(shapes):
        raise ValueError("need one activation per layer")
    for a in net.activations:
        if a not in _ACTIVATIONS:
            raise ValueError(f"unknown activation {a!r}")
    if sum(o * i + o for o, i in shapes) != int(net.n_params):
        raise ValueError("net.n_params does not match net.sizes")
    out = net.activations[-1]
    if net.loss_name == "bce" and out not in ("sigmoid", "logistic"):
        raise ValueError("bce requires a sigmoid output activation")
    if net.loss_name == "cross_entropy" and out != "softmax":
        raise ValueError("cross_entropy requires a softmax output activation")
    if net.loss_name not in ("mse", "bce", "cross_entropy"):
        raise ValueError(f"unknown loss {net.loss_name!r}")


def _unpack(net, theta):
    """Split flat ``theta`` into ``[(W_l (n_l, n_{l-1}), b_l (n_l,)), ...]``."""
    layers, pos = [], 0
    for o, i in _shapes(net):
        W = theta[pos : pos + o * i].reshape(o, i)
        pos += o * i
        layers.append((W, theta[pos : pos + o]))
        pos += o
    return layers


def _forward(net, theta, X):
    """Return ``(Z_L, A_L)`` for inputs ``X`` of shape (N, n_in)."""
    A = X
    Z = X
    for (W, b), name in zip(_unpack(net, theta), net.activations):
        Z = A @ W.T + b
        A = _ACTIVATIONS[name](Z)
    return Z, A


def _weight_mask(net) -> np.ndarray:
    """1.0 on weight entries of theta, 0.0 on biases; shape (n_params,)."""
    parts = []
    for o, i in _shapes(net):
        parts += [np.ones(o * i), np.zeros(o)]
    return np.concatenate(parts)


def _l2_term(net, theta):
    return 0.5 * float(net.l2) * sum(jnp.sum(W * W) for W, _ in _unpack(net, theta))


def _data_loss_from_output(loss_name: str, out, Y, w):
    """Weighted mean per-sample loss from the network output.

    ``out`` is ``A_L`` for mse and the logits ``Z_L`` for bce / cross_entropy.
    """
    if loss_name == "mse":
        li = jnp.mean((out - Y) ** 2, axis=1)
    elif loss_name == "bce":
        li = jnp.mean(jnp.logaddexp(0.0, out) - Y * out, axis=1)
    else:  # cross_entropy
        logp = out - jax.nn.logsumexp(out, axis=1, keepdims=True)
        li = -jnp.sum(Y * logp, axis=1)
    return jnp.sum(w * li) / jnp.sum(w)


def _output(net, theta, X):
    Z, A = _forward(net, theta, X)
    return A if net.loss_name == "mse" else Z


# --------------------------------------------------------------------------
# Input handling


def canonical_targets(net, y) -> np.ndarray:
    """Targets in the 2-D float form that :func:`loss_fn` expects.

    Parameters
    ----------
    net : network description (``sizes``, ``loss_name`` are used).
    y : array_like
        mse / bce: shape (N,) when ``n_out == 1`` or (N, n_out).
        cross_entropy: integer labels (N,) in ``[0, n_out)`` or probability
        rows (N, n_out) (not renormalised).

    Returns
    -------
    Y : ndarray, shape (N, n_out), float64
        For cross_entropy, integer labels become one-hot rows.
    """
    n_out = int(net.sizes[-1])
    y = np.asarray(y)
    if y.ndim == 1:
        if net.loss_name == "cross_entropy":
            labels = y.astype(np.int64)
            if not np.array_equal(labels, y) or np.any(labels < 0) or np.any(labels >= n_out):
                raise ValueError("cross_entropy labels must be integers in [0, n_out)")
            return np.eye(n_out)[labels]
        if n_out != 1:
            raise ValueError(f"1-D y needs n_out == 1, got n_out={n_out}")
        return y.astype(np.float64).reshape(-1, 1)
    if y.ndim != 2 or y.shape[1] != n_out:
        raise ValueError(f"y must have shape (N,) or (N, {n_out}); got {y.shape}")
    return y.astype(np.float64)


def _prepare(net, theta, X, y=None, sample_weight=None):
    _check_net(net)
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (int(net.n_params),):
        raise ValueError(f"theta must have shape ({net.n_params},); got {theta.shape}")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != int(net.sizes[0]):
        raise ValueError(f"X must have shape (N, {net.sizes[0]}); got {X.shape}")
    if y is None:
        return jnp.asarray(theta), jnp.asarray(X)
    Y = canonical_targets(net, y)
    N = X.shape[0]
    if Y.shape[0] != N:
        raise ValueError("X and y have different numbers of samples")
    if sample_weight is None:
        w = np.ones(N)
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != (N,):
            raise ValueError(f"sample_weight must have shape ({N},); got {w.shape}")
        # XLA on the CPU flushes subnormal numbers to zero, so weights as small as 1e-309
        # would sum to 0 there; only w / sum(w) matters, so scale by a power of two (exact)
        # that brings the largest weight to [0.5, 1)
        top = float(np.max(w))
        if top > 0:
            w = np.ldexp(w, -np.frexp(top)[1])
    return jnp.asarray(theta), jnp.asarray(X), jnp.asarray(Y), jnp.asarray(w)


def _vector(net, v):
    v = np.asarray(v, dtype=np.float64)
    if v.shape != (int(net.n_params),):
        raise ValueError(f"v must have shape ({net.n_params},); got {v.shape}")
    return jnp.asarray(v)


# --------------------------------------------------------------------------
# Compiled transforms.  Eager JAX compiles every primitive anew for each shape,
# about a second per new architecture; one jit per (structure, transform) and
# shape costs a few tenths.  XLA's backend optimisation is switched off: it only
# lengthens compilation for networks this small.

_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


class _Spec(NamedTuple):
    """The hashable part of a network description (what the kernels read)."""

    sizes: tuple[int, ...]
    activations: tuple[str, ...]
    loss_name: str
    l2: float
    n_params: int


def _spec(net) -> _Spec:
    _check_net(net)
    return _Spec(
        tuple(int(k) for k in net.sizes),
        tuple(net.activations),
        str(net.loss_name),
        float(net.l2),
        int(net.n_params),
    )


COMPILED_LIMIT = 64
"""How many compiled transforms (network structure x transform) are kept.  Each jitted
function keeps one XLA executable per input shape, and each executable maps memory of its own:
a property test drawing thousands of architectures reached the kernel's limit of 65,530
memory maps (``vm.max_map_count``) after about 900 examples, and XLA aborted the process.
Past the limit every cache is dropped (:func:`jax.clear_caches`) and compiling starts again."""

_COMPILED: dict[tuple[_Spec, str], Callable] = {}


def _compiled(spec: _Spec, kind: str) -> Callable:
    fn = _COMPILED.get((spec, kind))
    if fn is None:
        if len(_COMPILED) >= COMPILED_LIMIT:
            _COMPILED.clear()
            jax.clear_caches()
        fn = _COMPILED[spec, kind] = _transform(spec, kind)
    return fn


def _transform(spec: _Spec, kind: str) -> Callable:
    f = loss_fn(spec)
    if kind == "value_and_grad":
        fn = jax.value_and_grad(f)
    elif kind == "hessp":

        def fn(t, v, X, Y, w):
            return jax.jvp(lambda s: jax.grad(f)(s, X, Y, w), (t,), (v,))[1]
    elif kind == "gnvp":

        def fn(t, v, X, Y, w):
            def out_fn(s):
                return _output(spec, s, X)

            out, u = jax.jvp(out_fn, (t,), (v,))
            dloss = jax.grad(lambda o: _data_loss_from_output(spec.loss_name, o, Y, w))
            Hu = jax.jvp(dloss, (out,), (u,))[1]
            return jax.vjp(out_fn, t)[1](Hu)[0]
    elif kind == "residuals":

        def fn(t, X, Y, w):
            return _residual_fn(spec, X, Y, w)(t)
    elif kind == "jacobian":

        def fn(t, X, Y, w):
            return jax.jacfwd(_residual_fn(spec, X, Y, w))(t)
    else:  # pragma: no cover
        raise ValueError(kind)
    return jax.jit(fn, compiler_options=_FAST_COMPILE)


# --------------------------------------------------------------------------
# Public API


def loss_fn(net) -> Callable[[Any, Any, Any, Any], Any]:
    """Pure JAX objective ``f(theta, X, Y, w) -> J`` for ``jax.jit``.

    Parameters
    ----------
    net : network description.

    Returns
    -------
    f : callable
        ``f(theta (n_params,), X (N, n_in), Y (N, n_out), w (N,))`` returning the
        scalar objective ``J``; ``Y`` as produced by :func:`canonical_targets`.
    """
    _check_net(net)
    name = net.loss_name

    def f(theta, X, Y, w):
        return _data_loss_from_output(name, _output(net, theta, X), Y, w) + _l2_term(net, theta)

    return f


def predict(net, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Network output ``A_L``, shape (N, n_out), for ``X`` of shape (N, n_in)."""
    theta, X = _prepare(net, theta, X)
    return np.asarray(_forward(net, theta, X)[1], dtype=np.float64)


def loss(
    net, theta: np.ndarray, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> float:
    """Objective ``J = sum_i w_i l_i / sum_i w_i + 0.5 l2 sum_l ||W_l||_F^2``."""
    return loss_and_grad(net, theta, X, y, sample_weight)[0]


def grad(
    net, theta: np.ndarray, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """Gradient ``dJ/dtheta``, shape (n_params,)."""
    return loss_and_grad(net, theta, X, y, sample_weight)[1]


def loss_and_grad(
    net, theta: np.ndarray, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """``(J, dJ/dtheta)`` with the gradient of shape (n_params,)."""
    args = _prepare(net, theta, X, y, sample_weight)
    J, g = _compiled(_spec(net), "value_and_grad")(*args)
    return float(J), np.asarray(g, dtype=np.float64)


def hessp(
    net,
    theta: np.ndarray,
    v: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Hessian-vector product ``(d^2 J / dtheta^2) v`` (forward-over-reverse).

    Parameters
    ----------
    theta, v : ndarray, shape (n_params,)
    X : ndarray, shape (N, n_in)
    y : targets, see :func:`canonical_targets`
    sample_weight : ndarray, shape (N,), optional

    Returns
    -------
    Hv : ndarray, shape (n_params,)
    """
    theta, X, Y, w = _prepare(net, theta, X, y, sample_weight)
    Hv = _compiled(_spec(net), "hessp")(theta, _vector(net, v), X, Y, w)
    return np.asarray(Hv, dtype=np.float64)


def gnvp(
    net,
    theta: np.ndarray,
    v: np.ndarray,
    X: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> np.ndarray:
    """Gauss-Newton product ``J_out^T H_out J_out v + l2 * v`` (weights only).

    The output is ``A_L`` for mse and the logits ``Z_L`` for bce and
    cross_entropy; ``H_out`` is the Hessian of the weighted data loss with
    respect to that output, computed by autodiff.

    Returns
    -------
    Gv : ndarray, shape (n_params,)
    """
    theta, X, Y, w = _prepare(net, theta, X, y, sample_weight)
    v = _vector(net, v)
    Gv = _compiled(_spec(net), "gnvp")(theta, v, X, Y, w)
    return np.asarray(Gv, dtype=np.float64) + float(net.l2) * _weight_mask(net) * np.asarray(v)


def _residual_fn(net, X, Y, w):
    if net.loss_name != "mse":
        raise ValueError("residuals/jacobian are defined for the mse loss only")
    n_out = int(net.sizes[-1])
    scale = jnp.sqrt(w / jnp.sum(w) / n_out)[:, None]
    l2 = float(net.l2)

    def r(theta):
        parts = [(scale * (_forward(net, theta, X)[1] - Y)).ravel()]
        if l2 > 0:
            parts += [math.sqrt(l2 / 2.0) * W.ravel() for W, _ in _unpack(net, theta)]
        return jnp.concatenate(parts)

    return r


def residuals(
    net, theta: np.ndarray, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """Residual vector ``r`` (mse only) with ``sum(r**2) == J``.

    ``r`` is ``sqrt(omega_i / n_out) * (A_L[i, k] - y[i, k])`` flattened
    sample-major (``omega_i = w_i / sum_j w_j``), followed when ``l2 > 0`` by
    ``sqrt(l2 / 2) * W_l.ravel()`` for each layer.

    Returns
    -------
    r : ndarray, shape (N * n_out + [l2 > 0] * n_weights,)
    """
    if net.loss_name != "mse":
        raise ValueError("residuals/jacobian are defined for the mse loss only")
    theta, X, Y, w = _prepare(net, theta, X, y, sample_weight)
    return np.asarray(_compiled(_spec(net), "residuals")(theta, X, Y, w), dtype=np.float64)


def jacobian(
    net, theta: np.ndarray, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
) -> np.ndarray:
    """Jacobian of :func:`residuals`, shape (len(residuals), n_params)."""
    if net.loss_name != "mse":
        raise ValueError("residuals/jacobian are defined for the mse loss only")
    theta, X, Y, w = _prepare(net, theta, X, y, sample_weight)
    return np.asarray(_compiled(_spec(net), "jacobian")(theta, X, Y, w), dtype=np.float64)
