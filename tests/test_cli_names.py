"""CLI: the names users see are the same everywhere — `-d/--dataset`, `-m/--model` (a model
family), `--trials` (how many to train), `--learner` and `metaopt learners` (saved
meta-models), run sources `<origin>:<detail>` — and the old spellings still work, hidden."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from metaopt_bayes.cli import main
from warehouse import sources


def _walk(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, cmd in group.commands.items():
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, (*prefix, name))


COMMANDS = dict(_walk(main))
IDS = [" ".join(p) for p in COMMANDS]


def _options(cmd: click.Command) -> list[click.Option]:
    return [p for p in cmd.params if isinstance(p, click.Option)]


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_every_dataset_option_has_d_and_every_model_option_has_m(path):
    for opt in _options(COMMANDS[path]):
        names = [*opt.opts, *opt.secondary_opts]
        for long, short in (("--dataset", "-d"), ("--model", "-m")):
            # each goes with the other: -m is never --metric or --method
            assert (long in names) == (short in names), f"{' '.join(path)}: {names}"


@pytest.mark.parametrize("path", COMMANDS, ids=IDS)
def test_no_flag_is_declared_twice_in_a_command(path):
    names = [n for opt in _options(COMMANDS[path]) for n in (*opt.opts, *opt.secondary_opts)]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)


def test_the_commands_that_train_count_trials_with_one_word():
    old = {"--budget", "-b", "--n", "--sweep", "--model-id"}
    for path, cmd in COMMANDS.items():
        shown = {n for opt in _options(cmd) if not opt.hidden for n in opt.opts}
        if path == ("recommend",):  # how many to recommend: nothing is trained
            assert "--n" in shown and "--trials" not in shown
            continue
        assert not shown & old, f"{' '.join(path)} shows an old name: {shown & old}"
    for path in ("sweep", "optimize", "demo"):
        trials = next(o for o in _options(COMMANDS[(path,)]) if o.name == "trials")
        assert set(trials.opts) == {"--trials", "-t"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sweep", "-d", "x", "-m", "knn", "--trials", "0"], "--trials must be at least 1"),
        (["sweep", "-d", "x", "-m", "knn", "--n", "0"], "--n must be at least 1"),
        (["demo", "-q", "-t", "0"], "--trials must be a positive integer"),
        (["demo", "-q", "-b", "0"], "--budget must be a positive integer"),
        (["demo", "-q", "--sweep-trials", "0"], "--sweep-trials must be a positive integer"),
        (["demo", "-q", "--sweep", "0"], "--sweep must be a positive integer"),
    ],
)
def test_old_and_new_trial_counts_are_checked_under_the_name_typed(tmp_path, args, message):
    from warehouse import Warehouse

    db = tmp_path / "w.duckdb"
    if args[0] == "sweep":
        with Warehouse(db) as wh:
            wh.register_dataset("x", "sklearn:iris", "target")
    out = CliRunner().invoke(main, ["--db", str(db), *args])
    assert out.exit_code == 1 and message in out.output, out.output


def test_an_old_and_a_new_name_together_are_refused():
    out = CliRunner().invoke(main, ["optimize", "-d", "x", "--trials", "3", "--budget", "4"])
    assert out.exit_code == 2 and "give --trials or --budget, not both" in out.output


def test_learners_is_listed_and_its_old_name_models_is_hidden_but_works(tmp_path):
    top = CliRunner().invoke(main, ["--help"]).output
    assert "  learners " in top and "  models " not in top
    assert COMMANDS[("models",)].hidden and not COMMANDS[("learners",)].hidden
    db = str(tmp_path / "w.duckdb")
    assert CliRunner().invoke(main, ["--db", db, "init"]).exit_code == 0
    for name in ("learners", "models"):
        out = CliRunner().invoke(main, ["--db", db, name, "--format", "json"])
        assert out.exit_code == 0 and json.loads(out.stdout) == [], out.output
    predict = CliRunner().invoke(main, ["predict", "--help"]).output
    assert "--learner ID|FILE" in predict and "--model-id" not in predict


def test_sources_are_one_spelling_and_runs_delete_takes_an_old_one(tmp_path):
    from warehouse import Warehouse
    from warehouse.ingest import file_source

    metaopt = [sources.SWEEP, sources.OPTIMIZE, sources.FINAL, sources.EXAMPLE, sources.TRAIN]
    assert all(s.startswith("metaopt:") for s in metaopt)
    assert set(sources.OLD_SPELLINGS.values()) == set(metaopt)
    assert file_source(tmp_path / "r.csv").startswith(sources.INGEST)
    db = tmp_path / "w.duckdb"
    with Warehouse(db) as wh:
        wh.log_run("d1", "knn", {"k": 3}, {"accuracy": 0.9}, source=sources.SWEEP)
        wh.log_run("d1", "knn", {"k": 5}, {"accuracy": 0.8}, source=sources.OPTIMIZE)
    out = CliRunner().invoke(
        main, ["--db", str(db), "runs", "delete", "--source", "metaopt.sweep", "--yes"]
    )
    assert out.exit_code == 0 and "deleted 1 run(s)" in out.output, out.output
    assert "'metaopt.sweep' is now 'metaopt:sweep'" in out.stderr
    with Warehouse(db, read_only=True) as wh:
        assert wh.sql("SELECT source FROM runs").source.tolist() == [sources.OPTIMIZE]
