"""nncore against scikit-learn's ``MLPClassifier`` / ``MLPRegressor(solver="lbfgs")``.

On ``load_digits``, ``load_breast_cancer`` and ``load_diabetes`` (75/25 split, seed 0), each
competitor minimises scikit-learn's own objective (the same hidden sizes, activation and alpha)
from scikit-learn's own starting weights (captured from its fit), and is timed until it
reaches scikit-learn's final loss:

* scikit-learn, out of the box (``max_iter=200``, ``tol=1e-4``): the target is its ``loss_``;
  and the same inside ``nncore.limit_scipy_blas()``, the setting ``nncore.train`` runs with
  (scipy's OpenBLAS on one thread, so that it does not fight numpy's for the cores);
* ``nncore.train`` with L-BFGS-B, CG, BFGS, Newton-CG and trust-krylov, on the network
  ``nncore.sklearn`` builds (``l2 = alpha / (c n)``, :mod:`nncore.interop`), stopped by a
  callback once ``c * J <= target`` (or after ``CAP`` times scikit-learn's time);
* ``optax.lbfgs`` in one jitted ``lax.while_loop`` (float64), the same objective written in
  jax.numpy, stopped at the same target; its time includes compilation (and is also shown
  without it).

Repeats are interleaved (each repeat runs every competitor once, the order rotated) and the
table shows medians; the final loss and the test accuracy / R² come from the last repeat.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_sklearn.py
    python benchmarks/bench_sklearn.py --quick          # a smoke run: one repeat, two methods
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402  (puts this checkout first on sys.path)

import nncore  # noqa: E402
from nncore.interop import sklearn_l2, sklearn_loss_scale  # noqa: E402

METHODS = ["L-BFGS-B", "CG", "BFGS", "Newton-CG", "trust-krylov"]
CAP = 10.0
"""A method that has not reached the target after CAP x scikit-learn's wall time is stopped."""
SETUPS = {  # data set -> (hidden sizes, activation, alpha)
    "digits": ((64,), "relu", 1e-4),
    "breast_cancer": ((32,), "relu", 1e-4),
    "diabetes": ((16,), "relu", 10.0),  # alpha 1e-4 overfits 331 rows: test R² < 0
}


def dataset(name: str):
    """Standardised train/test split (diabetes: y standardised too)."""
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = getattr(datasets, f"load_{name}")(return_X_y=True)
    classify = name != "diabetes"
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y if classify else None
    )
    scaler = StandardScaler().fit(Xtr)
    Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
    if not classify:
        mu, sd = ytr.mean(), ytr.std()
        ytr, yte = (ytr - mu) / sd, (yte - mu) / sd
    return Xtr, Xte, ytr, yte, classify


