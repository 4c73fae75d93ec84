"""Model files: a network and its parameters in one ``.npz``, read without running code.

One module owns the format (as numpy's ``.npy`` header or safetensors' JSON header do): an
``.npz`` archive with exactly two arrays,

* ``theta``: the flat float64 parameter vector, shape ``(n_params,)``;
* ``header``: UTF-8 JSON bytes (a ``uint8`` array) of a dict::

      {"format": "nncore-model", "version": 1, "nncore_version": "...",
       "network": {"sizes": [...], "activation": [...], "output": "...", "loss": "...",
                   "l2": ...},
       "metadata": {...}}

``activation`` lists the hidden layers' names.  A path ending in ``.safetensors`` gets the
safetensors format instead (``pip install safetensors``): the weights as a PyTorch
``nn.Sequential`` state dict (``"0.weight"`` of shape ``(n_1, n_0)``, ``"0.bias"``,
``"2.weight"``, ...; :func:`nncore.interop.to_state_dict`), little-endian float64, and the same
JSON header in its string metadata under the key ``"nncore"``; PyTorch-side tools read the
weights, :func:`load` the whole model.  The file is read with
``allow_pickle=False`` and the header with :func:`json.loads`: nothing in a file is executed
or unpickled.  A file is written to a temporary file in the same folder and moved into place
with :func:`os.replace`, so that a failure or an interrupt leaves the previous file intact and
no temporary behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ._validation import FloatArray, all_finite, check_theta
from ._version import __version__
from .interop import to_state_dict
from .network import MLP

FORMAT = "nncore-model"
FORMAT_VERSION = 1
"""The version this nncore writes; files of a newer version are refused."""

_ARRAYS = ("header", "theta")
SAFETENSORS_SUFFIX = ".safetensors"
_SAFETENSORS_KEY = "nncore"


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError as err:
        raise ImportError(
            "model files ending in .safetensors need the safetensors package: pip install "
            'safetensors (or pip install ".[safetensors]" in a checkout of nncore)'
        ) from err
    return safetensors


def network_spec(net: MLP) -> dict[str, Any]:
    """The JSON-serialisable spec of ``net``: ``MLP(**spec)`` rebuilds it."""
    if not isinstance(net, MLP):
        raise TypeError(f"net must be an nncore MLP, got {type(net).__name__}")
    return {
        "sizes": list(net.sizes),
        "activation": list(net.activations[:-1]),
        "output": net.output,
        "loss": net.loss_name,
        "l2": net.l2,
    }


def network_from_spec(spec: Any, where: str = "the spec") -> MLP:
    """``MLP(**spec)``, with a ValueError naming ``where`` for a spec that is not one."""
    keys = {"sizes", "activation", "output", "loss", "l2"}
    if not isinstance(spec, dict) or set(spec) != keys:
        found = sorted(spec) if isinstance(spec, dict) else type(spec).__name__
        raise ValueError(f"{where}: a network needs exactly the keys {sorted(keys)}, got {found}")
    try:
        return MLP(**spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: not a valid network: {err}") from None


def _metadata_json(metadata: Any) -> Any:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise TypeError(f"metadata must be a dict or None, got {type(metadata).__name__}")
    try:
        text = json.dumps(metadata, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata must be JSON-serialisable: {err}") from None
    return json.loads(text)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, suffix: str = ".tmp"):
    """Yield a binary file in ``path``'s folder; on success it replaces ``path``.

    On any exception (``KeyboardInterrupt`` too) the temporary file is removed and ``path``
    is left as it was.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save(path: str | os.PathLike, net: MLP, theta: Any, metadata: dict | None = None) -> None:
    """Write ``net`` and ``theta`` to the model file ``path`` (``.npz``), atomically.

    Parameters
    ----------
    path : str or path-like
        The file to write; replaced if it exists.  Written as given (no suffix is added);
        a name ending in ``.safetensors`` gets that format (see the module notes).
    net : MLP
    theta : array_like of shape (net.n_params,)
        Not modified; stored as float64, bit for bit.
    metadata : dict, optional
        Anything JSON can hold (no NaN or inf); returned by :func:`load` as it was saved.

    Examples
    --------
    >>> import os, tempfile, numpy as np, nncore
    >>> net = nncore.MLP([2, 3, 1], activation="relu", l2=1e-4)
    >>> theta = net.init(seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> nncore.save(path, net, theta, metadata={"epochs": 3})
    >>> net2, theta2, meta = nncore.load(path)
    >>> net2
    MLP([2, 3, 1], activation=['relu'], output='identity', loss='mse', l2=0.0001)
    >>> bool(np.array_equal(theta2, theta)), meta
    (True, {'epochs': 3})
    """
    spec = network_spec(net)
    theta = check_theta(theta, net.n_params)
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "nncore_version": __version__,
        "network": spec,
        "metadata": _metadata_json(metadata),
    }
    if os.fspath(path).endswith(SAFETENSORS_SUFFIX):
        tensors = {k: v.astype("<f8") for k, v in to_state_dict(net, theta).items()}
        data = _safetensors().numpy.save(tensors, metadata={_SAFETENSORS_KEY: json.dumps(header)})
        with atomic_write(path) as f:
            f.write(data)
        return
    header_bytes = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    with atomic_write(path) as f:
        np.savez(f, header=header_bytes, theta=np.ascontiguousarray(theta, dtype="<f8"))


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], FloatArray]:
    """The checked header dict and theta of a model file (see the module notes)."""
    name = os.fspath(path)
    try:
        archive = np.load(name, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        raise ValueError(
            f"{name} is not an nncore model file (not a readable .npz: {err})"
        ) from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(f"{name} is not an nncore model file (an .npy array, not an .npz)")
    with archive:
        if sorted(archive.files) != sorted(_ARRAYS):
            raise ValueError(
                f"{name} is not an nncore model file: expected the arrays {list(_ARRAYS)}, "
                f"got {sorted(archive.files)}"
            )
        try:
            raw, theta = archive["header"], archive["theta"]
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
            raise ValueError(f"{name} is corrupted: {err}") from None
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ValueError(f"{name}: the header must be uint8 bytes, got {raw.dtype} {raw.shape}")
    header = _check_header(raw.tobytes(), name)
    if theta.dtype != np.float64 or theta.ndim != 1:
        raise ValueError(f"{name}: theta must be 1-D float64, got {theta.dtype} {theta.shape}")
    return header, theta


def _check_header(raw: bytes | str, name: str) -> dict[str, Any]:
    """The header dict of JSON ``raw``, its format, version and metadata checked."""
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{name}: the header is not valid JSON: {err}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ValueError(f"{name}: not an nncore model file (format {found!r}, not {FORMAT!r})")
    version = header.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{name}: the header's version must be a positive int, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"{name} has format version {version}, newer than this nncore reads "
            f"({FORMAT_VERSION}): upgrade nncore"
        )
    if not isinstance(header.get("metadata", {}), dict):
        raise ValueError(f"{name}: the header's metadata must be a JSON object")
    return header


