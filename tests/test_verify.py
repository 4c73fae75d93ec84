"""The gradient checker: it passes correct gradients, catches and locates planted bugs, and
works on plain functions, other libraries' gradients, and large networks."""

import numpy as np
import pytest
from scipy.optimize import rosen, rosen_der, rosen_hess_prod

from nncore import MLP, check_gradient
from nncore.verify import GradientReport

# -- planted bugs ---------------------------------------------------------------------

NET = MLP([3, 4, 3, 2], activation="tanh", loss="mse", l2=0.1)
RNG = np.random.default_rng(0)
THETA = NET.init(RNG)
X = RNG.standard_normal((12, 3))
Y = RNG.standard_normal((12, 2))
W = RNG.uniform(0.5, 2.0, 12)


def _block(g, layer, kind):
    (gW, gb) = NET.layout.unpack(g)[layer - 1]
    return gW if kind == "W" else gb


def sign_flip(g, theta, X, y, w):
    _block(g, 2, "W")[...] *= -1.0
    return g


def missing_factor_2(g, theta, X, y, w):  # the mse derivative 2 (A - y) / n_out without its 2
    l2_part = NET.l2 * NET.layout.weight_mask() * theta
    return 0.5 * (g - l2_part) + l2_part


def one_coordinate_off(g, theta, X, y, w):
    g[7] *= 1.0 + 1e-4
    return g


def transposed_block(g, theta, X, y, w):
    gW = _block(g, 1, "W")
    gW[...] = gW.T.copy().reshape(gW.shape)  # written in the transposed order
    return g


def missing_l2(g, theta, X, y, w):
    return g - NET.l2 * NET.layout.weight_mask() * theta


def wrong_bias(g, theta, X, y, w):  # mean over samples where the sum of weighted deltas belongs
    _block(g, 2, "b")[...] /= X.shape[0]
    return g


def ignores_weights(g, theta, X, y, w):
    return NET.grad(theta, X, y)


ALL = {f"layer {i}: {k}" for i in (1, 2, 3) for k in "Wb"}
MUTANTS = [
    # (mutant, blocks that must be reported bad (exactly), coordinate that must be named)
    (sign_flip, {"layer 2: W"}, None),
    (missing_factor_2, ALL, None),
    (one_coordinate_off, {"layer 1: W"}, "layer 1: W[2, 1]"),
    (transposed_block, {"layer 1: W"}, None),
    (missing_l2, {"layer 1: W", "layer 2: W", "layer 3: W"}, None),
    (wrong_bias, {"layer 2: b"}, None),
    (ignores_weights, ALL, None),
]


def mutant_grad(mutant):
    def grad(theta, X, y, w):
        return mutant(NET.grad(theta, X, y, w), theta, X, y, w)

    return grad


@pytest.mark.parametrize(
    "mutant, bad_blocks, coordinate", MUTANTS, ids=lambda m: getattr(m, "__name__", "")
)
def test_planted_bug_is_caught_and_located(mutant, bad_blocks, coordinate):
    report = check_gradient(
        NET.loss, mutant_grad(mutant), THETA, (X, Y, W), names=NET.param_name, blocks=_blocks()
    )
    assert not report.passed
    assert set(report.bad_blocks) == bad_blocks, str(report)
    if coordinate is not None:
        assert report.worst_param == coordinate
        assert report.worst[0].index == 7


def test_planted_bugs_are_caught_by_the_taylor_test_too_when_large():
    for mutant in (sign_flip, missing_factor_2, transposed_block, ignores_weights):
        report = check_gradient(NET.loss, mutant_grad(mutant), THETA, (X, Y, W))
        assert report.taylor["verdict"] == "failed", mutant.__name__


def _blocks():
    return NET.layout.blocks()


def test_network_form_gives_the_same_blocks_and_names():
    report = check_gradient(NET, THETA, X, Y, W)
    assert report.passed, str(report)
    assert {b.name for b in report.blocks} == ALL
    assert report.jax_rel_error is not None and report.jax_rel_error < 1e-12
    assert report.worst[0].name.startswith("layer ")


# -- plain functions and other libraries ---------------------------------------------


def powell(x):
    return (
        (x[0] + 10 * x[1]) ** 2
        + 5 * (x[2] - x[3]) ** 2
        + (x[1] - 2 * x[2]) ** 4
        + 10 * (x[0] - x[3]) ** 4
    )


