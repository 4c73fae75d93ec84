"""nncore.distributed: DaskObjective on a LocalCluster of process workers, started and stopped
here, against the in-memory Objective (the oracle: the per-chunk code is the same, only the
order of the sums differs)."""

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
zarr = pytest.importorskip("zarr")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import nncore  # noqa: E402
from nncore import distributed as nd  # noqa: E402
from nncore.testing import data, networks, parameters  # noqa: E402

RTOL = 1e-12
"""The issue's bound.  DaskObjective adds the same per-chunk partial sums as the in-memory
objective but in another order (chunk sums, then a tree) and divides by a weight total added
chunk by chunk; each is a few float64 roundings (eps = 2.2e-16) of terms bounded by the
result's scale for these small, bounded draws."""
TRAIN_RTOL = 1e-7
"""Training with the same method from the same start: the two objectives differ by round-off
(RTOL), which an optimiser carries along its path; over the few dozen iterations here that
stays many orders below this bound, far above what a wrong gradient would give."""
MINIMUM_RTOL = 1e-10
"""Two runs that stop at the same minimum with gradients below 1e-7 have losses that agree
to about |g|^2 / curvature, far below this; two different minima differ at 1e-3 or more."""
MINIMUM_X_RTOL = 1e-4
"""The minimiser itself is fixed only to about |g| / (smallest curvature): this network has
weakly curved directions (the l2 term, 1e-3, bounds them from below)."""


def process_cluster(n_workers):
    """A client of a LocalCluster of ``n_workers`` process workers, one thread each."""
    cluster = distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def client():
    yield from process_cluster(2)


@pytest.fixture(scope="module")
def one_worker():
    yield from process_cluster(1)


def close(a, b, rtol=RTOL):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(b).max()), np.finfo(float).tiny)
    return float(np.abs(a - b).max()) <= rtol * scale


def small_problem(n=300, seed=0, loss="cross_entropy", weights=True):
    rng = np.random.default_rng(seed)
    net = nncore.MLP([4, 6, 3], activation="tanh", loss=loss, l2=1e-3)
    X = rng.normal(size=(n, 4))
    y = rng.integers(0, 3, n) if loss == "cross_entropy" else rng.normal(size=(n, 3))
    w = rng.uniform(0.5, 2.0, n) if weights else None
    return net, X, y, w


@st.composite
def chunkings(draw, n):
    """Uneven row chunks summing to ``n``."""
    cuts = draw(st.lists(st.integers(1, n - 1), max_size=4, unique=True)) if n > 1 else []
    ends = [0, *sorted(cuts), n]
    return tuple(b - a for a, b in zip(ends[:-1], ends[1:]))


