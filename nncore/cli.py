"""Command line: ``nncore demo`` runs the seed's example done right, ``nncore check`` the full
gradient check of a network, ``nncore train`` trains on a data file (CSV or ``.npz``) and writes
a model file, ``nncore predict`` predicts from one and ``nncore info`` describes it.

Each subcommand is a small function over the public API (:func:`nncore.train`,
:mod:`nncore.tabular`, :mod:`nncore.plot`).  Exit status: 0 done, 1 a failed check or demo,
2 a usage or input error (one line on stderr, and no output file written)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import minimize

from ._version import __version__
from .io import atomic_write
from .seed import XOR_X, XOR_Y, seed_cost, seed_net
from .tabular import Preprocessing, load_model, read_table, save_model
from .training import max_iter_options, train
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


def demo(seed: int | None = None, plot: str | None = None) -> int:
    """Train the seed's 2-2-1 tanh/sigmoid XOR network with CG and the exact gradient.

    Prints the predictions, a gradient check and, side by side, the seed's own
    finite-difference CG run from the same start; with ``plot``, draws the decision boundary
    and both loss curves to that file.  Returns 0 when XOR is solved (2 when the picture
    could not be written).
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
    n_starts = len(res_nn.start_funs)

    print("nncore demo: the seed's 2-2-1 tanh/sigmoid network on XOR, CG from one random start")
    print(f"seed={seed}  theta0 = {np.array2string(theta0, precision=3)}\n")
    rows = [
        ("", "seed (finite differences)", "nncore (exact gradient)"),
        ("starts run", "1", f"{n_starts}"),
        ("loss evaluations", f"{n_seed}", f"{res_nn.total_nfev}"),
        ("gradient evaluations", "(in the above: n+1 each)", f"{res_nn.total_njev}"),
        ("wall time (median of 5)", f"{1e3 * t_seed:.2f} ms", f"{1e3 * t_nn:.2f} ms"),
        ("final loss", f"{res_seed.fun:.3e}", f"{res_nn.fun:.3e}"),
        ("predictions", _fmt(pred_seed), _fmt(pred_nn)),
        ("solves XOR", "yes" if _solved(pred_seed) else "no", "yes" if _solved(pred_nn) else "no"),
    ]
    for a, b, c in rows:
        print(f"{a:<26}{b:<30}{c}")
    plateaus = [(k, f) for k, f in enumerate(res_nn.start_funs) if f > XOR_TARGET]
    if plateaus:
        ends = ", ".join(f"start {k + 1} at {f:.4f}" for k, f in plateaus)
        print(
            f"\nnncore restarted: {ends} ended on a plateau;"
            "\nthere two or three inputs share one saturated hidden code, the output can only"
            "\naverage them, and the gradient vanishes."
            "\nSee README, 'Why the seed fails half the time'."
        )
    print(
        "\nAgainst the finite-difference run, nncore per start "
        + _comparison(res_nn.total_nfev / n_starts, n_seed, t_nn / n_starts, t_seed)
    )
    if n_starts > 1:
        print(
            f"and in total over its {n_starts} starts "
            + _comparison(res_nn.total_nfev, n_seed, t_nn, t_seed)
        )
    print("\ngradient check at theta0 (hand backprop vs other oracles):")
    jax = "JAX not installed" if report.jax_rel_error is None else f"{report.jax_rel_error:.1e}"
    print(
        f"  scipy.optimize.check_grad = {report.check_grad:.1e}   "
        f"central-difference relative error = {report.fd_rel_error:.1e}   "
        f"JAX relative error = {jax}   -> {'passed' if report.passed else 'FAILED'}"
    )
    status = 0 if _solved(pred_nn) and report.passed else 1
    if plot:
        seen = [seed_cost(theta0)]

        def seed_callback(intermediate_result):
            seen.append(intermediate_result.fun)

        minimize(seed_cost, theta0, method="CG", callback=seed_callback)
        if not _draw(plot, lambda fig: _demo_figure(fig, net, res_nn, seen), (11, 4.5)):
            return 2
    return status


