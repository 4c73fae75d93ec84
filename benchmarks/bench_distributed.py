"""DaskObjective against the in-memory Objective: per-evaluation overhead, and out of core.

1. **Overhead**: ``fun_and_jac`` at a new theta each call (no cache hit) on 784-256-128-10
   and 64-64-10, cross-entropy, 8 row chunks, on a LocalCluster of 1 and 2 process workers
   (one thread each) against the in-memory ``Objective`` on the same rows (1 and 2 BLAS
   threads).  Two sizes: ``tiny`` (8 rows per chunk: the time is overhead) and ``N`` rows,
   from which the compute per row comes; the table projects the ratio at N = 1e6 as
   ``(c N + o) / (c N)`` with ``c`` the in-memory time per row and ``o`` the overhead.
   Dask's own floor for that pattern is measured beside it: the same evaluation (theta
   scattered, the same graph of chunk tasks and tree, one gather) with chunk tasks that
   skip the pass over their rows and return a zero gradient of the same size.  A second
   table takes 64-64-10 with 1, 2, 4 and 8 chunks of 8 rows: the overhead and that floor
   grow with the number of tasks.
2. **Out of core**: a ``N x 64`` float64 data set written to an uncompressed zarr store
   (``--disk-rows``; 1e7 rows is the 5 GB of the issue), read by
   ``DaskObjective(persist=False)`` (64-64-10) from the zarr arrays themselves: one
   L-BFGS-B iteration, then a warm-up evaluation and the median of several at new thetas,
   timed as the in-memory side is; peak resident memory of the client process and of each
   worker at two sizes ``N`` and ``N/4`` (the same peaks: memory independent of N), after
   the iteration and after the timed evaluations; rows per second against the in-memory
   chunked ``Objective`` on the rows it holds, and of the same store read through
   ``da.from_zarr`` (the three interleaved); and, on a worker, the time of each step of a
   chunk's task: reading it (three ways), validating it and ``fun_and_jac``.

Medians over repeats, competitors interleaved; OpenBLAS's idle threads do not spin (see
:data:`OPENBLAS_THREAD_TIMEOUT`).  Run from the repository root::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_distributed.py
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this repository's nncore
import nncore  # noqa: E402
from nncore.distributed import DaskObjective  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import run_stamp  # noqa: E402

CHUNKS = 8
OPENBLAS_THREAD_TIMEOUT = 4
"""OpenBLAS's idle threads spin for 2**n cycles after each multithreaded call before they
sleep (n = 28 by default, about 0.1 s): timed right after the in-memory objective with 2 BLAS
threads, the Dask workers on the same 2 cores lost one of them (``--only overhead --rows
100000 --repeats 5``, 784-256-128-10 on 2 workers: 1.99 s per evaluation, 1.39 s with
n = 4).  The script starts itself again with n = 4 unless OPENBLAS_THREAD_TIMEOUT is set."""


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited from the
    process that started it)."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


def interleaved(fns: dict, repeats: int) -> dict:
    """Median seconds of each callable, one call of each in turn per repeat (the order
    rotated), so that a shared machine's noise hits all of them alike."""
    for fn in fns.values():
        fn()  # warm up
    names, samples = list(fns), {k: [] for k in fns}
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            fns[name]()
            samples[name].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}


def median_time(fn, repeats: int) -> float:
    fn()  # warm up (workspaces, caches, connections)
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


def evaluator(obj, net, seed: int = 0):
    """A callable that evaluates ``fun_and_jac`` at a new theta every call."""
    thetas = [net.init(seed + k) for k in range(2)]
    state = {"k": 0}

    def run():
        state["k"] ^= 1
        obj.fun_and_jac(thetas[state["k"]] + 1e-9 * time.perf_counter())

    return run


def _noop(x):
    return x


def partial_sums_of_nothing(data, index, start, stop, theta, v, what, arch, token, norm):
    """A chunk's task (the arguments of ``nncore.distributed._evaluate``) without the pass
    over its rows: a loss of zero and a new zero gradient, the size of the real result."""
    return 0.0, np.zeros(arch.value.n_params)


