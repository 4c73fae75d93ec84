"""What every benchmark script shares: timing, the run's stamp and machine, output, and the
problems and competitors, each built once here.  Importing it puts this checkout first on
``sys.path``, so that a script measures the ``nncore`` next to it (the one its stamp names).

Timing.  Competitors are timed side by side: each is calibrated to an inner loop count so
that one sample lasts about ``sample_s``, then every competitor takes one sample in turn, the
order rotated by one each repeat, so that noise from a shared machine hits all of them alike.
Report medians over the repeats and ratios between competitors, never a lone absolute time.

Competitors of one loss + gradient, each a zero-argument callable doing one evaluation:
nncore's objective with its cache never hit (:func:`alternating`), JAX's compiled
``value_and_grad`` (:func:`jax_value_and_grad`), scikit-learn's ``_loss_grad_lbfgs``
(:func:`sklearn_loss_grad`) and the matrix products alone (:func:`products_alone`); and the
curvature products against one loss + gradient (:func:`curvature_calls`).  JAX and
scikit-learn are optional: :data:`HAVE_JAX`, :data:`HAVE_SKLEARN` say whether they are there,
and they are imported on first use.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import importlib.metadata
import importlib.util
import inspect
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # measure this checkout's nncore, not another one installed
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
import scipy  # noqa: E402

import nncore  # noqa: E402
from nncore.seed import XOR_X, XOR_Y  # noqa: E402

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None

HAVE_JAX = importlib.util.find_spec("jax") is not None
HAVE_SKLEARN = importlib.util.find_spec("sklearn") is not None

# -- timing ------------------------------------------------------------------------------------


def calibrate(fn: Callable[[], Any], sample_s: float) -> int:
    """Inner loop count so that one sample of ``fn`` lasts about ``sample_s`` seconds."""
    t0 = time.perf_counter()
    fn()  # warm up
    if time.perf_counter() - t0 >= sample_s:  # one call is already long enough
        return 1
    n, elapsed = 1, 0.0
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= 0.2 * sample_s or n >= 1 << 20:
            break
        n *= 10
    return max(1, round(n * sample_s / elapsed))


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing)."""
    return 0 if resource is None else resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def take_sample(fn: Callable[[], Any], inner: int) -> tuple[float, float]:
    """Seconds and minor page faults per call of ``fn``, averaged over ``inner`` calls.

    The garbage collector is disabled meanwhile, as ``timeit`` does.  Page faults are
    counted because freshly mapped memory for large temporaries is a real cost of an
    allocation-heavy call (glibc hands large freed arrays back to the OS).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        f0 = minor_faults()
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        elapsed = time.perf_counter() - t0
        return elapsed / inner, (minor_faults() - f0) / inner
    finally:
        if enabled:
            gc.enable()


def interleave(
    competitors: dict[str, Callable[[], Any]],
    sample_s: float,
    repeats: int,
    min_repeats: int | None = None,
    budget_s: float = float("inf"),
) -> tuple[dict[str, int], dict[str, list[float]], dict[str, list[float]]]:
    """Calibrate each competitor, then take one sample of each in turn, ``repeats`` times.

    Stops early (after at least ``min_repeats``, default all) once ``budget_s`` seconds have
    gone.  Returns the inner loop counts, and per competitor the seconds per call and the
    minor page faults per call of every sample.
    """
    names = list(competitors)
    inner = {name: calibrate(competitors[name], sample_s) for name in names}
    samples: dict[str, list[float]] = {name: [] for name in names}
    faults: dict[str, list[float]] = {name: [] for name in names}
    min_repeats = repeats if min_repeats is None else min_repeats
    t_start = time.perf_counter()
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:  # rotate the start
            seconds, per_call = take_sample(competitors[name], inner[name])
            samples[name].append(seconds)
            faults[name].append(per_call)
        if r + 1 >= min_repeats and time.perf_counter() - t_start > budget_s:
            break
    return inner, samples, faults


def medians(
    competitors: dict[str, Callable[[], Any]],
    sample_s: float,
    repeats: int,
    min_repeats: int | None = None,
    budget_s: float = float("inf"),
) -> dict[str, float]:
    """Median seconds per call of each competitor, sampled in turn by :func:`interleave`."""
    _, samples, _ = interleave(competitors, sample_s, repeats, min_repeats, budget_s)
    return {name: statistics.median(s) for name, s in samples.items()}


def paired_ratio(samples: dict[str, list[float]], num: str, den: str) -> float:
    """Median over repeats of ``num / den`` within each repeat: the two samples of a repeat
    are taken moments apart, so a slow spell of the machine hits both."""
    return statistics.median(n / d for n, d in zip(samples[num], samples[den]))


@contextlib.contextmanager
def blas_threads(n: int | None) -> Iterator[None]:
    """Limit the BLAS/OpenMP pools to ``n`` threads with threadpoolctl (not JAX's own pool);
    ``None`` or 0 leaves the libraries' own."""
    if not n:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n):
        yield


