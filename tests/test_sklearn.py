"""nncore.sklearn: scikit-learn's estimator contract (check_estimator), its objective to 1e-10,
and the tools scikit-learn users run (Pipeline, GridSearchCV, cross_val_score, clone, pickle,
joblib)."""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")

import joblib  # noqa: E402
import sklearn.neural_network as skn  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from nncore.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

LOSS_RTOL = 1e-10
"""scikit-learn's loss_ against ours at the same weights: both sum the same float64 terms in a
different order (and scikit-learn takes log of probabilities, nncore log-sum-exp of logits),
so they agree to a few ulps of the sum, far inside 1e-10, the issue's bound."""
PREDICT_RTOL = 1e-12
"""Predictions of the same weights: X @ W.T against X @ coefs_, one product per layer in a
different summation order; a few ulps (1.3e-15 measured)."""


@parametrize_with_checks(
    [
        MLPClassifier((5,), max_iter=100, random_state=0),
        MLPRegressor((5,), max_iter=100, random_state=0),
    ]
)
def test_check_estimator(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


def test_import_nncore_does_not_import_sklearn():
    code = "import nncore, sys; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_without_sklearn_the_import_error_says_what_to_install():
    code = "import sys; sys.modules['sklearn'] = None; import nncore.sklearn"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode != 0
    assert "pip install scikit-learn" in done.stderr and '".[sklearn]"' in done.stderr
    assert "nncore[" not in done.stderr  # the PyPI project named nncore is another one


def _data(seed=0, n=60, d=4):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng


TARGETS = {
    "binary": lambda X, rng: np.where(X[:, 0] + 0.5 * rng.normal(size=len(X)) > 0, "yes", "no"),
    "multiclass": lambda X, rng: rng.integers(0, 3, len(X)) + 10,
    "multilabel": lambda X, rng: (X[:, :3] + rng.normal(size=(len(X), 3)) > 0).astype(int),
    "single": lambda X, rng: X[:, 0] - X[:, 1] ** 2,
    "multi-output": lambda X, rng: np.column_stack([X[:, 0], np.sin(X[:, 1])]),
}


@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_loss_equals_sklearns_at_its_weights(kind, weighted):
    X, rng = _data()
    y = TARGETS[kind](X, rng)
    sw = rng.uniform(0.2, 3.0, len(X)) if weighted else None
    regression = kind in ("single", "multi-output")
    Sk, Ours = (
        (skn.MLPRegressor, MLPRegressor) if regression else (skn.MLPClassifier, MLPClassifier)
    )
    sk = Sk(
        hidden_layer_sizes=(6, 4),
        activation="tanh",
        solver="lbfgs",
        alpha=0.7,
        max_iter=15,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X, y, sample_weight=sw)
    ours = Ours.from_sklearn(sk)
    assert ours.training_loss(X, y, sample_weight=sw) == pytest.approx(sk.loss_, rel=LOSS_RTOL)
    if regression:
        np.testing.assert_allclose(ours.predict(X), sk.predict(X), rtol=PREDICT_RTOL, atol=0)
    else:
        np.testing.assert_array_equal(ours.predict(X), sk.predict(X))
        np.testing.assert_allclose(ours.predict_proba(X), sk.predict_proba(X), rtol=PREDICT_RTOL)
    # the alpha term matters here: without it the loss differs by far more than the tolerance
    no_alpha = Ours.from_sklearn(sk.set_params(alpha=0.0))
    assert (
        abs(no_alpha.training_loss(X, y, sample_weight=sw) - sk.loss_) > 1e3 * LOSS_RTOL * sk.loss_
    )


@pytest.mark.parametrize("kind", list(TARGETS))
def test_fit_reports_the_loss_it_trained(kind):
    X, rng = _data(1)
    y = TARGETS[kind](X, rng)
    Est = MLPRegressor if kind in ("single", "multi-output") else MLPClassifier
    est = Est((5,), alpha=0.3, max_iter=50, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert est.loss_ == pytest.approx(est.training_loss(X, y), rel=1e-12)
    assert est.loss_curve_[-1] == pytest.approx(est.loss_, rel=1e-12)
    assert est.best_loss_ == min(est.loss_curve_)
    assert len(est.coefs_) == est.n_layers_ - 1 == 2
    assert est.coefs_[0].shape == (4, 5) and est.intercepts_[1].shape == (est.n_outputs_,)
    assert est.predict(X).shape == np.shape(y)
    if Est is MLPClassifier:
        proba = est.predict_proba(X)
        assert proba.shape == (len(X), 2 if kind == "binary" else 3)
        np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba))


