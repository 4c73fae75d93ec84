import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nncore.cli import main


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_demo_solves_xor_and_reports(seed, capsys):
    assert main(["demo", "--seed", str(seed)]) == 0
    out = capsys.readouterr().out
    assert "solves XOR" in out and "check_grad" in out and "JAX relative error" in out
    row = next(line for line in out.splitlines() if line.startswith("solves XOR"))
    assert row.split()[-1] == "yes"


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("nncore")  # installed by pip beside python
    done = subprocess.run([str(script), "demo", "--seed", "5"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "loss evaluations" in done.stdout


def test_check_passes_and_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "taylor.png"
    code = main(
        [
            "check",
            "--sizes",
            "3,4,2",
            "--activation",
            "gelu",
            "--loss",
            "cross_entropy",
            "--hessp",
            "--plot",
            str(png),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "gradient check: PASSED" in out and png.stat().st_size > 10_000


def test_check_reads_a_data_file_and_rejects_bad_input(tmp_path, capsys):

    path = tmp_path / "data.npz"
    rng = np.random.default_rng(0)
    np.savez(
        path,
        X=rng.standard_normal((10, 3)),
        y=rng.uniform(0, 1, 10),
        sample_weight=rng.uniform(0.5, 1.5, 10),
    )
    assert main(["check", "--sizes", "3,4,1", "--loss", "bce", "--data", str(path)]) == 0
    assert "10 samples" in capsys.readouterr().out
    assert main(["check", "--sizes", "2,4,1", "--loss", "bce", "--data", str(path)]) == 2
    assert "X must have 2 features" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--sizes", "a,b"], "--sizes must be integers separated by commas, got 'a,b'"),
        (["--data", "no/such/file.npz"], "No such file or directory"),
        (["--data", "NOY"], "has no array y"),
        (["--data", "NPY"], "an .npz file with arrays X and y is needed"),
        (["--plot", "no/such/dir/taylor.png"], "No such file or directory"),
    ],
)
def test_check_reports_bad_arguments_on_stderr(tmp_path, capsys, argv, message):
    if "NOY" in argv:
        path = tmp_path / "noy.npz"
        np.savez(path, X=np.zeros((3, 2)))
        argv = ["--data", str(path)]
    if "NPY" in argv:
        path = tmp_path / "x.npy"
        np.save(path, np.zeros((3, 2)))
        argv = ["--data", str(path)]
    assert main(["check", *argv]) == 2
    captured = capsys.readouterr()
    assert message in captured.err


@pytest.mark.parametrize("argv", [["demo", "--seed", "-1"], ["check", "--samples", "0"]])
def test_negative_counts_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and "must be at least" in capsys.readouterr().err


def test_check_exits_non_zero_when_the_gradient_is_wrong(monkeypatch, capsys):
    from nncore import kernels

    original = kernels.backward

    def broken(*args, **kwargs):
        g = original(*args, **kwargs)
        g[0] += 1e-3
        return g

    monkeypatch.setattr(kernels, "backward", broken)
    assert main(["check", "--sizes", "2,3,1"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "layer 1: W[0, 0]" in out
