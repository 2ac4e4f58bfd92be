"""Configuration objects: checked when built (from Python as from the command line), a dict round trip for
config.json and checkpoints that refuses unknown keys and wrong types, and command lines generated from them."""
import argparse
import json
from dataclasses import dataclass, fields

import pytest

from hypersiren.cli import Parser
from hypersiren.cli.arguments import add_arguments, from_args
from hypersiren.config import Config, option, positive_int
from hypersiren.engine import EngineConfig
from hypersiren.errors import InputError
from hypersiren.registry import PRIORS, TASKS, Registry
from hypersiren.tasks.face_prior import FAST, PAPER, FacePrior
from hypersiren.tasks.image import FitImage


def test_python_configs_are_checked_like_the_command_line():
    for bad, message in [(dict(size=-1), "--size: expected a positive integer, got -1"),
                         (dict(size="32"), "--size: expected an integer"),
                         (dict(model="gelu"), "unknown model 'gelu'"),
                         (dict(engine={"lr": float("nan")}), "--lr: expected a positive number"),
                         (dict(engine={"resume": True, "overwrite": True}), "exclude each other")]:
        with pytest.raises(InputError, match=message.replace("(", r"\(")):
            FitImage.Config(input="camera", **bad)


def test_nested_configs_take_a_dict_of_changes_to_the_task_defaults():
    config = FitImage.Config(input="camera", engine={"seed": 3})
    assert config.engine == EngineConfig(steps=500, seed=3)  # fit image's 500 steps kept
    assert config.replace(engine={"lr": 1e-3}).engine == EngineConfig(steps=500, seed=3, lr=1e-3)


@pytest.mark.parametrize("config", [FitImage.Config(input="camera", size=12), PAPER, FAST,
                                    FacePrior.Config(prior=PRIORS["maml"].Config(inner_steps=2))],
                         ids=["image", "paper", "fast", "maml"])
def test_dict_round_trip_through_json(config):
    data = json.loads(json.dumps(config.to_dict()))
    assert type(config).from_dict(data) == config


def test_from_dict_refuses_unknown_keys_and_wrong_types_in_one_line():
    data = FacePrior.Config().to_dict()
    cases = [({**data, "bogus": 1}, "unknown option(s) bogus"),
             ({**data, "resolution": "32"}, "--resolution: expected an integer"),
             ({**data, "engine": {**data["engine"], "steps": 1.5}}, "--steps: expected an integer"),
             ({**data, "prior": {"method": "maml", "latent_dim": 4}}, "MAML.Config: unknown option(s) latent_dim"),
             ({**data, "prior": {"method": "nope"}}, "unknown method 'nope'")]
    for bad, message in cases:
        with pytest.raises(InputError) as info:
            FacePrior.Config.from_dict(bad)
        assert message in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError, match="missing option"):
        FitImage.Config.from_dict({})


def _parse(config_cls, argv, defaults=None):
    parser = Parser(prog="test")
    add_arguments(parser, config_cls, defaults)
    return from_args(config_cls, parser.parse_args(argv), defaults)


def test_a_flag_on_by_default_is_turned_off_by_no_name_and_its_help_says_so():
    parser = Parser(prog="test")
    add_arguments(parser, FacePrior.Config)
    help_text = " ".join(parser.format_help().split())
    assert "--no-flip turn off (on by default): random horizontal flips" in help_text
    assert "--resume continue the run" in help_text  # off by default: its own name, its own words
    assert _parse(FacePrior.Config, ["--no-flip"]).flip is False and _parse(FacePrior.Config, []).flip is True


def test_command_line_and_python_build_the_same_config():
    assert _parse(FitImage.Config, ["camera", "--size", "12", "--no-progress", "--resume"]) == FitImage.Config(
        input="camera", size=12, engine={"progress": False, "resume": True})
    prior = _parse(FacePrior.Config, ["--method", "reptile", "--inner-lr", "0.05"])
    assert prior.prior == PRIORS["reptile"].Config(inner_lr=0.05)
    with pytest.raises(InputError, match="--latent-dim is an option of --method functa/hypernet, not of --method "
                                         "reptile"):  # never silently ignored
        _parse(FacePrior.Config, ["--method", "reptile", "--inner-lr", "0.05", "--latent-dim", "3"])
    encoder = _parse(FacePrior.Config, ["--encoder", "cnn"], defaults=PAPER)
    assert encoder.prior == PAPER.prior.replace(encoder="cnn") and encoder.engine == PAPER.engine


def test_every_field_of_every_zoo_entry_is_an_option():
    for name, task in TASKS.items():
        parser = argparse.ArgumentParser()
        add_arguments(parser, task.Config)
        dests = {action.dest for action in parser._actions}
        flat = [f.name for f in fields(task.Config) if f.name != "engine"] + [f.name for f in fields(EngineConfig)]
        assert set(flat) <= dests, name


def test_registry_finds_entries_and_refuses_two_of_one_name():
    assert {"image", "inpaint", "sdf"} <= set(TASKS) and {"hypernet", "maml", "reptile", "functa"} <= set(PRIORS)
    assert PRIORS.owner(PRIORS["maml"].Config()) is PRIORS["maml"]
    with pytest.raises(InputError, match="unknown zoo task 'sound'"):
        TASKS["sound"]
    registry = Registry("thing", "hypersiren.priors", key="name")

    @dataclass(frozen=True, kw_only=True)
    class One(Config):
        n: int = option(1, "a count", check=positive_int)

    registry.register(type("A", (), {"name": "a", "Config": One}))
    with pytest.raises(ValueError, match="two things are named 'a'"):
        registry.register(type("B", (), {"name": "a", "Config": One}))


def test_replacing_a_method_with_a_dict_changes_the_current_one_unless_it_names_another():
    light = PAPER.replace(prior={"hypernet": "light"})
    assert light.prior == PAPER.prior.replace(hypernet="light")  # the paper's other settings kept
    assert PAPER.replace(prior={"method": "hypernet", "latent_dim": 8}).prior == PAPER.prior.replace(latent_dim=8)
    assert PAPER.replace(prior={"method": "maml", "inner_steps": 2}).prior == PRIORS["maml"].Config(inner_steps=2)
    with pytest.raises(InputError, match="unknown option"):
        PAPER.replace(prior={"inner_steps": 2})  # an option of another method, for the current one
