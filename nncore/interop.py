"""Weights in and out of other libraries' layouts, and scikit-learn's objective in nncore's terms.

This module owns every conversion between nncore's flat ``theta`` (DESIGN.md: per layer
``W_l.ravel()`` of shape ``(n_l, n_{l-1})``, then ``b_l``) and the layouts other libraries
keep their weights in:

* scikit-learn's ``MLPClassifier`` / ``MLPRegressor``: ``coefs_[l]`` of shape
  ``(n_{l-1}, n_l)`` (the transpose of ``W_l``) and ``intercepts_[l]``
  (:func:`from_sklearn`, :func:`to_sklearn`);
* PyTorch's ``nn.Sequential`` of ``Linear`` layers: a state dict with keys ``"{i}.weight"``
  of shape ``(n_l, n_{l-1})`` (nncore's orientation) and ``"{i}.bias"``
  (:func:`from_state_dict`, :func:`to_state_dict`);
* JAX: a list of ``(W, b)`` pairs (``jax.example_libraries.stax``) or of
  ``{"kernel": W, "bias": b}`` dicts (flax), ``W`` of shape ``(n_{l-1}, n_l)``
  (:func:`from_params`, :func:`to_params`).

It also states how scikit-learn's MLP objective maps onto :class:`~nncore.MLP`
(:func:`sklearn_loss_scale`, :func:`sklearn_l2`).  With ``N`` samples (or ``sw = sum_i
w_i`` with sample weights), ``K`` outputs and ``P = sum_l ||W_l||_F^2``:

================  ======================================  ==============================
scikit-learn      its objective                           nncore's, ``J_nn``
================  ======================================  ==============================
squared_error     ``0.5 mean_i mean_k (A_ik - y_ik)^2``    mse: ``mean_i mean_k (...)^2``
binary log loss   ``mean_i sum_k bce_ik``                  bce: ``mean_i mean_k bce_ik``
log loss          ``mean_i -sum_k y_ik log p_ik``          cross_entropy: the same
l2 term           ``0.5 alpha P / sw``                     ``0.5 l2 P``
================  ======================================  ==============================

So scikit-learn's objective is ``c J_nn`` with ``c`` = 0.5 (squared error), ``K`` (binary
and multilabel log loss, one sigmoid per output) or 1 (softmax log loss), when
``l2 = alpha / (c sw)``.  (scikit-learn also clips probabilities to ``[eps, 1 - eps]``;
nncore computes from the logits, exact for saturated outputs: the two agree wherever no
probability is within ``eps`` of 0 or 1.)  Everything here is numpy; scikit-learn is imported
only by :func:`to_sklearn`.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._validation import FloatArray, check_theta
from .network import MLP

__all__ = [
    "SKLEARN_ACTIVATIONS",
    "from_params",
    "from_sklearn",
    "from_state_dict",
    "sklearn_l2",
    "sklearn_loss_scale",
    "to_params",
    "to_sklearn",
    "to_state_dict",
]

SKLEARN_ACTIVATIONS = {
    "identity": "identity",
    "logistic": "sigmoid",
    "tanh": "tanh",
    "relu": "relu",
}
"""scikit-learn's activation names -> nncore's (scikit-learn has only these four)."""
_TO_SKLEARN = {v: k for k, v in SKLEARN_ACTIVATIONS.items()}
_KEY = re.compile(r"^(\d+)\.(weight|bias)$")


# -- scikit-learn's objective ------------------------------------------------------------
def sklearn_loss_scale(loss: str, n_outputs: int) -> float:
    """``c`` with scikit-learn's data term ``= c *`` nncore's (see the module notes).

    Parameters
    ----------
    loss : {"mse", "bce", "cross_entropy"}
        nncore's loss name.
    n_outputs : int
        The network's output width ``K``.

    Returns
    -------
    float
        0.5 for mse, ``K`` for bce, 1.0 for cross_entropy.
    """
    if loss == "mse":
        return 0.5
    if loss == "bce":
        return float(n_outputs)
    if loss == "cross_entropy":
        return 1.0
    raise ValueError(f"loss must be 'mse', 'bce' or 'cross_entropy', got {loss!r}")


def sklearn_l2(alpha: float, loss: str, n_outputs: int, weight_sum: float) -> float:
    """nncore's ``l2`` for scikit-learn's ``alpha``: ``alpha / (c * weight_sum)``.

    ``weight_sum`` is the number of training samples, or the sum of the sample weights;
    ``c`` is :func:`sklearn_loss_scale`.  Then scikit-learn's objective is exactly ``c``
    times the :class:`~nncore.MLP` objective with this ``l2``.

    Parameters
    ----------
    alpha : float
        scikit-learn's l2 strength (``MLPClassifier.alpha``, ``MLPRegressor.alpha``).
    loss : {"mse", "bce", "cross_entropy"}
        nncore's loss name.
    n_outputs : int
        The network's output width ``K``.
    weight_sum : float
        The number of training samples, or the sum of the sample weights; must be > 0.

    Returns
    -------
    float
        nncore's ``l2``, ``alpha / (c * weight_sum)``.

    Raises
    ------
    ValueError
        When ``weight_sum`` is not > 0 (or NaN), or ``loss`` is not one of the three.
    """
    if not weight_sum > 0:
        raise ValueError(f"weight_sum must be > 0, got {weight_sum}")
    return float(alpha) / (sklearn_loss_scale(loss, n_outputs) * float(weight_sum))


# -- array checks ------------------------------------------------------------------------
def _float_array(value: Any, key: str, ndim: int) -> FloatArray:
    """``value`` (an ndarray or anything with ``__array__``) as a float64 copy of ``ndim``."""
    try:
        arr = np.asarray(value)
    except Exception as err:  # torch tensors that require grad, ragged lists, ...
        raise ValueError(f"{key}: cannot be read as an array: {err}") from None
    if arr.dtype.kind != "f":
        raise ValueError(f"{key}: expected floating-point data, got dtype {arr.dtype} {arr.shape}")
    if arr.ndim != ndim:
        raise ValueError(f"{key}: expected a {ndim}-D array, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{key}: holds inf or NaN (shape {arr.shape})")
    return np.array(arr, dtype=np.float64)


def _net_from_layers(
    layers: list[tuple[str, FloatArray, str, FloatArray]],
    activation: Any,
    output: str | None,
    loss: str,
    l2: float,
) -> tuple[MLP, FloatArray]:
    """The network and theta of ``[(w_key, W (out, in), b_key, b), ...]``, shapes checked."""
    if not layers:
        raise ValueError("no layers: expected at least one weight and bias")
    for k, (w_key, W, b_key, b) in enumerate(layers):
        if b.shape != (W.shape[0],):
            raise ValueError(
                f"{b_key} has shape {b.shape}, but {w_key} has shape {W.shape} "
                f"(its bias needs shape ({W.shape[0]},))"
            )
        if k > 0 and W.shape[1] != layers[k - 1][1].shape[0]:
            prev_key, prev = layers[k - 1][0], layers[k - 1][1]
            raise ValueError(
                f"shapes do not chain: {prev_key} gives {prev.shape[0]} outputs "
                f"(shape {prev.shape}), {w_key} takes {W.shape[1]} inputs (shape {W.shape})"
            )
    sizes = [layers[0][1].shape[1]] + [W.shape[0] for _, W, _, _ in layers]
    net = MLP(sizes, activation=activation, output=output, loss=loss, l2=l2)
    return net, net.pack([(W, b) for _, W, _, b in layers])


# -- PyTorch state dicts -----------------------------------------------------------------
def from_state_dict(
    mapping: Mapping[str, Any],
    activation: str | Sequence[str] = "relu",
    output: str | None = None,
    loss: str = "mse",
    l2: float = 0.0,
) -> tuple[MLP, FloatArray]:
    """A network and theta from a PyTorch ``nn.Sequential`` of ``Linear`` layers' state dict.

    Parameters
    ----------
    mapping : mapping of str to array_like
        Keys ``"{i}.weight"`` of shape ``(n_l, n_{l-1})`` and ``"{i}.bias"`` of shape
        ``(n_l,)``, layers in increasing ``i`` (any integers: ``nn.Sequential(Linear, ReLU,
        Linear)`` has 0 and 2).  Values are numpy arrays or anything with ``__array__``
        (torch tensors from ``model.state_dict()``; torch is never imported), floating
        point of any precision; they are copied to float64 and not modified.
    activation, output, loss, l2
        As for :class:`~nncore.MLP`: the state dict holds no activations.

    Returns
    -------
    net : MLP
    theta : ndarray of shape (net.n_params,)

    Raises
    ------
    ValueError
        A key that is not ``"{i}.weight"`` or ``"{i}.bias"``, a layer missing one of them,
        non-float or non-finite values, or shapes that do not chain; the message names the
        key and the shapes.
    """
    if not isinstance(mapping, Mapping):
        raise TypeError(f"mapping must be a mapping of str to arrays, got {type(mapping).__name__}")
    found: dict[int, dict[str, Any]] = {}
    for key, value in mapping.items():
        match = _KEY.match(key) if isinstance(key, str) else None
        if match is None:
            raise ValueError(f"unexpected key {key!r}: expected '{{i}}.weight' and '{{i}}.bias'")
        found.setdefault(int(match[1]), {})[match[2]] = value
    layers = []
    for i in sorted(found):
        for part in ("weight", "bias"):
            if part not in found[i]:
                raise ValueError(f"missing key '{i}.{part}' (found {sorted(mapping)})")
        W = _float_array(found[i]["weight"], f"'{i}.weight'", 2)
        b = _float_array(found[i]["bias"], f"'{i}.bias'", 1)
        layers.append((f"'{i}.weight'", W, f"'{i}.bias'", b))
    return _net_from_layers(layers, activation, output, loss, l2)


def to_state_dict(net: MLP, theta: Any, step: int = 2) -> dict[str, FloatArray]:
    """``theta`` as a PyTorch-style state dict of new float64 arrays.

    Parameters
    ----------
    net : MLP
        The network whose layout ``theta`` follows.
    theta : array_like of shape (net.n_params,)
        The flat parameter vector (layout in :class:`~nncore.layout.Layout`); not modified.
    step : int, default 2
        Layer ``l`` (from 0) gets keys ``"{step * l}.weight"`` (shape ``(n_l, n_{l-1})``) and
        ``"{step * l}.bias"``: 2 fits ``nn.Sequential(Linear, act, Linear, ...)``, 1 a
        sequence of ``Linear`` layers alone.

    Returns
    -------
    dict of str to ndarray
        ``{"{step * l}.weight": W_l, "{step * l}.bias": b_l, ...}`` in layer order, ``W_l``
        of shape ``(n_l, n_{l-1})`` and ``b_l`` of shape ``(n_l,)``: new float64 arrays that
        share no memory with ``theta``.  ``torch.from_numpy`` turns the values into
        tensors.

    Raises
    ------
    ValueError
        When ``step`` is not a positive int.
    TypeError, ValueError
        For a ``theta`` of the wrong type or shape or with inf or NaN.
    """
    if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 1:
        raise ValueError(f"step must be a positive int, got {step!r}")
    out = {}
    for layer, (W, b) in enumerate(net.unpack(check_theta(theta, net.n_params))):
        out[f"{step * layer}.weight"] = W.copy()
        out[f"{step * layer}.bias"] = b.copy()
    return out


# -- JAX parameter lists -----------------------------------------------------------------
def from_params(
    params: Sequence[Any],
    activation: str | Sequence[str] = "relu",
    output: str | None = None,
    loss: str = "mse",
    l2: float = 0.0,
) -> tuple[MLP, FloatArray]:
    """A network and theta from a JAX-style list of layers.

    Parameters
    ----------
    params : sequence
        One entry per layer: a pair ``(W, b)`` (stax) or a dict ``{"kernel": W, "bias": b}``
        (flax), with ``W`` of shape ``(n_{l-1}, n_l)`` (``x @ W + b``) and ``b`` of shape
        ``(n_l,)``; jax arrays or anything with ``__array__``, copied to float64.
    activation, output, loss, l2
        As for :class:`~nncore.MLP`.

    Returns
    -------
    net : MLP
    theta : ndarray of shape (net.n_params,)

    Raises
    ------
    ValueError
        An entry that is neither, dict keys other than ``kernel`` and ``bias``, non-float or
        non-finite values, or shapes that do not chain; the message names the entry.
    """
    if isinstance(params, (str, bytes, Mapping)) or not isinstance(params, Sequence):
        raise TypeError(f"params must be a list of layers, got {type(params).__name__}")
    layers = []
    for k, entry in enumerate(params):
        if isinstance(entry, Mapping):
            if set(entry) != {"kernel", "bias"}:
                raise ValueError(
                    f"params[{k}]: expected the keys ['bias', 'kernel'], got {sorted(entry)}"
                )
            w_key, b_key = f"params[{k}]['kernel']", f"params[{k}]['bias']"
            kernel, bias = entry["kernel"], entry["bias"]
        elif isinstance(entry, Sequence) and not isinstance(entry, str) and len(entry) == 2:
            w_key, b_key = f"params[{k}][0] (W)", f"params[{k}][1] (b)"
            kernel, bias = entry
        else:
            raise ValueError(
                f"params[{k}]: expected a pair (W, b) or a dict with 'kernel' and 'bias', "
                f"got {type(entry).__name__}"
            )
        W = _float_array(kernel, w_key, 2).T  # (in, out) -> nncore's (out, in)
        layers.append((w_key, W, b_key, _float_array(bias, b_key, 1)))
    return _net_from_layers(layers, activation, output, loss, l2)


def to_params(net: MLP, theta: Any, style: str = "pairs") -> list[Any]:
    """``theta`` as a JAX-style list of layers (new float64 arrays, ``W`` of shape (in, out)).

    Parameters
    ----------
    net : MLP
        The network whose layout ``theta`` follows.
    theta : array_like of shape (net.n_params,)
        The flat parameter vector (layout in :class:`~nncore.layout.Layout`); not modified.
    style : {"pairs", "flax"}, default "pairs"
        ``[(W, b), ...]`` or ``[{"kernel": W, "bias": b}, ...]``.

    Returns
    -------
    list of (ndarray, ndarray) or list of dict of str to ndarray
        One entry per layer, in order: ``W`` of shape ``(n_{l-1}, n_l)`` (``x @ W + b``) and
        ``b`` of shape ``(n_l,)``, new C-contiguous float64 arrays that share no memory with
        ``theta``; the input :func:`from_params` takes back.

    Raises
    ------
    ValueError
        When ``style`` is neither ``"pairs"`` nor ``"flax"``.
    TypeError, ValueError
        For a ``theta`` of the wrong type or shape or with inf or NaN.
    """
    if style not in ("pairs", "flax"):
        raise ValueError(f"style must be 'pairs' or 'flax', got {style!r}")
    out: list[Any] = []
    for W, b in net.unpack(check_theta(theta, net.n_params)):
        kernel, bias = W.T.copy(), b.copy()  # ascontiguousarray would keep a view: (n, 1)
        out.append((kernel, bias) if style == "pairs" else {"kernel": kernel, "bias": bias})
    return out


# -- scikit-learn ------------------------------------------------------------------------
def _sklearn_loss(est: Any) -> str:
    out = getattr(est, "out_activation_", None)
    if out == "softmax":
        return "cross_entropy"
    if out == "logistic":
        return "bce"
    if out == "identity" and getattr(est, "loss", "squared_error") == "squared_error":
        return "mse"
    raise ValueError(
        f"unsupported scikit-learn MLP: output activation {out!r} with loss "
        f"{getattr(est, 'loss', None)!r} (nncore has softmax/log loss, logistic/log loss and "
        "identity/squared error)"
    )


def from_sklearn(est: Any, weight_sum: float | None = None) -> tuple[MLP, FloatArray]:
    """A network and theta from a fitted scikit-learn ``MLPClassifier`` or ``MLPRegressor``.

    Parameters
    ----------
    est : fitted sklearn.neural_network.MLPClassifier or MLPRegressor
        Read through ``coefs_`` (each ``(n_{l-1}, n_l)``), ``intercepts_``, ``activation``
        and ``out_activation_``; not modified.
    weight_sum : float, optional
        The number of training samples (or the sum of the sample weights).  Given, the
        network's ``l2`` is :func:`sklearn_l2` of ``est.alpha``, so that
        ``sklearn_loss_scale(net.loss_name, net.sizes[-1]) * net.loss(theta, X, Y)`` is
        scikit-learn's objective; otherwise ``l2 = 0``.

    Returns
    -------
    net : MLP
        Sizes ``[n_features, *hidden, n_outputs]``; loss cross_entropy (softmax output),
        bce (logistic) or mse (identity).  Targets for ``net.loss`` are those scikit-learn
        trains on: class indices (softmax), 0/1 columns (logistic) or ``y`` (regression).
    theta : ndarray of shape (net.n_params,)
    """
    coefs, intercepts = getattr(est, "coefs_", None), getattr(est, "intercepts_", None)
    if coefs is None or intercepts is None or not hasattr(est, "activation"):
        raise TypeError(f"expected a fitted scikit-learn MLP, got {type(est).__name__}")
    if est.activation not in SKLEARN_ACTIVATIONS:
        raise ValueError(f"unknown scikit-learn activation {est.activation!r}")
    if len(coefs) != len(intercepts):
        raise ValueError(f"{len(coefs)} coefs_ but {len(intercepts)} intercepts_")
    loss = _sklearn_loss(est)
    layers = []
    for k, (c, b) in enumerate(zip(coefs, intercepts)):
        W = _float_array(c, f"coefs_[{k}]", 2).T
        b = _float_array(b, f"intercepts_[{k}]", 1)
        layers.append((f"coefs_[{k}]", W, f"intercepts_[{k}]", b))
    net, theta = _net_from_layers(layers, SKLEARN_ACTIVATIONS[est.activation], None, loss, 0.0)
    if weight_sum is not None:
        l2 = sklearn_l2(est.alpha, loss, net.sizes[-1], weight_sum)
        net = MLP(net.sizes, net.activations[:-1], net.output, loss, l2)
    return net, theta


def to_sklearn(net: MLP, theta: Any, classes: Any = None, alpha: float = 0.0001) -> Any:
    """A fitted scikit-learn MLP with the weights ``theta``: predictions equal ``net.predict``.

    Parameters
    ----------
    net : MLP
        One hidden activation among identity, sigmoid, tanh, relu for every hidden layer,
        and a loss scikit-learn has: cross_entropy with at least 3 outputs (a multiclass
        ``MLPClassifier``), bce (binary with one output, multilabel with more), or mse with
        identity output (``MLPRegressor``).
    theta : array_like of shape (net.n_params,)
        Copied, not modified.
    classes : array_like, optional
        The classifier's ``classes_``: default ``0..K-1`` (``[0, 1]`` for binary).  Ignored
        for multilabel (scikit-learn's classes are then ``0..K-1``).
    alpha : float, default 1e-4
        Stored as the estimator's ``alpha`` (for a later ``fit``; nothing else uses it).

    Returns
    -------
    sklearn.neural_network.MLPClassifier or MLPRegressor
        ``solver="lbfgs"``; ``predict_proba`` (classifier) or ``predict`` (regressor) equals
        ``net.predict(theta, X)`` to rounding (the matrix products are the same, transposed).
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.preprocessing import LabelBinarizer

    theta = check_theta(theta, net.n_params)
    hidden = set(net.activations[:-1]) or {"relu"}
    if len(hidden) != 1 or not hidden <= set(_TO_SKLEARN):
        raise ValueError(
            "scikit-learn needs one hidden activation among identity, sigmoid, tanh and relu, "
            f"got {list(net.activations[:-1])}"
        )
    K = net.sizes[-1]
    kwargs = dict(
        hidden_layer_sizes=tuple(net.sizes[1:-1]),
        activation=_TO_SKLEARN[hidden.pop()],
        solver="lbfgs",
        alpha=alpha,
    )
    loss = net.loss_name
    if loss == "mse":
        if net.output != "identity":
            raise ValueError(f"scikit-learn's regressor has an identity output, got {net.output!r}")
        est, out_activation = MLPRegressor(**kwargs), "identity"
    elif loss == "cross_entropy" and K < 3:
        raise ValueError(
            f"a softmax output with {K} units has no scikit-learn form (its binary classifier "
            "has one logistic output): use loss='bce'"
        )
    else:
        est = MLPClassifier(**kwargs)
        out_activation = "softmax" if loss == "cross_entropy" else "logistic"
        binarizer = LabelBinarizer()
        if loss == "bce" and K > 1:  # multilabel: classes 0..K-1
            binarizer.fit(np.vstack([np.zeros(K, dtype=int), np.ones(K, dtype=int)]))
        else:
            labels = np.arange(max(K, 2)) if classes is None else np.asarray(classes)
            if len(labels) != max(K, 2) or len(np.unique(labels)) != len(labels):
                raise ValueError(
                    f"classes must be {max(K, 2)} distinct labels for {K} outputs, got {labels!r}"
                )
            binarizer.fit(labels)
        est._label_binarizer = binarizer
        est.classes_ = binarizer.classes_
    pairs = net.unpack(theta)
    est.coefs_ = [np.array(W.T) for W, _ in pairs]
    est.intercepts_ = [b.copy() for _, b in pairs]
    est.n_features_in_ = net.sizes[0]
    est.n_layers_ = len(net.sizes)
    est.n_outputs_ = K
    est.out_activation_ = out_activation
    est.n_iter_ = 0
    est.t_ = 0
    return est
