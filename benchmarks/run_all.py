"""Every speed and memory target of nncore, measured side by side in one run.

Runs, in this order, on this machine:

1. one loss + gradient evaluation (``bench_loss_grad.py``: nncore, finite differences, JAX
   ``jit(value_and_grad)``, scikit-learn's MLP internals; interleaved medians), with the DGEMM
   floor of each case: its matrix-product flops divided by the DGEMM rate measured here, now,
   and the same products timed alone at their own shapes;
2. one ``hessp`` and one ``gnvp`` as a multiple of one ``loss_and_grad``;
3. time per evaluation against N (64-64-10 relu/softmax, synthetic) for nncore, JAX and
   scikit-learn, plotted to ``docs/scaling.png`` when matplotlib is installed;
4. N = 1,000,000 rows with ``chunk_size``: peak memory above the data, and time per row
   against the N = 10,000 case (in a child process, so that its peak is its own);
5. training the 64-64-10 digits network to scikit-learn's own final loss, against
   ``MLPClassifier(solver="lbfgs")`` on the same data, out of the box and with scipy's BLAS
   on one thread as ``nncore.train`` runs it (``nncore.limit_scipy_blas``);
6. the seed's XOR network trained with CG, BFGS and L-BFGS-B: the share of the wall time
   spent inside nncore's loss + gradient, the rest being scipy's own work; and one XOR
   loss + gradient against its numpy floor: the same numpy calls (25) written inline, with
   every buffer made beforehand and no Python structure around them.

It writes ``benchmarks/results/run_all.json`` and ``benchmarks/results/run_all.md``::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/run_all.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# the harness puts this checkout's nncore first on the path: import it before nncore
import bench_loss_grad as blg  # noqa: E402
import harness as h  # noqa: E402
from harness import fmt_ratio, fmt_time, md_table  # noqa: E402

import nncore  # noqa: E402

ROOT = HERE.parent


def matmul_flops(net: nncore.MLP, n: int) -> float:
    """Flops of the matrix products of one loss + gradient: forward ``A W^T``, backward
    ``D^T A`` for every layer and ``D W`` for every layer but the first."""
    sizes = net.sizes
    per_layer = [2.0 * n * a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * sum(per_layer) + sum(per_layer[1:])


def dgemm_rate(seconds: float = 1.0) -> float:
    """Flop/s of numpy's float64 matrix product on 2000 x 2000 matrices (median)."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2000, 2000)), rng.standard_normal((2000, 2000))
    a @ b
    times, t_end = [], time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 5:
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2.0 * 2000**3 / statistics.median(times)


def interleaved(competitors: dict, repeats: int, sample_s: float) -> dict[str, float]:
    """Median seconds per call of each competitor: at least ``min(repeats, 5)`` repeats,
    then as many as 60 seconds allow."""
    return h.medians(competitors, sample_s, repeats, min(repeats, 5), 60.0)


CURVATURE_COLUMNS = {
    "loss_and_grad": h.LG,
    "hessp (public)": h.HP_PUB,
    "gnvp (public)": h.GN_PUB,
    "hessp (objective, forward cached)": h.HP,
    "gnvp (objective, forward cached)": h.GN,
}
"""run_all's curvature columns and the :func:`harness.curvature_calls` they time."""


def curvature_costs(args) -> list[dict]:
    rows = []
    timing = {"sample_s": args.sample_s, "repeats": args.repeats}
    timing |= {"min_repeats": min(args.repeats, 5), "budget_s": 60.0}  # as interleaved()
    for case in h.make_cases()[1:]:
        net, keys = case.net(), CURVATURE_COLUMNS.values()
        cost = h.curvature_cost(case.name, net, case.X, case.y, 1, keys, **timing)
        ratios = {col: cost.median(k) / cost.median(h.LG) for col, k in CURVATURE_COLUMNS.items()}
        rows.append({"case": case.name, **ratios})
    return rows


