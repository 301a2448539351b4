"""TrainConfig: one place for the training options' defaults, bounds and rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taxonomist.errors import InvalidParameterError
from taxonomist.models.config import DEFAULT_TIME_BUDGET, FamilyName, MetricName, TrainConfig


def test_defaults_and_the_trial_rule() -> None:
    assert TrainConfig(target="y").time_budget == DEFAULT_TIME_BUDGET
    # a trial count replaces the default budget, not one given explicitly
    assert TrainConfig(target="y", trials=5).time_budget is None
    assert TrainConfig(target="y", trials=5, time_budget=30).time_budget == 30
    # ... also when a stored config (every key given) is read back
    stored = TrainConfig(target="y", trials=5).to_json()
    assert TrainConfig.parse(stored).time_budget is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"target": "y", "time_budgit": 3},
            "unknown key 'time_budgit' (did you mean 'time_budget'?)",
        ),
        ({"target": "y", "trials": 0}, "'trials': Input should be greater than or equal to 1"),
        ({"target": "y", "time_budget": 1}, "'time_budget'"),
        ({"target": "y", "metric": "f2"}, "'metric'"),
        ({"target": "y", "families": ["svm"]}, "'families.0'"),
        ({"target": "y", "roles": {"a": "texts"}}, "'roles.a'"),
        ({"trials": 3}, "'target' is required"),
        ({"target": "y", "name": "bad name!"}, "'name'"),
    ],
)
def test_bad_options_are_named(data: dict, message: str) -> None:
    with pytest.raises(InvalidParameterError) as err:
        TrainConfig.parse(data, source="'x.yaml'")
    assert "Invalid options in 'x.yaml'" in err.value.message
    assert message in err.value.message


def test_from_yaml_and_json_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "train.yaml"
    yaml_file.write_text(
        "data: apps.csv\ntarget: prime_genre\nname: apps\ntrials: 3\n"
        "families: [linear_svm, logreg]\nroles:\n  bundle: categorical\n"
    )
    config = TrainConfig.from_file(yaml_file)
    assert config.families == ["linear_svm", "logreg"]
    assert config.time_budget is None and config.trials == 3
    assert str(config.roles["bundle"]) == "categorical"
    json_file = tmp_path / "train.json"
    json_file.write_text(json.dumps(config.to_json()))
    assert TrainConfig.from_file(json_file) == config


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.yaml", "target: [unclosed", "is not valid YAML"),
        ("a.json", "{target: 1", "is not valid JSON"),
        ("a.yaml", "- just\n- a list\n", "must be a mapping"),
        ("a.yaml", "target: y\nfamilies: svm\n", "'families'"),
    ],
)
def test_broken_files_get_one_message(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(InvalidParameterError, match=message):
        TrainConfig.from_file(path)


def test_missing_file() -> None:
    with pytest.raises(InvalidParameterError, match="Cannot read the config file"):
        TrainConfig.from_file("/nonexistent/train.yaml")


def test_merged_overrides_and_revalidates() -> None:
    base = TrainConfig(target="y", trials=3, families=["logreg"])
    merged = base.merged(time_budget=60, metric="accuracy", seed=None)
    assert (merged.time_budget, merged.trials, merged.metric) == (60, 3, "accuracy")
    with pytest.raises(InvalidParameterError, match="'trials'"):
        base.merged(trials=-1)


def test_library_lists_match_the_config_names() -> None:
    from typing import get_args

    from taxonomist.models.candidates import FAMILIES
    from taxonomist.models.metrics import METRICS

    assert set(get_args(FamilyName)) == set(FAMILIES)
    assert set(get_args(MetricName)) == set(METRICS)


def test_a_params_file_holds_the_config_under_train(tmp_path: Path) -> None:
    # DVC's params.yaml: the options under 'train:' (DVC names them train.time_budget), other
    # stages' sections beside it.
    path = tmp_path / "params.yaml"
    path.write_text(
        "train:\n  target: click\n  trials: 2\n  families: [logreg]\nevaluate:\n  bins: 10\n"
    )
    config = TrainConfig.from_file(path)
    assert (config.target, config.trials, config.families) == ("click", 2, ["logreg"])
    path.write_text("train:\n  target: click\n  time_budgit: 3\n")
    with pytest.raises(InvalidParameterError) as err:
        TrainConfig.from_file(path)
    assert "the 'train' section of 'params.yaml'" in err.value.message
    assert "did you mean 'time_budget'" in err.value.message
    path.write_text("train: fast\n")
    with pytest.raises(InvalidParameterError, match=r"'train' in 'params\.yaml' must be a mapping"):
        TrainConfig.from_file(path)


def test_other_top_level_keys_are_errors_without_a_train_section(tmp_path: Path) -> None:
    path = tmp_path / "ctr.yaml"
    path.write_text("target: click\nevaluate:\n  bins: 10\n")
    with pytest.raises(InvalidParameterError, match="unknown key 'evaluate'"):
        TrainConfig.from_file(path)