def _comparison(evals: float, seed_evals: float, seconds: float, seed_seconds: float) -> str:
    """ "used 0.10x the loss evaluations and took 0.31x the time": ratios with direction."""
    return (
        f"used {evals / seed_evals:.2f}x the loss evaluations and took "
        f"{seconds / seed_seconds:.2f}x the time"
    )


def _demo_figure(fig, net, res_nn, seed_history) -> None:
    from . import plot

    left, right = fig.subplots(1, 2)
    plot.decision_boundary(net, res_nn.x, XOR_X, XOR_Y, ax=left)
    left.set_title("nncore's XOR decision boundary (output 0.5)")
    plot.loss_curve(res_nn.history, ax=right, label="nncore, exact gradient")
    right.plot(seed_history, lw=1.5, label="seed, finite differences")
    right.legend(fontsize=8)
    right.set_title("loss per CG iteration")


def _draw(path: str, draw: Callable, figsize: tuple = (6, 4.5)) -> bool:
    """Draw a figure with ``draw(fig)`` and write it to ``path`` (atomically); False with a
    message on stderr when matplotlib is missing or the file cannot be written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        print(
            "nncore: --plot needs matplotlib: pip install matplotlib "
            '(or pip install ".[plot]" in a checkout of nncore)',
            file=sys.stderr,
        )
        return False
    fig = Figure(figsize=figsize)
    draw(fig)
    fig.tight_layout()
    ext = os.path.splitext(path)[1].lstrip(".") or "png"
    try:
        with atomic_write(path, suffix=f".{ext}") as f:
            fig.savefig(f, format=ext, dpi=120)
    except (OSError, ValueError) as err:
        print(f"nncore: --plot {path}: {err}", file=sys.stderr)
        return False
    print(f"plot written to {path}")
    return True


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
        X, y, weights = _check_data(args.data, args.target)
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

        def draw(fig):
            from .plot import taylor

            taylor(report, ax=fig.subplots())

        if not _draw(args.plot, draw):  # the verdict stands: 1 when the check did not pass
            return 1 if not report.passed else 2
    return 0 if report.passed else 1


def _check_data(path: str, target: str | None):
    """``X, y, sample_weight`` for ``check --data``: an ``.npz`` (X, y, optionally
    sample_weight) or a CSV whose ``target`` column (default: the last) is y."""
    if path.endswith(".npz"):
        table = read_table(path, target="y")
        with np.load(path, allow_pickle=False) as data:
            weights = data["sample_weight"] if "sample_weight" in data else None
        return table.X, table.y, weights
    if target is None:  # one read: every column parsed as a number, the last one is y
        table = read_table(path)
        return table.X[:, :-1], table.X[:, -1], None
    table = read_table(path, target=target)
    if table.y.dtype.kind != "f":
        raise ValueError(f"{path}: the target {target!r} must be numeric for check")
    return table.X, table.y, None


def train_command(args: argparse.Namespace) -> int:
    """``nncore train``: train on a data file, print a summary, write the model file."""
    for path in (args.out, args.plot):
        _writable(path)
    table = read_table(args.data, args.target or "y")  # an .npz's target is y
    prep = Preprocessing.fit(table, args.task, args.standardize)
    X = prep.transform(table)
    net = prep.network(_sizes(args.hidden, "--hidden"), args.activation, args.loss, args.l2)
    y = prep.targets(net, table.y)
    rng = np.random.default_rng(args.seed)
    fit, held = _split(len(y), args.validation, rng)
    validation = None if held is None else (X[held], y[held])
    t0 = time.perf_counter()
    res = train(
        net,
        X[fit],
        y[fit],
        method=args.method,
        seed=rng,
        n_starts=args.n_starts,
        options=None if args.max_iter is None else max_iter_options(args.method, args.max_iter),
        validation=validation,
        patience=args.patience,
        max_time=args.max_time,
        progress=True,
    )
    seconds = time.perf_counter() - t0
    measure = "accuracy" if prep.task == "classification" else "R^2"
    summary = {
        "method": args.method,
        "training_loss": float(res.fun),
        "validation_loss": None if held is None else float(res.validation_fun),
        f"training_{measure}": prep.score(net, res.x, X[fit], table.y[fit]),
        f"validation_{measure}": None
        if held is None
        else prep.score(net, res.x, X[held], table.y[held]),
        "iterations": len(res.history) - len(res.history.restarts) - 1,
        "function_evaluations": int(res.total_nfev),
        "gradient_evaluations": int(res.total_njev),
        "seconds": round(seconds, 3),
        "stopped": res.stopped,
        "message": str(res.message),
    }
    print(f"{net!r} on {len(fit)} rows of {args.data} ({prep.task}, target {prep.target!r})")
    _print_summary(summary)
    if args.out:
        save_model(args.out, net, res.x, prep, training=summary)
        print(f"model written to {args.out}")
    if args.plot:

        def draw(fig):
            from .plot import loss_curve

            loss_curve(res.history, ax=fig.subplots())

        if not _draw(args.plot, draw):
            return 2
    return 0


def _print_summary(summary: dict) -> None:
    for key, value in summary.items():
        if value is not None:
            shown = f"{value:.6g}" if isinstance(value, float) else value
            print(f"  {key.replace('_', ' '):<24}{shown}")


def _writable(path: str | None) -> None:
    """A ValueError now, before any work, when ``path``'s folder does not exist."""
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise ValueError(f"cannot write {path}: no folder {os.path.dirname(path)!r}")


