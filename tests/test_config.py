from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rnnlab.config.loading import apply_overrides, build_experiment, load_experiment
from rnnlab.errors import ConfigError

from .conftest import CONFIGS, SINE_TINY, deep_merge


def error_of(extra: dict, base: dict | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        build_experiment(deep_merge(base or SINE_TINY, extra), "c.yaml")
    return info.value.line()


def test_negative_size_names_the_field() -> None:
    assert error_of({"model": {"hidden_size": -3}}) == "c.yaml: model.hidden_size: must be > 0, got -3"


def test_misspelled_key_suggests_the_right_one() -> None:
    msg = error_of({"model": {"hiden_size": 8}})
    assert msg.startswith("c.yaml: model.hiden_size: unknown key (did you mean 'hidden_size'?)")


def test_misspelled_train_key() -> None:
    msg = error_of({"train": {"epocs": 3}})
    assert "train.epocs: unknown key (did you mean 'epochs'?)" in msg


def test_unknown_section_suggests() -> None:
    msg = error_of({"trian": {}})
    assert "trian: unknown section (did you mean 'train'?)" in msg


def test_wrong_type() -> None:
    assert error_of({"train": {"epochs": "many"}}) == "c.yaml: train.epochs: must be an integer, got 'many'"


def test_bad_choice_lists_options() -> None:
    msg = error_of({"train": {"optimizer": "adagrad"}})
    assert msg.startswith("c.yaml: train.optimizer: must be one of 'adam', 'adamw' or 'sgd'")


def test_unknown_model_name_suggests() -> None:
    msg = error_of({"model": {"name": "lstn"}})
    assert "unknown model 'lstn' (did you mean 'lstm'?)" in msg


def test_bidirectional_rejected_for_causal_task() -> None:
    exp = build_experiment(deep_merge(SINE_TINY, {"model": {"bidirectional": True}}), "c.yaml")
    from rnnlab.models import build_model
    from rnnlab.training.build import build_task

    task = build_task(exp, __import__("torch").device("cpu"))
    with pytest.raises(ConfigError, match="model.bidirectional: not allowed for this task"):
        build_model(exp.model, task.spec)


def test_scheduler_string_or_mapping() -> None:
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {"scheduler": "cosine"}}))
    assert exp.train.scheduler.name == "cosine"
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {"scheduler": {"name": "step", "gamma": 0.5}}}))
    assert exp.train.scheduler.gamma == 0.5
    assert "does not apply to scheduler 'cosine'" in error_of(
        {"train": {"scheduler": {"name": "cosine", "gamma": 0.5}}})


def test_early_stopping_int_shorthand() -> None:
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {"early_stopping": 3}}))
    assert exp.train.early_stopping is not None and exp.train.early_stopping.patience == 3
    exp = build_experiment(deep_merge(SINE_TINY, {"train": {"early_stopping": 0}}))
    assert exp.train.early_stopping is None


def test_overrides_parse_yaml_scalars() -> None:
    raw = apply_overrides(deep_merge(SINE_TINY, {}), ["train.lr=3e-3", "model.name=gru",
                                                      "train.clip_grad_norm=null", "task.window=8"])
    exp = build_experiment(raw)
    assert exp.train.lr == pytest.approx(3e-3)
    assert exp.model.name == "gru"
    assert exp.train.clip_grad_norm is None
    assert exp.task.window == 8


def test_override_errors() -> None:
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["train.lr"])
    with pytest.raises(ConfigError, match="unknown section 'tran' \\(did you mean 'train'\\?\\)"):
        apply_overrides({}, ["tran.lr=1"])


def test_resolved_config_round_trips(tmp_path: Path) -> None:
    exp = load_experiment(CONFIGS / "lstm_sine.yaml", ["train.epochs=2"])
    again = build_experiment(yaml.safe_load(exp.to_yaml()))
    assert again.to_dict() == exp.to_dict()
    assert exp.to_dict()["train"]["clip_grad_norm"] == 1.0  # defaults are written out
    assert exp.name == "lstm_sine"


def test_missing_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_experiment(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_experiment(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_experiment(bad)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_validates(path: Path) -> None:
    raw = yaml.safe_load(path.read_text())
    if "sweep" in path.name:
        pytest.skip("sweep file")
    build_experiment(raw, str(path))
