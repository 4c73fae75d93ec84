"""Estimator model files: ``est.save(path)`` and :func:`load`, on :func:`nncore.save`'s format.

The network and theta are the model file's own (:mod:`nncore.io`); the estimator rides in
its JSON metadata under the key ``"sklearn_estimator"``::

    {"class": "MLPClassifier", "params": {...get_params()...},
     "classes": [...], "classes_dtype": "<U5", "multilabel": false,
     "n_features_in": 4, "feature_names_in": null, "n_iter": 31, "loss": 0.12,
     "best_loss": 0.12, "loss_curve": [...], "validation_scores": null,
     "best_validation_score": null}

Nothing is unpickled or imported by name: the class comes from a fixed table of the two
estimators.  A ``random_state`` that is a ``RandomState`` instance is saved as None.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..io import load as load_model
from ..io import save as save_model

KEY = "sklearn_estimator"


def _json_value(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return [_json_value(v) for v in value]
    return value


def save_estimator(est: Any, path: str | os.PathLike) -> None:
    """Write the fitted estimator ``est`` to ``path`` (see the module notes)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "theta_")
    params = {k: _json_value(v) for k, v in est.get_params(deep=False).items()}
    if not (params["random_state"] is None or isinstance(params["random_state"], int)):
        params["random_state"] = None
    names = getattr(est, "feature_names_in_", None)
    spec = {
        "class": type(est).__name__,
        "params": params,
        "n_features_in": int(est.n_features_in_),
        "feature_names_in": None if names is None else [str(n) for n in names],
        "n_iter": int(est.n_iter_),
        "loss": None if est.loss_ is None else float(est.loss_),
        "best_loss": None if est.best_loss_ is None else float(est.best_loss_),
        "loss_curve": [float(v) for v in est.loss_curve_],
        "validation_scores": None
        if est.validation_scores_ is None
        else [float(v) for v in est.validation_scores_],
        "best_validation_score": est.best_validation_score_,
    }
    if hasattr(est, "classes_"):
        spec["classes"] = [_json_value(c) for c in est.classes_]
        spec["classes_dtype"] = est.classes_.dtype.str
        spec["multilabel"] = bool(est._multilabel)
    save_model(path, est.net_, est.theta_, metadata={KEY: spec})


def read_estimator(path: str | os.PathLike, classes: dict[str, type]) -> Any:
    """Read an estimator written by ``est.save(path)`` (:func:`nncore.sklearn.load`).

    Parameters
    ----------
    path : str or path-like
        An ``.npz`` or ``.safetensors`` model file.
    classes : dict
        The estimator classes by name, the only ones a file may name.

    Returns
    -------
    MLPClassifier or MLPRegressor
        Fitted: the same hyperparameters, classes, weights and fitted attributes
        (``optimize_result_`` is None), predictions bit for bit the saved estimator's.

    Raises
    ------
    ValueError
        A model file without an estimator in it, an unknown estimator class, or an
        estimator that does not fit the network stored beside it.
    """
    net, theta, metadata = load_model(path)
    where = os.fspath(path)
    spec = metadata.get(KEY)
    if not isinstance(spec, dict):
        raise ValueError(f"{where} holds a network but no estimator (use nncore.load)")
    cls = classes.get(spec.get("class"))
    if cls is None:
        raise ValueError(f"{where}: unknown estimator class {spec.get('class')!r}")
    params = dict(spec.get("params", {}))
    if isinstance(params.get("hidden_layer_sizes"), list):
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    try:
        est = cls(**params)
        n_features = int(spec["n_features_in"])
        if net.sizes[0] != n_features:
            raise ValueError(f"the network takes {net.sizes[0]} inputs, not {n_features}")
        if cls._is_classifier:
            labels = np.array(spec["classes"], dtype=np.dtype(spec["classes_dtype"]))
            est._multilabel = bool(spec["multilabel"])
            expected = len(labels) if (est._multilabel or len(labels) > 2) else 1
            if net.sizes[-1] != expected:
                raise ValueError(f"{len(labels)} classes need {expected} outputs")
            est.classes_ = labels
        est.n_features_in_ = n_features
        if spec["feature_names_in"] is not None:
            est.feature_names_in_ = np.array(spec["feature_names_in"], dtype=object)
        est._set_weights(net, theta)
        est.optimize_result_ = None
        est.n_iter_ = int(spec["n_iter"])
        est.loss_, est.best_loss_ = spec["loss"], spec["best_loss"]
        est.loss_curve_ = list(spec["loss_curve"])
        est.validation_scores_ = spec["validation_scores"]
        est.best_validation_score_ = spec["best_validation_score"]
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{where}: the estimator does not fit the file: {err!r}") from None
    return est
