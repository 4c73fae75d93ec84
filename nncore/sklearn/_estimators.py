"""The estimators: :class:`MLPClassifier` and :class:`MLPRegressor`, over nncore's MLP and train.

Each owns its targets only: the classifier encodes labels (any type, through ``classes_``)
as bce targets (binary: one sigmoid output; multilabel indicator ``y``: one sigmoid per
label) or class indices for softmax cross-entropy, and decodes outputs into labels and
probabilities; the regressor hands ``y`` to mse.  Training is :class:`._base.BaseMLP`'s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import sparse
from sklearn.base import ClassifierMixin, RegressorMixin
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from ._base import _PARAMS_DOC, BaseMLP

_ATTRIBUTES_DOC = """
    Attributes
    ----------
    coefs_ : list of ndarray, each of shape (n_{l-1}, n_l)
        Weights in scikit-learn's orientation (copies; ``theta_`` is the source).
    intercepts_ : list of ndarray, each of shape (n_l,)
    n_layers_, n_outputs_ : int
    out_activation_ : str
        scikit-learn's name: "identity", "logistic" or "softmax".
    n_features_in_ : int
    feature_names_in_ : ndarray of shape ``(n_features_in_,)``
        Only when ``X`` had string column names.
    loss_ : float
        scikit-learn's objective at the returned weights on the training data.
    best_loss_ : float or None
        The smallest loss of the kept run (None with early stopping, as scikit-learn).
    loss_curve_ : list of float
        The loss after each iteration of the kept run.
    validation_scores_ : list of float or None
        The validation score after each iteration (early stopping only).
    best_validation_score_ : float or None
    n_iter_ : int
    net_ : nncore.MLP
    theta_ : ndarray of shape ``(net_.n_params,)``
    optimize_result_ : scipy.optimize.OptimizeResult
        :func:`nncore.train`'s result of the kept run.
"""


class MLPClassifier(ClassifierMixin, BaseMLP):
    __doc__ = (
        """Multi-layer perceptron classifier: scikit-learn's log loss, trained by nncore.

    Binary ``y``: one sigmoid output and bce; multiclass: softmax and cross-entropy; a 2-D
    indicator ``y``: multilabel, one sigmoid per label.  The objective is
    scikit-learn's (``loss_`` equals ``sklearn.neural_network.MLPClassifier.loss_`` at the
    same weights): mean over samples of the log loss summed over outputs, plus the alpha
    term.
"""
        + _PARAMS_DOC
        + _ATTRIBUTES_DOC
        + """    classes_ : ndarray of shape (n_classes,)
        The labels (multilabel: ``0..n_labels-1``).

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from nncore.sklearn import MLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = MLPClassifier((8,), max_iter=300, random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.95), clf.predict_proba(X[:2]).shape
    (True, (2, 3))
"""
    )

    _is_classifier = True

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _encode_fit(self, y: Any) -> tuple[np.ndarray, str, int]:
        if sparse.issparse(y):
            y = y.toarray()
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind == "multilabel-indicator":
            self._multilabel = True
            self.classes_ = np.arange(y.shape[1])
            return np.asarray(y, dtype=np.float64), "bce", y.shape[1]
        self._multilabel = False
        y = column_or_1d(y, warn=True)
        self.classes_, index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(
                f"MLPClassifier needs samples of at least 2 classes, got 1 class: {self.classes_}"
            )
        if len(self.classes_) == 2:
            return index.astype(np.float64), "bce", 1
        return index, "cross_entropy", len(self.classes_)

    def _encode(self, y: Any) -> np.ndarray:
        if sparse.issparse(y):
            y = y.toarray()
        if self._multilabel:
            y = np.asarray(y, dtype=np.float64)
            if y.ndim != 2 or y.shape[1] != len(self.classes_):
                n = len(self.classes_)
                raise ValueError(f"y must have shape (n_samples, {n}), got {y.shape}")
            return y
        y = column_or_1d(y, warn=True)
        index = np.searchsorted(self.classes_, y)
        index = np.minimum(index, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if np.any(unknown):
            raise ValueError(f"y holds labels not in classes_: {np.unique(y[unknown])}")
        return index.astype(np.float64) if len(self.classes_) == 2 else index

    def _set_fitted_targets(self, est: Any) -> None:
        self._multilabel = est._label_binarizer.y_type_ == "multilabel-indicator"
        self.classes_ = np.array(est.classes_)

    def _encoded_prediction(self, output: np.ndarray) -> np.ndarray:
        """Class indices (binary, multiclass) or the 0/1 indicator (multilabel)."""
        if self._multilabel:
            return (output > 0.5).astype(int)
        if output.shape[1] == 1:
            return (output[:, 0] > 0.5).astype(int)
        return np.argmax(output, axis=1)

    def _encoded_score(self, output: np.ndarray, Y: np.ndarray, sw: Any) -> float:
        Y = Y.astype(int)
        return float(accuracy_score(Y, self._encoded_prediction(output), sample_weight=sw))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted labels.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,), or (n_samples, n_labels) of 0/1 for multilabel
        """
        encoded = self._encoded_prediction(self._output(X))
        return encoded if self._multilabel else self.classes_[encoded]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; multilabel: each label's probability.
        """
        output = self._output(X)
        if output.shape[1] == 1 and not self._multilabel:
            return np.hstack([1.0 - output, output])
        return output

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Mean accuracy of ``predict(X)`` against ``y`` (multilabel: rows entirely right).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,) or (n_samples, n_labels)
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        return super().score(X, y, sample_weight)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """``log(predict_proba(X))``, shape (n_samples, n_classes).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Columns in the order of ``classes_``; ``-inf`` where a probability is 0 (no
            divide-by-zero warning).  Multilabel: each label's log-probability.
        """
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))


class MLPRegressor(RegressorMixin, BaseMLP):
    __doc__ = (
        """Multi-layer perceptron regressor: scikit-learn's squared error, trained by nncore.

    Identity output and mse, one output per column of ``y``.  scikit-learn's objective is
    half of nncore's mse (``0.5 * mean over samples and outputs``) plus the alpha term;
    ``loss_`` reports scikit-learn's.
"""
        + _PARAMS_DOC
        + _ATTRIBUTES_DOC
        + """
    Examples
    --------
    >>> import numpy as np
    >>> from nncore.sklearn import MLPRegressor
    >>> X = np.linspace(-2, 2, 50)[:, None]; y = np.sin(X).ravel()
    >>> reg = MLPRegressor((10,), activation="tanh", random_state=0).fit(X, y)
    >>> bool(reg.score(X, y) > 0.99)
    True
"""
    )

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def _encode_fit(self, y: np.ndarray) -> tuple[np.ndarray, str, int]:
        return self._encode(y), "mse", 1 if y.ndim == 1 else y.shape[1]

    def _encode(self, y: Any) -> np.ndarray:
        return np.asarray(y, dtype=np.float64)

    def _encoded_score(self, output: np.ndarray, Y: np.ndarray, sw: Any) -> float:
        return float(r2_score(Y, output.reshape(Y.shape), sample_weight=sw))

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """R² of ``predict(X)`` against ``y`` (several outputs: their uniform average).

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)
        y : array_like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array_like of shape (n_samples,), optional

        Returns
        -------
        float
        """
        return super().score(X, y, sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted values.

        Parameters
        ----------
        X : array_like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,) for one output, else (n_samples, n_outputs)
        """
        output = self._output(X)
        return output.ravel() if output.shape[1] == 1 else output
