"""nncore: a flat-parameter neural-network core with exact, verified derivatives for scipy."""

from ._version import __version__ as __version__
from .activations import ACTIVATIONS
from .blas import limit_scipy_blas
from .io import load, save
from .losses import LOSSES
from .network import MLP
from .objective import Objective
from .training import train
from .verify import check_gradient

__all__ = [
    "ACTIVATIONS",
    "LOSSES",
    "MLP",
    "Objective",
    "check_gradient",
    "limit_scipy_blas",
    "load",
    "save",
    "train",
]


def __getattr__(name: str):
    """``nncore.sklearn`` and ``nncore.interop`` on first use: ``import nncore`` stays
    numpy and scipy only (``nncore.sklearn`` imports scikit-learn)."""
    if name in ("sklearn", "interop"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