def _sizes(text: str, option: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"{option} must be integers separated by commas, got {text!r}") from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"{option} widths must be at least 1, got {text!r}")
    return sizes


def _split(n: int, fraction: float | None, rng: np.random.Generator):
    """Row indices to fit on and to hold out (None without a validation fraction)."""
    if not fraction:
        return np.arange(n), None
    held = int(round(fraction * n))
    if not 1 <= held < n:
        raise ValueError(f"--validation {fraction} of {n} rows leaves no rows to fit or hold out")
    order = rng.permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])


def predict_command(args: argparse.Namespace) -> int:
    """``nncore predict``: predictions of a model file for the rows of a data file."""
    _writable(args.out)
    net, theta, prep, _ = load_model(args.model)
    table = read_table(args.data, prep.target, require_target=False)
    pred = prep.predict(net, theta, prep.transform(table, args.data))
    lines = [prep.target] + [_label(p) for p in pred]
    text = "\n".join(lines) + "\n"
    if args.out:
        with atomic_write(args.out) as f:
            f.write(text.encode("utf-8"))
        print(f"{len(pred)} predictions written to {args.out}")
    else:
        sys.stdout.write(text)
    return 0


def _label(value) -> str:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else str(value)


def info_command(args: argparse.Namespace) -> int:
    """``nncore info``: a model file's network, preprocessing and training summary."""
    net, theta, prep, meta = load_model(args.model)
    print(f"{args.model}: {net!r}, {net.n_params} parameters")
    print(f"  task                    {prep.task} of {prep.target!r}")
    print(f"  features                {', '.join(prep.features)}")
    if prep.classes is not None:
        print(f"  classes                 {', '.join(map(str, prep.classes))}")
    print(f"  standardised            {'yes' if prep.mean is not None else 'no'}")
    _print_summary(meta.get("training") or {})
    return 0


def _count(text: str) -> int:
    """An argparse type: an integer of at least 0."""
    return _integer(text, 0)


