"""Fixed, seeded cases against the JAX reference: one per allowed (output activation, loss) pair
and one per hidden activation, so that no combination depends on what Hypothesis draws.

Each case compares nncore's gradient, ``hessp`` and ``gnvp`` (and, for mse, ``residuals`` and
``jacobian``) with :mod:`nncore.jax_reference`, with the tolerances of the property tests
(tests/test_gradients.py, tests/test_curvature.py): ``agree``, that is ``JAX_RTOL`` relative or
rounding below ``ROUNDING_ATOL``, at the loss for the gradient, residuals and Jacobian and at
``product_scale`` for the curvature products.  Against JAX these cases agree to 1e-14 relative or better.

Planted bugs these tests were confirmed to catch (each planted alone, the module run, the bug
reverted; "hessp/gnvp" is ``test_curvature_product_equals_jax``, "residuals" is
``test_residuals_and_jacobian_equal_jax``, "gradient" is ``test_loss_and_gradient_equal_jax``):

* the sign of the softmax Hessian-vector term ``Ra * (g - <g, a>)`` flipped, and the
  ``<g, Ra>`` term dropped (mse through softmax): hessp, both mse-softmax cases;
* a wrong second derivative of one activation: tanh'' with its sign flipped (every tanh case),
  sigmoid'' with ``1 + 2a``, softplus'' halved, elu'' zero for ``z <= 0``, gelu'' with
  ``1 - z^2``, silu'' with ``1 + ...``: hessp, the case with that activation hidden and the one
  with it as mse output;
* a wrong first derivative (leaky_relu' slope 0.1): gradient, hessp, gnvp, residuals;
* the ``l2 * V`` term missing from gnvp, or from hessp: that product, every case with l2 > 0;
* a term of the R-backward pass missing (``D_l V_l``, or ``D_l^T R{A_{l-1}}``): hessp, every
  case;
* the sample weights missing from the Hessian's ``R{G_L}`` (mse): hessp, the weighted cases;
* the output activation's Jacobian left out of gnvp's way back (mse): gnvp, every mse case
  with a non-identity output but relu (whose 0/1 mask applied twice is the same product);
* the mse residuals scaled by ``sqrt(omega_i)`` instead of ``sqrt(omega_i / n_out)``: residuals,
  every mse case; the l2 residuals, or the jacobian's l2 rows, scaled by ``sqrt(l2)`` instead of
  ``sqrt(l2 / 2)``: residuals, every mse case with l2 > 0;
* the loss curvature wrong: bce's ``s (1 - s)`` without ``1 / n_out``, cross_entropy's
  ``a a^T`` term dropped, mse's ``2 / n_out`` halved: hessp and gnvp of every case of that loss.
"""

from typing import NamedTuple

import numpy as np
import pytest
from test_curvature import product_scale

from nncore import ACTIVATIONS, MLP
from nncore.testing import HIDDEN_ACTIVATIONS
from nncore.verify import agree, near_kink

jax_reference = pytest.importorskip("nncore.jax_reference")

N_SAMPLES = 6


class Case(NamedTuple):
    """One fixed network and data set: ``targets`` is ``"real"`` (mse), ``"unit"`` (bce),
    ``"labels"`` or ``"probabilities"`` (cross_entropy)."""

    sizes: tuple[int, ...]
    hidden: str
    output: str
    loss: str
    targets: str
    l2: float
    weighted: bool

    @property
    def id(self) -> str:
        sizes = "-".join(map(str, self.sizes))
        weights = "weighted" if self.weighted else "unweighted"
        return f"{sizes}-{self.hidden}-{self.output}-{self.loss}-{self.targets}-l2={self.l2:g}-{weights}"


