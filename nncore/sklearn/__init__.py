"""scikit-learn estimators over nncore: ``MLPClassifier``, ``MLPRegressor`` and their model files.

This subpackage owns the scikit-learn face of nncore: estimators that follow scikit-learn's
contract (``fit``/``predict``/``score``, ``get_params``, tags, ``check_estimator``) and train
scikit-learn's own objective with :func:`nncore.train` (:mod:`nncore.sklearn._estimators`,
:mod:`nncore.sklearn._base`), and ``est.save`` / :func:`load` on nncore's model file
(:mod:`nncore.sklearn._files`).  ``import nncore`` never imports it; importing it imports
scikit-learn, and says what to install when that is missing.
"""

try:
    import sklearn  # noqa: F401
except ImportError as err:  # pragma: no cover - the test extra has scikit-learn
    raise ImportError(
        "nncore.sklearn needs scikit-learn: pip install scikit-learn "
        '(or pip install ".[sklearn]" in a checkout of nncore)'
    ) from err

import os
from typing import Any

from ._estimators import MLPClassifier, MLPRegressor
from ._files import read_estimator

__all__ = ["MLPClassifier", "MLPRegressor", "load"]


def load(path: str | os.PathLike) -> Any:
    """Read an estimator written by ``est.save(path)``, without unpickling anything.

    Parameters
    ----------
    path : str or path-like
        An ``.npz`` or ``.safetensors`` model file.

    Returns
    -------
    MLPClassifier or MLPRegressor
        Fitted: the same hyperparameters, classes, weights and fitted attributes
        (``optimize_result_`` is None); its predictions are bit for bit the saved one's.

    Raises
    ------
    ValueError
        A model file without an estimator in it, an unknown estimator class, or an
        estimator that does not fit the network stored beside it.
    """
    return read_estimator(path, {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor})