@settings(max_examples=8)
@given(st.data())
def test_equals_the_in_memory_objective(client, d):
    net = d.draw(networks(hidden_layers=(1, 2), widths=(1, 5)))
    theta = d.draw(parameters(net))
    X, y, w = d.draw(data(net, samples=(1, 30)))
    v = d.draw(parameters(net))
    rows = d.draw(chunkings(X.shape[0]))
    Xd = da.from_array(X, chunks=(rows, max(1, X.shape[1] // 2)))  # columns get merged
    yd = da.from_array(y) if d.draw(st.booleans()) else y  # other row chunks get rechunked
    obj = nd.DaskObjective(net, Xd, yd, w, client=client, persist=d.draw(st.booleans()))
    ref = net.objective(X, y, w)
    J, g = obj.fun_and_jac(theta)
    J0, g0 = ref.fun_and_jac(theta)
    assert close(J, J0) and close(g, g0)
    assert close(obj.hessp(theta, v), ref.hessp(theta, v))
    assert close(obj.gnvp(theta, v), ref.gnvp(theta, v))
    assert obj.row_ranges[-1][1] == X.shape[0] and len(obj.row_ranges) == len(rows)


def test_hess_and_counts_and_inputs_unchanged(client):
    net, X, y, w = small_problem()
    X0, y0, w0 = X.copy(), y.copy(), w.copy()
    obj = nd.DaskObjective(net, da.from_array(X, chunks=70), y, w, client=client)
    ref = net.objective(X, y, w)
    theta = net.init(0)
    for kind in ("exact", "gauss_newton"):
        assert close(obj.hess(theta, kind), ref.hess(theta, kind), 1e-11)
    assert obj.nhev == 2 * net.n_params
    assert close(obj.fun(theta), ref.fun(theta)) and obj.nfev == 1
    obj.jac(theta)
    assert (obj.nfev, obj.njev) == (1, 1)  # the loss of this point was already known
    assert np.array_equal(X, X0) and np.array_equal(y, y0) and np.array_equal(w, w0)


def test_weights_whose_sum_overflows_and_bad_arguments(client):
    net, X, y, _ = small_problem(n=100)
    w = np.full(100, 1e308)  # finite, but their sum is not: both divide by the largest first
    w[::3] = 5e307
    obj = nd.DaskObjective(net, da.from_array(X, chunks=30), y, w, client=client)
    ref = net.objective(X, y, w)
    theta = net.init(0)
    J, g = obj.fun_and_jac(theta)
    J0, g0 = ref.fun_and_jac(theta)
    assert close(J, J0) and close(g, g0)
    with pytest.raises(TypeError, match="timeout must be a number"):
        nd.DaskObjective(net, X, y, client=client, timeout="1")
    with pytest.raises(ValueError, match="chunk_size must be positive"):
        nd.DaskObjective(net, X, y, client=client, chunk_size=0)
    with pytest.raises(TypeError, match="a DaskObjective takes X, y"):
        nd.DaskObjective.from_batch(net, net.batch(X, y))


def test_auto_persist_counts_the_gradient_buffer_once_per_chunk(client):
    from nncore.workspace import Workspace

    # 4.0e6 parameters: one gradient buffer is 32 MB, the buffers of a row 0.26 MB
    net = nncore.MLP([10, 2000, 2000, 10], activation="relu", loss="mse")
    rows = [150, 150, 100]
    exact = sum(
        Workspace(net.arch, n).max_nbytes + 8 * n * (10 + 10 + 1)  # rows, targets, weights
        for n in rows
    )
    assert nd._persisted_nbytes(net.arch, rows) == exact
    # 0.19 GB; the gradient buffer counted once per row would make it 13 GB, not persisted
    assert 400 * Workspace(net.arch, 1).max_nbytes > 50 * exact
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(400, 10)), rng.normal(size=(400, 10))
    obj = nd.DaskObjective(net, X, y, client=client, chunk_size=150)
    assert obj.persisted
    obj.close()


def test_the_forward_cache_stays_on_the_workers(client):
    net, X, y, w = small_problem()
    obj = nd.DaskObjective(net, da.from_array(X, chunks=100), y, w, client=client, persist=True)
    theta, v = net.init(0), np.ones(net.n_params)
    obj.fun_and_jac(theta)
    token = obj._token

    def states():
        """{worker: [(chunk, id of its cached theta, that theta)]} for this objective."""
        return client.run(
            lambda: [(i, id(s.key), s.key.copy()) for i, s in nd._STATES.get(token, {}).items()]
        )

    before = states()
    cached = [entry for entries in before.values() for entry in entries]
    assert {i for i, _, _ in cached} == set(range(len(obj.row_ranges)))
    assert all(np.array_equal(key, theta) for _, _, key in cached)
    # products at the same theta reuse them: no forward pass replaces the cached key
    obj.hessp(theta, v)
    obj.gnvp(theta, v)
    assert {a: [e[:2] for e in s] for a, s in states().items()} == {
        a: [e[:2] for e in s] for a, s in before.items()
    }
    obj.fun(theta + 1.0)  # a new point replaces every chunk's cache
    assert all(
        np.array_equal(key, theta + 1.0) for entries in states().values() for _, _, key in entries
    )


def test_bit_for_bit_across_runs_and_worker_counts(client, one_worker):
    net, X, y, w = small_problem(seed=1)
    chunks = (50, 80, 20, 150)
    theta, v = net.init(3), np.linspace(-1, 1, net.n_params)

    def results(c):
        obj = nd.DaskObjective(net, da.from_array(X, chunks=(chunks, 4)), y, w, client=c)
        J, g = obj.fun_and_jac(theta)
        return [np.array([J]), g, obj.hessp(theta, v), obj.gnvp(theta, v)]

    first, second = results(client), results(client)
    single = results(one_worker)
    for a, b, c in zip(first, second, single):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_train_lbfgsb_follows_the_in_memory_path(client):
    net, X, y, w = small_problem(seed=2)
    kw = dict(method="L-BFGS-B", seed=0, sample_weight=w, options={"maxiter": 25})
    res = nncore.train(net, da.from_array(X, chunks=(60, 4)), y, client=client, **kw)
    ref = nncore.train(net, X, y, **kw)
    assert res.nit == ref.nit and res.nfev == ref.nfev
    assert close(res.x, ref.x, TRAIN_RTOL) and close(res.fun, ref.fun, TRAIN_RTOL)


def test_train_newton_cg_reaches_the_in_memory_minimum(client):
    # Newton-CG's inner CG stops on a tolerance, so round-off can change an inner iteration
    # count and the path (1e-5 apart after 25 steps here): run both to the minimum instead
    net, X, y, w = small_problem(n=120, seed=2)
    kw = dict(method="Newton-CG", seed=0, sample_weight=w, options={"maxiter": 200, "xtol": 1e-12})
    res = nncore.train(net, da.from_array(X, chunks=(60, 4)), y, client=client, **kw)
    ref = nncore.train(net, X, y, **kw)
    assert res.success and ref.success and res.nhev > 0
    assert close(res.fun, ref.fun, MINIMUM_RTOL) and close(res.x, ref.x, MINIMUM_X_RTOL)


def test_train_least_squares_gathers_the_rows_and_refuses_when_too_large(client, monkeypatch):
    net, X, y, _ = small_problem(n=60, loss="mse")
    Xd = da.from_array(X, chunks=25)
    res = nncore.train(net, Xd, y, method="trf", seed=0, options={"max_nfev": 20})
    ref = nncore.train(net, X, y, method="trf", seed=0, options={"max_nfev": 20})
    assert close(res.x, ref.x, TRAIN_RTOL)
    monkeypatch.setattr(nd, "MAX_GATHER_BYTES", 1000)
    with pytest.raises(ValueError, match="MAX_GATHER_BYTES.*gauss_newton"):
        nncore.train(net, Xd, y, method="trf", seed=0)
    with pytest.raises(ValueError, match="chunk_size and n_jobs"):
        nncore.train(net, Xd, y, chunk_size=10)


class BytesRead:
    """Counts the bytes the client reads from TCP (from the scheduler and, when it gathers,
    from workers), by wrapping distributed's one reading function; LocalCluster's scheduler
    runs in this process too, and its reads (on the scheduler's port) are left out."""

    def __init__(self, monkeypatch, client):
        import distributed.comm.tcp as tcp

        self.n = 0
        original = tcp.read_bytes_rw
        scheduler_port = int(client.scheduler.address.rsplit(":", 1)[1])

        async def counting(stream, n):
            if stream.socket is not None and stream.socket.getsockname()[1] != scheduler_port:
                self.n += n
            return await original(stream, n)

        monkeypatch.setattr(tcp, "read_bytes_rw", counting)


def test_nothing_of_size_n_reaches_the_client(client, monkeypatch):
    """The bytes the client reads for 8 evaluations do not grow with N (the same 16 chunks
    of N/16 rows, N and 4N), and stay far below one chunk of X."""
    rng = np.random.default_rng(4)
    n_in = 8
    net = nncore.MLP([n_in, 5, 1], activation="tanh", loss="mse")
    theta = net.init(0)
    read = {}
    for N in (200_000, 800_000):
        X = da.from_array(rng.normal(size=(N, n_in)), chunks=(N // 16, n_in))
        y = da.from_array(rng.normal(size=N), chunks=N // 16)
        obj = nd.DaskObjective(net, X, y, client=client, persist=True)
        obj.fun(theta)  # the actors are made
        counter = BytesRead(monkeypatch, client)
        for k in range(4):
            obj.fun_and_jac(theta + 0.01 * k)
            obj.hessp(theta, theta)
        read[N] = counter.n
        monkeypatch.undo()
        print("bytes read by the client", N, counter.n)
    # per evaluation at most 16 partial sums of n_params + 1 floats and the messages around
    # them: tens of kB whatever N; one chunk of X at the smaller N is 800 kB, 3.2 MB at 4N
    chunk_of_X = 200_000 // 16 * n_in * 8
    assert max(read.values()) < chunk_of_X / 4, read
    assert abs(read[800_000] - read[200_000]) < 0.25 * read[200_000], read
    counter = BytesRead(monkeypatch, client)
    obj.residuals(theta)  # the planted gather: every row comes to the client
    assert counter.n > 8 * N


@pytest.mark.parametrize("persist", [True, False])
def test_each_actor_adds_its_run_of_chunks_and_sends_one_vector(client, monkeypatch, persist):
    """Chunks are placed in runs, one per worker, and each actor adds its run into the
    node of the tree it covers: per evaluation the client reads one gradient per worker,
    not one per chunk (16 here).  The placement is a hint (Dask's work stealing may move a
    chunk at setup): whatever it is, each actor answers the nodes it holds whole."""
    rng = np.random.default_rng(5)
    net = nncore.MLP([8, 250, 1], activation="tanh", loss="mse")  # 2,501 parameters
    X, y = rng.normal(size=(1600, 8)), rng.normal(size=1600)
    obj = nd.DaskObjective(net, X, y, client=client, chunk_size=100, persist=persist)
    obj.fun_and_jac(net.init(0))  # the actors are made

    def held(dask_worker, token=obj._token):
        actors = dask_worker.state.actors.values()
        return [
            ([c[0] for c in a.chunks], a.nodes)
            for a in actors
            if isinstance(a, nd._Host) and a.shared[1] == token
        ]

    hosts = sorted(h for found in client.run(held).values() for h in found)
    assert sorted(i for chunks, _ in hosts for i in chunks) == list(range(16))
    assert all(nodes == nd._cover(chunks, 16) for chunks, nodes in hosts)
    if [chunks for chunks, _ in hosts] == [list(range(8)), list(range(8, 16))]:  # runs
        assert [nodes for _, nodes in hosts] == [[(3, 0)], [(3, 1)]]
    answered = sum(len(nodes) for _, nodes in hosts)
    counter = BytesRead(monkeypatch, client)
    for k in range(4):
        obj.fun_and_jac(net.init(k + 1))
    gradient = 8 * net.n_params
    assert 4 * answered * gradient <= counter.n < 4 * (answered + 2) * gradient, (
        counter.n / gradient,
        answered,
    )
    obj.close()


def test_the_tree_is_the_same_wherever_its_nodes_are_added():
    """The graph's levels (groups of FAN_IN), and workers that add the nodes they hold
    whole (any chunks on any worker) with the client adding the rest, give the bits of
    the pairwise tree over all the partial sums."""
    assert nd.FAN_IN & (nd.FAN_IN - 1) == 0  # a group is a whole subtree

    @settings(max_examples=200, deadline=None)
    @given(st.data())
    def check(d):
        n = d.draw(st.integers(1, 150), label="chunks")
        rng = np.random.default_rng(d.draw(st.integers(0, 2**32 - 1), label="seed"))
        parts = [
            (float(rng.normal()), rng.normal(size=3) * 10.0 ** rng.integers(-9, 9, 3))
            for _ in range(n)
        ]
        ref = nd._add(*parts)
        level = parts
        while len(level) > nd.FAN_IN:  # the graph path's levels on the workers
            level = [nd._add(*level[i : i + nd.FAN_IN]) for i in range(0, len(level), nd.FAN_IN)]
            got = nd._add(*level)
            assert got[0] == ref[0] and np.array_equal(got[1], ref[1])
        workers = d.draw(st.integers(1, 4), label="workers")
        where = d.draw(st.lists(st.integers(0, workers - 1), min_size=n, max_size=n))
        nodes = {}
        for w in range(workers):
            held = [i for i in range(n) if where[i] == w]
            cover = nd._cover(held, n)
            blocks = [(k << lv, min(k + 1 << lv, n)) for lv, k in cover]
            assert [i for a, b in blocks for i in range(a, b)] == held  # exactly its chunks
            for lv, k in cover:  # the largest: the parent holds a chunk of another worker
                parent = range(k >> 1 << lv + 1, min((k >> 1) + 1 << lv + 1, n))
                assert (1 << lv) >= n or any(where[i] != w for i in parent)
            columns = [np.array([parts[i][c] for i in held]) for c in (0, 1)]
            starts = np.cumsum([0] + [b - a for a, b in blocks])[:-1]
            nd._reduce_rows(columns, [(int(s), b - a) for s, (a, b) in zip(starts, blocks)])
            nodes.update({node: (columns[0][s], columns[1][s]) for node, s in zip(cover, starts)})
        got = nd._root(nodes, n)
        assert got[0] == ref[0] and np.array_equal(got[1], ref[1])

    check()


def test_a_killed_worker_is_survived_with_the_same_result(client):
    net, X, y, w = small_problem(n=400, seed=5)
    Xd = da.from_array(X, chunks=(50, 4))
    kw = dict(method="L-BFGS-B", seed=0, sample_weight=w, options={"maxiter": 30})
    calm = nncore.train(net, Xd, y, client=client, **kw)
    pids = client.run(os.getpid)
    killed = []

    def kill_one(intermediate_result):
        if len(killed) == 0 and len(intermediate_result.x):
            victim = pids[sorted(pids)[0]]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)
            time.sleep(0.5)  # let the scheduler see it go

    hit = nncore.train(net, Xd, y, client=client, callback=kill_one, **kw)
    assert killed
    assert np.array_equal(hit.x, calm.x) and hit.fun == calm.fun and hit.nit == calm.nit
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests
    assert killed[0] not in client.run(os.getpid).values()


def wide_problem(n=20_000):
    """fun_and_jac takes about a second on two workers: 8 chunks of real work to cut into."""
    rng = np.random.default_rng(8)
    net = nncore.MLP([64, 512, 512, 10], activation="relu", output="softmax", loss="cross_entropy")
    return net, rng.normal(size=(n, 64)), rng.integers(0, 10, n)


def when_running(client, then, obj, direct):
    """A started thread that calls ``then(worker)`` while ``obj`` evaluates (within 60 s),
    and records when (``thread.at``): through the graph, once a worker runs one of its chunk
    tasks; straight to the actors (``direct``), 0.2 s after they exist (the first call makes
    them; an evaluation of :func:`wide_problem` then takes about a second)."""

    def watch():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if direct and obj._hosts is not None:
                time.sleep(0.2)
                thread.at = time.monotonic()
                then(sorted(client.scheduler_info()["workers"])[0])
                return
            for worker, keys in ({} if direct else client.processing()).items():
                if any(isinstance(k, tuple) and str(k[0]).startswith("nncore-") for k in keys):
                    thread.at = time.monotonic()
                    then(worker)
                    return
            time.sleep(0.005)

    thread = threading.Thread(target=watch, daemon=True)
    thread.at = None
    thread.start()
    return thread


@pytest.fixture(params=["graph", "direct"])
def path(request, monkeypatch):
    """Both ways of evaluating :func:`wide_problem`: its 8 gradients (19 MB) are above
    DIRECT_BYTES and go through a graph, unless the bound is raised."""
    if request.param == "direct":
        monkeypatch.setattr(nd, "DIRECT_BYTES", 2**30)
    return request.param


def test_a_worker_killed_during_an_evaluation_changes_no_bit(client, path):
    net, X, y = wide_problem()
    theta = net.init(0)
    calm = nd.DaskObjective(net, X, y, client=client, chunk_size=2500)
    J0, g0 = calm.fun_and_jac(theta)
    assert (calm._hosts is not None) == (path == "direct")
    calm.close()
    obj = nd.DaskObjective(net, X, y, client=client, chunk_size=2500)
    pids = client.run(os.getpid)
    kill = lambda worker: os.kill(pids[worker], signal.SIGKILL)  # noqa: E731
    thread = when_running(client, kill, obj, path == "direct")
    J, g = obj.fun_and_jac(theta)
    done = time.monotonic()
    thread.join()
    assert thread.at is not None and thread.at < done  # killed while it computed a chunk
    assert J == J0 and np.array_equal(g, g0)
    obj.close()
    client.wait_for_workers(2, timeout=60)  # the nanny restarts it for the next tests


def test_a_client_closed_during_an_evaluation_raises_promptly(client, path):
    net, X, y = wide_problem()
    other = distributed.Client(client.scheduler.address)  # the cluster stays up
    obj = nd.DaskObjective(net, X, y, client=other, chunk_size=2500, timeout=120)
    obj.fun_and_jac(net.init(0))
    obj._hosts = None  # made again at the next evaluation, which the watcher waits for
    thread = when_running(other, lambda worker: other.close(), obj, path == "direct")
    t0 = time.monotonic()
    with pytest.raises(RuntimeError, match="client of this objective is clos"):
        obj.fun_and_jac(net.init(1))
    thread.join()
    assert thread.at is not None
    assert time.monotonic() - t0 < 30  # not the objective's timeout: the close is seen
    obj.close()  # nothing left to release, and no error


def test_direct_and_graph_evaluations_give_the_same_bits(client, one_worker):
    """The actors' partial sums are added on the client in the graph's tree order: every
    kind of evaluation gives the same bits both ways, on 1 and 2 workers, in memory and read
    from the source; and the direct path sends no graph (no theta scattered)."""
    net, X, y, w = small_problem(n=350, seed=11)
    Xd = da.from_array(X, chunks=((70, 5, 100, 45, 130), (4,)))
    theta, v = net.init(3), np.linspace(-1.0, 1.0, net.n_params)
    results = []
    for c, persist, direct in itertools.product((client, one_worker), (True, False), (True, False)):
        obj = nd.DaskObjective(net, Xd, y, w, client=c, persist=persist, direct=direct)
        J, g = obj.fun_and_jac(theta)
        got = (J, g, obj.hessp(theta, v), obj.gnvp(theta, v), obj.fun(theta + 0.5))
        assert (obj._hosts is not None) == direct and (obj._theta_f is None) == direct
        obj.close()
        results.append(got)
    first = results[0]
    # a client that cannot reach the workers: its actor calls go through the scheduler
    with distributed.Client(client.scheduler.address, direct_to_workers=False) as proxied:
        obj = nd.DaskObjective(net, Xd, y, w, client=proxied)
        J, g = obj.fun_and_jac(theta)
        assert not isinstance(obj._call(0, None, None, None, "fun"), nd.Future)
        results.append((J, g, obj.hessp(theta, v), obj.gnvp(theta, v), obj.fun(theta + 0.5)))
        obj.close()
    for got in results[1:]:
        assert got[0] == first[0] and got[4] == first[4]
        assert all(np.array_equal(a, b) for a, b in zip(got[1:4], first[1:4]))
    with pytest.raises(TypeError, match="direct must be True or False"):
        nd.DaskObjective(net, Xd, y, client=client, direct=1)


def test_a_worker_the_client_cannot_reach_is_called_through_the_scheduler(client, monkeypatch):
    """A failed connection to an actor's worker that the scheduler keeps listing: that
    evaluation goes through the graph, and the actors are then called through the
    scheduler while it lists the worker; once it is gone, directly again.  The same
    results all along."""
    net, X, y, w = small_problem(n=200, seed=12)
    with distributed.Client(client.scheduler.address, timeout=5) as c:
        obj = nd.DaskObjective(net, X, y, w, client=c, chunk_size=50)
        thetas = [net.init(k) for k in range(4)]
        ref = [net.objective(X, y, w, chunk_size=50).fun_and_jac(t) for t in thetas]
        obj.fun_and_jac(thetas[0])
        nowhere = "tcp://127.0.0.1:9"  # the discard port: nothing listens
        listed = {**obj._workers(), nowhere: {}}
        monkeypatch.setattr(obj, "_workers", lambda: listed)  # "not gone"
        obj._host_addresses[0] = nowhere
        t0 = time.monotonic()
        got = [obj.fun_and_jac(thetas[1])]
        assert time.monotonic() - t0 >= nd.UNREACHABLE
        assert obj._via_scheduler == nowhere and obj._hosts is None
        got.append(obj.fun_and_jac(thetas[2]))
        assert obj._hosts is not None and not isinstance(
            obj._call(0, *[None] * 3, "fun"), nd.Future
        )
        monkeypatch.undo()  # gone: direct again
        got.append(obj.fun_and_jac(thetas[3]))
        assert obj._via_scheduler == "" and isinstance(obj._call(0, *[None] * 3, "fun"), nd.Future)
        for (J, g), (J0, g0) in zip(got, ref[1:]):
            assert close(J, J0) and close(g, g0)
        obj.close()


@pytest.mark.parametrize("persist", [True, False])
def test_a_lone_worker_killed_takes_theta_with_it_and_it_is_sent_again(one_worker, persist):
    net, X, y, w = small_problem(seed=7)
    obj = nd.DaskObjective(net, X, y, w, client=one_worker, chunk_size=60, persist=persist)
    theta, v = net.init(0), np.ones(net.n_params)
    before = obj.hessp(theta, v)
    (pid,) = one_worker.run(os.getpid).values()
    os.kill(pid, signal.SIGKILL)  # theta, v and the architecture were only there
    time.sleep(0.5)
    assert np.array_equal(obj.hessp(theta, v), before)
    one_worker.wait_for_workers(1, timeout=60)


def test_data_from_disk_memmap_and_zarr(client, tmp_path):
    net, X, y, w = small_problem(n=250, seed=6)
    np.save(tmp_path / "X.npy", X)
    mm = np.load(tmp_path / "X.npy", mmap_mode="r")
    z = zarr.open_array(
        str(tmp_path / "X.zarr"), mode="w", shape=X.shape, chunks=(64, 4), dtype="f8"
    )
    z[:] = X
    ref = net.objective(X, y, w)
    theta, v = net.init(1), np.ones(net.n_params)
    J0, g0 = ref.fun_and_jac(theta)
    for source, persist in ((mm, True), (z, True), (z, False), (da.from_zarr(z), False)):
        obj = nd.DaskObjective(net, source, y, w, client=client, chunk_size=64, persist=persist)
        assert obj.persisted is persist
        J, g = obj.fun_and_jac(theta)
        assert close(J, J0) and close(g, g0) and close(obj.hessp(theta, v), ref.hessp(theta, v))
    # the memory map travels as its file name, not its bytes
    graph_bytes = len(__import__("pickle").dumps(nd.MemmapFile(mm)))
    assert graph_bytes < 1000 < X.nbytes


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("compressed", [False, True])
def test_file_readers_read_what_zarr_and_numpy_read(tmp_path, fmt, compressed):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(230, 3))
    X[100:150] = 0.0  # chunk 2 holds only the fill value: zarr writes no file for it
    kw = {} if compressed else {"compressors": None}
    z = zarr.create_array(
        str(tmp_path / "X.zarr"), shape=X.shape, chunks=(50, 3), dtype="f8", zarr_format=fmt, **kw
    )
    z[:] = X
    reader = nd.ZarrFile(z)
    assert (reader.root is None) is compressed  # direct reads only where the bytes are plain
    for a, b in [(0, 50), (30, 170), (100, 150), (199, 230), (229, 230)]:
        out = np.full((b - a, 3), np.nan)
        assert np.array_equal(reader.read(a, b, out), X[a:b])
        assert np.array_equal(reader.read(a, b), X[a:b])
    if not compressed:  # a chunk file cut short is an error that names it, not garbage
        name = reader._chunk_file(4)
        with open(name, "r+b") as f:
            f.truncate(100)
        with pytest.raises(ValueError, match=r"ended after .* bytes expected"):
            reader.read(200, 230, np.empty((30, 3)))
    np.save(tmp_path / "C.npy", X)
    np.save(tmp_path / "F.npy", np.asfortranarray(X))
    for name in ("C.npy", "F.npy"):
        mm = nd.MemmapFile(np.load(tmp_path / name, mmap_mode="r"))
        for a, b in [(0, 1), (17, 203), (0, 230)]:
            assert np.array_equal(mm.read(a, b, np.empty((b - a, 3))), X[a:b])


def test_files_read_into_reused_buffers_give_the_same_bits(client, tmp_path):
    net, X, y, w = small_problem(n=260, seed=8)
    kw = {"chunks": (60, 4), "dtype": "f8", "compressors": None}
    zX = zarr.create_array(str(tmp_path / "X.zarr"), shape=X.shape, **kw)
    zy = zarr.create_array(
        str(tmp_path / "y.zarr"), shape=y.shape, chunks=(60,), dtype="i8", compressors=None
    )
    zX[:], zy[:] = X, y
    np.save(tmp_path / "w.npy", w)
    ww = np.load(tmp_path / "w.npy", mmap_mode="r")
    files = nd.DaskObjective(net, zX, zy, ww, client=client, chunk_size=60, persist=False)
    readers = files._source.value.readers  # every array read straight from its file
    assert readers is not None and all(r.root is not None for r in readers[:2])
    Xd, yd, wd = (da.from_array(a, chunks=60) for a in (X, y, w))
    tasks = nd.DaskObjective(net, Xd, yd, wd, client=client, persist=False)
    assert tasks._source.value.readers is None and files.row_ranges == tasks.row_ranges
    ref, v = net.objective(X, y, w), np.linspace(-1.0, 1.0, net.n_params)
    for k in range(3):  # each point reads every chunk again, into the buffers of the last
        theta = net.init(k)
        J, g = files.fun_and_jac(theta)
        J2, g2 = tasks.fun_and_jac(theta)
        assert J == J2 and np.array_equal(g, g2)
        assert np.array_equal(files.hessp(theta, v), tasks.hessp(theta, v))
        assert close(J, ref.fun(theta)) and close(g, ref.jac(theta))

    def buffers(token):  # on a worker: the buffers its chunk tasks kept, by chunk length
        states = nd._STATES.get(token, {})
        return sorted((-n, sorted(s.buffers)) for (n, _), s in states.items())

    kept = client.run(buffers, files._token)
    assert any(kept.values())
    lengths = {n for held in kept.values() for n, names in held if names == ["X", "w", "y"]}
    assert lengths and lengths <= {60, 20}  # 4 chunks of 60 rows and one of 20
    files.close(), tasks.close()


def test_data_left_on_disk_are_not_all_held_during_setup(client, tmp_path):
    """Validating the chunks (at setup) holds a chunk or two per worker at a time, not all of
    them: the workers' peak memory does not grow with N (32 chunks of 4 MB here; holding
    them would add 64 MB per worker; reading one takes a few, some in flight at once)."""
    n, rows, n_in = 256_000, 8_000, 64
    net = nncore.MLP([n_in, 3, 2], output="softmax", loss="cross_entropy")
    rng = np.random.default_rng(9)
    kw = {"dtype": "f8", "compressors": None}
    zX = zarr.create_array(str(tmp_path / "X.zarr"), shape=(n, n_in), chunks=(rows, n_in), **kw)
    zy = zarr.create_array(str(tmp_path / "y.zarr"), shape=(n,), chunks=(rows,), dtype="i8")
    zX[:], zy[:] = rng.normal(size=(n, n_in)), rng.integers(0, 2, n)
    small = nd.DaskObjective(net, zX[:rows], zy[:rows], client=client, persist=False)
    small.fun(net.init(0)), small.close()  # imports and first buffers, before the peak is reset

    def reset_peak():  # Linux: writing 5 to clear_refs resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")

    def peak_and_now():
        with open("/proc/self/status") as f:
            kib = {k: int(v.split()[0]) for k, v in (x.split(":", 1) for x in f) if k[:2] == "Vm"}
        return kib["VmHWM"] * 1024, kib["VmRSS"] * 1024

    before = client.run(peak_and_now)
    client.run(reset_peak)
    obj = nd.DaskObjective(net, zX, zy, client=client, chunk_size=rows, persist=False)
    grown = {w: peak - before[w][1] for w, (peak, _) in client.run(peak_and_now).items()}
    obj.close()
    chunk = rows * n_in * 8
    assert max(grown.values()) < 10 * chunk, {w: g / 2**20 for w, g in grown.items()}


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda X, y, w: X.__setitem__((130, 2), np.nan),
            r"X must be finite.*chunk 2: rows 100:150",
        ),
        (
            lambda X, y, w: y.__setitem__(260, 7),
            r"labels must lie in \[0, 3\).*chunk 5: rows 250:300",
        ),
        (lambda X, y, w: w.__setitem__(3, -1.0), r"non-negative.*chunk 0: rows 0:50"),
        (lambda X, y, w: w.__setitem__(slice(None), 0.0), r"must not be all zero"),
    ],
)
def test_bad_data_are_named_by_chunk(client, change, message):
    net, X, y, w = small_problem()
    change(X, y, w)
    with pytest.raises(ValueError, match=message):
        nd.DaskObjective(net, da.from_array(X, chunks=(50, 4)), y, w, client=client)


