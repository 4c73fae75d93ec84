"""``python -m nncore``: the same command line as the ``nncore`` console script."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