def _positive(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    return _integer(text, 1)


def _integer(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
    return value


def _float(text: str, what: str, ok: Callable[[float], bool]) -> float:
    """An argparse type's number, or an error saying ``what`` was expected."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (np.isfinite(value) and ok(value)):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def _fraction(text: str) -> float:
    """An argparse type: a number strictly between 0 and 1."""
    return _float(text, "a number between 0 and 1", lambda v: 0 < v < 1)


def _seconds(text: str) -> float:
    """An argparse type: a positive number of seconds."""
    return _float(text, "a positive number of seconds", lambda v: v > 0)


def _real(text: str) -> float:
    """An argparse type: a finite number."""
    return _float(text, "a finite number", lambda v: True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nncore", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"nncore {__version__}")
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="train the seed's XOR network with the exact gradient")
    p_demo.add_argument("--seed", type=_count, default=None, help="random seed (default: fresh)")
    p_demo.add_argument("--plot", metavar="FILE.png", help="draw the boundary and loss curves")
    p_check = sub.add_parser(
        "check", help="check a network's gradient (exit 1 if it fails or is inconclusive)"
    )
    p_check.add_argument("--sizes", default="2,2,1", help="widths n_in,...,n_out (2,2,1)")
    p_check.add_argument("--activation", default="tanh", help="one name, or one per hidden layer")
    p_check.add_argument("--output", default=None, help="output activation (default: the loss's)")
    p_check.add_argument("--loss", default="mse", choices=["mse", "bce", "cross_entropy"])
    p_check.add_argument("--l2", type=_real, default=0.0)
    p_check.add_argument("--seed", type=_count, default=0)
    p_check.add_argument("--samples", type=_positive, default=16, help="random samples (no --data)")
    p_check.add_argument("--data", help=".npz with X, y (, sample_weight), or a CSV")
    p_check.add_argument("--target", help="the CSV column of y (default: the last)")
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

    p_train = sub.add_parser("train", help="train on a CSV or .npz file, write a model file")
    p_train.add_argument("data", metavar="DATA", help="CSV with a header row, or .npz (X, y)")
    p_train.add_argument("--target", help="the target column (required for CSV)")
    p_train.add_argument("--task", choices=["classification", "regression"], default=None)
    p_train.add_argument("--hidden", default="32", help="hidden widths, e.g. 32,32 (32)")
    p_train.add_argument("--activation", default="relu")
    p_train.add_argument("--loss", choices=["mse", "bce", "cross_entropy"], default=None)
    p_train.add_argument("--method", default="L-BFGS-B")
    p_train.add_argument("--l2", type=_real, default=1e-4)
    p_train.add_argument("--max-iter", type=_positive, default=None)
    p_train.add_argument("--max-time", type=_seconds, default=None, help="seconds")
    p_train.add_argument("--n-starts", type=_positive, default=1)
    p_train.add_argument("--seed", type=_count, default=0)
    p_train.add_argument("--validation", type=_fraction, default=None, help="fraction held out")
    p_train.add_argument("--patience", type=_positive, default=None)
    p_train.add_argument("--standardize", action="store_true", help="standardise the features")
    p_train.add_argument("--out", metavar="MODEL.npz", help="write the model file")
    p_train.add_argument("--plot", metavar="FILE.png", help="draw the loss curve")

    p_predict = sub.add_parser("predict", help="predict the rows of DATA with a model file")
    p_predict.add_argument("model", metavar="MODEL")
    p_predict.add_argument("data", metavar="DATA")
    p_predict.add_argument("--out", metavar="FILE.csv", help="write here (default: stdout)")
    p_info = sub.add_parser("info", help="describe a model file")
    p_info.add_argument("model", metavar="MODEL")
    return parser


COMMANDS = {
    "check": check,
    "train": train_command,
    "predict": predict_command,
    "info": info_command,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nncore`` console script (and of ``python -m nncore``)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "train" and args.target is None and not args.data.endswith(".npz"):
        parser.error("train: --target COLUMN is required for a CSV file")
    if getattr(args, "patience", None) is not None and args.validation is None:
        parser.error("train: --patience needs --validation FRACTION")
    try:
        if args.command == "demo":
            return demo(args.seed, args.plot)
        return COMMANDS[args.command](args)
    except (ValueError, TypeError, OSError) as err:  # bad arguments, data or paths
        print(f"nncore {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
