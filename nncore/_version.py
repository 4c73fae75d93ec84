"""The version of nncore, in one place: the package, its model files and pyproject read it."""

__version__ = "0.1.0"
