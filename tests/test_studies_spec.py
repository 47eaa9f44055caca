"""StudySpec: list parsing, TOML equivalence with flags, validation messages, the grid."""

import dataclasses

import pytest
from stored_formats import MAIN_SPEC, V010_SPEC

from odenet.errors import ConfigError
from odenet.nets import ModelConfig
from odenet.studies.grid import run_id
from odenet.studies.spec import StudySpec, parse_list
from odenet.studies.spec_sources import spec_from_sources
from odenet.training import TrainConfig

SETTINGS = dict(epochs=2, dataset="synthetic", limit_train=256, width=4)
FLAGS = dict(orders="1,2", solvers="lm", depths="8,14", lrs="0.1,0.4", seeds="0,1",
             settings=SETTINGS)  # fmt: skip
TOML = """
[study]
orders = [1, 2]
solvers = ["lm"]
depths = [8, 14]
lrs = "0.1,0.4"
seeds = [0, 1]
epochs = 2
dataset = "synthetic"
limit-train = 256
width = 4
"""


def test_parse_list():
    assert parse_list("0.1, 0.2,1e-3", float, "lrs") == (0.1, 0.2, 0.001)
    assert parse_list("20,56", int, "depths") == (20, 56)
    for bad, words in [
        ("0.1,,0.2", "empty item"),
        ("abc", "'abc' is not a number"),
        ("", "empty list"),
        (" , ", "empty item"),
    ]:
        with pytest.raises(ConfigError, match=words) as err:
            parse_list(bad, float, "lrs")
        assert "--lrs" in str(err.value)
    with pytest.raises(ConfigError, match="--depths: '2.5' is not an integer"):
        parse_list("20,2.5", int, "depths")


