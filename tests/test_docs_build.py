"""The documentation site builds with warnings as errors: a broken reference, a docstring
numpydoc cannot parse or a gallery example that raises fails this test (and CI)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_sphinx_builds_the_site_without_warnings(tmp_path):
    for module in ("sphinx", "pydata_sphinx_theme", "numpydoc", "myst_parser", "sphinx_gallery"):
        pytest.importorskip(module)
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-5000:]
    html = tmp_path / "html"
    assert (html / "api.html").exists() and (html / "auto_examples" / "plot_xor.html").exists()
    api = (html / "generated" / "nncore.train.html").read_text(encoding="utf-8")
    assert "validation" in api and "max_time" in api
    assert list((html / "_images").glob("sphx_glr_plot_xor_*.png"))
