"""The immutable record of a network's architecture, and its random initialisation.

An :class:`Architecture` holds what every kernel needs to know about a network and nothing
else: the layer sizes, one :class:`~nncore.activations.Activation` record per layer, the
:class:`~nncore.losses.Loss` record, the flat :class:`~nncore.layout.Layout` and the l2
coefficient.  It is built and checked once (:func:`architecture`); the kernels
(:mod:`nncore.kernels`, :mod:`nncore.curvature`), the buffers (:mod:`nncore.workspace`) and
:class:`nncore.MLP` all read a network through it, as jax ``stax`` keeps ``(init, apply)``
apart from any model object.  It imports no module above the activation, loss and layout
records.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from ._validation import FloatArray
from .activations import Activation, get_activation
from .layout import Layout
from .losses import Loss, get_loss


class Architecture(NamedTuple):
    """What the kernels read of a network; immutable.

    Attributes
    ----------
    sizes : tuple of int
        ``(n_0, n_1, ..., n_L)``: ``n_0 = n_in``, ``n_L = n_out``.
    acts : tuple of Activation
        ``f_1, ..., f_L``, the last the output activation.
    loss : Loss
    layout : Layout
        The flat parameter vector's offsets, shapes and views.
    l2 : float
        ``0.5 * l2 * sum_l ||W_l||_F^2`` is added to the objective.
    """

    sizes: tuple[int, ...]
    acts: tuple[Activation, ...]
    loss: Loss
    layout: Layout
    l2: float

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return self.layout.n_params


def check_sizes(sizes: Any) -> tuple[int, ...]:
    """``sizes`` as a tuple of ints ``(n_in, ..., n_out)``, at least two, each at least 1."""
    if (
        isinstance(sizes, (str, bytes))
        or not isinstance(sizes, Sequence | np.ndarray)
        or (isinstance(sizes, np.ndarray) and sizes.ndim != 1)
    ):
        shape = f" of shape {sizes.shape}" if isinstance(sizes, np.ndarray) else ""
        what = type(sizes).__name__ + shape
        raise TypeError(f"sizes must be a sequence of ints, got {what}")
    out = []
    for s in sizes:
        if isinstance(s, bool) or not isinstance(s, numbers.Integral):
            raise TypeError(f"sizes must be a sequence of ints, got {s!r} in {list(sizes)}")
        out.append(int(s))
    if len(out) < 2:
        raise ValueError(f"sizes must have at least 2 entries [n_in, ..., n_out], got {out}")
    if min(out) < 1:
        raise ValueError(f"every width in sizes must be at least 1, got {out}")
    return tuple(out)


def _hidden_names(activation: Any, n_hidden: int) -> list:
    if isinstance(activation, str):
        return [activation] * n_hidden
    if isinstance(activation, Sequence) and not isinstance(activation, (bytes, bytearray)):
        names = list(activation)
    else:
        raise TypeError(
            f"activation must be a name or a sequence of names (strings), "
            f"got {type(activation).__name__}"
        )
    if len(names) != n_hidden:
        raise ValueError(
            f"activation must be one name or {n_hidden} names (one per hidden layer), "
            f"got {len(names)}"
        )
    return names


def architecture(
    sizes: Sequence[int],
    activation: str | Sequence[str] = "tanh",
    output: str | None = None,
    loss: str = "mse",
    l2: float = 0.0,
) -> Architecture:
    """Check the arguments of :class:`nncore.MLP` and return their :class:`Architecture`.

    Raises ``TypeError``/``ValueError`` that name the bad argument: sizes that are not
    positive ints, unknown names, softmax in a hidden layer, an output activation the loss
    does not allow (bce needs sigmoid, cross_entropy softmax), a negative or non-finite l2.
    """
    sizes = check_sizes(sizes)
    loss_rec = get_loss(loss)
    hidden = [get_activation(name) for name in _hidden_names(activation, len(sizes) - 2)]
    for layer, act in enumerate(hidden, start=1):
        if act.name == "softmax":
            raise ValueError(
                f"softmax is allowed only as the output activation, got it in hidden layer {layer}"
            )
    out = get_activation(loss_rec.default_output if output is None else output)
    if loss_rec.required_output is not None and out.name != loss_rec.required_output:
        raise ValueError(
            f"loss {loss_rec.name!r} needs output activation "
            f"{loss_rec.required_output!r}, got {out.name!r}"
        )
    if isinstance(l2, bool) or not isinstance(l2, numbers.Real):
        raise TypeError(f"l2 must be a real number, got {type(l2).__name__}")
    l2 = float(l2)  # a Fraction or Decimal too
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"l2 must be finite and >= 0, got {l2}")
    return Architecture(sizes, (*hidden, out), loss_rec, Layout(sizes), l2)


def init_theta(arch: Architecture, rng: np.random.Generator) -> FloatArray:
    """Random parameters, shape ``(n_params,)``, scaled per layer for its activation.

    Relu-like layers get He-normal weights ``N(0, 2 / n_{l-1})``, the others Glorot-uniform
    ``U(-r, r)``, ``r = sqrt(6 / (n_{l-1} + n_l))``; biases are 0.  Draws from ``rng`` layer
    by layer, weights only.
    """
    theta = np.zeros(arch.n_params)
    for (W, _), act in zip(arch.layout.unpack(theta), arch.acts):
        n_out, n_in = W.shape
        if act.he_init:
            W[...] = rng.normal(0.0, np.sqrt(2.0 / n_in), size=W.shape)
        else:
            r = np.sqrt(6.0 / (n_in + n_out))
            W[...] = rng.uniform(-r, r, size=W.shape)
    return theta