def powell_grad(x):
    a, b, c, d = x[0] + 10 * x[1], x[2] - x[3], x[1] - 2 * x[2], x[0] - x[3]
    return np.array([2 * a + 40 * d**3, 20 * a + 4 * c**3, 10 * b - 8 * c**3, -10 * b - 40 * d**3])


def beale(x):
    return (
        (1.5 - x[0] + x[0] * x[1]) ** 2
        + (2.25 - x[0] + x[0] * x[1] ** 2) ** 2
        + (2.625 - x[0] + x[0] * x[1] ** 3) ** 2
    )


def beale_grad(x):
    t1, t2, t3 = (
        1.5 - x[0] + x[0] * x[1],
        2.25 - x[0] + x[0] * x[1] ** 2,
        2.625 - x[0] + x[0] * x[1] ** 3,
    )
    return np.array(
        [
            2 * t1 * (x[1] - 1) + 2 * t2 * (x[1] ** 2 - 1) + 2 * t3 * (x[1] ** 3 - 1),
            2 * t1 * x[0] + 4 * t2 * x[0] * x[1] + 6 * t3 * x[0] * x[1] ** 2,
        ]
    )


@pytest.mark.parametrize(
    "fun, grad, x0",
    [
        (rosen, rosen_der, np.array([-1.2, 1.0, 0.3, 2.0, -0.7, 1.1])),
        (powell, powell_grad, np.array([3.0, -1.0, 0.0, 1.0])),
        (beale, beale_grad, np.array([1.0, 1.5])),
    ],
    ids=["rosenbrock", "powell", "beale"],
)
@pytest.mark.parametrize("profile", ["fast", "thorough"])
def test_plain_functions(fun, grad, x0, profile):
    before = x0.copy()
    report = check_gradient(fun, grad, x0, profile=profile)
    assert report.passed, str(report)
    if profile == "thorough":
        assert report.taylor["rate"] == pytest.approx(2, abs=0.1)
        assert report.taylor["verdict"] == "passed"
    else:  # every coordinate resolved and agrees: one central difference each, no Taylor
        assert report.taylor["verdict"] == "not run" and report.nfev == 1 + 2 * x0.size
    np.testing.assert_array_equal(x0, before)
    wrong = check_gradient(
        fun, lambda x: grad(x) * np.r_[1.0, np.ones(x.size - 1) * 1.001], x0, profile=profile
    )
    assert not wrong.passed


def test_hessp_checks_on_rosenbrock():
    x0 = np.array([-1.2, 1.0, 0.3, 2.0])
    report = check_gradient(rosen, rosen_der, x0, hessp=rosen_hess_prod)
    assert report.passed and report.hessp["taylor"]["verdict"] == "passed"
    assert report.hessp["taylor"]["rate"] == pytest.approx(3, abs=0.25)
    wrong = check_gradient(rosen, rosen_der, x0, hessp=lambda x, p: 1.01 * rosen_hess_prod(x, p))
    assert not wrong.passed and wrong.hessp["taylor"]["verdict"] == "failed"


def test_gradient_computed_by_another_library():
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    import nncore.jax_reference  # noqa: F401  (x64)

    def f(x):
        return jnp.sum(jnp.sin(x) * jnp.exp(-(x**2))) + jnp.prod(jnp.cos(x[:3]))

    g = jax.jit(jax.grad(f))
    x0 = np.linspace(-1.0, 2.0, 7)
    report = check_gradient(lambda x: float(f(x)), lambda x: np.asarray(g(x)), x0)
    assert report.passed, str(report)


def test_report_is_readable_and_serialisable():
    import json

    report = check_gradient(NET, THETA, X, Y, W)
    assert isinstance(report, GradientReport)
    text = str(report)
    assert "PASSED" in text and "layer 1: W" in text and "Taylor" in text
    json.dumps(report.to_dict())