# -- output ------------------------------------------------------------------------------------


def fmt_time(seconds: float | None) -> str:
    """``12.3 µs``, ``4.56 ms``, ``1.23 s``, ``2.5 min`` or ``1.2 h``; ``n/a`` if missing."""
    if seconds is None:
        return "n/a"
    for unit, scale, limit in (("µs", 1e-6, 1e-3), ("ms", 1e-3, 1.0), ("s", 1.0, 60.0)):
        if seconds < limit:
            return f"{seconds / scale:.3g} {unit}"
    if seconds < 3600.0:
        return f"{seconds / 60.0:.3g} min"
    return f"{seconds / 3600.0:.3g} h"


def fmt_ratio(num: float | None, den: float | None) -> str:
    """``num / den`` as ``0.72x``; ``n/a`` if either is missing."""
    return "n/a" if num is None or den is None else f"{num / den:.2f}x"


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table, one line per row."""
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def write_json(path: str | os.PathLike, data: Any, default: Callable[[Any], Any] = float) -> None:
    """``data`` as indented JSON; what json cannot write goes through ``default``."""
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=default)


def load_average() -> str:
    """The 1/5/15-minute load averages, or ``n/a`` where the OS has none."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "n/a"


def run_stamp() -> str:
    """``- date: <ISO time>; code: commit <sha>`` (``+ uncommitted changes`` when the code
    differs from that commit), a markdown bullet line that ties a benchmark's output to the code
    it ran. Only the code counts (``nncore/``, ``benchmarks/`` without the results folders,
    ``pyproject.toml``): the outputs and the plot the benchmarks write do not make a run dirty."""
    now = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    code = ["nncore", "benchmarks", "pyproject.toml"]
    outputs = [":!benchmarks/results", ":!benchmarks/studies/results"]
    try:  # the pathspecs are relative to the repository root
        git = ["git", "-C", ROOT]
        sha = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--untracked-files=no", "--", *code, *outputs],
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        sha, dirty = "", ""
    code_line = (
        f"commit {sha}" + (" + uncommitted changes" if dirty else "") if sha else "not a git tree"
    )
    return f"- date: {now}; code: {code_line}"