def test_rows_that_disagree_raise(client):
    net, X, y, w = small_problem()
    with pytest.raises(ValueError, match="X has 300 rows but y has 299"):
        nd.DaskObjective(net, da.from_array(X, chunks=50), y[:-1], client=client)
    # a chunk that lies about its rows (as a from_delayed chunk can)
    lying = da.from_delayed(__import__("dask").delayed(X[:40]), shape=(50, 4), dtype=float)
    with pytest.raises(ValueError, match="holds 40 rows, but the dask array says 50"):
        nd.DaskObjective(net, lying, y[:50], client=client)
    unknown = da.from_array(X, chunks=50)[da.from_array(X[:, 0] > 0, chunks=50)]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        nd.DaskObjective(net, unknown, y[X[:, 0] > 0], client=client)


def test_no_hang_without_workers_unreachable_scheduler_or_closed_client(client):
    net, X, y, w = small_problem(n=40)
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match="could not reach the Dask scheduler"):
        nd.DaskObjective(net, X, y, client="tcp://127.0.0.1:9", timeout=1)
    with distributed.LocalCluster(n_workers=0, processes=False, dashboard_address=None) as empty:
        with distributed.Client(empty) as c0:
            with pytest.raises(TimeoutError, match="within timeout=1.0 s"):
                nd.DaskObjective(net, X, y, client=c0, timeout=1)
    assert time.perf_counter() - t0 < 30
    with (
        distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None) as local,
        distributed.Client(local) as c1,
    ):
        obj = nd.DaskObjective(net, X, y, client=c1, chunk_size=10)
        obj.fun(net.init(0))
    with pytest.raises(RuntimeError, match="client of this objective is closed"):
        obj.fun(net.init(1))


