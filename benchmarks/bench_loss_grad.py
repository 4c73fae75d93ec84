"""Benchmark one loss + gradient evaluation (float64) of nncore against its competitors.

What is measured
----------------
The wall time of one evaluation of ``(J(theta), dJ/dtheta)`` -- the call a scipy optimiser
such as L-BFGS-B makes once per iteration -- on three networks:

1. XOR 2-2-1, tanh hidden, sigmoid output, mse, N=4;
2. 64-64-10, relu hidden, softmax output, cross_entropy, N=1797 (scikit-learn's
   ``load_digits()`` with X scaled by 1/16; synthetic data of that shape without sklearn);
3. 784-256-128-10, relu/relu/softmax, cross_entropy, N=10000 synthetic (seeded numpy
   Generator: X standard normal, integer labels 0..9).

Competitors (one table column each):

* ``nncore loss_and_grad``: the public ``net.loss_and_grad(theta, X, y)``, which validates
  its inputs on every call;
* ``nncore objective``: ``obj = net.objective(X, y)``, ``obj.fun_and_jac(theta_k)`` with
  ``theta_k`` alternating between two different vectors, so the objective's one-point
  cache never hits and every call is a full forward + backward pass;
* ``finite diff``: forward differences as ``scipy.optimize.approx_fprime`` computes them,
  ``n_params + 1`` loss evaluations.  Timed directly for XOR only; for the larger cases it is
  the estimate ``(n_params + 1) x median(net.loss)``, marked "est.";
* ``JAX jit``: ``jax.jit(jax.value_and_grad(nncore.jax_reference.loss_fn(net)))`` called on
  jax arrays prepared once, blocked with ``jax.block_until_ready``, after a compiling warm-up
  call.  The numpy -> jax transfer of theta is *not* included in that column; the variant a
  scipy user would pay (numpy theta in, ``float`` and numpy gradient out) is measured too
  and shown in the extra table;
* ``sklearn``: ``MLPClassifier``/``MLPRegressor._loss_grad_lbfgs``, the private function that
  sklearn's own L-BFGS fit passes to ``scipy.optimize.minimize``, set up as ``_fit`` does.
* ``products alone`` (extra table): the matrix products of one loss + gradient and nothing
  else, on buffers laid out as nncore's workspace: the time below which no implementation
  that uses this BLAS for its products can go.

How it is timed
---------------
For each case every competitor is warmed up and calibrated: it gets an inner loop count so
that one timing sample (``time.perf_counter`` around the inner loop, divided by the count)
lasts about ``--sample-ms`` milliseconds (one call when a single call is longer).  Then, for
each repeat, every competitor takes one sample in turn -- the order rotated by one each repeat
-- so that noise from the (shared, noisy) machine hits all competitors alike.  The reported
figure is the median over the repeats; the JSON output also has the quartiles.  A dagger
marks an unsteady timing (see :meth:`Result.spread`), the sign of a busy machine.  The garbage
collector is disabled while a sample is taken, as ``timeit`` does, and the minor page faults
per call are counted too (fresh memory for large temporaries is part of the cost).  All
competitors share one process, hence one heap: a library that runs alone may fault more.

Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_loss_grad.py

``--quick`` shrinks the repeats and sample length (a smoke test, under 30 s); ``--json PATH``
writes the raw medians; ``--blas-threads N`` limits the BLAS/OpenMP thread pools (not JAX's).
"""

from __future__ import annotations

import argparse
import inspect
import itertools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy
from scipy.optimize import approx_fprime

import nncore
from nncore.workspace import Workspace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # when imported from elsewhere
from timing import fmt_time, interleave, load_average, run_stamp  # noqa: E402

try:
    import jax
    import jax.numpy as jnp

    from nncore.jax_reference import canonical_targets, loss_fn  # enables float64 in JAX
except ImportError:  # pragma: no cover - depends on the environment
    jax = None

try:
    import sklearn
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.utils import check_random_state
except ImportError:  # pragma: no cover - depends on the environment
    sklearn = None

FD_EPS = float(np.sqrt(np.finfo(np.float64).eps))
"""Forward-difference step, scipy's default for ``approx_fprime``."""