def _version(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return f"{package} missing"


def machine_lines() -> list[str]:
    """The run stamp, CPU model, versions and BLAS pools (threadpoolctl, with their current
    thread counts), as markdown bullet lines."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    cpu = info.get("model name") or platform.processor() or "unknown"
    if "cpu family" in info and "model" in info:
        cpu += f" (family {info['cpu family']}, model {info['model']})"
    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}"]
    versions += [f"scipy {scipy.__version__}", _version("jax"), _version("scikit-learn")]
    versions.append(f"nncore {nncore.__version__}")
    lines = [
        run_stamp(),
        f"- CPU: {cpu}, {os.cpu_count()} logical CPUs",
        f"- {', '.join(versions)}",
    ]
    if HAVE_SKLEARN:  # load its OpenMP runtime, so that its pool is listed too
        import sklearn.neural_network  # noqa: F401
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        lines.append("- BLAS: threadpoolctl missing")
    else:
        for pool in sorted(threadpool_info(), key=lambda p: str(p.get("filepath"))):
            version = f" {pool['version']}" if pool.get("version") else ""
            arch = f", arch {pool['architecture']}" if pool.get("architecture") else ""
            lines.append(
                f"- {pool.get('user_api')}: {pool.get('internal_api')}{version} "
                f"({os.path.basename(pool.get('filepath', '?'))}), "
                f"{pool.get('num_threads')} threads{arch}"
            )
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS"):
        if var in os.environ:
            lines.append(f"- {var}={os.environ[var]}")
    return lines


# -- data and cases ----------------------------------------------------------------------------


def digits_data() -> tuple[np.ndarray, np.ndarray, str]:
    """scikit-learn's ``load_digits()`` with X/16 and integer labels, N=1797, and where the
    data come from; synthetic data of that shape when scikit-learn is missing."""
    if HAVE_SKLEARN:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X / 16.0, y.astype(np.int64), "sklearn load_digits(), X/16"
    rng = np.random.default_rng(1)  # pragma: no cover - depends on the environment
    X, y = rng.uniform(size=(1797, 64)), rng.integers(0, 10, size=1797)
    return X, y, "synthetic (sklearn missing)"


def synthetic_data(n: int, n_in: int, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """X standard normal ``(n, n_in)``, integer labels ``0..n_classes-1``, Generator seed 0."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, n_in)), rng.integers(0, n_classes, size=n)


@dataclass
class Case:
    """One loss + gradient problem: a network description and its data."""

    name: str
    sizes: tuple[int, ...]
    activation: str
    output: str
    loss: str
    X: np.ndarray
    y: np.ndarray
    data: str  # where the data come from, for the report
    fd_direct: bool  # time finite differences directly (else estimate them)

    def net(self) -> nncore.MLP:
        return nncore.MLP(
            self.sizes, activation=self.activation, output=self.output, loss=self.loss
        )


def make_cases() -> list[Case]:
    """The three loss + gradient problems, with deterministic data: XOR 2-2-1, digits
    64-64-10 and 784-256-128-10 on N=10000 synthetic rows."""
    X_dig, y_dig, dig_source = digits_data()
    X_big, y_big = synthetic_data(10000, 784)
    X_xor, y_xor = XOR_X.astype(float), XOR_Y.astype(float)
    xent = ("relu", "softmax", "cross_entropy")
    return [
        Case("XOR 2-2-1", (2, 2, 1), "tanh", "sigmoid", "mse", X_xor, y_xor, "XOR", True),
        Case("64-64-10", (64, 64, 10), *xent, X_dig, y_dig, dig_source, False),
        Case(
            "784-256-128-10",
            (784, 256, 128, 10),
            *xent,
            X_big,
            y_big,
            "synthetic N(0,1), seed 0",
            False,
        ),
    ]


# -- competitors: each a zero-argument callable doing one evaluation ---------------------------


def alternating(objective: Any, thetas: tuple[np.ndarray, np.ndarray]) -> Callable[[], Any]:
    """``objective.fun_and_jac`` alternating between two thetas, so its cache never hits and
    every call is a full forward + backward pass."""
    cycle = itertools.cycle(thetas)
    return lambda: objective.fun_and_jac(next(cycle))


def products_alone(net: nncore.MLP, theta: np.ndarray, X: np.ndarray) -> Callable[[], Any]:
    """The matrix products of one loss + gradient and nothing else: ``Z_l^T = W_l A_{l-1}^T``,
    ``dJ/dW_l^T = A_{l-1}^T D_l`` and ``D_l W_l`` (``l > 1``), into the buffers of an nncore
    :class:`~nncore.workspace.Workspace`, as the kernels write them.  What any implementation
    that calls this BLAS for its products spends at least; the entries (random normal) do not
    change the time."""
    from nncore.workspace import Workspace

    rng = np.random.default_rng(0)
    ws = Workspace(net.arch, X.shape[0])
    for buf in (*ws.A[:-1], *ws.D):
        buf[...] = rng.standard_normal(buf.shape)
    Ws = [W for W, _ in net.unpack(theta)]
    A = [np.ascontiguousarray(X, dtype=np.float64), *ws.A[:-1]]  # hidden: never identity here
    gW = [block[0] for block in ws.g_blocks]

    def run() -> None:
        for k, W in enumerate(Ws):
            np.matmul(W, A[k].T, out=ws.ZT[k])
        for k in range(len(Ws) - 1, -1, -1):
            np.matmul(A[k].T, ws.D[k], out=gW[k].T)
            if k > 0:
                np.matmul(ws.D[k], Ws[k], out=ws.D[k - 1])

    return run


def jax_value_and_grad(
    net: nncore.MLP, theta: np.ndarray, X: np.ndarray, y: np.ndarray
) -> tuple[Callable[[], Any], Callable[[], tuple[float, np.ndarray]]]:
    """``jax.jit(jax.value_and_grad(nncore.jax_reference.loss_fn(net)))``, compiled here.

    Returns ``(on_device, numpy_round_trip)``: the first calls the compiled function on jax
    arrays converted once and blocks until it is done; the second converts a numpy theta on
    every call and returns a ``float`` and a numpy gradient, as a scipy objective would have to.
    """
    import jax
    import jax.numpy as jnp

    from nncore.jax_reference import canonical_targets, loss_fn  # enables float64 in JAX

    f = jax.jit(jax.value_and_grad(loss_fn(net)))
    theta_j, X_j = jnp.asarray(theta), jnp.asarray(X)
    Y_j, w_j = jnp.asarray(canonical_targets(net, y)), jnp.asarray(np.ones(X.shape[0]))
    jax.block_until_ready(f(theta_j, X_j, Y_j, w_j))  # compile

    def on_device() -> Any:
        return jax.block_until_ready(f(theta_j, X_j, Y_j, w_j))

    def numpy_round_trip() -> tuple[float, np.ndarray]:
        J, g = f(jnp.asarray(theta), X_j, Y_j, w_j)
        return float(J), np.asarray(g)

    return on_device, numpy_round_trip


def sklearn_mlp(net: nncore.MLP, **params: Any) -> Any:
    """scikit-learn's ``MLPClassifier`` (for cross-entropy) or ``MLPRegressor`` (identity
    output, ``0.5 * mean`` squared error) with ``net``'s hidden layers and activation,
    ``solver="lbfgs"``, ``alpha=0``; ``params`` are passed on."""
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    cls = MLPClassifier if net.loss_name == "cross_entropy" else MLPRegressor
    hidden = tuple(net.sizes[1:-1])
    return cls(
        hidden_layer_sizes=hidden,
        activation=net.activations[0],
        solver="lbfgs",
        alpha=0.0,
        **params,
    )


def sklearn_fit(
    net: nncore.MLP, X: np.ndarray, y: np.ndarray, theta0: np.ndarray | None = None, **params: Any
) -> tuple[Any, float, np.ndarray]:
    """Fit :func:`sklearn_mlp` ``(net, **params)`` (its ``ConvergenceWarning`` silenced) from
    its own initialisation or, given ``theta0``, from nncore's: a one-iteration fit sets the
    estimator up (public API only), then its ``coefs_``/``intercepts_`` are overwritten and it
    is refitted with ``warm_start=True``.  Returns the estimator, the seconds of the last fit
    alone, and its weights as nncore's theta (``W_l = coefs_[l].T``)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    est = sklearn_mlp(net, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if theta0 is not None:
            est.set_params(max_iter=1).fit(X, y)
            pairs = net.unpack(theta0)
            est.coefs_ = [W.T.copy() for W, _ in pairs]
            est.intercepts_ = [b.copy() for _, b in pairs]
            est.set_params(max_iter=params.get("max_iter", 200), warm_start=True)
        t0 = time.perf_counter()
        est.fit(X, y)
        seconds = time.perf_counter() - t0
    theta = net.pack([(W.T, b) for W, b in zip(est.coefs_, est.intercepts_)])
    return est, seconds, theta


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
    net: nncore.MLP, theta: np.ndarray, X: np.ndarray, y: np.ndarray
) -> Callable[[], tuple[float, np.ndarray]]:
    """sklearn's ``_loss_grad_lbfgs`` at nncore's theta, prepared the way ``_fit`` does: the
    private function sklearn's own L-BFGS fit passes to ``scipy.optimize.minimize``.

    The cross-entropy networks use ``MLPClassifier`` (softmax output, log-loss); mse uses
    ``MLPRegressor``, whose output is the identity and whose loss is ``0.5 * mean`` squared
    error -- for XOR's sigmoid/mse network the nearest sklearn has.
    """
    from sklearn.utils import check_random_state

    est = sklearn_mlp(net, random_state=0)
    # _fit: validate (the classifier label-binarizes y to a bool (N, n_classes) matrix),
    # make y 2-D, then _initialize sets n_layers_, out_activation_ and coefs_/intercepts_.
    X, y = est._validate_input(X, y, incremental=False, reset=True)
    if y.ndim == 1:
        y = y.reshape((-1, 1))
    layer_units = [X.shape[1], *net.sizes[1:-1], y.shape[1]]
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


FJ, HP, GN = "fun_and_jac (uncached)", "hessp (cached fwd)", "gnvp (cached fwd)"
LG, HP_PUB, GN_PUB = "net.loss_and_grad", "net.hessp", "net.gnvp"
CURVATURE_KEYS = (FJ, HP, GN, LG, HP_PUB, GN_PUB)
"""What :func:`curvature_calls` returns, in its order."""


def curvature_calls(
    net: nncore.MLP, X: np.ndarray, y: np.ndarray, seed: int
) -> dict[str, Callable[[], Any]]:
    """One Hessian- and one Gauss-Newton-vector product (direction: standard normal from
    ``seed``) at ``net.init(0)``, and one loss + gradient, two ways each:

    * through an ``Objective``: its forward pass at theta cached (:data:`HP`, :data:`GN`; what
      Newton-CG and the trust-region methods pay per product), against ``fun_and_jac``
      alternating between two thetas (:data:`FJ`, a forward and a backward pass every call);
    * through the public calls, which validate the data and run their own forward pass every
      time: :data:`HP_PUB`, :data:`GN_PUB` against :data:`LG`.
    """
    theta = net.init(0)
    v = np.random.default_rng(seed).standard_normal(net.n_params)
    cached = net.objective(X, y)
    cached.fun_and_jac(theta)  # the point scipy asks for products at
    fwd_before = cached.nfev
    cached.hessp(theta, v)
    assert cached.nfev == fwd_before, "the cached objective ran a new forward pass"
    return {
        FJ: alternating(net.objective(X, y), (theta, net.init(1))),
        HP: lambda: cached.hessp(theta, v),
        GN: lambda: cached.gnvp(theta, v),
        LG: lambda: net.loss_and_grad(theta, X, y),
        HP_PUB: lambda: net.hessp(theta, v, X, y),
        GN_PUB: lambda: net.gnvp(theta, v, X, y),
    }


@dataclass
class CurvatureCost:
    """Interleaved samples of the :func:`curvature_calls` of one network: per competitor the
    seconds and the minor page faults per call of every repeat."""

    name: str
    n_params: int
    samples: dict[str, list[float]]
    faults: dict[str, list[float]]

    def median(self, key: str) -> float:
        return statistics.median(self.samples[key])


def curvature_cost(
    name: str,
    net: nncore.MLP,
    X: np.ndarray,
    y: np.ndarray,
    seed: int,
    keys: Any = CURVATURE_KEYS,
    **timing: Any,
) -> CurvatureCost:
    """Sample the :func:`curvature_calls` named in ``keys`` in turn (:func:`interleave`, whose
    arguments ``timing`` holds)."""
    calls = curvature_calls(net, X, y, seed)
    _, samples, faults = interleave({k: calls[k] for k in keys}, **timing)
    return CurvatureCost(name, net.n_params, samples, faults)


CURVATURE_NOTES = (
    "fun_and_jac (uncached): an `Objective` alternating between two thetas, so every "
    "call is a forward and a backward pass; hessp/gnvp (cached fwd): the same "
    "`Objective` kind with its forward pass at theta cached, as within one Newton-CG "
    "or trust-region iteration.  net.*: the public calls, which validate the data and "
    "run their own forward pass every time.  Times: median seconds per call over the "
    "repeats; ratios: median over the repeats of the ratio within each repeat.  "
    "Aim: one product <= 2.5x one loss and gradient.  Page faults: median minor page "
    "faults per call; where they are in the thousands the call maps fresh memory for "
    "its arrays each time (glibc returning freed memory to the OS), which can double "
    "its time and depends on what the process allocated before."
)


def curvature_table(costs: list[CurvatureCost]) -> list[str]:
    """Every :func:`curvature_calls` competitor's median time, the products' paired ratios to
    ``fun_and_jac`` and to ``net.loss_and_grad``, and the page faults (notes:
    :data:`CURVATURE_NOTES`)."""
    head = ["network", "n_params", FJ, HP, GN, "hessp / fj", "gnvp / fj"]
    head += [LG, HP_PUB, GN_PUB, "hessp / l&g", "gnvp / l&g"]
    head += ["page faults/call (fj, hessp, gnvp; l&g, net.hessp, net.gnvp)", "repeats"]
    rows = []
    for c in costs:
        faults = {k: f"{statistics.median(f):.0f}" for k, f in c.faults.items()}
        objective_faults = ", ".join(faults[k] for k in (FJ, HP, GN))
        public_faults = ", ".join(faults[k] for k in (LG, HP_PUB, GN_PUB))
        rows.append(
            [c.name, str(c.n_params)]
            + [fmt_time(c.median(k)) for k in (FJ, HP, GN)]
            + [f"{paired_ratio(c.samples, k, FJ):.2f}x" for k in (HP, GN)]
            + [fmt_time(c.median(k)) for k in (LG, HP_PUB, GN_PUB)]
            + [f"{paired_ratio(c.samples, k, LG):.2f}x" for k in (HP_PUB, GN_PUB)]
            + [f"{objective_faults}; {public_faults}", str(len(c.samples[FJ]))]
        )
    return md_table(head, rows)
