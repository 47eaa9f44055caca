"""StudySpec: list parsing, TOML equivalence with flags, validation messages, the grid."""

import pytest

from odenet.errors import ConfigError
from odenet.studies.grid import build_grid, run_id
from odenet.studies.spec import StudySpec, parse_list
from odenet.studies.spec_sources import spec_from_sources

FLAGS = dict(
    orders="1,2",
    solvers="lm",
    depths="8,14",
    lrs="0.1,0.4",
    seeds="0,1",
    epochs=2,
    dataset="synthetic",
    limit_train=256,
    width=4,
)
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
    assert spec_from_sources(path, epochs=3) == StudySpec(**{**vars(from_flags), "epochs": 3})
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
        ({"lrs": "0.1,-0.2"}, "--lrs: learning rate -0.2 must be a positive"),
        ({"lrs": "0.1,nan"}, "--lrs: learning rate nan"),
        ({"lrs": "0.1,0.1"}, "--lrs: 0.1 appears twice"),
        ({"seeds": "-1"}, "--seeds: seed -1"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0 \\(run d8-euler-lr0.1-s0\\)"),
        ({"schedule": "linear"}, "unknown schedule 'linear'; expected one of: onecycle"),
        ({"width": "x"}, "--width: 'x' is not an integer"),
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
    runs = build_grid(spec)
    assert len(runs) == 2 * 3 * 2 * 2
    assert [r.index for r in runs] == list(range(len(runs)))
    assert runs[0].id == "d8-euler-lr0.1-s0" and runs[1].id == "d8-euler-lr0.1-s1"
    assert runs[-1].id == "d14-lm-lr0.4-s1"
    assert len({r.id for r in runs}) == len(runs)
    r = runs[5]
    assert (r.config.depth, r.config.solver, r.config.lr, r.config.seed) == (
        r.depth,
        r.solver,
        r.lr,
        r.seed,
    )
    assert (r.config.epochs, r.config.limit_train, r.config.width) == (2, 256, 4)
    assert run_id(110, "rk4", 1.6, 3) == "d110-rk4-lr1.6-s3"
    assert run_id(20, "heun", 0.05, 0) == "d20-heun-lr0.05-s0"


def test_differences_name_fields_and_ignore_executor():
    a = spec_from_sources(None, **FLAGS)
    b = StudySpec(**{**vars(a), "lrs": (0.1,), "solvers": ()})
    assert a.differences(b) == ["solvers: lm -> (none)", "lrs: 0.1,0.4 -> 0.1"]
    assert a.differences(a) == []
    assert StudySpec.from_dict(a.to_dict()) == a


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
    assert [r.id for r in build_grid(a)][:2] == [
        "d8-euler-lr0.1-mom0.8-wd0.0-s0",
        "d8-euler-lr0.1-mom0.8-wd0.0005-s0",
    ]
    b = StudySpec(depths=(8,), lrs=(0.1,), sweep={"momentum": (0.8, 0.9)}, weight_decay=0.0)
    assert a.differences(b) == ["weight_decay: 0.0,0.0005 -> 0.0"]
    assert StudySpec.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    # the flat format of earlier versions: its TrainConfig fields become the base
    old = {"orders": [1], "solvers": [], "depths": [8], "lrs": [0.1], "seeds": [0], "epochs": 3,
           "dataset": "synthetic", "width": 4, "executor": "auto", "fuse_max": 8,
           "cuda_graphs": None}  # fmt: skip
    spec = StudySpec.from_dict(old)
    assert spec == StudySpec(orders=(1,), depths=(8,), lrs=(0.1,), epochs=3, dataset="synthetic",
                             width=4)  # fmt: skip
    with pytest.raises(ConfigError, match="unknown keys \\['bogus'\\]"):
        StudySpec.from_dict({**old, "bogus": 1})
