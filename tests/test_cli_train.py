"""nncore train / predict / info on real files, the command-line conventions, nncore.plot and
the demo's picture and wording."""

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nncore
from nncore.cli import main
from nncore.tabular import load_model, read_table

ROOT = Path(__file__).resolve().parents[1]


def run(*argv, cwd=ROOT):
    """The real command line, ``python -m nncore`` (this checkout's nncore: cwd is first on
    the path)."""
    return subprocess.run(
        [sys.executable, "-m", "nncore", *map(str, argv)], capture_output=True, text=True, cwd=cwd
    )


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory):
    datasets = pytest.importorskip("sklearn.datasets")
    d = datasets.load_wine()
    path = tmp_path_factory.mktemp("wine") / "wine.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([n.replace("/", "_") for n in d.feature_names] + ["cultivar"])
        for row, t in zip(d.data.tolist(), d.target):
            w.writerow([repr(v) for v in row] + [d.target_names[t]])
    return path


def test_train_predict_info_on_wine_match_the_python_api(wine_csv, tmp_path):
    model, preds, curve = tmp_path / "wine.npz", tmp_path / "pred.csv", tmp_path / "curve.png"
    done = run(
        "train", wine_csv, "--target", "cultivar", "--hidden", "16", "--standardize",
        "--validation", "0.2", "--patience", "10", "--seed", "3", "--out", model, "--plot", curve,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for line in ("training loss", "validation loss", "validation accuracy", "iterations"):
        assert line in out
    accuracy = float(next(ln for ln in out.splitlines() if "validation accuracy" in ln).split()[-1])
    assert accuracy > 0.85 and curve.stat().st_size > 10_000
    done = run("predict", model, wine_csv, "--out", preds)
    assert done.returncode == 0, done.stderr
    written = preds.read_text().splitlines()
    net, theta, prep, meta = load_model(model)
    table = read_table(wine_csv, "cultivar")
    expected = prep.predict(net, theta, prep.transform(table))
    assert written[0] == "cultivar" and written[1:] == list(expected)
    # the model file is nncore.save's: nncore.load reads it, the preprocessing in metadata
    net2, theta2, meta2 = nncore.load(model)
    np.testing.assert_array_equal(theta2, theta)
    assert meta2["preprocessing"]["classes"] == ["class_0", "class_1", "class_2"]
    X = (table.X - np.array(prep.mean)) / np.array(prep.scale)
    labels = np.array(prep.classes)[np.argmax(net2.predict(theta2, X), axis=1)]
    assert list(labels) == written[1:]
    assert np.mean(labels == table.y) > 0.9
    info = run("info", model)
    assert (
        info.returncode == 0 and "classes                 class_0, class_1, class_2" in info.stdout
    )
    assert "275 parameters" in info.stdout and "validation accuracy" in info.stdout


def test_train_regression_from_npz_and_predict_to_stdout(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (80, 2))
    np.savez(tmp_path / "d.npz", X=X, y=np.sin(3 * X[:, 0]) + X[:, 1])
    model = tmp_path / "m.npz"
    code = main(["train", str(tmp_path / "d.npz"), "--hidden", "8", "--method", "lm",
                 "--out", str(model)])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0 and "(regression, target 'y')" in out
    assert float(next(ln for ln in out.splitlines() if "training R^2" in ln).split()[-1]) > 0.95
    assert main(["predict", str(model), str(tmp_path / "d.npz")]) == 0
    lines = capsys.readouterr().out.splitlines()
    net, theta, _, _ = load_model(model)
    assert lines[0] == "y"
    np.testing.assert_array_equal(np.array(lines[1:], dtype=float), net.predict(theta, X).ravel())


def _write(path, text):
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "No such file or directory"),
        ("no_target", "has no column 'label'; its columns are: a, b, c"),
        ("text_feature", "line 3, column 'b': 'x7' is not a number"),
        ("nan", "line 2, column 'a': 'nan' (not finite)"),
        ("empty", "has a header row but no data rows"),
        ("ragged", "line 3: 2 values, the header has 3"),
        ("out_folder", "cannot write"),
    ],
)
def test_train_rejects_bad_input_with_one_line_and_no_file(tmp_path, capsys, case, message):
    good = "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n"
    texts = {
        "no_target": "a,b,c\n1,2,3\n",
        "text_feature": "a,b,label\n1,2,x\n3,x7,y\n",
        "nan": "a,b,label\nnan,2,x\n3,4,y\n",
        "empty": "a,b,label\n",
        "ragged": "a,b,label\n1,2,x\n3,4\n",
    }
    data = tmp_path / "d.csv"
    if case != "missing":
        _write(data, texts.get(case, good))
    out = tmp_path / ("nofolder/m.npz" if case == "out_folder" else "m.npz")
    code = main(["train", str(data), "--target", "label", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert err.startswith("nncore train: ")
    assert list(tmp_path.glob("**/*.npz")) == []


def test_predict_rejects_foreign_models_and_mismatched_columns(tmp_path, capsys):
    data = _write(tmp_path / "d.csv", "a,b,label\n1,2,x\n3,4,y\n5,6,x\n7,8,y\n")
    model = tmp_path / "m.npz"
    assert (
        main(["train", str(data), "--target", "label", "--hidden", "3", "--out", str(model)]) == 0
    )
    capsys.readouterr()
    np.savez(tmp_path / "foreign.npz", W=np.zeros(3))
    other = _write(tmp_path / "o.csv", "a,c\n1,2\n")
    plain = tmp_path / "plain.npz"
    nncore.save(plain, nncore.MLP([2, 1]), np.zeros(3))
    out = tmp_path / "p.csv"
    for argv, message in [
        ([tmp_path / "foreign.npz", data], "is not an nncore model file"),
        ([plain, data], "carries no table preprocessing"),
        ([model, other], "has the feature columns ['a', 'c']; the model was trained on ['a', 'b']"),
        ([model, tmp_path / "none.csv"], "No such file or directory"),
    ]:
        assert main(["predict", *map(str, argv), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
        assert not out.exists()
    assert main(["info", str(tmp_path / "foreign.npz")]) == 2
    # a data file without the target column predicts as well
    assert main(["predict", str(model), str(_write(tmp_path / "x.csv", "a,b\n1,2\n"))]) == 0
    assert capsys.readouterr().out.splitlines()[1] in ("x", "y")


def test_conventions_version_help_module_and_option_errors():
    version = run("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"nncore {nncore.__version__}"
    bare = run()
    assert bare.returncode == 0 and "usage: nncore" in bare.stdout and "train" in bare.stdout
    bad = run("demo", "--seed", "abc")
    assert bad.returncode == 2 and "argument --seed: must be an integer, got 'abc'" in bad.stderr
    assert "_count" not in bad.stderr
    bad = run("train", "x.csv", "--target", "y", "--validation", "2")
    assert (
        bad.returncode == 2
        and "argument --validation: must be a number between 0 and 1, got '2'" in bad.stderr
    )
    bad = run("train", "x.csv")
    assert bad.returncode == 2 and "--target COLUMN is required" in bad.stderr


def test_check_reads_a_csv(tmp_path, capsys):
    rng = np.random.default_rng(0)
    rows = "\n".join(f"{a!r},{b!r},{c!r}" for a, b, c in rng.uniform(0, 1, (10, 3)).tolist())
    data = _write(tmp_path / "d.csv", "p,q,target\n" + rows + "\n")
    assert main(["check", "--sizes", "2,4,1", "--loss", "bce", "--data", str(data)]) == 0
    assert "10 samples" in capsys.readouterr().out


def test_demo_plot_and_wording(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "xor.png"
    assert main(["demo", "--seed", "1", "--plot", str(png)]) == 0  # seed 1: one plateau
    out = capsys.readouterr().out
    assert png.stat().st_size > 20_000
    assert "x the time" in out and "faster" not in out and "per start" in out
    assert "in total over its 2 starts" in out
    assert "start 1 at 0.1250 ended on a plateau" in out and "start 2" not in out
    assert main(["demo", "--seed", "1", "--plot", str(tmp_path / "no/xor.png")]) == 2
    assert "--plot" in capsys.readouterr().err and not (tmp_path / "no").exists()


def test_plots_return_their_axes_and_draw_the_run(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nncore import plot
    from nncore.seed import XOR_X, XOR_Y, seed_net

    net = seed_net()
    res = nncore.train(net, XOR_X, XOR_Y, method="L-BFGS-B", seed=1, n_starts=5, target=1 / 16,
                       validation=(XOR_X, XOR_Y))  # fmt: skip
    fig, axes = plt.subplots(1, 3)
    assert plot.loss_curve(res.history, ax=axes[0]) is axes[0]
    lines = axes[0].get_lines()
    np.testing.assert_array_equal(lines[0].get_ydata(), res.history.objective)
    np.testing.assert_array_equal(lines[1].get_ydata(), res.history.validation)
    assert len(lines) == 2 + len(res.history.restarts) >= 3 and axes[0].get_yscale() == "log"
    assert plot.decision_boundary(net, res.x, XOR_X, XOR_Y, ax=axes[1]) is axes[1]
    report = nncore.check_gradient(net, res.x, XOR_X, XOR_Y)
    assert plot.taylor(report, ax=axes[2]) is axes[2]
    fig.savefig(tmp_path / "all.png")
    assert (tmp_path / "all.png").stat().st_size > 10_000
    plt.close(fig)
    with pytest.raises(ValueError, match="needs 2 input features"):
        plot.decision_boundary(nncore.MLP([3, 1]), np.zeros(4), np.zeros((2, 3)), [0, 1])
    from scipy.optimize import rosen, rosen_der

    quick = nncore.check_gradient(rosen, rosen_der, np.array([-1.2, 1.0, 0.5]))
    assert quick.taylor["verdict"] == "not run"  # the default profile had no need of it
    with pytest.raises(ValueError, match="no Taylor test to draw.*profile='thorough'"):
        plot.taylor(quick)


def test_import_nncore_imports_no_optional_extra():
    code = (
        "import sys, nncore, nncore.cli; "
        "print(sorted(m for m in ('matplotlib', 'tqdm', 'sklearn', 'sphinx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
