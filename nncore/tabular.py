"""Tables on disk and the preprocessing a model file carries: reading a CSV (with a header
row) or an ``.npz`` of ``X`` and ``y``, inferring the task from the target, encoding class
labels, standardising features, and predicting in the original labels.

:class:`Preprocessing` is stored as the metadata of an :func:`nncore.save` model file (one
format for every model file), so a model trained by ``nncore train`` predicts from the same
columns and labels with ``nncore predict`` or from Python.  Every malformed input raises
ValueError with a message that names the file, the line and the column.
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from .io import load, save
from .network import MLP

MAX_CLASSES = 20
"""A numeric target is a class label when its values are integers with at most this many
distinct values; anything else numeric is a regression target (``--task`` overrides)."""
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Table:
    """Numeric features, the raw target (or None) and the column names."""

    X: np.ndarray
    y: np.ndarray | None
    features: list[str]
    target: str | None


def read_table(
    path: str | os.PathLike, target: str | None = None, require_target: bool = True
) -> Table:
    """Read a CSV with a header row, or an ``.npz`` with arrays ``X`` and ``y``.

    Parameters
    ----------
    path : str or path-like
        ``*.npz``: the arrays ``X`` (2-D) and, when ``target`` is given, ``y``; the feature
        names are ``x0, x1, ...``.  Anything else is read as CSV: a header row, numeric
        feature columns; the ``target`` column may hold strings.
    target : str, optional
        The target column (for ``.npz``, any name: ``y`` is the target).  Without it every
        column is a feature.
    require_target : bool, default True
        When False, a table without the ``target`` column is read with ``y=None`` (data to
        predict from may or may not hold the target).

    Returns
    -------
    Table
        ``X`` float64 of shape (n_rows, n_features), finite; ``y`` a float64 array when
        every target value is a number, else an array of str.
    """
    name = os.fspath(path)
    if name.endswith(".npz"):
        return _read_npz(name, target, require_target)
    if name.endswith(".npy"):
        raise ValueError(f"{name}: an .npz file with arrays X and y is needed, not an .npy")
    try:
        with open(name, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError as err:
        raise ValueError(f"{name}: not a UTF-8 text (CSV) file: {err}") from None
    rows = [r for r in rows if r]  # blank lines
    if not rows:
        raise ValueError(f"{name} is empty: expected a header row and data rows")
    header, body = [c.strip() for c in rows[0]], rows[1:]
    if not body:
        raise ValueError(f"{name} has a header row but no data rows")
    if target is not None and target not in header and not require_target:
        target = None
    if target is not None and target not in header:
        raise ValueError(f"{name} has no column {target!r}; its columns are: {', '.join(header)}")
    t = header.index(target) if target is not None else None
    features = [c for i, c in enumerate(header) if i != t]
    X = np.empty((len(body), len(features)))
    raw_y = []
    for line, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise ValueError(
                f"{name}, line {line}: {len(row)} values, the header has {len(header)}"
            )
        j = 0
        for i, cell in enumerate(row):
            if i == t:
                raw_y.append(cell.strip())
                continue
            X[line - 2, j] = _number(cell, name, line, header[i])
            j += 1
    y = None if t is None else _target_array(raw_y, name, target)
    return Table(X, y, features, target)


def _number(cell: str, name: str, line: int, column: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise ValueError(
            f"{name}, line {line}, column {column!r}: {cell.strip()!r} is not a number"
        ) from None
    if not math.isfinite(value):
        raise ValueError(f"{name}, line {line}, column {column!r}: {cell.strip()!r} (not finite)")
    return value


def _target_array(raw: list[str], name: str, target: str) -> np.ndarray:
    if any(v == "" for v in raw):
        line = raw.index("") + 2
        raise ValueError(f"{name}, line {line}, column {target!r}: the target is empty")
    try:
        y = np.array([float(v) for v in raw])
    except ValueError:
        return np.array(raw, dtype=str)
    if not np.isfinite(y).all():
        line = int(np.flatnonzero(~np.isfinite(y))[0]) + 2
        raise ValueError(f"{name}, line {line}, column {target!r}: the target is not finite")
    return y


def _read_npz(name: str, target: str | None, require_target: bool) -> Table:
    try:
        archive = np.load(name, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{name}: not an .npz file of arrays ({err})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{name}: an .npz file with arrays X and y is needed")
    with archive:
        if target is not None and not require_target and "y" not in archive.files:
            target = None
        needed = ("X", "y") if target is not None else ("X",)
        missing = [k for k in needed if k not in archive.files]
        if missing:
            raise ValueError(
                f"{name} has no array {' or '.join(missing)}; it holds {sorted(archive.files)}"
            )
        X = archive["X"]
        y = archive["y"] if target is not None else None
    if X.ndim != 2 or X.shape[0] == 0 or X.dtype.kind not in "iuf":
        raise ValueError(
            f"{name}: X must be a non-empty 2-D numeric array, got {X.dtype} {X.shape}"
        )
    X = X.astype(np.float64)
    if not np.isfinite(X).all():
        i, j = np.argwhere(~np.isfinite(X))[0]
        raise ValueError(f"{name}: X[{i}, {j}] is {X[i, j]} (not finite)")
    if y is not None:
        if y.shape != (X.shape[0],):
            raise ValueError(f"{name}: y must have shape ({X.shape[0]},), got {y.shape}")
        if y.dtype.kind in "iuf":
            y = y.astype(np.float64)
            if not np.isfinite(y).all():
                i = int(np.flatnonzero(~np.isfinite(y))[0])
                raise ValueError(f"{name}: y[{i}] is {y[i]} (not finite)")
        else:
            y = y.astype(str)
    return Table(X, y, [f"x{j}" for j in range(X.shape[1])], None if y is None else "y")


def infer_task(y: np.ndarray) -> str:
    """``"classification"`` for strings, or integers with at most :data:`MAX_CLASSES`
    distinct values; else ``"regression"``."""
    if y.dtype.kind not in "iuf":
        return "classification"
    integral = bool(np.all(y == np.round(y)))
    return "classification" if integral and len(np.unique(y)) <= MAX_CLASSES else "regression"


@dataclass(frozen=True)
class Preprocessing:
    """What turns a table into network inputs and outputs into predictions.

    Each parameter is kept as the attribute of the same name.

    Parameters
    ----------
    features : list of str
        The feature columns, in order.
    target : str
        The target column.
    task : {"classification", "regression"}
    classes : list or None
        The class labels (str or float); class ``k`` is output ``k``.
    mean, scale : list of float or None
        Standardisation: ``(X - mean) / scale`` (scale 1 for a constant column).
    """

    features: list[str]
    target: str
    task: str
    classes: list | None = None
    mean: list[float] | None = None
    scale: list[float] | None = None

    @classmethod
    def fit(cls, table: Table, task: str | None = None, standardize: bool = False):
        """The preprocessing of ``table`` (its target required).

        Parameters
        ----------
        table : Table
            What :func:`read_table` returns, with a target.
        task : {"classification", "regression"}, optional
            None: inferred from the target (:func:`infer_task`).
        standardize : bool, default False
            Whether to record the mean and scale of every feature column, so that
            :meth:`transform` standardises the features.

        Returns
        -------
        Preprocessing

        Raises
        ------
        ValueError
            When the table has no target, ``task`` is unknown, a regression target holds
            text, or a classification target has fewer than 2 classes.
        """
        if table.y is None:
            raise ValueError("the table has no target column")
        task = infer_task(table.y) if task is None else task
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        if task == "regression" and table.y.dtype.kind not in "iuf":
            raise ValueError(f"regression needs a numeric target; {table.target!r} holds text")
        classes = None
        if task == "classification":
            classes = np.unique(table.y).tolist()
            if table.y.dtype.kind == "f" and all(c == int(c) for c in classes):
                classes = [int(c) for c in classes]  # labels 1, 2, 3 rather than 1.0, ...
            if len(classes) < 2:
                raise ValueError(f"classification needs at least 2 classes, got {classes}")
        mean = scale = None
        if standardize:
            mean = table.X.mean(axis=0)
            std = table.X.std(axis=0)
            scale = np.where(std > 0, std, 1.0)
            mean, scale = mean.tolist(), scale.tolist()
        return cls(list(table.features), table.target, task, classes, mean, scale)

    def transform(self, table: Table, where: str = "the data") -> np.ndarray:
        """The network inputs of ``table``, whose features must be this one's.

        Parameters
        ----------
        table : Table
            What :func:`read_table` returns.
        where : str, default "the data"
            What the table is, for the error message.

        Returns
        -------
        ndarray of shape (n_samples, n_in)
            ``(X - mean) / scale`` when standardising, else ``table.X``.

        Raises
        ------
        ValueError
            When the table's feature columns are not this one's.
        """
        if list(table.features) != list(self.features):
            raise ValueError(
                f"{where} has the feature columns {table.features}; the model was trained on "
                f"{self.features}"
            )
        if self.mean is None:
            return table.X
        return (table.X - np.asarray(self.mean)) / np.asarray(self.scale)

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Class indices (classification) or the float targets (regression).

        Parameters
        ----------
        y : ndarray of shape (n_samples,)
            Raw targets: labels among :attr:`classes`, or numbers.

        Returns
        -------
        ndarray of shape (n_samples,)
            Integer class indices, or float64 targets.

        Raises
        ------
        ValueError
            When a label is not among the classes.
        """
        if self.task == "regression":
            return np.asarray(y, dtype=np.float64)
        lookup = {c: k for k, c in enumerate(self.classes)}
        unknown = sorted({v for v in y.tolist() if v not in lookup}, key=str)
        if unknown:
            raise ValueError(f"labels {unknown} are not among the classes {self.classes}")
        return np.array([lookup[v] for v in y.tolist()])

    def network(
        self, hidden: list[int], activation: str, loss: str | None = None, l2: float = 0.0
    ) -> MLP:
        """The MLP for this task.

        Parameters
        ----------
        hidden : list of int
            The hidden layers' widths, ``[h_1, ...]``.
        activation : str
            The hidden activation (see :class:`nncore.MLP`).
        loss : {"cross_entropy", "bce", "mse"}, optional
            Classification: ``cross_entropy`` (softmax over the classes, the default) or
            ``bce`` (two classes, one sigmoid output); regression: ``mse`` with an identity
            output (the default).
        l2 : float, default 0.0
            As for :class:`nncore.MLP`.

        Returns
        -------
        MLP
            Of sizes ``[n_in, *hidden, n_out]``: ``n_out`` is the number of classes for
            cross_entropy, else 1.

        Raises
        ------
        ValueError
            When ``loss`` does not fit the task.
        """
        n_in = len(self.features)
        if self.task == "regression":
            if loss not in (None, "mse"):
                raise ValueError(f"regression trains with loss 'mse', got {loss!r}")
            return MLP([n_in, *hidden, 1], activation=activation, loss="mse", l2=l2)
        loss = "cross_entropy" if loss is None else loss
        if loss == "bce" and len(self.classes) == 2:
            return MLP([n_in, *hidden, 1], activation=activation, loss="bce", l2=l2)
        if loss != "cross_entropy":
            raise ValueError(
                f"classification of {len(self.classes)} classes trains with loss "
                f"'cross_entropy'{' or bce' if len(self.classes) == 2 else ''}, got {loss!r}"
            )
        sizes = [n_in, *hidden, len(self.classes)]
        return MLP(sizes, activation=activation, loss="cross_entropy", l2=l2)

    def targets(self, net: MLP, y: np.ndarray) -> np.ndarray:
        """The ``y`` that ``net``'s loss takes: class indices, 0/1 for bce, or floats.

        Parameters
        ----------
        net : MLP
            The network, from :meth:`network`.
        y : ndarray of shape (n_samples,)
            Raw targets.

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        encoded = self.encode(y)
        return encoded.astype(np.float64) if net.loss_name == "bce" else encoded

    def predict(self, net: MLP, theta: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Labels (classification: the most probable class) or values, from inputs ``X``
        already transformed.

        Parameters
        ----------
        net : MLP
            The network, from :meth:`network`.
        theta : ndarray of shape (n_params,)
            Its flat parameter vector.
        X : ndarray of shape (n_samples, n_in)
            Inputs from :meth:`transform`.

        Returns
        -------
        ndarray of shape (n_samples,)
            Class labels (dtype object) or float64 values.
        """
        out = net.predict(theta, X)
        if self.task == "regression":
            return out.reshape(-1)
        k = (out[:, 0] > 0.5).astype(int) if out.shape[1] == 1 else np.argmax(out, axis=1)
        return np.asarray(self.classes, dtype=object)[k]

    def score(self, net: MLP, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy (classification) or R² (regression) of the predictions of ``X`` against
        the raw targets ``y``.

        Parameters
        ----------
        net : MLP
            The network, from :meth:`network`.
        theta : ndarray of shape (n_params,)
            Its flat parameter vector.
        X : ndarray of shape (n_samples, n_in)
            Inputs from :meth:`transform`.
        y : ndarray of shape (n_samples,)
            Raw targets.

        Returns
        -------
        float
            The accuracy, or R² (NaN for a constant target).
        """
        pred = self.predict(net, theta, X)
        if self.task == "classification":
            return float(np.mean(pred == np.asarray(y, dtype=object)))
        y = np.asarray(y, dtype=np.float64)
        total = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - pred) ** 2)) / total if total > 0 else float("nan")

    def to_metadata(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict, for a model file's metadata.

        Returns
        -------
        dict
            ``features``, ``target``, ``task``, ``classes``, ``mean`` and ``scale``.
        """
        return {
            "features": self.features,
            "target": self.target,
            "task": self.task,
            "classes": self.classes,
            "mean": self.mean,
            "scale": self.scale,
        }

    @classmethod
    def from_metadata(cls, meta: Any, where: str = "the model file") -> Preprocessing:
        """Inverse of :meth:`to_metadata`.

        Parameters
        ----------
        meta : dict
            What :meth:`to_metadata` returned.
        where : str, default "the model file"
            Where ``meta`` comes from, for the error message.

        Returns
        -------
        Preprocessing

        Raises
        ------
        ValueError
            When ``meta`` is not such a dict (a model file not written by ``nncore train``).
        """
        keys = ("features", "target", "task", "classes", "mean", "scale")
        if not isinstance(meta, dict) or any(k not in meta for k in keys):
            raise ValueError(
                f"{where} carries no table preprocessing (not written by nncore train)"
            )
        return cls(*(meta[k] for k in keys))


def save_model(path: str | os.PathLike, net: MLP, theta: Any, prep: Preprocessing, **info):
    """:func:`nncore.save` with the preprocessing (and ``info``, e.g. a training summary)
    in the metadata.

    Parameters
    ----------
    path : str or path-like
        The model file to write, as for :func:`nncore.save`.
    net : MLP
        The network.
    theta : array_like of shape (net.n_params,)
        Its parameters.
    prep : Preprocessing
        Stored under the metadata key ``"preprocessing"``.
    **info
        Further metadata, anything JSON can hold.
    """
    save(path, net, theta, metadata={"preprocessing": prep.to_metadata(), **info})


def load_model(path: str | os.PathLike) -> tuple[MLP, np.ndarray, Preprocessing, dict]:
    """``(net, theta, preprocessing, metadata)`` of a model file from :func:`save_model`.

    Parameters
    ----------
    path : str or path-like
        The model file.

    Returns
    -------
    net : MLP
    theta : ndarray of shape (net.n_params,)
    preprocessing : Preprocessing
    metadata : dict
        All of the file's metadata, ``"preprocessing"`` included.

    Raises
    ------
    ValueError
        As :func:`nncore.load`, and when the file carries no table preprocessing.
    """
    net, theta, meta = load(path)
    prep = Preprocessing.from_metadata(meta.get("preprocessing"), os.fspath(path))
    return net, theta, prep, meta
