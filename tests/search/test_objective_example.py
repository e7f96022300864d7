"""docs/objectives.md's example runs as written: the Python API, then the CLI's --objective
resuming it, on a real warehouse file with real training (examples/hgb_objective.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def _env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_the_docs_show_the_example_files_as_they_are():
    doc = (ROOT / "docs" / "objectives.md").read_text()
    blocks = re.findall(r"```(?:python|yaml)\n(.*?)```", doc, flags=re.S)
    for name in ("hgb_objective.py", "hgb_space.yaml"):
        assert (EXAMPLES / name).read_text() in blocks, name
    assert "docs/objectives.md" in (ROOT / "README.md").read_text()


def test_the_example_runs_in_python_and_the_cli_resumes_it(tmp_path):
    db = str(tmp_path / "w.duckdb")
    py = subprocess.run(
        [sys.executable, str(EXAMPLES / "hgb_objective.py"), db],
        capture_output=True, text=True, env=_env(), timeout=600,
    )  # fmt: skip
    assert py.returncode == 0, py.stderr
    best = float(py.stdout.split()[0])
    assert 0.9 < best <= 1.0
    cli = subprocess.run(
        [sys.executable, "-m", "metaopt_bayes", "--db", db, "optimize", "-d", "breast_cancer",
         "-m", "my_hgb", "--objective", "hgb_objective:objective", "--space", "hgb_space.yaml",
         "--metric", "val_accuracy", "-t", "9", "--method", "map", "--format", "json"],
        capture_output=True, text=True, env=_env(), cwd=EXAMPLES, timeout=600,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    out = json.loads(cli.stdout)[0]
    assert out["trials"] == 9 and out["new_trials"] == 1 and out["best_value"] >= best - 1e-9
    assert "resuming: 8 of --trials 9" in cli.stderr
    from warehouse import Warehouse

    with Warehouse(db, read_only=True) as wh:
        runs = wh.sql("SELECT duration_s FROM runs WHERE model = 'my_hgb'")
        arch = wh.sql("SELECT DISTINCT name FROM run_architecture")
    assert len(runs) == 9 and (runs.duration_s > 0).all()
    assert arch.name.tolist() == ["n_trees"]