def fit_sklearn(name, Xtr, ytr, classify):
    """scikit-learn's fit: (estimator, seconds, its starting weights)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    hidden, activation, alpha = SETUPS[name]
    Est = MLPClassifier if classify else MLPRegressor
    est = Est(
        hidden_layer_sizes=hidden,
        activation=activation,
        alpha=alpha,
        solver="lbfgs",
        random_state=0,
    )
    start = []
    initialize = est._initialize

    def capture(*args, **kwargs):  # records scikit-learn's starting weights (microseconds)
        initialize(*args, **kwargs)
        start.append(([c.copy() for c in est.coefs_], [b.copy() for b in est.intercepts_]))

    est._initialize = capture
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(Xtr, ytr)
        seconds = time.perf_counter() - t0
    del est._initialize
    return est, seconds, start[0]


def nncore_problem(name, est, Xtr, ytr, start):
    """The network nncore.sklearn builds, the encoded targets, theta0 and the scale c."""
    hidden, activation, alpha = SETUPS[name]
    n_out = est.n_outputs_
    loss = {"softmax": "cross_entropy", "logistic": "bce", "identity": "mse"}[est.out_activation_]
    net = nncore.MLP(
        [Xtr.shape[1], *hidden, n_out],
        activation=activation,
        loss=loss,
        l2=sklearn_l2(alpha, loss, n_out, len(Xtr)),
    )
    if loss == "cross_entropy":
        Y = np.searchsorted(est.classes_, ytr)
    else:
        Y = ytr.astype(float)
    theta0 = net.pack([(c.T, b) for c, b in zip(*start)])
    return net, Y, theta0, sklearn_loss_scale(loss, n_out)


def run_nncore(net, Xtr, Y, theta0, scale, method, target, cap_s):
    t0 = time.perf_counter()

    def stop(res):
        if scale * res.fun <= target or time.perf_counter() - t0 > cap_s:
            raise StopIteration

    options = {"maxiter": 100000}
    options.update({"Newton-CG": {"xtol": 1e-14}}.get(method, {"gtol": 0.0}))
    if method == "L-BFGS-B":
        options["ftol"] = 0.0
        options["maxfun"] = 10**7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = nncore.train(
            net, Xtr, Y, method=method, theta0=theta0, callback=stop, options=options
        )
    return (
        time.perf_counter() - t0,
        res.x,
        scale * res.fun,
        int(res.get("nit", len(res.history) - 1)),
        time.perf_counter() - t0 > cap_s,
    )


def optax_runner(net, Xtr, Y, theta0, scale, target, max_iter):
    """A function running optax.lbfgs from theta0 to the target, jitted on first call."""
    import jax
    import jax.numpy as jnp
    import optax
    import optax.tree_utils as otu

    jax.config.update("jax_enable_x64", True)
    X = jnp.asarray(Xtr)
    loss = net.loss_name
    Yj = jnp.asarray(Y)
    if loss == "cross_entropy":
        Yj = jax.nn.one_hot(Yj, net.sizes[-1], dtype=jnp.float64)
    elif Yj.ndim == 1:
        Yj = Yj[:, None]
    acts = {"relu": jax.nn.relu, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}
    act = acts[net.activations[0]]
    params0 = [(jnp.asarray(W), jnp.asarray(b)) for W, b in net.unpack(theta0)]
    l2 = net.l2

    def objective(params):  # scale * nncore's objective = scikit-learn's
        h = X
        for W, b in params[:-1]:
            h = act(h @ W.T + b)
        W, b = params[-1]
        z = h @ W.T + b
        if loss == "cross_entropy":
            data = -jnp.mean(jnp.sum(Yj * jax.nn.log_softmax(z), axis=1))
        elif loss == "bce":
            data = jnp.mean(jax.nn.softplus(z) - Yj * z)
        else:
            data = jnp.mean((z - Yj) ** 2)
        penalty = 0.5 * l2 * sum(jnp.sum(W**2) for W, _ in params)
        return scale * (data + penalty)

    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    @jax.jit
    def run(params):
        def step(carry):
            p, state = carry
            value, grad = value_and_grad(p, state=state)
            updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=objective)
            return optax.apply_updates(p, updates), state

        def going(carry):
            _, state = carry
            count, value = otu.tree_get(state, "count"), otu.tree_get(state, "value")
            return (count == 0) | ((count < max_iter) & (value > target))

        p, state = jax.lax.while_loop(going, step, (params, opt.init(params)))
        return p, otu.tree_get(state, "count"), objective(p)

    def call():
        p, count, value = run(params0)
        value = float(value)  # blocks until done
        theta = np.concatenate([np.concatenate([np.ravel(W), b]) for W, b in p])
        return theta, value, int(count)

    return call, run


def test_score(net, theta, Xte, yte, est, classify):
    out = net.predict(theta, Xte)
    if not classify:
        from sklearn.metrics import r2_score

        return r2_score(yte, out.ravel())
    idx = (out[:, 0] > 0.5).astype(int) if out.shape[1] == 1 else out.argmax(axis=1)
    return float(np.mean(est.classes_[idx] == yte))


def bench(name, repeats, methods, with_optax):
    Xtr, Xte, ytr, yte, classify = dataset(name)
    est, _, start = fit_sklearn(name, Xtr, ytr, classify)  # warm-up: target and start
    target = float(est.loss_)
    net, Y, theta0, scale = nncore_problem(name, est, Xtr, ytr, start)
    times: dict[str, list[float]] = {}
    last: dict[str, dict] = {}

    def sk():
        e, s, _ = fit_sklearn(name, Xtr, ytr, classify)
        sk_score = e.score(Xte, yte)
        return s, {"loss": float(e.loss_), "score": float(sk_score), "iter": int(e.n_iter_)}

    def sk_limited():
        with nncore.limit_scipy_blas():  # the setting nncore.train runs with
            return sk()

    competitors = {"scikit-learn lbfgs": sk, "scikit-learn lbfgs, scipy BLAS 1 thread": sk_limited}
    for method in methods:

        def nn(method=method):
            cap_s = CAP * statistics.median(times.get("scikit-learn lbfgs", [1.0]))
            s, theta, loss, nit, capped = run_nncore(
                net, Xtr, Y, theta0, scale, method, target, cap_s
            )
            score = test_score(net, theta, Xte, yte, est, classify)
            return s, {"loss": loss, "score": score, "iter": nit, "capped": capped}

        competitors[f"nncore {method}"] = nn
    if with_optax:
        try:
            call, run = optax_runner(net, Xtr, Y, theta0, scale, target, max_iter=20000)
        except ImportError:
            call = None
        if call is not None:

            def ox():
                run.clear_cache()  # every repeat compiles again, as a fresh process would
                t0 = time.perf_counter()
                theta, loss, count = call()  # compiles, then runs
                s = time.perf_counter() - t0
                t0 = time.perf_counter()
                call()  # compiled
                warm = time.perf_counter() - t0
                score = test_score(net, theta, Xte, yte, est, classify)
                return s, {"loss": loss, "score": score, "iter": count, "without_compile_s": warm}

            competitors["optax.lbfgs (jit, x64)"] = ox
    names = list(competitors)
    for r in range(repeats):
        for cname in names[r % len(names) :] + names[: r % len(names)]:
            seconds, info = competitors[cname]()
            times.setdefault(cname, []).append(seconds)
            if cname.startswith("optax"):
                times.setdefault("optax warm", []).append(info["without_compile_s"])
            last[cname] = info
    rows = []
    t_sk = statistics.median(times["scikit-learn lbfgs"])
    for cname in names:
        t = statistics.median(times[cname])
        info = last[cname]
        row = {
            "data": name,
            "competitor": cname,
            "seconds": t,
            "ratio": t / t_sk,
            "loss": info["loss"],
            "reached": info["loss"] <= target,
            "capped": info.get("capped", False),
            "score": info["score"],
            "iter": info["iter"],
        }
        if cname.startswith("optax"):
            row["without_compile_s"] = statistics.median(times["optax warm"])
        rows.append(row)
    return {
        "data": name,
        "target": target,
        "n_train": len(Xtr),
        "sizes": list(net.sizes),
        "rows": rows,
    }


def table(results) -> str:
    lines = [
        "| data (n train, sizes) | competitor | time to sklearn's loss | / sklearn | final loss | reached | test acc. / R² | iterations |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for res in results:
        label = f"{res['data']} ({res['n_train']}, {'-'.join(map(str, res['sizes']))})"
        for row in res["rows"]:
            t = harness.fmt_time(row["seconds"])
            reached = (
                "yes" if row["reached"] else "no, time cap" if row["capped"] else "no, stopped"
            )
            if "without_compile_s" in row:
                t += f" ({harness.fmt_time(row['without_compile_s'])} compiled)"
            lines.append(
                f"| {label} | {row['competitor']} | {t} | {row['ratio']:.2f} | {row['loss']:.6g} | "
                f"{reached} | {row['score']:.4f} | {row['iter']} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="one repeat, L-BFGS-B and CG, no optax"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--data", nargs="*", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--no-optax", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    methods = ["L-BFGS-B", "CG"] if args.quick else METHODS
    with_optax = not (args.quick or args.no_optax)
    results = [bench(name, repeats, methods, with_optax) for name in args.data]
    print(harness.run_stamp())
    print(f"- repeats: {repeats} (medians), load average {harness.load_average()}\n")
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