def test_bad_arguments():
    with pytest.raises(TypeError, match="needs fun and grad callables"):
        check_gradient(rosen, None, np.zeros(3))
    with pytest.raises(ValueError, match=r"x0 must be a non-empty 1-D array, got shape \(2, 2\)"):
        check_gradient(rosen, rosen_der, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="x0 must be finite"):
        check_gradient(rosen, rosen_der, np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="mode must be"):
        check_gradient(rosen, rosen_der, np.zeros(3), mode="fast")


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"fun": lambda x: x**2}, TypeError, r"fun must return a real scalar, got ndarray of "),
        ({"fun": lambda x: np.array([rosen(x)])}, TypeError, r"real scalar.*shape \(1,\)"),
        ({"fun": lambda x: np.nan}, ValueError, "fun\\(x0\\) is nan: a gradient can only"),
        (
            {"grad": lambda x: rosen_der(x) + 0j},
            TypeError,
            "what grad returns must be an array of real numbers, got dtype complex",
        ),
        ({"grad": lambda x: rosen_der(x)[:, None]}, ValueError, r"shape \(3,\), got \(3, 1\)"),
        ({"hessp": lambda x, p: p[:2]}, ValueError, r"hessp must return shape \(3,\)"),
        ({"hessp": "exact"}, TypeError, "hessp must be a callable"),
        ({"names": ["a", "b"]}, ValueError, "names must name all 3 coordinates, got 2"),
        ({"blocks": [("b", slice(5, 9))]}, ValueError, "block 'b' selects no coordinates"),
        ({"blocks": [("b", 7)]}, ValueError, "blocks must be \\(name, slice or index array\\)"),
        ({"n_directions": 0}, ValueError, "n_directions must be a positive int, got 0"),
        ({"blocks": [("a", slice(0, 2)), ("a", slice(2, 3))]}, ValueError, "must be unique"),
        ({"blocks": [("a", 1)]}, ValueError, "by a slice or an index array, got 1"),
    ],
)
def test_bad_callables_and_options_are_named(kwargs, error, message):
    """What fun, grad and hessp return, and the names and blocks given, are checked before
    anything is judged: a wrong shape or kind is an error that says which, never a
    broadcast, a dropped imaginary part or an index error."""
    args = {"fun": rosen, "grad": rosen_der, "x0": np.array([0.5, 1.0, 1.5])} | kwargs
    with pytest.raises(error, match=message):
        check_gradient(args.pop("fun"), args.pop("grad"), args.pop("x0"), **args)


def test_network_form_takes_hessp_as_a_flag_only():
    with pytest.raises(TypeError, match="the network form checks net.hessp: hessp must be True or"):
        check_gradient(NET, THETA, X, Y, W, hessp=lambda t, v: 0 * v)


# -- what the differences cannot resolve ----------------------------------------------


def _flat(x):  # a large constant and a tiny slope: differences see only rounding
    return 1e6 + 1e-6 * float(x @ x)


@pytest.mark.parametrize(
    "grad", [lambda x: 2e-6 * x, lambda x: -1e-4 * x, np.zeros_like], ids=["right", "wrong", "0"]
)
def test_nothing_resolved_is_inconclusive_not_passed(grad):
    """f = 1e6 + 1e-6 |x|^2: the rounding of f (~1e-10) over the step (~6e-6) swamps slopes of
    ~1e-6, and the Taylor remainder never clears round-off.  Right, wrong and zero gradients
    all agree with the differences; the check says it cannot tell them apart."""
    x0 = np.array([0.5, -1.0, 2.0])
    report = check_gradient(_flat, grad, x0)
    assert report.verdict == "inconclusive" and not report.passed, str(report)
    assert report.unresolved == ["x[0]", "x[1]", "x[2]"]
    assert "INCONCLUSIVE" in str(report)


def test_a_taylor_rate_that_any_gradient_would_pass_resolves_nothing():
    """f = 1e6 + |x - a|^2 near a: the remainder clears round-off only where its h^2 term
    dominates, so the Taylor test passes whatever g.v is; it must not make the check pass.
    At a minimum (rosen at 1) every check is blind to the gradient in the same way."""
    a = np.array([0.3, -0.7, 1.1])

    def f(x):
        return 1e6 + float((x - a) @ (x - a))

    for grad in (lambda x: 2 * (x - a), lambda x: -100 * (x - a)):
        report = check_gradient(f, grad, a + 5e-5)
        assert report.taylor["verdict"] == "passed"
        assert report.verdict == "inconclusive", str(report)
    assert check_gradient(rosen, rosen_der, np.ones(4)).verdict == "inconclusive"


def test_unresolved_coordinates_are_named():
    """Gradient entries from 1e-8 to 1e8: a sign flipped on an entry the differences cannot
    resolve passes there, but the report names it as unresolved, and the resolved ones still
    decide the verdict."""
    c = 10.0 ** np.arange(-8, 9)

    def f(x):
        return float(c @ np.sin(x))

    def grad(x):
        g = c * np.cos(x)
        g[1] *= -1.0  # 1e-7: below what differences of f ~ 1e8 resolve
        return g

    report = check_gradient(f, grad, np.full(c.size, 0.3))
    assert report.passed, str(report)
    assert "x[1]" in report.unresolved and "x[16]" not in report.unresolved
    assert f"{len(report.unresolved)} of {c.size} unresolved" in report.reasons[0]