def scaling(args) -> dict:
    rng = np.random.default_rng(0)
    net = nncore.MLP([64, 64, 10], activation="relu", loss="cross_entropy")
    theta = net.init(0)
    out: dict[str, dict[int, float]] = {}
    for n in args.scaling_n:
        X = rng.standard_normal((n, 64))
        y = rng.integers(0, 10, n)
        competitors = {"nncore": h.alternating(net.objective(X, y), (theta, net.init(1)))}
        if h.HAVE_JAX:
            competitors["JAX jit"] = h.jax_value_and_grad(net, theta, X, y)[0]
        if h.HAVE_SKLEARN:
            competitors["sklearn"] = h.sklearn_loss_grad(net, theta, X, y)
        for name, sec in interleaved(competitors, args.repeats, args.sample_s).items():
            out.setdefault(name, {})[n] = sec
    if args.plot and not args.quick:  # a smoke run keeps the plot the docs show
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            print(
                'scaling plot skipped: pip install matplotlib (or pip install ".[plot]" in a '
                "checkout of nncore)",
                file=sys.stderr,
            )
        else:
            fig, ax = plt.subplots(figsize=(6, 4))
            for name, pts in out.items():
                ns = sorted(pts)
                ax.loglog(ns, [pts[n] / n * 1e9 for n in ns], "o-", label=name)
            ax.set_xlabel("N (rows)")
            ax.set_ylabel("ns per row per loss + gradient")
            ax.set_title("64-64-10 relu/softmax, float64, this machine")
            ax.legend()
            fig.tight_layout()
            fig.savefig(ROOT / "docs" / "scaling.png", dpi=110)
    return {name: {str(n): s for n, s in pts.items()} for name, pts in out.items()}


def _vm(field: str) -> int:
    """``VmRSS`` or ``VmHWM`` (peak) of this process in bytes, from /proc (Linux).

    Not ``ru_maxrss``: Linux carries it over ``exec`` from the parent, which holds the
    earlier benchmarks' arrays.
    """
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise OSError(f"{field} not in /proc/self/status")


def memory_child(n: int, chunk: int | None) -> None:
    """Child process: print JSON with peak RSS above start, data bytes and seconds per call."""
    start = _vm("VmRSS")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((n, 64))
    y = rng.integers(0, 10, n)
    data = X.nbytes + y.nbytes
    net = nncore.MLP([64, 64, 10], activation="relu", loss="cross_entropy")
    obj = net.objective(X, y, chunk_size=chunk)
    thetas = [net.init(0), net.init(1)]
    times = []
    for i in range(3 if n > 100_000 else 11):
        t0 = time.perf_counter()
        obj.fun_and_jac(thetas[i % 2])
        times.append(time.perf_counter() - t0)
    peak = _vm("VmHWM")
    print(
        json.dumps(
            {
                "n": n,
                "chunk": chunk,
                "data_bytes": data,
                "above_start": peak - start,
                "seconds": statistics.median(times),
            }
        )
    )


