"""``python -m nncore``: the same command line as the ``nncore`` console script."""

from .cli import main

raise SystemExit(main())