# one case per allowed (output activation, loss) pair, behind tanh hidden units, and a second
# with the other choice of l2 and weights for softmax under mse, bce and probability rows
OUTPUT_CASES = [
    Case((3, 4, 3), "tanh", output, "mse", "real", l2, weighted)
    for output, l2, weighted in (
        ("identity", 0.0, False),
        ("tanh", 0.1, True),
        ("sigmoid", 0.0, True),
        ("relu", 0.1, False),
        ("leaky_relu", 0.0, True),
        ("softplus", 0.1, True),
        ("elu", 0.0, False),
        ("gelu", 0.1, False),
        ("silu", 0.0, True),
        ("softmax", 0.1, True),
    )
] + [
    Case((3, 4, 3), "tanh", "softmax", "mse", "real", 0.0, False),
    Case((3, 4, 3), "tanh", "sigmoid", "bce", "unit", 0.0, True),
    Case((3, 4, 3), "tanh", "sigmoid", "bce", "unit", 0.1, False),
    Case((3, 4, 3), "tanh", "softmax", "cross_entropy", "labels", 0.1, True),
    Case((3, 4, 3), "tanh", "softmax", "cross_entropy", "probabilities", 0.0, True),
    Case((3, 4, 3), "tanh", "softmax", "cross_entropy", "probabilities", 0.1, False),
]
# one case per hidden activation, in both hidden layers of a 3-4-4-2 network; the losses take
# turns, l2 > 0 every other case, sample weights in two of every four
_LOSSES = [
    ("identity", "mse", "real"),
    ("sigmoid", "bce", "unit"),
    ("softmax", "cross_entropy", "labels"),
]
HIDDEN_CASES = [
    Case((3, 4, 4, 2), hidden, *_LOSSES[k % 3], 0.1 * (k % 2), k % 4 < 2)
    for k, hidden in enumerate(HIDDEN_ACTIVATIONS)
]
CASES = OUTPUT_CASES + HIDDEN_CASES
MSE_CASES = [case for case in CASES if case.loss == "mse"]


def _ids(cases):
    return [case.id for case in cases]


def build(case: Case):
    """``(net, theta, v, X, y, w)`` for ``case``, drawn from a generator seeded by its id."""
    net = MLP(
        list(case.sizes), activation=case.hidden, output=case.output, loss=case.loss, l2=case.l2
    )
    rng = np.random.default_rng(list(case.id.encode()))
    n_in, n_out = case.sizes[0], case.sizes[-1]
    theta = rng.uniform(-1.5, 1.5, net.n_params)
    v = rng.uniform(-1.0, 1.0, net.n_params)
    X = rng.uniform(-2.0, 2.0, (N_SAMPLES, n_in))
    if case.targets == "real":
        y = rng.uniform(-1.0, 1.0, (N_SAMPLES, n_out))
    elif case.targets == "unit":
        y = rng.uniform(0.0, 1.0, (N_SAMPLES, n_out))
    elif case.targets == "labels":
        y = rng.permutation(np.arange(N_SAMPLES) % n_out)  # every class present
    else:
        y = rng.dirichlet(np.ones(n_out), N_SAMPLES)
    w = rng.uniform(0.0, 3.0, N_SAMPLES) if case.weighted else None
    return net, theta, v, X, y, w


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_case_reaches_both_branches_away_from_the_kinks(case):
    """The data are away from the relu kinks, and the pre-activations of every piecewise layer
    (relu, leaky_relu, elu) take both signs, so both branches and their derivatives are checked."""
    net, theta, _, X, _, _ = build(case)
    assert not near_kink(net, theta, X)
    for Z, name in zip(net.forward(theta, X).Z, net.activations):
        if ACTIVATIONS[name].kink or ACTIVATIONS[name].kink2:
            assert (Z > 0).any() and (Z < 0).any()


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_loss_and_gradient_equal_jax(case):
    net, theta, _, X, y, w = build(case)
    J, g = net.loss_and_grad(theta, X, y, w)
    J_ref, g_ref = jax_reference.loss_and_grad(net, theta, X, y, w)
    assert agree(J, J_ref, J_ref)
    assert agree(g, g_ref, J_ref)


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
@pytest.mark.parametrize("product", ["hessp", "gnvp"])
def test_curvature_product_equals_jax(case, product):
    net, theta, v, X, y, w = build(case)
    J = net.loss(theta, X, y, w)
    Hv = getattr(net, product)(theta, v, X, y, w)
    ref = getattr(jax_reference, product)(net, theta, v, X, y, w)
    assert agree(Hv, ref, product_scale(net, theta, J, v))


@pytest.mark.parametrize("case", MSE_CASES, ids=_ids(MSE_CASES))
def test_residuals_and_jacobian_equal_jax(case):
    net, theta, _, X, y, w = build(case)
    J = net.loss(theta, X, y, w)
    assert agree(net.residuals(theta, X, y, w), jax_reference.residuals(net, theta, X, y, w), J)
    Jac, Jac_ref = net.jacobian(theta, X, y, w), jax_reference.jacobian(net, theta, X, y, w)
    assert Jac.shape == Jac_ref.shape
    assert agree(Jac.ravel(), Jac_ref.ravel(), J)