def test_toml_equals_flags_and_flags_win(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(TOML)
    from_flags = spec_from_sources(None, **FLAGS)
    assert spec_from_sources(path) == from_flags
    three = dataclasses.replace(from_flags, base=from_flags.base.replace(epochs=3))
    assert spec_from_sources(path, settings={"epochs": 3}) == three
    assert from_flags.base == TrainConfig(
        dataset="synthetic", epochs=2, limit_train=256, model=ModelConfig(width=4)
    )
    assert from_flags.schemes == ("euler", "heun", "lm")
    path.write_text("[study]\nlrate = [0.1]\n")
    with pytest.raises(ConfigError, match="unknown key 'lrate'; valid keys: orders"):
        spec_from_sources(path)
    path.write_text("[study]\nlr = [0.1]\n")
    with pytest.raises(ConfigError, match="'lr' is an axis of every study: use --lrs"):
        spec_from_sources(path)
    path.write_text("orders = [1, 2\n")
    with pytest.raises(ConfigError, match="cannot read .* as TOML"):
        spec_from_sources(path)
    with pytest.raises(ConfigError, match="no such file"):
        spec_from_sources(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "options, words",
    [
        ({"depths": "20,21"}, "--depths: depth 21 is not 6n\\+2"),
        ({"depths": "2"}, "--depths: depth 2 is not 6n\\+2"),
        ({"solvers": "rk5"}, "--solvers: unknown solver 'rk5'; expected one of: euler"),
        ({"orders": "3,7"}, "--orders: unknown order 7; expected one of: 1, 2, 3, 4, 5, 6, 8"),
        ({"lrs": "0.1,-0.2"}, "--lrs: lr must be a positive finite number, got -0.2"),
        ({"lrs": "0.1,nan"}, "--lrs: lr must be a positive finite number, got nan"),
        ({"lrs": "0.1,0.1"}, "--lrs: 0.1 appears twice"),
        ({"seeds": "-1"}, "--seeds: seed must be a non-negative integer, got -1"),
        ({"seeds": "0,9223372036854775808"}, "--seeds: seed 9223372036854775808 is above 2"),
        (
            {"settings": {"epochs": 0}},
            "epochs must be a positive integer, got 0 \\(run d8-euler-lr0.1-s0\\)",
        ),
        ({"settings": {"schedule": "linear"}}, "unknown schedule 'linear'; expected one of: onec"),
        ({"settings": {"width": "x"}}, "--width: 'x' is not an integer"),
        ({"settings": {"norm": "ln"}}, "unknown norm 'ln'; expected one of: bn, gn \\(run d8-"),
        ({"executor": "dask"}, "--executor: unknown value 'dask'; expected one of: auto, seq"),
        ({"fuse_max": 0}, "--fuse-max"),
        ({"orders": "", "solvers": ""}, "--orders: empty list"),
    ],
)
def test_bad_options_name_the_option(options, words):
    with pytest.raises(ConfigError, match=words):
        spec_from_sources(None, **{**FLAGS, **options})


def test_grid_ids_order_and_configs():
    spec = spec_from_sources(None, **{**FLAGS, "solvers": "rk2,lm"})  # rk2 = heun: deduplicated
    runs = spec.runs
    assert len(runs) == 2 * 3 * 2 * 2
    assert [r.index for r in runs] == list(range(len(runs)))
    assert runs[0].id == "d8-euler-lr0.1-s0" and runs[1].id == "d8-euler-lr0.1-s1"
    assert runs[-1].id == "d14-lm-lr0.4-s1"
    assert len({r.id for r in runs}) == len(runs)
    r = runs[5]
    assert (r.config.model.depth, r.config.model.solver, r.config.lr, r.config.seed) == (
        r.depth,
        r.solver,
        r.lr,
        r.seed,
    )
    assert (r.config.epochs, r.config.limit_train, r.config.model.width) == (2, 256, 4)
    assert run_id(110, "rk4", 1.6, 3) == "d110-rk4-lr1.6-s3"
    assert run_id(20, "heun", 0.05, 0) == "d20-heun-lr0.05-s0"


def test_differences_name_fields_and_ignore_executor():
    a = spec_from_sources(None, **FLAGS)
    b = dataclasses.replace(a, lrs=(0.1,), solvers=())
    assert a.differences(b) == ["solvers: lm -> (none)", "lrs: 0.1,0.4 -> 0.1"]
    assert a.differences(a) == []
    assert StudySpec.from_dict(a.to_dict()) == a


def test_tensorboard_is_a_setting_of_how_a_study_runs_not_of_what_it_is(tmp_path):
    """From the option or TOML; stored and read back; no difference between two specs, so a
    study made without it resumes with it."""
    toml = tmp_path / "study.toml"
    toml.write_text("tensorboard = true\n")
    plain = spec_from_sources(None, **FLAGS)
    watched = spec_from_sources(toml, **FLAGS)
    assert (plain.tensorboard, watched.tensorboard) == (False, True)
    assert spec_from_sources(None, **FLAGS, tensorboard=True) == watched
    assert plain.differences(watched) == [] and plain.runs == watched.runs
    assert StudySpec.from_dict(watched.to_dict()) == watched
    toml.write_text('tensorboard = "maybe"\n')
    with pytest.raises(ConfigError, match="--tensorboard: 'maybe' is not true or false"):
        spec_from_sources(toml, **FLAGS)


def test_sweep_order_differences_and_round_trip():
    import json

    a = StudySpec(
        depths=(8,), lrs=(0.1,), sweep={"weight_decay": (0.0, 5e-4), "momentum": [0.8, 0.9]}
    )
    assert a.swept == ("momentum", "weight_decay")  # TrainConfig's field order, not the given one
    assert [name for name, _ in a.axes] == [
        "depth",
        "solver",
        "lr",
        "momentum",
        "weight_decay",
        "seed",
    ]
    assert [r.id for r in a.runs][:2] == [
        "d8-euler-lr0.1-mom0.8-wd0.0-s0",
        "d8-euler-lr0.1-mom0.8-wd0.0005-s0",
    ]
    b = StudySpec(
        base=TrainConfig(weight_decay=0.0), depths=(8,), lrs=(0.1,), sweep={"momentum": (0.8, 0.9)}
    )
    assert a.differences(b) == ["weight_decay: 0.0,0.0005 -> 0.0"]
    assert StudySpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    # the flat format of earlier versions: its TrainConfig fields become the base
    old = {"orders": [1], "solvers": [], "depths": [8], "lrs": [0.1], "seeds": [0], "epochs": 3,
           "dataset": "synthetic", "width": 4, "executor": "auto", "fuse_max": 8,
           "cuda_graphs": None}  # fmt: skip
    spec = StudySpec.from_dict(old)
    base = TrainConfig(epochs=3, dataset="synthetic", model=ModelConfig(width=4))
    assert spec == StudySpec(base=base, orders=(1,), depths=(8,), lrs=(0.1,))
    with pytest.raises(ConfigError, match="unknown keys \\['bogus'\\]"):
        StudySpec.from_dict({**old, "bogus": 1})


@pytest.mark.parametrize("stored, axes", [(V010_SPEC, []), (MAIN_SPEC, ["weight_decay=0,5e-4"])])
def test_stored_specs_of_earlier_versions_are_the_same_command(stored, axes):
    settings = dict(dataset="synthetic:train=256,test=128,size=8", width=4, device="cpu", epochs=2)
    now = spec_from_sources(
        None, depths="8", orders="1,2", lrs="0.1", seeds="0,1", settings=settings, axes=axes
    )
    old = StudySpec.from_dict(stored)
    assert old == now and old.differences(now) == []
    assert [r.id for r in old.runs] == [r.id for r in now.runs]
    assert now.runs[0].id == ("d8-euler-lr0.1-wd0.0-s0" if axes else "d8-euler-lr0.1-s0")
    assert StudySpec.from_dict(now.to_dict()) == now and now.to_dict()["format"] == 3
    assert now.to_dict()["base"]["model"]["width"] == 4  # stored nested from now on


def test_a_spec_is_checked_and_its_runs_built_once(monkeypatch, tmp_path):
    """Made once, a spec is never validated or expanded again: not by plan_study, not by
    run_study on its way to the store (only the dataset-dependent checks run there)."""
    import odenet.studies.api as api

    spec = spec_from_sources(None, **FLAGS)
    assert spec.runs is spec.runs and len(spec.runs) == 24
    calls = []
    monkeypatch.setattr(TrainConfig, "validate", lambda self: calls.append("validate"))
    monkeypatch.setattr("odenet.studies.spec.grid_runs", lambda *a: calls.append("grid"))
    api.plan_study(spec)

    class Stored(Exception):
        pass

    def stop(store, *args, **kwargs):  # the store was created from the spec as it is
        assert [r.id for r in store.runs()] == [r.id for r in spec.runs]
        raise Stored

    monkeypatch.setattr(api, "run_pending", stop)
    with pytest.raises(Stored):
        api.run_study(spec, tmp_path / "study", quiet=True)
    assert calls == []