# Column keys of the main table, in order.
LG, OBJ, FD = "nncore loss_and_grad", "nncore objective", "finite diff"
JAX, SKL = "JAX jit", "sklearn"
# Extra timings: one ``net.loss`` call (the finite-difference estimate is built from it) and
# JAX with the numpy round trip a scipy user pays.
LOSS, JAX_NP = "nncore loss", "JAX jit (numpy in/out)"
MM = "products alone"


@dataclass
class Case:
    """One benchmark problem: a network description and its data."""

    name: str
    sizes: tuple[int, ...]
    activation: str
    output: str
    loss: str
    X: np.ndarray
    y: np.ndarray
    data: str  # where the data comes from, for the report
    fd_direct: bool  # time finite differences directly (else estimate them)


@dataclass
class Result:
    """Timings of one case: per competitor the per-call samples, in seconds."""

    case: Case
    n_params: int
    samples: dict[str, list[float]] = field(default_factory=dict)
    faults: dict[str, list[float]] = field(default_factory=dict)  # minor page faults per call
    inner: dict[str, int] = field(default_factory=dict)
    values: dict[str, float] = field(default_factory=dict)  # J at theta, per implementation
    grad_diffs: dict[str, float] = field(default_factory=dict)  # max |g - g_nncore|

    def spread(self, key: str) -> float:
        """How unsteady the samples are: the larger of upper/lower quartile and median/min.

        1.0 for a steady timing; large when some samples were slowed down (a busy machine).
        """
        s = self.samples.get(key) or [1.0]
        if len(s) < 4:
            return 1.0
        q1, q2, q3 = statistics.quantiles(s, n=4)
        return max(q3 / q1, q2 / min(s))

    def median(self, key: str) -> float | None:
        s = self.samples.get(key)
        return statistics.median(s) if s else None

    def median_faults(self, key: str) -> float | None:
        s = self.faults.get(key)
        return statistics.median(s) if s else None


# -- cases -------------------------------------------------------------------------------------


def make_cases() -> list[Case]:
    """The three benchmark problems, with deterministic data."""
    X_xor = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y_xor = np.array([0.0, 1.0, 1.0, 0.0])

    if sklearn is not None:
        from sklearn.datasets import load_digits

        digits = load_digits()
        X_dig, y_dig = digits.data / 16.0, digits.target.astype(np.int64)
        dig_source = "sklearn load_digits(), X/16"
    else:
        rng = np.random.default_rng(1)
        X_dig, y_dig = rng.uniform(size=(1797, 64)), rng.integers(0, 10, size=1797)
        dig_source = "synthetic (sklearn missing)"

    rng = np.random.default_rng(0)
    X_big = rng.standard_normal((10000, 784))
    y_big = rng.integers(0, 10, size=10000)

    return [
        Case("XOR 2-2-1", (2, 2, 1), "tanh", "sigmoid", "mse", X_xor, y_xor, "XOR", True),
        Case(
            "64-64-10",
            (64, 64, 10),
            "relu",
            "softmax",
            "cross_entropy",
            X_dig,
            y_dig,
            dig_source,
            False,
        ),
        Case(
            "784-256-128-10",
            (784, 256, 128, 10),
            "relu",
            "softmax",
            "cross_entropy",
            X_big,
            y_big,
            "synthetic N(0,1), seed 0",
            False,
        ),
    ]


# -- competitors: each returns a zero-argument callable doing one evaluation -------------------


def nncore_loss_and_grad(net: nncore.MLP, theta: np.ndarray, case: Case) -> Callable[[], Any]:
    """The public call: validates theta, X and y (labels -> one-hot) every time."""
    X, y = case.X, case.y
    return lambda: net.loss_and_grad(theta, X, y)


def nncore_objective(
    net: nncore.MLP, thetas: tuple[np.ndarray, np.ndarray], case: Case
) -> Callable[[], Any]:
    """``Objective.fun_and_jac`` alternating between two thetas, so its cache never hits."""
    obj = net.objective(case.X, case.y)
    cycle = itertools.cycle(thetas)
    return lambda: obj.fun_and_jac(next(cycle))


