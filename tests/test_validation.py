"""Bad input raises a ValueError/TypeError that says what was expected and what arrived,
and leaves nothing half-updated."""

import numpy as np
import pytest

import nncore
from nncore import MLP

X4 = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
Y4 = np.array([0.0, 1.0, 1.0, 0.0])
NET = MLP([2, 2, 1], activation="tanh", output="sigmoid")
CE = MLP([2, 3, 3], activation="relu", loss="cross_entropy")
BCE = MLP([2, 3, 1], loss="bce")
THETA = NET.init(0)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(sizes=[2, 0, 1]), ValueError, r"at least 1, got \[2, 0, 1\]"),
        (dict(sizes=[2]), ValueError, "at least 2 entries"),
        (dict(sizes="21"), TypeError, "sequence of ints, got str"),
        (dict(sizes=[2, 2.5, 1]), TypeError, "sequence of ints, got 2.5"),
        (dict(sizes=[2, True, 1]), TypeError, "sequence of ints, got True"),
        (dict(sizes=np.array(3)), TypeError, r"sequence of ints, got ndarray of shape \(\)"),
        (dict(sizes=[2, 2, 1], activation=b"tanh"), TypeError, "names \\(strings\\), got bytes"),
        (
            dict(sizes=[2, 2, 1], activation="tanhh"),
            ValueError,
            "unknown activation 'tanhh'; valid names are: elu, gelu",
        ),
        (dict(sizes=[2, 2, 1], activation=3), TypeError, r"sequence of names \(strings\), got int"),
        (dict(sizes=[2, 2, 1], activation=[3]), TypeError, "must be strings, got int"),
        (dict(sizes=[2, 2, 2, 1], activation=["tanh"]), ValueError, "2 names .* got 1"),
        (
            dict(sizes=[2, 2, 1], activation="softmax"),
            ValueError,
            "softmax is allowed only as the output",
        ),
        (
            dict(sizes=[2, 2, 1], loss="hinge"),
            ValueError,
            "unknown loss 'hinge'; valid losses are: mse, bce, cross_entropy",
        ),
        (dict(sizes=[2, 2, 1], loss=None), TypeError, "loss must be a string, got NoneType"),
        (
            dict(sizes=[2, 2, 1], loss="bce", output="tanh"),
            ValueError,
            "loss 'bce' needs output activation 'sigmoid', got 'tanh'",
        ),
        (
            dict(sizes=[2, 2, 3], loss="cross_entropy", output="sigmoid"),
            ValueError,
            "needs output activation 'softmax'",
        ),
        (dict(sizes=[2, 2, 1], l2=-0.1), ValueError, r"l2 must be finite and >= 0, got -0.1"),
        (dict(sizes=[2, 2, 1], l2=float("nan")), ValueError, "l2 must be finite"),
        (dict(sizes=[2, 2, 1], l2="0.1"), TypeError, "l2 must be a real number, got str"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        MLP(**kwargs)


def _bad(net, theta=None, X=X4, y=Y4, w=None):
    return net, (net.init(0) if theta is None else theta), X, y, w


NAN_X = X4.copy()
NAN_X[2, 1] = np.nan
INF_Y = Y4.copy()
INF_Y[1] = np.inf
NAN_THETA = THETA.copy()
NAN_THETA[3] = np.nan

CASES = [
    (_bad(NET, theta=THETA[:8]), ValueError, r"theta must have shape \(9,\), got \(8,\)"),
    (_bad(NET, theta=THETA[None, :]), ValueError, r"theta must have shape \(9,\), got \(1, 9\)"),
    (_bad(NET, theta="abc"), TypeError, "theta must be an array of real numbers, got str"),
    (
        _bad(NET, theta=THETA + 0j),
        TypeError,
        "theta must be an array of real numbers, got dtype complex128",
    ),
    (_bad(NET, theta=NAN_THETA), ValueError, r"theta must be finite, got nan at index \[3\]"),
    (
        _bad(NET, X=X4.ravel()),
        ValueError,
        r"X must be 2-D with shape \(n_samples, 2\), got shape \(8,\)",
    ),
    (_bad(NET, X=X4[:, :1]), ValueError, r"X must have 2 features \(columns\), got shape \(4, 1\)"),
    (_bad(NET, X=None), TypeError, "X must be an array of real numbers, got NoneType"),
    (_bad(NET, X=NAN_X), ValueError, r"X must be finite, got nan at index \[2, 1\]"),
    (
        _bad(NET, y=Y4[:3]),
        ValueError,
        r"y for loss 'mse' must have shape \(4,\) or \(4, 1\), got \(3,\)",
    ),
    (
        _bad(NET, y=np.zeros((4, 2))),
        ValueError,
        r"must have shape \(4,\) or \(4, 1\), got \(4, 2\)",
    ),
    (_bad(NET, y=INF_Y), ValueError, r"y must be finite, got inf at index \[1, 0\]"),
    (_bad(CE, y=np.array([0, 1, 3, 2])), ValueError, r"labels must lie in \[0, 3\), got 3"),
    (_bad(CE, y=np.array([0, 1, -1, 2])), ValueError, r"labels must lie in \[0, 3\), got -1"),
    (_bad(CE, y=np.array([0, 1, 1.5, 2])), ValueError, "labels must be integers, got 1.5"),
    (_bad(CE, y=np.full((4, 3), 0.5)), ValueError, "must sum to 1 .* row 0 sums to 1.5"),
    (_bad(CE, y=np.array([[1.5, -0.5, 0]] * 4)), ValueError, "must be non-negative, got -0.5"),
    (
        _bad(CE, y=np.zeros((4, 2))),
        ValueError,
        r"\(4,\) \(labels\) or \(4, 3\) \(probabilities\), got \(4, 2\)",
    ),
    (
        _bad(BCE, y=np.array([0, 1, 2, 0])),
        ValueError,
        r"y for loss 'bce' must lie in \[0, 1\], got 2",
    ),
    (_bad(BCE, y=np.array([0, -0.1, 1, 0])), ValueError, r"must lie in \[0, 1\], got -0.1"),
    (
        _bad(NET, w=np.array([1.0, -1.0, 1.0, 1.0])),
        ValueError,
        "sample_weight must be non-negative, got -1.0 at index 1",
    ),
    (_bad(NET, w=np.zeros(4)), ValueError, "sample_weight must not be all zero"),
    (_bad(NET, w=np.ones(3)), ValueError, r"sample_weight must have shape \(4,\), got \(3,\)"),
    (_bad(NET, w=np.array([1.0, np.nan, 1.0, 1.0])), ValueError, "sample_weight must be finite"),
    (_bad(NET, w="heavy"), TypeError, "sample_weight must be an array of real numbers, got str"),
]


@pytest.mark.parametrize("args, error, message", CASES)
@pytest.mark.parametrize("method", ["loss", "grad", "loss_and_grad"])
def test_bad_data_raises_with_a_clear_message(method, args, error, message):
    net, theta, X, y, w = args
    copies = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in (theta, X, y, w)]
    with pytest.raises(error, match=message):
        getattr(net, method)(theta, X, y, w)
    for before, after in zip(copies, (theta, X, y, w)):
        if isinstance(after, np.ndarray):
            np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("args, error, message", CASES)