def _read_safetensors(path: str | os.PathLike) -> tuple[dict[str, Any], MLP, FloatArray]:
    """The checked header, network and theta of a ``.safetensors`` model file."""
    name = os.fspath(path)
    safetensors = _safetensors()
    if not os.path.exists(name):
        raise FileNotFoundError(name)
    try:
        with safetensors.safe_open(name, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:  # safetensors' own error types differ between versions
        raise ValueError(f"{name} is not a readable safetensors file: {err}") from None
    if _SAFETENSORS_KEY not in meta:
        raise ValueError(
            f"{name}: a safetensors file without nncore's header (metadata key "
            f"{_SAFETENSORS_KEY!r}; found {sorted(meta)})"
        )
    header = _check_header(meta[_SAFETENSORS_KEY], name)
    net = network_from_spec(header.get("network"), f"{name}: the network spec")
    expected = to_state_dict(net, np.zeros(net.n_params))
    if sorted(tensors) != sorted(expected):
        raise ValueError(
            f"{name}: the network {list(net.sizes)} needs the tensors "
            f"{sorted(expected)}, got {sorted(tensors)}"
        )
    for key in expected:
        if tensors[key].dtype != np.float64 or tensors[key].shape != expected[key].shape:
            raise ValueError(
                f"{name}: {key} must be float64 {expected[key].shape}, got "
                f"{tensors[key].dtype} {tensors[key].shape}"
            )
    values = [tensors[key] for key in expected]  # to_state_dict's order: W_l, then b_l
    return header, net, net.pack(list(zip(values[::2], values[1::2])))


def load(path: str | os.PathLike) -> tuple[MLP, FloatArray, dict[str, Any]]:
    """Read a model file written by :func:`save` (``.npz``, or ``.safetensors`` by its name).

    Parameters
    ----------
    path : str or path-like
        The file to read; a name ending in ``.safetensors`` is read in that format (which
        needs the safetensors package), any other as ``.npz``.  Nothing in it is executed
        or unpickled.

    Returns
    -------
    net : MLP
    theta : ndarray of shape (net.n_params,)
        Bit for bit the saved vector.
    metadata : dict
        The saved metadata (``{}`` when none was given).

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        A truncated, corrupted or foreign file, a newer format version, a spec that names an
        unknown activation or loss, or a theta whose length does not fit the network; the
        message says which.
    ImportError
        For a ``.safetensors`` file when the safetensors package is not installed.
    """
    if os.fspath(path).endswith(SAFETENSORS_SUFFIX):
        header, net, theta = _read_safetensors(path)
    else:
        header, theta = read_header(path)
        net = network_from_spec(header.get("network"), f"{os.fspath(path)}: the network spec")
    if theta.shape != (net.n_params,):
        raise ValueError(
            f"{os.fspath(path)}: theta has {theta.shape[0]} entries, the network "
            f"{list(net.sizes)} needs {net.n_params}"
        )
    if not all_finite(theta):
        raise ValueError(f"{os.fspath(path)}: theta holds inf or NaN")
    return net, theta, header.get("metadata", {})