def nncore_loss(net: nncore.MLP, theta: np.ndarray, case: Case) -> Callable[[], Any]:
    """One ``net.loss`` call: the unit of cost of finite differences."""
    X, y = case.X, case.y
    return lambda: net.loss(theta, X, y)


def products_alone(net: nncore.MLP, theta: np.ndarray, case: Case) -> Callable[[], Any]:
    """The matrix products of one loss + gradient and nothing else: ``Z_l^T = W_l A_{l-1}^T``,
    ``dJ/dW_l^T = A_{l-1}^T D_l`` and ``D_l W_l`` (``l > 1``), into the buffers of an nncore
    :class:`~nncore.workspace.Workspace`, as the kernels write them.  What any implementation
    that calls this BLAS for its products spends at least; the entries (random normal) do not
    change the time."""
    rng = np.random.default_rng(0)
    ws = Workspace(net.arch, case.X.shape[0])
    for buf in (*ws.A[:-1], *ws.D):
        buf[...] = rng.standard_normal(buf.shape)
    X = np.ascontiguousarray(case.X, dtype=np.float64)
    Ws = [W for W, _ in net.unpack(theta)]
    A = [X, *ws.A[:-1]]  # the hidden layers are relu or tanh here, never identity
    gW = [block[0] for block in ws.g_blocks]

    def run() -> None:
        for k, W in enumerate(Ws):
            np.matmul(W, A[k].T, out=ws.ZT[k])
        for k in range(len(Ws) - 1, -1, -1):
            np.matmul(A[k].T, ws.D[k], out=gW[k].T)
            if k > 0:
                np.matmul(ws.D[k], Ws[k], out=ws.D[k - 1])

    return run


def finite_diff(net: nncore.MLP, theta: np.ndarray, case: Case) -> Callable[[], Any]:
    """Forward-difference gradient, ``n_params + 1`` loss evaluations."""
    X, y = case.X, case.y
    return lambda: approx_fprime(theta, net.loss, FD_EPS, X, y)


def jax_value_and_grad(
    net: nncore.MLP, theta: np.ndarray, case: Case
) -> tuple[Callable[[], Any], Callable[[], tuple[float, np.ndarray]]]:
    """Jitted ``value_and_grad`` of the JAX reference objective.

    Returns ``(on_device, numpy_round_trip)``: the first calls the compiled function on jax
    arrays converted once; the second converts a numpy theta on every call and returns a
    ``float`` and a numpy gradient, as a scipy objective would have to.
    """
    f = jax.jit(jax.value_and_grad(loss_fn(net)))
    Y = canonical_targets(net, case.y)
    theta_j, X_j = jnp.asarray(theta), jnp.asarray(case.X)
    Y_j, w_j = jnp.asarray(Y), jnp.asarray(np.ones(case.X.shape[0]))
    jax.block_until_ready(f(theta_j, X_j, Y_j, w_j))  # compile

    def on_device() -> Any:
        return jax.block_until_ready(f(theta_j, X_j, Y_j, w_j))

    def numpy_round_trip() -> tuple[float, np.ndarray]:
        J, g = f(jnp.asarray(theta), X_j, Y_j, w_j)
        return float(J), np.asarray(g)

    return on_device, numpy_round_trip


def to_sklearn_packing(net: nncore.MLP, theta: np.ndarray) -> np.ndarray:
    """nncore's theta in sklearn's packing: all ``coefs_`` (fan_in, fan_out), then intercepts."""
    pairs = net.unpack(theta)
    return np.concatenate([W.T.ravel() for W, _ in pairs] + [b for _, b in pairs])