def test_bad_data_in_train_and_check_gradient(args, error, message):
    net, theta, X, y, w = args
    with pytest.raises(error, match=message):
        nncore.train(net, X, y, theta0=theta, sample_weight=w)
    with pytest.raises(error, match=message):
        nncore.check_gradient(net, theta, X, y, w)


def test_bad_theta_leaves_the_objective_cache_untouched():
    obj = NET.objective(X4, Y4)
    J, g = obj.fun_and_jac(THETA)
    counts = (obj.nfev, obj.njev)
    for bad in (THETA[:8], NAN_THETA, "abc"):
        with pytest.raises((ValueError, TypeError)):
            obj.fun_and_jac(bad)
    assert (obj.nfev, obj.njev) == counts
    J2, g2 = obj.fun_and_jac(THETA)
    assert J2 == J and (obj.nfev, obj.njev) == counts  # served from the cache
    np.testing.assert_array_equal(g2, g)


def test_returned_gradient_is_the_callers():
    obj = NET.objective(X4, Y4)
    g = obj.jac(THETA)
    g[:] = 0.0
    assert obj.jac(THETA).any()


def test_bad_train_arguments():
    with pytest.raises(ValueError, match="unknown method 'newton'; valid methods are: CG, BFGS"):
        nncore.train(NET, X4, Y4, method="newton")
    with pytest.raises(TypeError, match="method must be a string"):
        nncore.train(NET, X4, Y4, method=None)
    with pytest.raises(ValueError, match="n_starts must be at least 1, got 0"):
        nncore.train(NET, X4, Y4, n_starts=0)
    with pytest.raises(TypeError, match="seed must be an int or numpy.random.Generator, got str"):
        NET.init("zero")


def test_integer_and_list_inputs_are_accepted_as_numbers():
    J = NET.loss(list(THETA), X4.astype(int).tolist(), [0, 1, 1, 0])
    assert J == NET.loss(THETA, X4, Y4)


# -- overflow, aliasing and the smaller entry points ---------------------------------

OVERFLOW = "is not finite: float64 overflowed on these inputs"


@pytest.mark.parametrize(
    "call",
    [
        lambda: NET.loss(THETA, X4, 1e200 * Y4),
        lambda: NET.loss_and_grad(THETA, X4, 1e200 * Y4),
        lambda: NET.hessp(THETA, np.full(9, 1e308), X4, Y4),
        lambda: MLP([2, 3, 1], activation="relu").loss(1e160 * THETA_RELU, X4, Y4),
        lambda: MLP([2, 3, 1], activation="identity").predict(1e160 * THETA_RELU, 1e300 * X4),
        lambda: nncore.train(NET, X4, 1e200 * Y4),
    ],
    ids=["loss", "loss_and_grad", "hessp", "relu loss", "predict", "train"],
)
def test_overflow_raises_instead_of_returning_inf_or_nan(call):
    """Finite inputs too large for float64 arithmetic give an error, never inf or NaN."""
    with np.errstate(all="ignore"), pytest.raises(ValueError, match=OVERFLOW):
        call()