def memory(args) -> dict:
    runs = {}
    for n, chunk in ((10_000, None), (args.big_n, args.chunk)):
        cmd = [sys.executable, __file__, "--memory-child", str(n), str(chunk or 0)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        runs[f"{n}"] = json.loads(out.strip().splitlines()[-1])
    small, big = runs["10000"], runs[str(args.big_n)]
    return {
        "runs": runs,
        "working_mib_above_data": (big["above_start"] - big["data_bytes"]) / 2**20,
        "time_per_row_ratio": (big["seconds"] / big["n"]) / (small["seconds"] / small["n"]),
    }


def training(args) -> dict:
    """Digits 64-64-10 to sklearn's own final loss: nncore L-BFGS-B against sklearn lbfgs."""
    X, y, _ = h.digits_data()
    net = nncore.MLP([64, 64, 10], activation="relu", loss="cross_entropy")
    rows = []
    for seed in range(args.train_starts):
        params = {"max_iter": args.train_iter, "random_state": seed}
        clf, t_skl, _ = h.sklearn_fit(net, X, y, **params)
        with nncore.limit_scipy_blas():  # the same setting nncore.train runs with
            clf_limited, t_skl_limited, _ = h.sklearn_fit(net, X, y, **params)
        target = float(clf.loss_)

        def stop(res, target=target):
            if res.fun <= target:
                raise StopIteration

        t0 = time.perf_counter()
        res = nncore.train(
            net,
            X,
            y,
            method="L-BFGS-B",
            seed=seed,
            callback=stop,
            options={"maxiter": 20 * args.train_iter, "gtol": 0.0, "ftol": 0.0},
        )
        t_nn = time.perf_counter() - t0
        rows.append(
            {
                "seed": seed,
                "target": target,
                "sklearn_s": t_skl,
                "sklearn_limited_s": t_skl_limited,
                "sklearn_limited_loss": float(clf_limited.loss_),
                "sklearn_iter": clf.n_iter_,
                "nncore_s": t_nn,
                "nncore_iter": int(res.nit),
                "nncore_fun": float(res.fun),
                "reached": bool(res.fun <= target),
            }
        )
    return {
        "rows": rows,
        "median_ratio": statistics.median(r["nncore_s"] / r["sklearn_s"] for r in rows),
        "median_ratio_limited": statistics.median(
            r["nncore_s"] / r["sklearn_limited_s"] for r in rows
        ),
    }


def xor_numpy_floor(theta: np.ndarray) -> Any:
    """The XOR 2-2-1 (tanh, sigmoid, mse) loss + gradient as the bare sequence of numpy calls
    nncore's kernels make, buffers allocated beforehand: what nncore would cost with no
    Python around the numpy calls."""
    from scipy import special

    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Y = np.array([[0.0], [1.0], [1.0], [0.0]])
    W1, b1, W2, b2 = theta[:4].reshape(2, 2), theta[4:6], theta[6:8].reshape(1, 2), theta[8:]
    g = np.empty(9)
    gW1, gb1, gW2, gb2 = g[:4].reshape(2, 2), g[4:6], g[6:8].reshape(1, 2), g[8:]
    Z1T, A1T, Z2T, A2T = np.empty((2, 4)), np.empty((2, 4)), np.empty((1, 4)), np.empty((1, 4))
    D2, S2, D1, S1 = np.empty((4, 1)), np.empty((4, 1)), np.empty((2, 4)).T, np.empty((2, 4)).T

    def floor() -> tuple[float, np.ndarray]:
        np.matmul(W1, X.T, out=Z1T)
        np.add(Z1T, b1[:, None], out=Z1T)
        np.tanh(Z1T, out=A1T)
        np.matmul(W2, A1T, out=Z2T)
        np.add(Z2T, b2[:, None], out=Z2T)
        special.expit(Z2T, out=A2T)
        A2 = A2T.T
        R = A2 - Y
        R *= R
        J = float(np.add.reduce(R, axis=1).sum() / 4)
        np.subtract(A2, Y, out=D2)
        np.multiply(D2, 2.0, out=D2)
        np.multiply(D2, 0.25, out=D2)
        np.subtract(1.0, A2, out=S2)
        np.multiply(S2, A2, out=S2)
        np.multiply(D2, S2, out=D2)
        np.matmul(A1T, D2, out=gW2.T)
        np.add.reduce(D2, axis=0, out=gb2)
        np.matmul(D2, W2, out=D1)
        np.multiply(A1T.T, A1T.T, out=S1)
        np.subtract(1.0, S1, out=S1)
        np.multiply(D1, S1, out=D1)
        np.matmul(X.T, D1, out=gW1.T)
        np.add.reduce(D1, axis=0, out=gb1)
        return J, g.copy()

    return floor


def xor_per_call(args) -> dict[str, float]:
    """One XOR loss + gradient: nncore's objective, its numpy floor and JAX jit, interleaved."""
    case = h.make_cases()[0]
    net, theta = case.net(), case.net().init(0)
    floor = xor_numpy_floor(theta)
    J, g = floor()
    assert np.isclose(J, net.loss(theta, case.X, case.y))
    assert np.allclose(g, net.grad(theta, case.X, case.y), rtol=1e-12, atol=1e-15)
    competitors = {
        "nncore objective": h.alternating(net.objective(case.X, case.y), (theta, net.init(1))),
        "numpy floor": floor,
    }
    if h.HAVE_JAX:
        competitors["JAX jit"] = h.jax_value_and_grad(net, theta, case.X, case.y)[0]
    return interleaved(competitors, args.repeats, args.sample_s)


def scipy_share(args) -> dict:
    """The seed's XOR network trained by scipy from 20 starts per method: total wall time
    against the time spent inside nncore's fused loss + gradient (timed around each call)."""
    from scipy.optimize import minimize

    case = h.make_cases()[0]
    net, X, y = case.net(), case.X, case.y
    rows = {}
    for method in ("CG", "BFGS", "L-BFGS-B"):
        inside, total, calls = 0.0, 0.0, 0
        for seed in range(20):
            obj = net.objective(X, y)

            def timed(theta):
                nonlocal inside, calls
                t0 = time.perf_counter()
                out = obj.fun_and_jac(theta)
                inside += time.perf_counter() - t0
                calls += 1
                return out

            t0 = time.perf_counter()
            minimize(timed, net.init(seed), jac=True, method=method)
            total += time.perf_counter() - t0
        rows[method] = {
            "calls": calls,
            "per_call_s": total / calls,
            "nncore_per_call_s": inside / calls,
            "nncore_share": inside / total,
        }
    return rows


def markdown(report: dict) -> str:
    lines = ["# nncore benchmarks (`benchmarks/run_all.py`)", ""]
    lines += report["loss_grad_table"] + [""]
    lines += [f"DGEMM rate measured in this run: {report['dgemm_gflops']:.1f} GFlop/s", ""]
    head = ["case", "matmul flops", "DGEMM floor", "nncore objective", "nncore / floor"]
    head += ["products alone", "nncore / products", "sklearn / products"]
    rows = [
        [r["case"], f"{r['flops']:.3g}", fmt_time(r["floor_s"]), fmt_time(r["nncore_s"])]
        + [f"{r['ratio']:.2f}x", fmt_time(r["products_s"])]
        + [fmt_ratio(r["nncore_s"], r["products_s"]), fmt_ratio(r["sklearn_s"], r["products_s"])]
        for r in report["floor"]
    ]
    lines += md_table(head, rows)
    lines += [
        "",
        "products alone: the pass's matrix products and nothing else, at their own shapes and "
        "in nncore's layouts, timed in the same interleaving as the loss + gradient table; no "
        "implementation that calls this BLAS for its products takes less.",
        "",
    ]
    curvature = report["curvature"]
    rows = [[r["case"], *(f"{r[k]:.2f}x" for k in CURVATURE_COLUMNS)] for r in curvature]
    lines += md_table(["case", *CURVATURE_COLUMNS], rows)
    lines += ["", "Time per loss + gradient against N (64-64-10 relu/softmax, synthetic):", ""]
    scaling, names = report["scaling"], list(report["scaling"])
    rows = [[n, *(fmt_time(scaling[k][n]) for k in names)] for n in scaling[names[0]]]
    lines += md_table(["N", *names], rows)
    mem = report["memory"]
    lines += [
        "",
        f"Chunked N = {report['args']['big_n']:,} (chunk_size {report['args']['chunk']}): "
        f"{mem['working_mib_above_data']:.0f} MiB above the data; time per row "
        f"{mem['time_per_row_ratio']:.2f}x the N = 10,000 case.",
        "",
    ]
    tr = report["training"]
    head = ["seed", "target (sklearn's final loss)", "sklearn lbfgs", "nncore L-BFGS-B", "reached"]
    rows = [
        [str(r["seed"]), f"{r['target']:.4g}", f"{r['sklearn_s']:.2f} s ({r['sklearn_iter']} it)"]
        + [f"{r['nncore_s']:.2f} s ({r['nncore_iter']} it)", "yes" if r["reached"] else "no"]
        for r in tr["rows"]
    ]
    lines += md_table(head, rows)
    lines += [
        f"\nmedian nncore / sklearn wall time: {tr['median_ratio']:.2f} (sklearn out of the "
        f"box), {tr['median_ratio_limited']:.2f} (sklearn with scipy's BLAS on one thread too)",
        "",
        "XOR 2-2-1 trained by scipy (20 starts per method): where the time goes",
        "",
    ]
    head = ["method", "calls", "wall time per call", "inside nncore per call", "nncore share"]
    rows = [
        [method, str(r["calls"]), fmt_time(r["per_call_s"]), fmt_time(r["nncore_per_call_s"])]
        + [f"{r['nncore_share']:.0%}"]
        for method, r in report["scipy_share"].items()
    ]
    lines += md_table(head, rows)
    xor = report["xor_per_call"]
    lines += ["", "One XOR loss + gradient (interleaved medians):", ""]
    lines += md_table(list(xor), [[fmt_time(v) for v in xor.values()]])
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick", action="store_true", help="a smoke run (small N, few repeats), printed only"
    )
    p.add_argument("--no-plot", dest="plot", action="store_false")
    p.add_argument("--memory-child", nargs=2, type=int, help=argparse.SUPPRESS)
    p.add_argument(
        "--only",
        nargs="+",
        choices=["memory", "training", "scipy_share", "xor_per_call"],
        help="run only these parts (printed, not written to results/)",
    )
    args = p.parse_args()
    if args.memory_child:
        n, chunk = args.memory_child
        memory_child(n, chunk or None)
        return 0
    args.repeats, args.sample_s = (3, 0.005) if args.quick else (15, 0.03)
    args.scaling_n = [100, 1000, 10_000] if args.quick else [100, 300, 1000, 3000, 10_000, 30_000]
    args.big_n, args.chunk = (100_000, 10_000) if args.quick else (1_000_000, 20_000)
    # sklearn runs its L-BFGS for train_iter iterations (its default tolerance); its final
    # loss is the target nncore's L-BFGS-B must reach
    args.train_starts, args.train_iter = (1, 20) if args.quick else (5, 50)
    if args.only:
        for part in args.only:
            parts = {
                "memory": memory,
                "training": training,
                "scipy_share": scipy_share,
                "xor_per_call": xor_per_call,
            }
            print(part, json.dumps(parts[part](args), indent=1))
        return 0
    blg_args = blg.parse_args(["--quick"] if args.quick else [])
    report: dict = {"args": {k: v for k, v in vars(args).items()}, "machine": h.machine_lines()}
    print("[run_all] loss_and_grad ...", file=sys.stderr, flush=True)
    results = blg.run_cases(blg_args)
    report["loss_grad_table"] = blg.main_table(results)
    rate = dgemm_rate(0.5 if args.quick else 2.0)
    report["dgemm_gflops"] = rate / 1e9
    report["floor"] = []
    for res in results:
        flops = matmul_flops(res.case.net(), res.case.X.shape[0])
        nn = res.median(blg.OBJ)
        report["floor"].append(
            {
                "case": res.case.name,
                "flops": flops,
                "floor_s": flops / rate,
                "nncore_s": nn,
                "ratio": nn / (flops / rate),
                "products_s": res.median(blg.MM),
                "sklearn_s": res.median(blg.SKL),
            }
        )
    report["loss_grad"] = blg.to_json(results, blg_args)
    print("[run_all] curvature ...", file=sys.stderr, flush=True)
    report["curvature"] = curvature_costs(args)
    print("[run_all] scaling ...", file=sys.stderr, flush=True)
    report["scaling"] = scaling(args)
    print("[run_all] memory ...", file=sys.stderr, flush=True)
    report["memory"] = memory(args)
    print("[run_all] training ...", file=sys.stderr, flush=True)
    report["training"] = training(args)
    print("[run_all] scipy share ...", file=sys.stderr, flush=True)
    report["scipy_share"] = scipy_share(args)
    report["xor_per_call"] = xor_per_call(args)
    text = "\n".join(report["machine"]) + "\n\n" + markdown(report)
    if not args.quick:  # a smoke run never replaces the results the docs quote
        out = ROOT / "benchmarks" / "results"
        out.mkdir(exist_ok=True)
        h.write_json(out / "run_all.json", report, default=str)
        (out / "run_all.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