# -- large networks ------------------------------------------------------------------


def test_large_network_random_directions_and_bisection_locate_a_bug():
    net = MLP([320, 300, 30, 10], activation="tanh", loss="cross_entropy")
    assert net.n_params >= 100_000
    rng = np.random.default_rng(1)
    theta = net.init(rng)
    Xl = rng.standard_normal((32, 320))
    yl = rng.integers(0, 10, 32)
    bad_index = net.layout.starts[1] + 1234  # inside layer 2: W

    def grad(t, *args):
        g = net.grad(t, *args)
        g[bad_index] *= 1.1
        return g

    good = check_gradient(net, theta, Xl, yl)
    assert good.mode == "directions" and good.passed, str(good)
    bad = check_gradient(
        net.loss,
        grad,
        theta,
        (Xl, yl),
        names=net.param_name,
        blocks=[
            ("layer 1", slice(0, net.layout.starts[1])),
            ("layer 2", slice(net.layout.starts[1], net.layout.starts[2])),
            ("layer 3", slice(net.layout.starts[2], net.n_params)),
        ],
    )
    assert not bad.passed
    assert bad.bad_blocks == ["layer 2"]
    assert bad.located == net.param_name(bad_index)
    assert bad.nfev < 400  # O(k + blocks + log n) evaluations, not O(n)


def _spread_net():
    net = MLP([40, 30, 5], activation="tanh", loss="mse")
    rng = np.random.default_rng(2)
    return net, net.init(rng), rng.standard_normal((16, 40)), rng.standard_normal((16, 5))


def test_directions_mode_blocks_give_ratios_and_coordinates_outside_them_are_found():
    net, theta, Xs, Ys = _spread_net()
    (_, (W2, _)), starts = net.layout.unpack(np.arange(net.n_params)), net.layout.starts
    b1 = slice(starts[0] + 40 * 30, starts[1])  # layer 1's bias

    def flipped(t, *args):
        g = net.grad(t, *args)
        g[b1] *= -1.0
        return g

    blocks = net.layout.blocks()
    report = check_gradient(net.loss, flipped, theta, (Xs, Ys), blocks=blocks, mode="directions")
    assert report.bad_blocks == ["layer 1: b"]
    assert report.blocks[0].ratio == pytest.approx(-1.0, abs=1e-6)
    # every entry of the block is wrong: both halves of a split fail, and the report says so
    assert "more than one is wrong" in report.located
    bad_index = int(W2[3, 7])

    def one_off(t, *args):
        g = net.grad(t, *args)
        g[bad_index] += 0.5
        return g

    partial = [b for b in blocks if b[0] != "layer 2: W"]  # leaves the bad entry out
    report = check_gradient(net.loss, one_off, theta, (Xs, Ys), blocks=partial, mode="directions")
    assert report.bad_blocks == ["(in no block)"]
    assert report.located == f"x[{bad_index}]"


def test_hessp_report_names_the_wrong_entries():
    x0 = np.array([-1.2, 1.0, 0.3, 2.0])

    def hessp(x, p):
        hp = rosen_hess_prod(x, p)
        hp[2] *= 1.5
        return hp

    report = check_gradient(rosen, rosen_der, x0, hessp=hessp)
    assert not report.passed
    assert [e["name"] for e in report.hessp["bad_entries"]] == ["x[2]"]
    assert "1 of 4 entries outside, worst x[2]" in str(report)


def test_assert_gradient_close_shows_the_report():
    from nncore.testing import assert_gradient_close

    assert_gradient_close(NET, THETA, X, Y, W)
    with pytest.raises(AssertionError, match=r"(?s)gradient check failed.*layer 2: W.*<-"):
        assert_gradient_close(NET.loss, mutant_grad(sign_flip), THETA, (X, Y, W), blocks=_blocks())


def test_taylor_round_off_follows_the_loss_terms_not_the_loss():
    """A saturated softmax: J ~ 2e-8 is logsumexp(z) - z_label with |z| near 12, so its
    round-off is ~eps * 12, not eps * J.  A right gradient must not fail the Taylor test
    (found by a random Hypothesis draw of test_central_differences_agree_away_from_kinks)."""
    net = MLP([3, 5, 2], activation="identity", loss="cross_entropy")
    theta = np.full(net.n_params, 2.0)
    theta[20] = 0.0
    report = check_gradient(net, theta, np.full((1, 3), -2.0), np.array([[1.0, 0.0]]))
    assert report.taylor["verdict"] != "failed"
    assert report.passed, str(report)
