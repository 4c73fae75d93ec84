"""How often does the seed's XOR example succeed, and what do restarts cost?

For S random starts drawn as the seed draws them (``np.random.randn(9)``), run
1. the seed's CG with finite differences (its own ``cost_function``),
2. CG with nncore's exact gradient from the same start,
3. ``nncore.train(method="CG", n_starts=30, target=1/16)`` from the same first start,
and print the success rate (all four outputs on the right side of 0.5), the median number
of loss evaluations, and where the failed runs end.

    python benchmarks/xor_starts.py [--starts 200]
"""

from __future__ import annotations

import argparse
import os
import sys
from collections import Counter

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# the harness puts this checkout's nncore first on the path: import it before nncore
from harness import md_table  # noqa: E402

import nncore  # noqa: E402
from nncore.cli import DEMO_STARTS, XOR_TARGET  # noqa: E402
from nncore.seed import XOR_X, XOR_Y, seed_cost, seed_net  # noqa: E402


def solved(net: nncore.MLP, theta: np.ndarray) -> bool:
    pred = net.predict(theta, XOR_X).ravel()
    return bool(np.all((pred > 0.5) == (XOR_Y > 0.5)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=200)
    args = parser.parse_args()
    net = seed_net()
    rows = {
        "seed: CG, finite differences": [],
        "nncore: CG, exact gradient": [],
        f"nncore.train: CG, <= {DEMO_STARTS} starts": [],
    }
    plateaus = Counter()
    for s in range(args.starts):
        theta0 = np.random.default_rng(s).standard_normal(net.n_params)
        calls = {"n": 0}

        def cost(p: np.ndarray, calls: dict = calls) -> float:
            calls["n"] += 1
            return seed_cost(p)

        fd = minimize(cost, theta0, method="CG")
        rows["seed: CG, finite differences"].append((solved(net, fd.x), calls["n"]))
        exact = minimize(net.loss, theta0, args=(XOR_X, XOR_Y), jac=net.grad, method="CG")
        rows["nncore: CG, exact gradient"].append((solved(net, exact.x), exact.nfev))
        if not solved(net, exact.x):
            plateaus[round(exact.fun, 3)] += 1
        res = nncore.train(
            net,
            XOR_X,
            XOR_Y,
            method="CG",
            theta0=theta0,
            seed=s,
            n_starts=DEMO_STARTS,
            target=XOR_TARGET,
        )
        rows[f"nncore.train: CG, <= {DEMO_STARTS} starts"].append(
            (solved(net, res.x), res.total_nfev)
        )

    print(f"{args.starts} starts theta0 ~ N(0, 1)^9 (the seed's np.random.randn(9))\n")
    table = [
        [
            name,
            f"{100 * np.mean([r[0] for r in runs]):.0f}%",
            f"{np.median([r[1] for r in runs]):.0f}",
        ]
        for name, runs in rows.items()
    ]
    print("\n".join(md_table(["run", "solves XOR", "median loss evaluations"], table)))
    print(
        "\nwhere the failed exact-gradient runs end (final loss: count):",
        ", ".join(f"{k}: {v}" for k, v in sorted(plateaus.items())),
    )


if __name__ == "__main__":
    main()
