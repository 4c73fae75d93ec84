"""What both estimators share: parameter checks, the training loop over starts, early stopping.

:class:`BaseMLP` turns scikit-learn's hyperparameters into an :class:`~nncore.MLP` and
:func:`nncore.train` calls, and the result into scikit-learn's fitted attributes.  It has no
numerics of its own: the objective is the network's, with ``l2`` from
:func:`nncore.interop.sklearn_l2` so that ``c * J_nn`` is scikit-learn's objective
(:mod:`nncore.interop` states every constant).  The subclasses (:mod:`._estimators`) own the
targets: how ``y`` is encoded for the loss and how outputs are decoded into predictions.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from ..interop import SKLEARN_ACTIVATIONS, from_sklearn, sklearn_l2, sklearn_loss_scale
from ..io import network_from_spec, network_spec
from ..network import MLP
from ..training import CURVATURES, METHODS, train

_CANONICAL = {m.lower(): m for m in METHODS}
_MAXITER_OPTION = {"TNC": "maxfun", "lm": "max_nfev", "trf": "max_nfev", "dogbox": "max_nfev"}
"""The option that bounds the work of each method (``maxiter`` for the others).  TNC counts
function evaluations, the least-squares methods Jacobian evaluations."""
_TOL_OPTION = {"Newton-CG": "xtol", "SLSQP": "ftol", "lm": "gtol", "trf": "gtol", "dogbox": "gtol"}
"""The option ``tol`` sets (``gtol`` for the others, as scikit-learn's lbfgs solver does)."""
_RELATIVE_TOL = {"Newton-CG", "lm", "trf", "dogbox"}
"""Methods whose tolerance is relative (to x, or to the scaled gradient): ``tol`` as is.  The
others' tolerances are absolute on the objective or its gradient, so they get ``tol / c``:
nncore's objective is scikit-learn's divided by ``c``, and the stop happens where it would on
scikit-learn's scale."""


def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be at least {low}, got {value}")
    return int(value)


def _check_real(value: Any, name: str, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    ok = np.isfinite(value) and value >= low and (high is None or value < high)
    if not ok:
        bound = f">= {low}" if high is None else f"in [{low}, {high})"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return float(value)


def hidden_sizes(value: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple of positive ints (an int is one layer)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"hidden_layer_sizes must be an int or a sequence of ints, got {value!r}")
    return tuple(_check_int(v, "each hidden layer size", 1) for v in value)


class _Monitor:
    """The ``callback`` of one start: prints the loss (verbose) and tracks early stopping.

    Records the validation score after every iteration; keeps a copy of the best theta;
    raises ``StopIteration`` once the score has not improved on the best by ``tol`` for
    more than ``patience`` iterations in a row (scikit-learn's rule).
    """

    def __init__(self, est: BaseMLP, net: MLP, val: tuple | None, scale: float) -> None:
        self.est, self.net, self.val, self.scale = est, net, val, scale
        self.scores: list[float] = []
        self.iteration = 0
        self.best_score, self.best_x, self.count, self.stopped = -np.inf, None, 0, False

    def score(self, theta: np.ndarray) -> float:
        X, Y, sw = self.val
        return self.est._encoded_score(self.net.predict(theta, X), Y, sw)

    def __call__(self, intermediate_result: Any) -> None:
        self.iteration += 1
        if self.est.verbose:
            print(f"Iteration {self.iteration}, loss = {self.scale * intermediate_result.fun:.8f}")
        if self.val is None:
            return
        score = self.score(intermediate_result.x)
        self.scores.append(score)
        self.count = self.count + 1 if score < self.best_score + self.est.tol else 0
        if score > self.best_score:
            self.best_score, self.best_x = score, np.array(intermediate_result.x)
        if self.count > self.est.n_iter_no_change:
            self.stopped = True
            raise StopIteration


_PARAMS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default (100,)
        Width of each hidden layer.
    activation : str, default "relu"
        Hidden activation: any of nncore's (identity, tanh, sigmoid, relu, leaky_relu,
        softplus, elu, gelu, silu); scikit-learn's "logistic" is sigmoid.
    alpha : float, default 1e-4
        scikit-learn's l2 strength: ``0.5 * alpha * sum_l ||W_l||^2 / sum(sample_weight)``
        (``n_samples`` without weights) is added to the loss; the network gets
        ``l2 = alpha / (c * sum(sample_weight))`` (:func:`nncore.interop.sklearn_l2`).
    method : str, default "L-BFGS-B"
        Any method of :func:`nncore.train` (CG, BFGS, L-BFGS-B, TNC, SLSQP, trust-constr,
        Newton-CG, trust-ncg, trust-krylov, trust-exact, dogleg; lm, trf, dogbox for the
        regressor).
    curvature : {"exact", "gauss_newton"}, default "exact"
        The curvature the Hessian methods use.
    max_iter : int, default 200
        Iterations per start (``maxfun`` for TNC, ``max_nfev`` for least squares).
    tol : float, default 1e-4
        The optimiser's tolerance on scikit-learn's scale (``gtol`` for most methods, as
        scikit-learn's lbfgs solver; ``xtol`` for Newton-CG, ``ftol`` for SLSQP), and the
        improvement early stopping asks of the validation score.
    n_starts : int, default 1
        Train from this many random starts and keep the best (lowest loss, or best
        validation score with early stopping).
    random_state : int, RandomState or None, default None
        Seeds the starts and the validation split.
    early_stopping : bool, default False
        Hold out ``validation_fraction`` of the data (stratified for classifiers), score it
        after every iteration (accuracy or R²), stop once the score has not improved on the
        best by ``tol`` for more than ``n_iter_no_change`` iterations (scikit-learn's rule)
        and keep the weights of the best score.  Every method (through ``train``'s callback).
    validation_fraction : float, default 0.1
        The fraction of the training data held out for early stopping, in [0, 1).
    n_iter_no_change : int, default 10
        Early stopping's patience: iterations without an improvement of ``tol``.
    warm_start : bool, default False
        Start from the last fit's theta (the first start; the others are random).
    verbose : bool, default False
        Print the loss after every iteration.
"""
"""The constructor's Parameters section, in the order of :meth:`BaseMLP.__init__`'s
signature: numpydoc checks ``BaseMLP``'s docstring for the ``__init__`` both estimators
inherit, and the estimators' docstrings include it."""


class BaseMLP(BaseEstimator):
    __doc__ = (
        """Shared constructor, ``fit`` machinery and fitted attributes (see the subclasses).
"""
        + _PARAMS_DOC
    )

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        alpha=0.0001,
        method="L-BFGS-B",
        curvature="exact",
        max_iter=200,
        tol=1e-4,
        n_starts=1,
        random_state=None,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        warm_start=False,
        verbose=False,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.alpha = alpha
        self.method = method
        self.curvature = curvature
        self.max_iter = max_iter
        self.tol = tol
        self.n_starts = n_starts
        self.random_state = random_state
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.warm_start = warm_start
        self.verbose = verbose

    # -- to be provided by the subclasses ---------------------------------------------
    _is_classifier = False

    def _encode_fit(self, y: np.ndarray) -> tuple[np.ndarray, str, int]:
        """Set the target attributes; return ``(Y, loss, n_outputs)`` for the network."""
        raise NotImplementedError

    def _encode(self, y: Any) -> np.ndarray:
        """``y`` as the network's targets, with the fitted target attributes."""
        raise NotImplementedError

    def _encoded_score(self, output: np.ndarray, Y: np.ndarray, sw: Any) -> float:
        """The score (accuracy or R²) of network outputs against encoded targets."""
        raise NotImplementedError

    # -- parameters -------------------------------------------------------------------
    def _checked_params(self) -> dict[str, Any]:
        """Every hyperparameter validated (``__init__`` stores them unchecked)."""
        if not isinstance(self.method, str) or self.method.lower() not in _CANONICAL:
            raise ValueError(f"method must be one of {', '.join(METHODS)}; got {self.method!r}")
        if self.curvature not in CURVATURES:
            raise ValueError(f"curvature must be one of {CURVATURES}, got {self.curvature!r}")
        if not isinstance(self.activation, str):
            raise TypeError(f"activation must be a name, got {type(self.activation).__name__}")
        return dict(
            hidden=hidden_sizes(self.hidden_layer_sizes),
            activation=SKLEARN_ACTIVATIONS.get(self.activation, self.activation),
            alpha=_check_real(self.alpha, "alpha", 0.0),
            method=_CANONICAL[self.method.lower()],
            max_iter=_check_int(self.max_iter, "max_iter", 1),
            tol=_check_real(self.tol, "tol", 0.0),
            n_starts=_check_int(self.n_starts, "n_starts", 1),
            validation_fraction=_check_real(self.validation_fraction, "validation_fraction", 0, 1),
            n_iter_no_change=_check_int(self.n_iter_no_change, "n_iter_no_change", 1),
        )

    def _options(self, p: dict[str, Any], scale: float) -> dict[str, Any]:
        method = p["method"]
        tol = p["tol"] if method in _RELATIVE_TOL else p["tol"] / scale
        return {
            _MAXITER_OPTION.get(method, "maxiter"): p["max_iter"],
            _TOL_OPTION.get(method, "gtol"): tol,
        }

    # -- fitting ----------------------------------------------------------------------
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> BaseMLP:
        """Train scikit-learn's objective with :func:`nncore.train`.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array_like of shape (n_samples,), optional
            Non-negative; scikit-learn's weighting: the data term is the weighted mean and
            the l2 term is divided by ``sum(sample_weight)``.

        Returns
        -------
        self
        """
        p = self._checked_params()
        X, y = validate_data(
            self, X, y, dtype=np.float64, multi_output=True, y_numeric=not self._is_classifier
        )
        warm = self.warm_start and hasattr(self, "theta_")
        previous = (self.net_, self.theta_, getattr(self, "classes_", None)) if warm else None
        Y, loss, n_out = self._encode_fit(y)
        if warm and self._is_classifier and not np.array_equal(previous[2], self.classes_):
            new_classes, self.classes_ = self.classes_, previous[2]  # the fit stays as it was
            raise ValueError(
                "warm_start can only be used where `y` has the same classes as in the "
                f"previous call to fit. Previously got {previous[2]}, `y` has {new_classes}"
            )
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        rs = check_random_state(self.random_state)
        rng = np.random.default_rng(rs.randint(np.iinfo(np.int32).max))

        val = None
        Xt, Yt, swt = X, Y, sw
        if self.early_stopping:
            stratify = Y if (self._is_classifier and Y.ndim == 1) else None
            it, iv = train_test_split(
                np.arange(len(X)),
                test_size=p["validation_fraction"],
                random_state=rs,
                stratify=stratify,
            )
            Xt, Yt, swt = X[it], Y[it], None if sw is None else sw[it]
            val = (X[iv], Y[iv], None if sw is None else sw[iv])

        weight_sum = len(Xt) if swt is None else float(np.sum(swt))
        scale = sklearn_loss_scale(loss, n_out)
        net = MLP(
            [X.shape[1], *p["hidden"], n_out],
            activation=p["activation"],
            loss=loss,
            l2=sklearn_l2(p["alpha"], loss, n_out, weight_sum),
        )
        theta_warm = None
        if previous is not None:
            if previous[0].sizes != net.sizes or previous[0].activations != net.activations:
                raise ValueError(
                    f"warm_start: the data and parameters need the network {net}, the fitted "
                    f"one is {previous[0]}"
                )
            theta_warm = previous[1]

        theta, result, monitor = self._best_start(net, Xt, Yt, swt, val, theta_warm, rng, p, scale)
        self._set_weights(net, np.array(theta, dtype=np.float64))
        self.optimize_result_ = result
        self.n_iter_ = int(result.get("nit", len(result.history) - 1))
        self.loss_curve_ = [scale * float(v) for v in result.history[1:]]
        if val is not None:
            self.loss_ = scale * net.loss(self.theta_, Xt, Yt, swt)
            self.best_loss_ = None
            self.validation_scores_ = list(monitor.scores)
            self.best_validation_score_ = float(monitor.best_score)
        else:
            self.loss_ = scale * float(result.fun)
            self.best_loss_ = min([self.loss_, *self.loss_curve_])
            self.validation_scores_ = None
            self.best_validation_score_ = None
        if not result.success and not monitor.stopped and self.n_iter_ >= p["max_iter"]:
            warnings.warn(
                f"{p['method']} reached max_iter={p['max_iter']} iterations without "
                f"converging ({result.message}); increase max_iter or scale the data",
                ConvergenceWarning,
                stacklevel=2,
            )
        return self

    def _best_start(self, net, X, Y, sw, val, theta_warm, rng, p, scale):
        """Train from ``n_starts`` starts (the first from ``theta_warm`` when given); return
        the kept ``(theta, result, monitor)``: the lowest loss, or with a validation set
        ``val`` the best validation score and the weights that had it."""
        best = None
        for k in range(p["n_starts"]):
            theta0 = theta_warm if (k == 0 and theta_warm is not None) else net.init(rng)
            monitor = _Monitor(self, net, val, scale)
            result = train(
                net,
                X,
                Y,
                method=p["method"],
                theta0=theta0,
                sample_weight=sw,
                options=self._options(p, scale),
                callback=monitor if (val is not None or self.verbose) else None,
                curvature=self.curvature,
            )
            theta = result.x
            if val is not None:  # the end point counts too (a run of no iteration has only it)
                final = monitor.score(result.x)
                if not monitor.scores:
                    monitor.scores.append(final)
                if final > monitor.best_score:
                    monitor.best_x, monitor.best_score = np.array(result.x), final
                theta = monitor.best_x
            rank = -monitor.best_score if val is not None else result.fun
            if best is None or rank < best[0]:
                best = (rank, theta, result, monitor)
        return best[1:]

    def _set_weights(self, net: MLP, theta: np.ndarray) -> None:
        """Set ``net_``, ``theta_`` and the scikit-learn views of them."""
        self.net_, self.theta_ = net, theta
        pairs = net.unpack(theta)
        self.coefs_ = [np.array(W.T) for W, _ in pairs]
        self.intercepts_ = [b.copy() for _, b in pairs]
        self.n_layers_ = len(net.sizes)
        self.n_outputs_ = net.sizes[-1]
        self.out_activation_ = {"sigmoid": "logistic"}.get(net.output, net.output)

    # -- pickle, joblib, skops ---------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """The state with ``net_`` as its JSON spec (:func:`nncore.io.network_spec`): a pickle
        or skops file then holds plain data and the estimator's class, not nncore's
        internal records (skops asks to trust only ``nncore.sklearn``'s class, numpy's
        dtype and scipy's result types)."""
        state = super().__getstate__()
        if isinstance(state.get("net_"), MLP):
            state = dict(state, net_=network_spec(state["net_"]))
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if isinstance(state.get("net_"), dict):
            state = dict(state, net_=network_from_spec(state["net_"], "the pickled net_"))
        super().__setstate__(state)

    # -- using the fit ----------------------------------------------------------------
    def _output(self, X: Any) -> np.ndarray:
        """The network's output ``(n_samples, n_outputs)`` on validated ``X``."""
        check_is_fitted(self, "theta_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.net_.predict(self.theta_, X)

    def training_loss(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """scikit-learn's training objective at the fitted weights on ``(X, y)``.

        The data term (log loss or half the squared error) plus ``0.5 * alpha *
        sum_l ||W_l||^2 / sum(sample_weight)``: what ``loss_`` reports for the training
        data, and what scikit-learn's ``loss_`` is for the same weights.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        check_is_fitted(self, "theta_")
        X, y = validate_data(self, X, y, dtype=np.float64, multi_output=True, reset=False)
        Y = self._encode(y)
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
        weight_sum = len(X) if sw is None else float(np.sum(sw))
        old = self.net_
        loss, n_out = old.loss_name, old.sizes[-1]
        l2 = sklearn_l2(_check_real(self.alpha, "alpha", 0.0), loss, n_out, weight_sum)
        net = MLP(old.sizes, old.activations[:-1], old.output, loss, l2)
        return sklearn_loss_scale(loss, n_out) * net.loss(self.theta_, X, Y, sw)

    @classmethod
    def from_sklearn(cls, est: Any) -> BaseMLP:
        """A fitted nncore estimator with a fitted scikit-learn MLP's weights and parameters.

        Parameters
        ----------
        est : fitted sklearn.neural_network.MLPClassifier or MLPRegressor
            Not modified; its ``hidden_layer_sizes``, ``activation``, ``alpha``,
            ``max_iter``, ``tol``, ``random_state``, ``early_stopping``,
            ``validation_fraction``, ``n_iter_no_change``, ``warm_start`` and ``verbose``
            are copied, its weights through :func:`nncore.interop.from_sklearn`.

        Returns
        -------
        MLPClassifier or MLPRegressor
            Its ``predict`` equals ``est.predict``; ``training_loss(X, y)`` equals
            scikit-learn's objective at those weights.
        """
        names = [
            "hidden_layer_sizes", "activation", "alpha", "max_iter", "tol", "random_state",
            "early_stopping", "validation_fraction", "n_iter_no_change", "warm_start", "verbose",
        ]  # fmt: skip
        params = {name: getattr(est, name) for name in names}
        new = cls(**params)
        net, theta = from_sklearn(est)
        is_clf = hasattr(est, "classes_")
        if is_clf != cls._is_classifier:
            raise TypeError(f"{cls.__name__}.from_sklearn got a {type(est).__name__}")
        new._set_fitted_targets(est)
        new.n_features_in_ = est.n_features_in_
        if hasattr(est, "feature_names_in_"):
            new.feature_names_in_ = est.feature_names_in_
        new._set_weights(net, theta)
        new.optimize_result_ = None
        new.n_iter_ = est.n_iter_
        new.loss_ = getattr(est, "loss_", None)
        new.best_loss_ = getattr(est, "best_loss_", None)
        new.loss_curve_ = list(getattr(est, "loss_curve_", []))
        new.validation_scores_ = getattr(est, "validation_scores_", None)
        new.best_validation_score_ = getattr(est, "best_validation_score_", None)
        return new

    def _set_fitted_targets(self, est: Any) -> None:
        """Copy the target attributes of a fitted scikit-learn estimator."""

    def save(self, path: Any) -> None:
        """Write the fitted estimator to a model file (:func:`nncore.save`'s format).

        The file holds the network and theta, the hyperparameters, the classes and the
        fitted attributes scikit-learn users read; :func:`nncore.sklearn.load` reads it
        without unpickling anything.  ``optimize_result_`` is not kept.

        Parameters
        ----------
        path : str or path-like
            ``.npz``, or ``.safetensors`` (needs the safetensors package).
        """
        from ._files import save_estimator

        save_estimator(self, path)