def floor_evaluator(obj, net, seed: int = 0):
    """A callable that runs ``obj``'s evaluation of ``fun_and_jac`` at a new theta every
    call (scatter, graph, tree, gather) with chunk tasks that do nothing: Dask's cost."""
    thetas = [net.init(seed + k) for k in range(2)]
    state = {"k": 0}
    # by reference, as nncore's own task travels: a function of __main__ is pickled by value
    # into every task (the workers import this file from the script's folder on sys.path)
    task = importlib.import_module(Path(__file__).stem).partial_sums_of_nothing

    def run():
        state["k"] ^= 1
        obj._at(thetas[state["k"]] + 1e-9 * time.perf_counter())  # theta is sent again
        obj._run("fun_and_jac", task=task)

    return run


def overhead(clients, sizes, n_rows, repeats):
    print("\n## Dask's own floor: submit(no-op).result(), ms (the unit of the overheads below)")
    for w, client in clients.items():
        floor = median_time(lambda: client.submit(_noop, 1, pure=False).result(), repeats)
        print(f"- {w} worker(s): {1e3 * floor:.2f}")
    print(
        f"\n## per-evaluation time of fun_and_jac, ms (median of {repeats}, interleaved; "
        f"{CHUNKS} chunks); dask w: DaskObjective on w workers (straight to the workers' "
        "actors when the partial sums are small, see DIRECT_BYTES); graph w: the same with "
        "direct=False (every evaluation a graph through the scheduler); floor w: the graph "
        "with chunk tasks that do nothing (tiny rows only)"
    )
    print(
        "| network | rows | memory, 1 BLAS thread | memory, 2 | memory, 8 chunks, 1 thread "
        "| dask 1 worker | dask 2 workers | graph 1 | graph 2 | floor 1 | floor 2 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    found = {}
    for sz in sizes:
        net = nncore.MLP(sz, activation="relu", output="softmax", loss="cross_entropy")
        rng = np.random.default_rng(0)
        for N in (8 * CHUNKS, n_rows):
            X, y = rng.normal(size=(N, sz[0])), rng.integers(0, sz[-1], N)
            mem = net.objective(X, y)
            chunked = net.objective(X, y, chunk_size=N // CHUNKS)

            def limited(fn, threads):
                def run():
                    with threadpool_limits(threads, user_api="blas"):
                        fn()

                return run

            fns = {
                "mem1": limited(evaluator(mem, net), 1),
                "mem2": limited(evaluator(mem, net), 2),
                "memc": limited(evaluator(chunked, net), 1),
            }
            objs = []
            for w, client in clients.items():
                for direct, key in ((True, "dask"), (False, "graph")):
                    obj = DaskObjective(
                        net, X, y, client=client, chunk_size=N // CHUNKS, direct=direct
                    )
                    objs.append(obj)
                    fns[f"{key}{w}"] = evaluator(obj, net)
                if N == 8 * CHUNKS:
                    fns[f"floor{w}"] = floor_evaluator(objs[-1].fresh(), net)
            row = interleaved(fns, repeats)
            for obj in objs:
                obj.close()
            found[(tuple(sz), N)] = row
            name = "-".join(map(str, sz))
            print(
                f"| {name} | {N} | "
                + " | ".join(
                    f"{1e3 * row[k]:.2f}" if k in row else "-"
                    for k in (
                        "mem1",
                        "mem2",
                        "memc",
                        "dask1",
                        "dask2",
                        "graph1",
                        "graph2",
                        "floor1",
                        "floor2",
                    )
                )
                + " |"
            )
    print(
        "\n## o = dask(tiny) - memory with the same 8 chunks(tiny), and the same for the graph"
        " path; graph floor: Dask's own for the graph (above);"
        " c = time per row at N on the same cores (w workers against w BLAS threads);"
        " ratio = dask / memory"
    )
    print(
        "| network | workers | o (ms) | o, graph (ms) | graph floor (ms) | c memory (us/row) "
        "| c dask (us/row) | ratio at N measured "
        "| ratio at N=1e6: (c_dask 1e6 + o) / (c_memory 1e6) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for sz in sizes:
        tiny, big = found[(tuple(sz), 8 * CHUNKS)], found[(tuple(sz), n_rows)]
        for w in clients:
            o = tiny[f"dask{w}"] - tiny["memc"]
            og = tiny[f"graph{w}"] - tiny["memc"]
            floor = tiny[f"floor{w}"]
            c = big[f"mem{w}"] / n_rows
            cd = (big[f"dask{w}"] - tiny[f"dask{w}"]) / (n_rows - 8 * CHUNKS)
            name = "-".join(map(str, sz))
            measured = big[f"dask{w}"] / big[f"mem{w}"]
            ratio = (cd * 1e6 + o) / (c * 1e6)
            print(
                f"| {name} | {w} | {1e3 * o:.1f} | {1e3 * og:.1f} | {1e3 * floor:.1f} "
                f"| {1e6 * c:.2f} | {1e6 * cd:.2f} | {measured:.2f} | {ratio:.2f} |"
            )


def by_chunks(clients, repeats, counts=(1, 2, 4, 8)):
    """The overhead and Dask's floor against the number of chunks (64-64-10, 8 rows each)."""
    print(
        f"\n## overhead against the number of chunks: 64-64-10, 8 rows per chunk, ms (median of"
        f" {repeats}, interleaved); o = dask - memory with the same chunks"
    )
    print("| workers | chunks | memory, same chunks | dask | o | floor |")
    print("| --- | --- | --- | --- | --- | --- |")
    net = nncore.MLP([64, 64, 10], activation="relu", output="softmax", loss="cross_entropy")
    rng = np.random.default_rng(0)
    for w, client in clients.items():
        for P in counts:
            X, y = rng.normal(size=(8 * P, 64)), rng.integers(0, 10, 8 * P)
            obj = DaskObjective(net, X, y, client=client, chunk_size=8)
            with threadpool_limits(1, user_api="blas"):
                row = interleaved(
                    {
                        "memory": evaluator(net.objective(X, y, chunk_size=8), net),
                        "dask": evaluator(obj, net),
                        "floor": floor_evaluator(obj.fresh(), net),
                    },
                    repeats,
                )
            obj.close()
            print(
                f"| {w} | {P} | {1e3 * row['memory']:.2f} | {1e3 * row['dask']:.1f} "
                f"| {1e3 * (row['dask'] - row['memory']):.1f} | {1e3 * row['floor']:.1f} |"
            )


def write_zarr(path: Path, N: int, n_in: int, rows: int) -> None:
    import zarr

    rng = np.random.default_rng(1)
    # uncompressed: real-valued float64 hardly compresses, and decompressing costs as much as
    # the forward and backward pass of 64-64-10 (0.85 s against 0.3 s per 250000 rows here)
    z = zarr.create_array(
        str(path / "X.zarr"), shape=(N, n_in), chunks=(rows, n_in), dtype="f8", compressors=None
    )
    zy = zarr.create_array(
        str(path / "y.zarr"), shape=(N,), chunks=(rows,), dtype="i8", compressors=None
    )
    for s in range(0, N, rows):
        n = min(rows, N - s)
        z[s : s + n] = rng.normal(size=(n, n_in))
        zy[s : s + n] = rng.integers(0, 10, n)


def read_path(root: str, repeats: int) -> dict:
    """Run on a worker (its allocator settings): per chunk of the zarr store, the seconds of
    the zarr read alone, of the objective's two reads (into a reused buffer from the zarr
    array's files, and through the chunk's ``dask.delayed`` of ``da.from_zarr``), of the
    validation, and of ``fun_and_jac`` on the validated chunk (medians)."""
    import dask.array as da
    import zarr

    from nncore import distributed as nd

    net = nncore.MLP([64, 64, 10], activation="relu", output="softmax", loss="cross_entropy")
    zX, zy = (zarr.open_array(f"{root}/{n}.zarr", mode="r") for n in ("X", "y"))
    X, y = da.from_zarr(f"{root}/X.zarr"), da.from_zarr(f"{root}/y.zarr")
    delayed = nd._Source(list(X.to_delayed().ravel()), list(y.to_delayed().ravel()), None)
    files = nd._Source([], [], None, (nd.ZarrFile(zX), nd.ZarrFile(zy)))
    rows, N = X.chunks[0][0], X.shape[0]
    arch, norm = nd._Box(net.arch), (float(N), 1.0)
    ranges = [(a, min(a + rows, N)) for a in range(0, N, rows)]
    got, buffers = {}, {}

    def zarr_read(i, a, b):
        return zX[a:b], zy[a:b]

    def read_files(i, a, b):
        got["chunk"] = files.chunk(i, a, b, buffers)

    def read_dask(i, a, b):
        delayed.chunk(i, a, b)

    def validate(i, a, b):
        got["rows"] = nd._validated(*got["chunk"], net.arch, a, b, i)

    def evaluate(i, a, b):
        batch = nd._weighted(got["rows"], *norm)
        theta = net.init(0) + 1e-9 * time.perf_counter()  # a new point: a forward pass
        nd._evaluate(batch, 0, a, b, theta, None, "fun_and_jac", arch, "read_path", norm)

    steps = {
        "zarr read alone": zarr_read,
        "read through dask": read_dask,
        "read into a buffer": read_files,
        "validate": validate,
        "fun_and_jac": evaluate,
    }
    samples = {name: [] for name in steps}
    for k in range(repeats + 1):  # the first round warms up (the workspace, the buffers)
        i = k % len(ranges)
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(i, *ranges[i])
            if k:
                samples[name].append(time.perf_counter() - t0)
    nd._forget("read_path")
    return {name: statistics.median(v) for name, v in samples.items()}


def out_of_core(N: int, rows: int, n_mem: int, repeats: int) -> None:
    import dask.array as da
    import distributed
    import zarr

    net = nncore.MLP([64, 64, 10], activation="relu", output="softmax", loss="cross_entropy")
    print(f"## out of core: zarr store of N x 64 float64, chunks of {rows} rows, 64-64-10")
    print(
        "DaskObjective(persist=False) on the zarr arrays themselves (read into reused buffers);"
        " s per evaluation: one L-BFGS-B iteration from a cold start (evaluations: its count),"
        f" and the median of {repeats} at new thetas after a warm-up; peaks after the"
        " iteration / after the timed evaluations"
    )
    print(
        "| N | GB on disk | evaluations | s per evaluation, iteration | s per evaluation, "
        "median | rows/s | client peak MiB | worker peaks MiB |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    root = Path(tempfile.mkdtemp(prefix="nncore-zarr-", dir="/tmp"))
    try:
        for n in (N // 4, N):
            write_zarr(root, n, 64, rows)
            gb = sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1e9
            with (
                distributed.LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster,
                distributed.Client(cluster) as client,
            ):
                X, y = (zarr.open_array(str(root / f"{k}.zarr"), mode="r") for k in "Xy")
                obj = DaskObjective(net, X, y, client=client, chunk_size=rows, persist=False)
                assert obj._source.value.readers[0].root is not None  # read from the files
                t0 = time.perf_counter()
                res = minimize(
                    obj.fun_and_jac,
                    net.init(0),
                    jac=True,
                    method="L-BFGS-B",
                    options={"maxiter": 1},
                )
                cold = (time.perf_counter() - t0) / res.nfev
                client_peak, first = peak_mib(), client.run(peak_mib)
                dt = median_time(evaluator(obj, net), repeats)
                workers, client_after = client.run(peak_mib), peak_mib()
                if n == N:  # after the peaks: these hold rows of their own
                    (parts,) = client.run(
                        read_path, str(root), repeats, workers=[sorted(workers)[0]]
                    ).values()
                    Xd, yd = (da.from_zarr(str(root / f"{k}.zarr")) for k in "Xy")
                    through_dask = DaskObjective(net, Xd, yd, client=client, persist=False)
                    rng = np.random.default_rng(1)
                    Xm, ym = rng.normal(size=(n_mem, 64)), rng.integers(0, 10, n_mem)
                    mem = net.objective(Xm, ym, chunk_size=rows, n_jobs=2)
                    pair = interleaved(
                        {
                            "zarr arrays": evaluator(obj, net),
                            "da.from_zarr": evaluator(through_dask, net),
                            "memory": evaluator(mem, net),
                        },
                        repeats,
                    )
                    through_dask.close()
                    del Xm, ym, mem
                obj.close()
            peaks = ", ".join(f"{first[k]:.0f} / {workers[k]:.0f}" for k in sorted(workers))
            print(
                f"| {n} | {gb:.2f} | {res.nfev} | {cold:.2f} | {dt:.2f} | {n / dt:.3g} | "
                f"{client_peak:.0f} / {client_after:.0f} | {peaks} |"
            )
            shutil.rmtree(root / "X.zarr")
            shutil.rmtree(root / "y.zarr")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    step = parts["read into a buffer"] + parts["validate"] + parts["fun_and_jac"]
    print(
        f"\nper chunk of {rows} rows on a worker, ms (median of {repeats}): "
        + ", ".join(f"{k} {1e3 * v:.0f}" for k, v in parts.items())
        + f"; read into a buffer + validate + fun_and_jac = {1e3 * step:.0f} ms, "
        f"{step / parts['fun_and_jac']:.2f}x the compute alone"
    )
    memory = n_mem / pair["memory"]
    print(
        f"\nout of core at N={N} against the in-memory chunked Objective (chunk_size={rows},"
        f" n_jobs=2) on {n_mem} rows, medians of {repeats} interleaved after a warm-up:"
        f" in memory {memory:.3g} rows/s; "
        + "; ".join(
            f"{k} {N / pair[k]:.3g} rows/s, ratio {memory / (N / pair[k]):.2f}x"
            for k in ("zarr arrays", "da.from_zarr")
        )
    )


def main() -> None:
    if "OPENBLAS_THREAD_TIMEOUT" not in os.environ:  # read when OpenBLAS loads: start again
        os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(OPENBLAS_THREAD_TIMEOUT)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument("--only", choices=("overhead", "disk"), help="run one part")
    parser.add_argument(
        "--rows", type=int, help="overhead: the larger size N (default 20000; 2000 with --quick)"
    )
    parser.add_argument("--repeats", type=int, help="overhead: calls per median (default 21)")
    parser.add_argument(
        "--disk-rows", type=int, help="out of core: the larger N (default 2e6; 1e7 is 5 GB)"
    )
    parser.add_argument(
        "--no-malloc-trim",
        action="store_true",
        help="workers without Dask's MALLOC_TRIM_THRESHOLD_=65536 (see docs/distributed.md)",
    )
    args = parser.parse_args()
    import dask
    import distributed

    if args.no_malloc_trim:  # must be set before the nannies start their workers
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None})
    trim = dask.config.get("distributed.nanny.pre-spawn-environ").get("MALLOC_TRIM_THRESHOLD_")

    print(run_stamp())
    print("load average at start:", " ".join(f"{x:.1f}" for x in os.getloadavg()))
    print("OPENBLAS_THREAD_TIMEOUT =", os.environ["OPENBLAS_THREAD_TIMEOUT"])
    print("workers' MALLOC_TRIM_THRESHOLD_ =", os.environ.get("MALLOC_TRIM_THRESHOLD_", trim))
    if args.only != "overhead":  # first: the client's peak memory is then its own
        if args.quick:
            out_of_core(N=40_000, rows=10_000, n_mem=20_000, repeats=3)
        else:
            out_of_core(N=args.disk_rows or 2_000_000, rows=250_000, n_mem=500_000, repeats=5)
    if args.only == "disk":
        return
    repeats = args.repeats or (5 if args.quick else 21)
    n_rows = args.rows or (2_000 if args.quick else 20_000)
    sizes = [[64, 64, 10]] if args.quick else [[784, 256, 128, 10], [64, 64, 10]]
    clusters = {
        w: distributed.LocalCluster(
            n_workers=w, threads_per_worker=1, processes=True, dashboard_address=None
        )
        for w in (1, 2)
    }
    clients = {w: distributed.Client(c) for w, c in clusters.items()}
    try:
        overhead(clients, sizes, n_rows, repeats)
        if args.rows is None:
            by_chunks(clients, repeats, (1, 8) if args.quick else (1, 2, 4, 8))
    finally:
        for w in clients:
            clients[w].close()
            clusters[w].close()


if __name__ == "__main__":
    main()
