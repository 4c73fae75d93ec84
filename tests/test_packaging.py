"""The distribution is ``nncore-scipy``: the name ``nncore`` on PyPI belongs to an unrelated
project, so no install instruction in the repository may name it, and nothing may read the
installed metadata of a distribution called ``nncore``."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTION = "nncore-scipy"
WALKED = ["nncore", "tests", "docs", "benchmarks", "README.md", "pyproject.toml"]
"""What is searched where git cannot list the tracked files (an unpacked sdist)."""

INSTALL = re.compile(r"\b(?:pip3?|pipx)\s+install\b")
ARGUMENT = re.compile(r"""(?:\s|#)+(?P<q>[`"']?)(?P<arg>[\w.\[\],<>=!~*/:@+\\-]+)(?P=q)""")
"""One argument after ``pip install``, quoted or not; a comment's ``#`` may lead a wrapped one,
and a backslash may escape it in a regular expression (``nncore\\[jax\\]``)."""
PROSE = {"in", "or", "and", "of", "for", "to", "then", "if", "from", "with", "which", "the"}
"""A word that ends the arguments of an install command written inside a sentence:
``pip install ".[jax]" in a checkout of nncore`` names no distribution ``nncore``."""
WRONG_DISTRIBUTION = re.compile(r"nncore(?:\[[^\]]*\])?(?:[<>=!~;@].*)?", re.IGNORECASE)
"""``nncore``, ``nncore[jax]``, ``nncore>=0.1``: PyPI's unrelated project, not this one."""
METADATA = re.compile(
    r"""\b(?:version|metadata|distribution|files|requires)\(\s*["']nncore["']\s*\)"""
)
"""``importlib.metadata.version("nncore")`` and friends: the metadata of the wrong project."""


def wrong_installs(text: str) -> list[str]:
    """The install instructions in ``text`` that name the distribution ``nncore``."""
    found = []
    for match in INSTALL.finditer(text):
        pos = match.end()
        while (arg := ARGUMENT.match(text, pos)) and arg["arg"].lower() not in PROSE:
            pos = arg.end()
            if WRONG_DISTRIBUTION.fullmatch(arg["arg"].replace("\\", "")):
                found.append(" ".join(text[match.start() : pos].split()))
                break
    return found


def tracked_text_files() -> list[Path]:
    """The repository's tracked text files (``git ls-files``), else the walked folders."""
    paths = None
    if shutil.which("git") and (ROOT / ".git").exists():
        result = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False
        )
        if result.returncode == 0:
            paths = [ROOT / name for name in result.stdout.decode().split("\0") if name]
    if paths is None:
        paths = []
        for name in WALKED:
            top = ROOT / name
            paths += [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
    texts = []
    for path in paths:
        if path.resolve() == Path(__file__).resolve() or not path.is_file():
            continue  # this file spells out the wrong instructions it looks for
        data = path.read_bytes()
        if b"\0" not in data:
            texts.append(path)
    return texts


@pytest.mark.parametrize(
    "text",
    [
        'pip install "nncore[jax]"',
        "pip install nncore",
        "python -m pip install -U nncore[threads]",
        "`pip install 'nncore[plot]'`",
        '(``pip install\n"nncore[threads]"``)',
        "pip install numpy nncore>=0.1",
        "pipx install nncore",
        "match=r'pip install \"nncore\\[jax\\]\"'",  # as the test of the old message read
    ],
)
def test_the_check_finds_an_install_of_the_wrong_distribution(text):
    assert wrong_installs(text)


@pytest.mark.parametrize(
    "text",
    [
        'pip install "nncore-scipy[jax]"',
        "pip install nncore-scipy",
        'pip install ".[jax]"',
        "pip install . && nncore demo",
        'pip install jax jaxlib (or pip install ".[jax]" in a checkout of nncore)',
        "pip install threadpoolctl, and nncore uses it",
        "import nncore",
    ],
)
def test_the_check_passes_the_right_distribution_and_prose(text):
    assert wrong_installs(text) == []


def test_no_install_instruction_names_another_distribution():
    files = tracked_text_files()
    assert any(path.name == "README.md" for path in files)
    bad = []
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        rel = path.relative_to(ROOT)
        bad += [f"{rel}: {found}" for found in wrong_installs(text)]
        bad += [f"{rel}: {found.group()}" for found in METADATA.finditer(text)]
    assert bad == [], "\n".join(bad)


def test_the_distribution_is_named_nncore_scipy():
    toml = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")
    project = toml.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == DISTRIBUTION
    assert project["scripts"]["nncore"] == "nncore.cli:main"
    assert {"jax", "test", "threads", "plot", "bench"} <= set(project["optional-dependencies"])
    # one version, nncore/_version.py's, which setuptools reads
    assert project["dynamic"] == ["version"] and "version" not in project
    dynamic = toml.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert dynamic["setuptools"]["dynamic"]["version"] == {"attr": "nncore._version.__version__"}
