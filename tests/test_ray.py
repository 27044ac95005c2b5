"""The Ray backend on one local Ray instance (2 CPUs, small object store, no dashboard) shared by the
module: a grid sweep over a plugin model, and a TPE search whose median pruner stops trials.

The pruning test prints how long each pruned trial took to stop after the pruner's decision (its
run closed) and to be gone (its process exited, as the sweep saw it): ``pytest -s tests/test_ray.py``,
the figures the Ray section of docs/sweeps.md refers to."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from rnnlab.sweeps.runner import Options, run_sweep

from .conftest import REPO, SINE_TINY, deep_merge

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

STOP_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def local_ray() -> Any:
    """One Ray for the module; the sweeps use it (and leave it running) instead of starting their own."""
    ray.init(num_cpus=2, object_store_memory=100 * 1024**2, include_dashboard=False,
             logging_level=logging.WARNING, log_to_driver=False)
    yield ray
    ray.shutdown()


def _state(sweep_dir: Path) -> dict[str, Any]:
    return json.loads((sweep_dir / "summary.json").read_text())


def test_a_grid_sweep_over_a_plugin_model_runs_on_ray(local_ray: Any, tmp_path: Path) -> None:
    plugin = REPO / "examples" / "custom_cell" / "indrnn.py"
    base = deep_merge(SINE_TINY, {"plugins": [str(plugin)], "train": {"epochs": 2}})
    path = tmp_path / "plug.yaml"
    path.write_text(yaml.safe_dump({"base": base, "grid": {"model.name": ["indrnn", "lstm"]}}))
    lines: list[str] = []
    outcome = run_sweep(path, tmp_path / "runs", None, Options(workers=2, backend="ray"), lines.append)
    assert outcome.status == "completed", "\n".join(lines)
    state = _state(outcome.sweep_dir)
    assert state["backend"] == "ray" and state["counts"] == {"completed": 2}
    assert state["threads_per_trial"] == "1 (the base config's train.threads)"
    models = {}
    for trial in state["trials"]:
        run = Path(trial["run"])
        assert run.parent == outcome.sweep_dir
        config = yaml.safe_load((run / "config.yaml").read_text())
        models[trial["trial"]] = config["model"]["name"]
        assert json.loads((run / "summary.json").read_text())["best_val"] == trial["val"]
    assert models == {"t001": "indrnn", "t002": "lstm"}
    assert local_ray.is_initialized()  # the sweep used this Ray and left it running


def test_tpe_median_pruning_stops_ray_trials_within_seconds(local_ray: Any, tmp_path: Path) -> None:
    pytest.importorskip("optuna")
    # One-cycle over the whole run: a 1-epoch trial ends epoch 1 annealed (better there), a 2-epoch
    # trial is mid-cycle after epoch 1 but ends best. Seed 0 draws 2 epochs (t001), then 1 (t002),
    # both before any trial ends; the search then asks for 1 epoch (t003) and, once t001 has ended
    # best (before t003, which started a process later), for 2 (t004): the median pruner stops it
    # after epoch 1. Epochs last a second or more, so a trial stopped at once has no epoch 2.
    base = deep_merge(SINE_TINY, {"task": {"window": 16, "n_points": 40000}, "model": {"hidden_size": 64},
                                  "train": {"lr": 0.03, "scheduler": "onecycle"}})
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump({"base": base, "seed": 0, "tpe": {
        "trials": 4, "pruner": "median", "train.epochs": {"choice": [1, 2]}}}))
    said: list[tuple[float, str]] = []
    outcome = run_sweep(path, tmp_path / "runs", None, Options(workers=2, backend="ray"),
                        lambda line: said.append((time.time(), line)))  # wall clock, as file times
    lines = [line for _, line in said]
    assert outcome.status == "completed", "\n".join(lines)
    state = _state(outcome.sweep_dir)
    pruned = [t for t in state["trials"] if t["status"] == "pruned"]
    assert pruned, "\n".join(lines)
    import optuna

    study = optuna.load_study(study_name="search", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(outcome.sweep_dir / "optuna.journal"))))
    states = {f"t{t.number + 1:03d}": t.state.name for t in study.get_trials()}
    for trial in pruned:
        tid = trial["trial"]
        assert states[tid] == "PRUNED"
        decided = next(t for t, line in said if line.startswith(f"{tid} pruned after epoch"))
        gone = next(t for t, line in said if f"] {tid} pruned in " in line)
        closed = (Path(trial["run"]) / "summary.json").stat().st_mtime  # its run closed: training stopped
        print(f"{tid}: run closed {closed - decided:.2f}s and process gone {gone - decided:.2f}s after "
              "the pruning decision (Ray, 2 workers)")
        assert closed - decided < STOP_WITHIN_S, lines
        assert gone - decided < 3 * STOP_WITHIN_S, lines  # its slot freed (process exit is slow under load)
        epoch = int(trial["error"].split("pruned after epoch ")[1].split()[0])
        rows = [json.loads(r) for r in (Path(trial["run"]) / "metrics.jsonl").read_text().splitlines()]
        assert [r["epoch"] for r in rows] == list(range(1, epoch + 1))  # nothing after the decision
        assert json.loads((Path(trial["run"]) / "summary.json").read_text())["status"] == "interrupted"
    assert any(t["error"].startswith("pruned after epoch 1 ") for t in pruned), "\n".join(lines)
    rows = (outcome.sweep_dir / "summary.csv").read_text().splitlines()
    assert sum(",pruned," in row for row in rows) == len(pruned)