def test_close_waits_at_most_the_timeout_and_a_lost_scheduler_times_out(monkeypatch):
    net, X, y, _ = small_problem(n=40)

    async def unanswered(token):  # a worker that does not answer within the timeout
        await asyncio.sleep(15)

    cluster = distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=None)
    with distributed.Client(cluster.scheduler_address) as c:  # outlives the cluster
        slow = nd.DaskObjective(net, X, y, client=c, chunk_size=10, timeout=1)
        lost = nd.DaskObjective(net, X, y, client=c, chunk_size=10, timeout=1)
        slow.fun(net.init(0))
        lost.fun(net.init(0))
        monkeypatch.setattr(nd, "_forget", unanswered)
        t0 = time.monotonic()
        slow.close()
        assert time.monotonic() - t0 < 10
        monkeypatch.undo()
        cluster.close()  # scheduler and worker gone, the client still trying to reconnect
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="within timeout=1.0 s"):
            lost.fun(net.init(1))  # Dask alone would wait 30 s to connect, then OSError
        lost.close()
        assert time.monotonic() - t0 < 10


def test_import_nncore_does_not_import_dask_and_the_message_names_the_packages():
    code = (
        "import sys, nncore, nncore.distributed\n"
        "assert not any(m.split('.')[0] in ('dask', 'distributed') for m in sys.modules)\n"
        "sys.modules['dask'] = None\n"
        "try:\n"
        "    nncore.distributed.DaskObjective(nncore.MLP([1, 1]), [[0.0]], [0.0])\n"
        "except ImportError as err:\n"
        "    print(err)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert 'pip install "dask[array]" distributed' in done.stdout
    assert "nncore[" not in done.stdout and '".[dask]"' in done.stdout


def test_bench_distributed_quick_runs():
    """Smoke test of benchmarks/bench_distributed.py (timings are never asserted)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    script = os.path.join(root, "benchmarks", "bench_distributed.py")
    env = {**os.environ, "PYTHONPATH": root}  # this checkout's nncore, as the tests import
    done = subprocess.run(
        [sys.executable, script, "--quick"], capture_output=True, text=True, timeout=600, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "out of core" in done.stdout and "ratio at N=1e6" in done.stdout
