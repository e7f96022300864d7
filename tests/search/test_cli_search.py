"""CLI: recommend / optimize / demo are registered, documented, and fail with one line."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main


@pytest.mark.parametrize("cmd", ["recommend", "optimize", "demo"])
def test_help_has_an_example(cmd):
    out = CliRunner().invoke(main, [cmd, "--help"])
    assert out.exit_code == 0
    assert "Example:" in out.output


def test_space_and_candidates_are_exclusive(tmp_path):
    db = tmp_path / "w.duckdb"
    for cmd in ("recommend", "optimize"):
        out = CliRunner().invoke(
            main,
            [
                "--db",
                str(db),
                cmd,
                "-d",
                "x",
                "-m",
                "svc",
                "--space",
                "a.yaml",
                "--candidates",
                "b.csv",
            ],
        )
        assert out.exit_code == 1
        assert "not both" in out.output