THETA_RELU = MLP([2, 3, 1], activation="relu").init(0)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_objective_raises_for_an_overflowing_loss_but_not_for_finite_products(chunk_size):
    """The loss overflows (y ~ 1e200), the curvature products do not: fun and jac raise every
    time they are asked, hessp answers, chunked or not, and the forward pass runs once."""
    obj = NET.objective(X4, 1e200 * Y4, chunk_size=chunk_size)
    for _ in range(2):
        with np.errstate(all="ignore"), pytest.raises(ValueError, match=OVERFLOW):
            obj.fun_and_jac(THETA)
    with np.errstate(all="ignore"):
        Hv = obj.hessp(THETA, np.ones(9))
    assert np.isfinite(Hv).all()
    if chunk_size is None:
        assert obj.nfev == 1


def test_train_lets_a_line_search_step_back_from_overflow():
    """A loss of ~1e80 at the start: BFGS's line search tries points where it overflows.
    train gives scipy inf there, as scipy expects, and ends at a finite point."""
    rng = np.random.default_rng(0)
    net = MLP([3, 4, 1], activation="identity")
    X, y = 1e40 * rng.standard_normal((20, 3)), 1e40 * rng.standard_normal(20)
    with np.errstate(all="ignore"):
        res = nncore.train(net, X, y, method="BFGS", seed=0, options={"maxiter": 200})
    assert np.isfinite(res.fun) and res.fun <= res.history[0]


def test_seeders_and_0d_targets_are_accepted():
    a = nncore.train(NET, X4, Y4, seed=np.random.SeedSequence(1), target=np.array(0.5))
    b = nncore.train(NET, X4, Y4, seed=np.random.PCG64(1), target=0.5)
    assert a.fun == b.fun


def test_weights_whose_sum_overflows_give_the_same_mean():
    """Only w / sum(w) matters: weights of 1e308 give the unweighted loss, not 0 (their sum
    overflows unless they are scaled first)."""
    assert NET.loss(THETA, X4, Y4, np.full(4, 1e308)) == NET.loss(THETA, X4, Y4)
    w = np.array([1e308, 1e308, 1.0, 1.0])
    expected = NET.loss(THETA, X4, Y4, np.array([1.0, 1.0, 0.0, 0.0]))
    assert NET.loss(THETA, X4, Y4, w) == pytest.approx(expected, rel=1e-15)


def test_out_must_not_overlap_the_data():
    buf = np.zeros(9 + X4.size + Y4.size)
    Xv, yv = buf[1:9].reshape(4, 2), buf[9:13]
    Xv[...], yv[...] = X4, Y4
    with pytest.raises(ValueError, match="out must not share memory with X"):
        NET.grad(THETA, Xv, Y4, out=buf[:9])
    with pytest.raises(ValueError, match="out must not share memory with y"):
        NET.grad(THETA, X4, buf[4:8], out=buf[:9])


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: BCE.objective(X4, Y4).residuals(BCE.init(0)), ValueError, "for loss 'mse' only"),
        (lambda: BCE.objective(X4, Y4).jacobian(BCE.init(0)), ValueError, "for loss 'mse' only"),
        (lambda: NET.objective(X4, Y4).hess(THETA, kind="bogus"), ValueError, "kind must be"),
        (lambda: nncore.Objective(None, X4, Y4), TypeError, "net must be an nncore MLP"),
        (lambda: nncore.Objective.from_batch(NET, (X4, Y4)), TypeError, "batch must be an"),
        (lambda: nncore.train(None, X4, Y4), TypeError, "net must be an nncore MLP"),
        (lambda: nncore.train(NET, X4, Y4, target="a"), TypeError, "target must be a real"),
        (lambda: nncore.train(NET, X4, Y4, target=[0.1]), TypeError, "target must be a real"),
        (lambda: nncore.train(NET, X4, Y4, seed=-1), ValueError, "seed must be non-negative"),
        (lambda: NET.param_name(2.0), TypeError, "parameter index must be an int, got float"),
        (
            lambda: NET.pack([(1j * np.ones((2, 2)), np.zeros(2)), (np.ones((1, 2)), [0.0])]),
            TypeError,
            "layer 1: W must be an array of real numbers, got dtype complex128",
        ),
        (
            lambda: NET.pack([(np.ones((2, 2)), [np.nan, 0.0]), (np.ones((1, 2)), [0.0])]),
            ValueError,
            r"layer 1: b must be finite, got nan at index \[0\]",
        ),
        (
            lambda: NET.loss(np.ma.array(THETA, mask=[1] + [0] * 8), X4, Y4),
            TypeError,
            "theta must be an array of real numbers, got MaskedArray",
        ),
    ],
)
def test_smaller_entry_points_check_their_arguments(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_l2_may_be_any_real_number():
    from fractions import Fraction

    assert MLP([2, 2, 1], l2=Fraction(1, 4)).l2 == 0.25
