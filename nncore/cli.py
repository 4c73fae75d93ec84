"""Command line: ``nncore demo`` runs the seed's example done right; ``nncore check`` runs the
full gradient check on a network given on the command line."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import minimize

from .seed import XOR_X, XOR_Y, seed_cost, seed_net
from .training import train
from .verify import check_gradient

XOR_TARGET = 1.0 / 16.0
"""Below this mse every |A_i - y_i| < 1/2, so every XOR output is on the right side of 0.5."""
DEMO_STARTS = 30
"""Starts allowed in the demo; one start fails with probability about 0.4, 30 with ~1e-12."""
TIMING_REPEATS = 5


def _median_time(run: Callable[[], object]) -> tuple[float, object]:
    times, out = [], None
    for _ in range(TIMING_REPEATS):
        t0 = time.perf_counter()
        out = run()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), out


def _fmt(values: np.ndarray) -> str:
    return "[" + " ".join(f"{v:.3f}" for v in values) + "]"


def _solved(pred: np.ndarray) -> bool:
    return bool(np.all((pred > 0.5) == (XOR_Y > 0.5)))


def demo(seed: int | None = None) -> int:
    """Train the seed's 2-2-1 tanh/sigmoid XOR network with CG and the exact gradient.

    Prints the predictions, a gradient check and, side by side, the seed's own
    finite-difference CG run from the same start.  Returns 0 when XOR is solved.
    """
    rng = np.random.default_rng(seed)
    net = seed_net()
    theta0 = rng.standard_normal(net.n_params)  # the seed's initial_params = np.random.randn(9)
    restart_seed = int(rng.integers(2**63))

    counter = {"n": 0}

    def counted_cost(p: np.ndarray) -> float:
        counter["n"] += 1
        return seed_cost(p)

    def seed_run():
        counter["n"] = 0
        return minimize(counted_cost, theta0, method="CG")

    def nncore_run():
        return train(
            net,
            XOR_X,
            XOR_Y,
            method="CG",
            theta0=theta0,
            seed=restart_seed,
            n_starts=DEMO_STARTS,
            target=XOR_TARGET,
        )

    t_seed, res_seed = _median_time(seed_run)
    n_seed = counter["n"]
    t_nn, res_nn = _median_time(nncore_run)
    pred_seed = net.predict(res_seed.x, XOR_X).ravel()
    pred_nn = net.predict(res_nn.x, XOR_X).ravel()
    report = check_gradient(net, theta0, XOR_X, XOR_Y, profile="thorough")  # scipy's too

    print("nncore demo: the seed's 2-2-1 tanh/sigmoid network on XOR, CG from one random start")
    print(f"seed={seed}  theta0 = {np.array2string(theta0, precision=3)}\n")
    rows = [
        ("", "seed (finite differences)", "nncore (exact gradient)"),
        ("starts run", "1", f"{len(res_nn.start_funs)}"),
        ("loss evaluations", f"{n_seed}", f"{res_nn.total_nfev}"),
        ("gradient evaluations", "(in the above: n+1 each)", f"{res_nn.total_njev}"),
        ("wall time (median of 5)", f"{1e3 * t_seed:.2f} ms", f"{1e3 * t_nn:.2f} ms"),
        ("final loss", f"{res_seed.fun:.3e}", f"{res_nn.fun:.3e}"),
        ("predictions", _fmt(pred_seed), _fmt(pred_nn)),
        ("solves XOR", "yes" if _solved(pred_seed) else "no", "yes" if _solved(pred_nn) else "no"),
    ]
    for a, b, c in rows:
        print(f"{a:<26}{b:<30}{c}")
    if len(res_nn.start_funs) > 1:
        funs = ", ".join(f"{f:.4f}" for f in res_nn.start_funs)
        print(
            f"\nnncore restarted: the first start(s) ended on a plateau (final losses {funs});"
            "\nthere two or three inputs share one saturated hidden code, the output can only"
            "\naverage them, and the gradient vanishes."
            "\nSee README, 'Why the seed fails half the time'."
        )
    ratio = n_seed / res_nn.total_nfev
    print(
        f"\nnncore used {ratio:.1f}x fewer loss evaluations and ran "
        f"{t_seed / t_nn:.1f}x faster than the finite-difference run."
    )
    print("\ngradient check at theta0 (hand backprop vs other oracles):")
    jax = "JAX not installed" if report.jax_rel_error is None else f"{report.jax_rel_error:.1e}"
    print(
        f"  scipy.optimize.check_grad = {report.check_grad:.1e}   "
        f"central-difference relative error = {report.fd_rel_error:.1e}   "
        f"JAX relative error = {jax}   -> {'passed' if report.passed else 'FAILED'}"
    )
    return 0 if _solved(pred_nn) and report.passed else 1


def _random_data(net, n: int, rng: np.random.Generator):
    X = rng.standard_normal((n, net.sizes[0]))
    n_out = net.sizes[-1]
    if net.loss_name == "cross_entropy":
        return X, rng.integers(0, n_out, n)
    if net.loss_name == "bce":
        return X, rng.uniform(0.0, 1.0, (n, n_out))
    return X, rng.standard_normal((n, n_out))


def check(args: argparse.Namespace) -> int:
    """``nncore check``: the full gradient report; exit status 1 when the check fails."""
    from .network import MLP
    from .verify import check_gradient

    try:
        sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        raise ValueError(
            f"--sizes must be integers separated by commas, got {args.sizes!r}"
        ) from None
    acts = args.activation.split(",")
    net = MLP(
        sizes,
        activation=acts[0] if len(acts) == 1 else acts,
        output=args.output,
        loss=args.loss,
        l2=args.l2,
    )
    rng = np.random.default_rng(args.seed)
    weights = None
    if args.data:
        try:
            data = np.load(args.data)
        except ValueError as err:  # pickled or unreadable content
            raise ValueError(f"--data {args.data}: not an .npz file of arrays ({err})") from None
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError(f"--data {args.data}: an .npz file with arrays X and y is needed")
        with data:
            missing = [key for key in ("X", "y") if key not in data]
            if missing:
                raise ValueError(f"{args.data} has no array {' or '.join(missing)}")
            X, y = data["X"], data["y"]
            weights = data["sample_weight"] if "sample_weight" in data else None
    else:
        X, y = _random_data(net, args.samples, rng)
    theta = net.init(rng)
    report = check_gradient(
        net,
        theta,
        X,
        y,
        weights,
        hessp=args.hessp,
        mode=args.mode,
        rng=rng,
        profile="thorough" if args.plot else args.profile,  # the plot draws the Taylor test
        workers=args.workers,
    )
    print(f"{net!r}, {X.shape[0]} samples, seed {args.seed}")
    print(report)
    if args.plot:
        try:
            _plot_taylor(report, args.plot)
        except OSError as err:  # the verdict stands: 1 when the check did not pass
            print(f"nncore check: --plot: {err}", file=sys.stderr)
            return 1 if not report.passed else 2
    return 0 if report.passed else 1


def _plot_taylor(report, path: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('--plot needs matplotlib: pip install "nncore[plot]"')
        return
    fig, ax = plt.subplots(figsize=(6, 4.5))
    tests = [("gradient", report.taylor)]
    if report.hessp is not None:
        tests.append(("Hessian-vector product", report.hessp["taylor"]))
    for n_test, (label, t) in enumerate(tests):
        h, r = np.asarray(t["h"]), np.asarray(t["remainder"])
        rate = "n/a" if t["rate"] is None else f"{t['rate']:.2f}"
        ax.loglog(h, np.maximum(r, 1e-300), "o-", ms=3, label=f"{label}: rate {rate}")
        ax.loglog(h, np.asarray(t["noise"]), ":", color="gray", lw=1)
        if t["used"] is not None:
            lo, hi = t["used"]
            k = t["expected_rate"]
            ref = r[hi - 1] * (h / h[hi - 1]) ** k
            ax.loglog(h, ref, "--", lw=1, label=f"slope {k} guide")
            ax.loglog(
                h,
                r[hi - 1] * (h / h[hi - 1]),
                "-.",
                lw=1,
                color="red",
                alpha=0.5,
                label=None if n_test else "slope 1 (a wrong derivative)",
            )
    ax.set_xlabel("step h")
    ax.set_ylabel("Taylor remainder")
    ax.set_title("Taylor test (dotted: round-off level)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"Taylor plot written to {path}")


def _count(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {value}")
    return value


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nncore`` console script."""
    parser = argparse.ArgumentParser(prog="nncore", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="train the seed's XOR network with the exact gradient")
    p_demo.add_argument("--seed", type=_count, default=None, help="random seed (default: fresh)")
    p_check = sub.add_parser(
        "check", help="check a network's gradient (exit 1 if it fails or is inconclusive)"
    )
    p_check.add_argument("--sizes", default="2,2,1", help="widths n_in,...,n_out (2,2,1)")
    p_check.add_argument("--activation", default="tanh", help="one name, or one per hidden layer")
    p_check.add_argument("--output", default=None, help="output activation (default: the loss's)")
    p_check.add_argument("--loss", default="mse", choices=["mse", "bce", "cross_entropy"])
    p_check.add_argument("--l2", type=float, default=0.0)
    p_check.add_argument("--seed", type=_count, default=0)
    p_check.add_argument("--samples", type=_positive, default=16, help="random samples (no --data)")
    p_check.add_argument("--data", help=".npz file with X, y (and optionally sample_weight)")
    p_check.add_argument("--hessp", action="store_true", help="check Hessian-vector products too")
    p_check.add_argument("--mode", default="auto", choices=["auto", "coordinates", "directions"])
    p_check.add_argument(
        "--profile",
        default="fast",
        choices=["fast", "thorough"],
        help="fast: ~2 evaluations per coordinate; thorough: 4, plus Taylor and check_grad "
        "(--plot, which draws the Taylor test, runs the thorough profile)",
    )
    p_check.add_argument(
        "--workers", type=_positive, default=1, help="processes for the differences (1)"
    )
    p_check.add_argument("--plot", metavar="FILE.png", help="draw the Taylor test (matplotlib)")
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo(args.seed)
    try:
        return check(args)
    except (ValueError, TypeError, OSError) as err:  # bad arguments, data or paths
        print(f"nncore check: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