def from_sklearn_packing(net: nncore.MLP, packed: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_sklearn_packing` (for comparing gradients)."""
    coefs, pos = [], 0
    for n_out, n_in in net.layout.shapes:
        coefs.append(packed[pos : pos + n_in * n_out].reshape(n_in, n_out).T)
        pos += n_in * n_out
    intercepts = []
    for n_out, _ in net.layout.shapes:
        intercepts.append(packed[pos : pos + n_out])
        pos += n_out
    return net.pack(list(zip(coefs, intercepts, strict=True)))


def sklearn_loss_grad(
    net: nncore.MLP, theta: np.ndarray, case: Case
) -> Callable[[], tuple[float, np.ndarray]]:
    """sklearn's ``_loss_grad_lbfgs`` at nncore's theta, prepared the way ``_fit`` does.

    The cross-entropy cases use ``MLPClassifier`` (softmax output, log-loss); XOR uses
    ``MLPRegressor``, whose output is the identity and whose loss is ``0.5 * mean`` squared
    error -- the nearest sklearn has to nncore's sigmoid/mse network.
    """
    hidden = case.sizes[1:-1]
    if case.loss == "cross_entropy":
        est = MLPClassifier(
            hidden_layer_sizes=hidden,
            activation=case.activation,
            solver="lbfgs",
            alpha=0.0,
            random_state=0,
        )
    else:
        est = MLPRegressor(
            hidden_layer_sizes=hidden,
            activation=case.activation,
            solver="lbfgs",
            alpha=0.0,
            random_state=0,
        )
    # _fit: validate (the classifier label-binarizes y to a bool (N, n_classes) matrix),
    # make y 2-D, then _initialize sets n_layers_, out_activation_ and coefs_/intercepts_.
    X, y = est._validate_input(case.X, case.y, incremental=False, reset=True)
    if y.ndim == 1:
        y = y.reshape((-1, 1))
    layer_units = [X.shape[1], *hidden, y.shape[1]]
    est._random_state = check_random_state(est.random_state)
    est._initialize(y, layer_units, X.dtype)
    activations = [X] + [None] * (len(layer_units) - 1)
    deltas = [None] * (len(activations) - 1)
    coef_grads = [np.empty((a, b), dtype=X.dtype) for a, b in itertools.pairwise(layer_units)]
    intercept_grads = [np.empty(b, dtype=X.dtype) for b in layer_units[1:]]
    # _fit_lbfgs: the offsets _unpack reads.
    est._coef_indptr, est._intercept_indptr = [], []
    start = 0
    for fan_in, fan_out in itertools.pairwise(layer_units):
        est._coef_indptr.append((start, start + fan_in * fan_out, (fan_in, fan_out)))
        start += fan_in * fan_out
    for fan_out in layer_units[1:]:
        est._intercept_indptr.append((start, start + fan_out))
        start += fan_out
    packed = to_sklearn_packing(net, theta)

    # scikit-learn >= 1.6 passes sample_weight between y and the work lists.
    if "sample_weight" in inspect.signature(est._loss_grad_lbfgs).parameters:
        args: tuple[Any, ...] = (X, y, None, activations, deltas, coef_grads, intercept_grads)
    else:  # pragma: no cover - older scikit-learn
        args = (X, y, activations, deltas, coef_grads, intercept_grads)
    return lambda: est._loss_grad_lbfgs(packed, *args)


# -- one case ----------------------------------------------------------------------------------


def bench_case(case: Case, args: argparse.Namespace) -> Result:
    """Build every competitor for ``case``, check their values agree, and time them."""
    net = nncore.MLP(case.sizes, activation=case.activation, output=case.output, loss=case.loss)
    theta = net.init(0)
    theta_b = net.init(1)
    result = Result(case, net.n_params)

    J_ref, g_ref = net.loss_and_grad(theta, case.X, case.y)
    result.values["nncore"] = J_ref

    competitors: dict[str, Callable[[], Any]] = {
        LG: nncore_loss_and_grad(net, theta, case),
        OBJ: nncore_objective(net, (theta, theta_b), case),
        LOSS: nncore_loss(net, theta, case),
        MM: products_alone(net, theta, case),
    }
    if case.fd_direct:
        competitors[FD] = finite_diff(net, theta, case)
        g_fd = competitors[FD]()
        result.grad_diffs["finite diff"] = float(np.max(np.abs(g_fd - g_ref)))
    if jax is not None:
        competitors[JAX], competitors[JAX_NP] = jax_value_and_grad(net, theta, case)
        J_jax, g_jax = competitors[JAX_NP]()
        result.values["JAX"] = J_jax
        result.grad_diffs["JAX"] = float(np.max(np.abs(g_jax - g_ref)))
    if sklearn is not None:
        competitors[SKL] = sklearn_loss_grad(net, theta, case)
        J_skl, g_skl = competitors[SKL]()
        result.values["sklearn"] = float(J_skl)
        if case.loss == "cross_entropy":  # same model and loss: the gradients must agree
            g_skl = from_sklearn_packing(net, g_skl)
            result.grad_diffs["sklearn"] = float(np.max(np.abs(g_skl - g_ref)))

    result.inner, result.samples, result.faults = interleave(
        competitors, args.sample_ms / 1e3, args.repeats, args.min_repeats, args.budget
    )
    return result


# -- report ------------------------------------------------------------------------------------


UNSTABLE = 1.5
"""A timing whose :meth:`Result.spread` exceeds this is marked with a dagger."""


def fmt_median(res: Result, key: str) -> str:
    """The median time of ``key``, with a dagger when its samples spread widely."""
    text = fmt_time(res.median(key))
    return text + " †" if res.spread(key) > UNSTABLE else text


def fmt_count(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def fmt_ratio(num: float | None, den: float | None) -> str:
    return "n/a" if num is None or den is None else f"{num / den:.2f}x"


def fd_time(result: Result) -> tuple[float | None, bool]:
    """Finite-difference time and whether it is an estimate."""
    if FD in result.samples:
        return result.median(FD), False
    loss = result.median(LOSS)
    return (None if loss is None else (result.n_params + 1) * loss), True


def machine_lines() -> list[str]:
    """Versions, CPU model and BLAS, as markdown bullet lines."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = info.get("model name") or platform.processor() or "unknown"
    if "cpu family" in info and "model" in info:
        cpu += f" (family {info['cpu family']}, model {info['model']})"
    versions = [
        f"python {platform.python_version()}",
        f"numpy {np.__version__}",
        f"scipy {scipy.__version__}",
        f"jax {jax.__version__}" if jax is not None else "jax missing",
        f"scikit-learn {sklearn.__version__}" if sklearn is not None else "scikit-learn missing",
    ]
    lines = [
        run_stamp(),
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs",
        f"- {', '.join(versions)}",
    ]
    try:
        from threadpoolctl import threadpool_info

        for pool in sorted(threadpool_info(), key=lambda p: str(p.get("filepath"))):
            version = f" {pool['version']}" if pool.get("version") else ""
            arch = f", arch {pool['architecture']}" if pool.get("architecture") else ""
            lines.append(
                f"- {pool.get('user_api')}: {pool.get('internal_api')}{version} "
                f"({os.path.basename(pool.get('filepath', '?'))}), "
                f"{pool.get('num_threads')} threads{arch}"
            )
    except ImportError:
        lines.append("- BLAS: threadpoolctl missing")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        if var in os.environ:
            lines.append(f"- {var}={os.environ[var]}")
    return lines


def main_table(results: list[Result]) -> list[str]:
    head = [
        "case",
        "n_params",
        LG,
        OBJ,
        FD,
        JAX,
        SKL,
        "nncore/JAX",
        "nncore/sklearn",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        fd, estimated = fd_time(res)
        lg = res.median(LG)
        row = [
            res.case.name,
            str(res.n_params),
            fmt_median(res, LG),
            fmt_median(res, OBJ),
            f"{fmt_time(fd)} (est.)" if estimated else fmt_median(res, FD),
            fmt_median(res, JAX),
            fmt_median(res, SKL),
            fmt_ratio(lg, res.median(JAX)),
            fmt_ratio(lg, res.median(SKL)),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


NOTES = f"""\
Median wall time of one call over interleaved repeats; ratios are nncore loss_and_grad over
the other column (below 1: nncore faster).  † marks an unsteady timing (upper/lower quartile
or median/fastest sample above {UNSTABLE}): the machine was busy while it was taken.
- nncore objective: `fun_and_jac` alternating between two thetas, so its cache never hits.
- finite diff: `approx_fprime`, n_params + 1 loss evaluations; "(est.)" is
  (n_params + 1) x the median time of one `net.loss` call, not a measurement.
- JAX jit: jax arrays in, `block_until_ready`; the numpy -> jax transfer of theta is not
  included (the extra table has the numpy round trip).
- sklearn: `_loss_grad_lbfgs`; for XOR it is `MLPRegressor`, whose output is the identity
  (not sigmoid) and whose loss is 0.5 x mean squared error: the nearest sklearn has.
- products alone (extra table): the pass's matrix products and nothing else, in nncore's
  buffer layouts, timed in the same interleaving: the least any implementation calling this
  BLAS spends; sklearn / products is the best ratio to sklearn such an implementation could
  reach."""


def extra_table(results: list[Result]) -> list[str]:
    head = [
        "case",
        "data",
        "repeats",
        LOSS,
        JAX_NP,
        MM,
        "objective / products",
        "sklearn / products",
        "page faults/call (nncore l&g, obj, sklearn)",
        "loss values (J)",
        "max abs grad diff vs nncore",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for res in results:
        values = ", ".join(f"{k} {v:.6g}" for k, v in res.values.items())
        diffs = ", ".join(f"{k} {v:.1e}" for k, v in res.grad_diffs.items())
        row = [
            res.case.name,
            res.case.data,
            str(len(res.samples[LG])),
            fmt_time(res.median(LOSS)),
            fmt_time(res.median(JAX_NP)),
            fmt_time(res.median(MM)),
            fmt_ratio(res.median(OBJ), res.median(MM)),
            fmt_ratio(res.median(SKL), res.median(MM)),
            ", ".join(fmt_count(res.median_faults(k)) for k in (LG, OBJ, SKL)),
            values,
            diffs or "-",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def to_json(results: list[Result], args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"unit": "seconds per call", "args": vars(args), "cases": {}}
    for res in results:
        entry: dict[str, Any] = {
            "n_params": res.n_params,
            "loss_values": res.values,
            "grad_max_abs_diff_vs_nncore": res.grad_diffs,
            "timings": {},
        }
        for key, s in res.samples.items():
            q1, _, q3 = statistics.quantiles(s, n=4) if len(s) > 1 else (s[0], s[0], s[0])
            entry["timings"][key] = {
                "median": statistics.median(s),
                "q1": q1,
                "q3": q3,
                "min": min(s),
                "minor_page_faults_per_call": res.median_faults(key),
                "n_samples": len(s),
                "inner": res.inner[key],
            }
        fd, estimated = fd_time(res)
        entry["finite_diff"] = {"median": fd, "estimated": estimated}
        out["cases"][res.case.name] = entry
    return out


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="few short repeats (smoke test, < 30 s)")
    p.add_argument("--json", metavar="PATH", help="also write the raw medians to PATH")
    p.add_argument("--repeats", type=int, help="samples per competitor (default 25; quick 3)")
    p.add_argument("--sample-ms", type=float, help="length of one sample (default 30; quick 5)")
    p.add_argument(
        "--blas-threads",
        type=int,
        metavar="N",
        help="limit BLAS/OpenMP threads with threadpoolctl (default: the libraries' own)",
    )
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 25
    if args.sample_ms is None:
        args.sample_ms = 5.0 if args.quick else 30.0
    # Past min_repeats, a case stops sampling once it has spent `budget` seconds on it.
    args.min_repeats = min(args.repeats, 2 if args.quick else 11)
    args.budget = 2.0 if args.quick else 40.0
    return args


def run_cases(args: argparse.Namespace) -> list[Result]:
    results = []
    for case in make_cases():
        print(f"[bench] {case.name} ...", file=sys.stderr, flush=True)
        results.append(bench_case(case, args))
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t0 = time.perf_counter()
    print("## loss_and_grad: one loss + gradient evaluation, float64\n")
    print("\n".join(machine_lines()))
    if args.blas_threads is not None:
        print(f"- BLAS/OpenMP threads limited to {args.blas_threads} (threadpoolctl)")
    load_before = load_average()
    if args.blas_threads is None:
        results = run_cases(args)
    else:
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=args.blas_threads):
            results = run_cases(args)
    elapsed = time.perf_counter() - t0
    print(f"- load average (1/5/15 min) before: {load_before}, after: {load_average()}")
    print(f"- wall time of this run: {elapsed:.0f} s\n")
    print("\n".join(main_table(results)) + "\n")
    print(NOTES + "\n")
    print("Extra timings and value checks (same runs):\n")
    print("\n".join(extra_table(results)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(to_json(results, args), fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
