import subprocess
import sys
from pathlib import Path

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