@pytest.mark.parametrize(
    "method", ["L-BFGS-B", "CG", "BFGS", "Newton-CG", "trust-krylov", "TNC", "trust-constr"]
)
def test_early_stopping_keeps_the_best_validation_weights(method):
    X, rng = _data(2, n=200, d=5)
    y = (X[:, 0] * X[:, 1] + 0.8 * rng.normal(size=len(X)) > 0).astype(int)  # noisy: overfits
    est = MLPClassifier(
        (30,),
        alpha=0.0,
        method=method,
        early_stopping=True,
        n_iter_no_change=3,
        max_iter=300,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    scores = est.validation_scores_
    assert est.best_loss_ is None and est.best_validation_score_ == max(scores)
    assert est.n_iter_ < 300  # stopped early
    # stopped after more than n_iter_no_change iterations without a tol improvement
    best = int(np.argmax(scores))
    assert len(scores) - 1 - best >= 3
    # the kept weights are the best ones: rescoring them on the same split gives the best score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state

    rs = check_random_state(0)
    rs.randint(np.iinfo(np.int32).max)
    _, Xv, _, yv = train_test_split(X, y, test_size=0.1, random_state=rs, stratify=y)
    assert est.score(Xv, yv) == est.best_validation_score_


@pytest.mark.parametrize("method", ["L-BFGS-B", "lm", "trf"])
def test_early_stopping_regressor(method):
    X, rng = _data(3, n=120)
    y = X[:, 0] + 0.1 * rng.normal(size=len(X))
    est = MLPRegressor((8,), method=method, early_stopping=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    assert len(est.validation_scores_) >= 2  # scored after every iteration, lm's too
    assert est.best_validation_score_ == max(est.validation_scores_) > 0.9


def test_warm_start_continues_from_the_last_theta():
    X, rng = _data(4)
    y = X[:, 0] ** 2
    est = MLPRegressor((6,), max_iter=5, warm_start=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
        first = est.loss_
        theta = est.theta_.copy()
        est.fit(X, y)
    assert est.loss_curve_[0] < first  # starts where the last fit ended and goes down
    assert est.optimize_result_.history[0] == pytest.approx(first / 0.5, rel=1e-12)
    cold = clone(est).set_params(warm_start=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        cold.fit(X, y)
        again = clone(cold).fit(X, y)
    np.testing.assert_array_equal(cold.predict(X[:3]), again.predict(X[:3]))  # seeded: repeatable
    assert not np.array_equal(theta, est.theta_)
    clf = MLPClassifier((3,), warm_start=True, max_iter=5, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, X[:, 0] > 0)
        with pytest.raises(ValueError, match="same classes"):
            clf.fit(X, np.where(X[:, 0] > 0, "a", "b"))
    np.testing.assert_array_equal(clf.classes_, [False, True])  # the failed fit changed nothing


def test_every_method_and_activation_trains():
    X, rng = _data(5, n=40, d=3)
    y = X[:, 0] - X[:, 2]
    for method in [
        "L-BFGS-B",
        "CG",
        "BFGS",
        "Newton-CG",
        "trust-ncg",
        "trust-krylov",
        "TNC",
        "lm",
        "trf",
    ]:
        est = MLPRegressor((4,), activation="tanh", method=method, max_iter=30, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        assert est.score(X, y) > 0.9, method
    for activation in [
        "identity",
        "logistic",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "softplus",
        "elu",
        "gelu",
        "silu",
    ]:
        est = MLPRegressor((4,), activation=activation, max_iter=20, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(X, y)
        assert est.net_.activations[0] == {"logistic": "sigmoid"}.get(activation, activation)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"method": "Nelder-Mead"}, ValueError, "method must be one of"),
        ({"alpha": -1.0}, ValueError, "alpha must be finite and >= 0"),
        ({"hidden_layer_sizes": (3, 0)}, ValueError, "at least 1"),
        ({"hidden_layer_sizes": "3"}, TypeError, "hidden_layer_sizes"),
        ({"activation": "softmax"}, ValueError, "softmax"),
        ({"max_iter": 0}, ValueError, "max_iter must be at least 1"),
        ({"validation_fraction": 1.0}, ValueError, "validation_fraction"),
        ({"curvature": "fisher"}, ValueError, "curvature"),
        ({"n_starts": 1.5}, TypeError, "n_starts must be an int"),
    ],
)
def test_bad_parameters_fail_in_fit_with_clear_errors(params, error, match):
    X, _ = _data()
    est = MLPRegressor(**params)  # stored unchecked
    assert est.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(error, match=match):
        est.fit(X, X[:, 0])


def test_n_starts_keeps_the_lowest_loss():
    X, rng = _data(6, n=30)
    y = np.sign(X[:, 0] * X[:, 1])
    single = MLPClassifier((3,), max_iter=60, random_state=0, n_starts=1)
    multi = MLPClassifier((3,), max_iter=60, random_state=0, n_starts=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        single.fit(X, y)
        multi.fit(X, y)
    assert multi.loss_ <= single.loss_  # the first start is the same, the others may be better


def test_pipeline_gridsearch_cross_val_score_clone_pickle_joblib(tmp_path):
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[::3], y[::3]
    pipe = make_pipeline(StandardScaler(), MLPClassifier((5,), max_iter=50, random_state=0))
    grid = GridSearchCV(pipe, {"mlpclassifier__alpha": [1e-4, 1.0]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
        scores = cross_val_score(pipe, X, y, cv=3)
    assert grid.best_score_ > 0.9 and scores.min() > 0.85
    est = grid.best_estimator_
    twin = clone(est)
    assert twin.get_params()["mlpclassifier__alpha"] == est.get_params()["mlpclassifier__alpha"]
    assert not hasattr(twin[-1], "theta_")
    for restored in (pickle.loads(pickle.dumps(est)), _joblib_round_trip(est, tmp_path)):
        np.testing.assert_array_equal(restored.predict_proba(X), est.predict_proba(X))


def _joblib_round_trip(est, tmp_path):
    path = tmp_path / "est.joblib"
    joblib.dump(est, path)
    return joblib.load(path)


def test_string_labels_and_feature_names():
    pd = pytest.importorskip("pandas")
    X, rng = _data(7)
    frame = pd.DataFrame(X, columns=list("abcd"))
    y = np.array(["cat", "dog", "emu"])[rng.integers(0, 3, len(X))]
    clf = MLPClassifier((4,), max_iter=30, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(frame, y)
    assert list(clf.feature_names_in_) == list("abcd")
    assert set(clf.predict(frame)) <= {"cat", "dog", "emu"} and clf.classes_.dtype.kind == "U"


def test_inputs_are_not_modified():
    X, rng = _data(8)
    y = rng.integers(0, 3, len(X))
    sw = rng.uniform(0.5, 1.5, len(X))
    copies = X.copy(), y.copy(), sw.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        MLPClassifier((4,), max_iter=10, early_stopping=True, random_state=0).fit(X, y, sw)
    for a, b in zip((X, y, sw), copies):
        np.testing.assert_array_equal(a, b)


# -- model files ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
@pytest.mark.parametrize("kind", ["binary", "multiclass", "multilabel", "multi-output"])
def test_save_load_round_trip(tmp_path, suffix, kind):
    if suffix == ".safetensors":
        pytest.importorskip("safetensors")
    from nncore.sklearn import load

    X, rng = _data(9)
    y = TARGETS[kind](X, rng)
    Est = MLPRegressor if kind == "multi-output" else MLPClassifier
    est = Est(
        (4, 3),
        activation="tanh",
        alpha=0.01,
        max_iter=20,
        random_state=3,
        early_stopping=kind == "binary",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    path = tmp_path / f"model{suffix}"
    est.save(path)
    back = load(path)
    assert type(back) is Est and back.get_params() == est.get_params()
    np.testing.assert_array_equal(back.theta_, est.theta_)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    for name in [
        "n_features_in_",
        "n_iter_",
        "loss_",
        "best_loss_",
        "loss_curve_",
        "validation_scores_",
        "out_activation_",
    ]:
        assert getattr(back, name) == getattr(est, name), name
    if Est is MLPClassifier:
        np.testing.assert_array_equal(back.classes_, est.classes_)
        assert back.classes_.dtype == est.classes_.dtype
        np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    with warnings.catch_warnings():  # a loaded estimator refits like a fresh one
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.testing.assert_array_equal(
            clone(back).fit(X, y).predict(X), clone(est).fit(X, y).predict(X)
        )


def test_load_refuses_a_plain_network_file(tmp_path):
    import nncore
    from nncore.sklearn import load

    net = nncore.MLP([2, 3, 1])
    nncore.save(tmp_path / "net.npz", net, net.init(seed=0))
    with pytest.raises(ValueError, match="no estimator"):
        load(tmp_path / "net.npz")
    with pytest.raises(Exception, match="not fitted"):
        MLPRegressor().save(tmp_path / "unfitted.npz")


def test_skops_round_trip(tmp_path):
    sio = pytest.importorskip("skops.io")
    X, rng = _data(10)
    y = TARGETS["multiclass"](X, rng)
    est = MLPClassifier((4,), max_iter=20, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y)
    path = tmp_path / "model.skops"
    sio.dump(est, path)
    untrusted = sio.get_untrusted_types(file=path)
    back = sio.load(path, trusted=untrusted)
    np.testing.assert_array_equal(back.predict_proba(X), est.predict_proba(X))
    assert all(t.startswith(("nncore.", "scipy.", "numpy.", "builtins.")) for t in untrusted), (
        untrusted
    )


def test_verbose_prints_the_loss_of_every_iteration(capsys):
    X, _ = _data(11)
    est = MLPRegressor((3,), max_iter=3, verbose=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, X[:, 0])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == est.n_iter_ == 3
    assert lines[-1] == f"Iteration 3, loss = {est.loss_curve_[-1]:.8f}"
