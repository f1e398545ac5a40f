"""The project's linters, run as tests so that `make test` and CI enforce them."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
BIN = Path(sys.executable).parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )


@pytest.mark.parametrize(
    "command",
    [
        ("ansible-lint", "--profile", "production", "--nocolor"),
        ("yamllint", "--strict", "."),
        ("ruff", "check", "."),
        ("ruff", "format", "--check", "bridge", "tests", "roles"),
        ("mypy",),
    ],
    ids=["ansible-lint", "yamllint", "ruff", "ruff-format", "mypy"],
)
def test_lint(command):
    result = run(*command)

    assert result.returncode == 0, result.stdout + result.stderr
