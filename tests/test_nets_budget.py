"""Matched budgets: published parameter counts, equal weights and conv FLOPs across solvers."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from odenet.cli import app, main
from odenet.nets import ModelConfig, build_model, count_flops, count_parameters, describe

MATCHED = ["euler", "heun", "rk3", "rk4", "rk38", "ralston", "lm", "ab2"]
PUBLISHED = {20: 269_722, 56: 853_018, 110: 1_727_962}  # He et al. 2015, option A
FLOPS = {20: 81_102_080, 56: 250_971_392, 110: 505_775_360}  # 2 x (40.55M, 125.49M, 252.89M MACs)


@pytest.mark.parametrize("depth", sorted(PUBLISHED))
def test_published_parameter_counts(depth):
    params, extra = count_parameters(build_model(depth, "euler"))
    assert (params, extra) == (PUBLISHED[depth], 0)


@pytest.mark.parametrize("depth", sorted(PUBLISHED))
@pytest.mark.parametrize("solver", MATCHED)
def test_every_solver_has_euler_parameters(depth, solver):
    params, extra = count_parameters(build_model(depth, solver))
    assert params == PUBLISHED[depth]
    n = (depth - 2) // 6
    assert extra == (3 * (n - 1) if solver == "lm" else 0)  # one k per two-step update


def _flops(depth: int, solver: str) -> tuple[int, int]:
    return count_flops(build_model(depth, solver), image_size=32)


def _check_matched_flops(depth: int) -> None:
    total, conv_linear = _flops(depth, "euler")
    assert total == conv_linear == FLOPS[depth]
    for solver in MATCHED[1:]:
        assert _flops(depth, solver)[1] == conv_linear, solver


def test_every_solver_has_euler_conv_flops_depth20():
    _check_matched_flops(20)


@pytest.mark.slow
@pytest.mark.parametrize("depth", [56, 110])
def test_every_solver_has_euler_conv_flops_deeper(depth):
    _check_matched_flops(depth)


def test_flops_scale_with_image_size_and_leave_the_model_untouched():
    model = build_model(20, "euler")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    total28, _ = count_flops(model, image_size=28)
    assert total28 < FLOPS[20]
    assert model.training and next(model.parameters()).device.type == "cpu"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_describe_resnet20_rk4():
    s = describe(ModelConfig(depth=20, solver="rk4"))
    assert (s.layers, s.params, s.extra_params, s.flops) == (20, 269_722, 0, FLOPS[20])
    assert [st["steps"] for st in s.stages] == [[{"scheme": "rk3", "fields": 3}]] * 3
    assert [st["channels"] for st in s.stages] == [16, 32, 64]
    assert s.nfe is None


def test_describe_json_command():
    result = CliRunner().invoke(app, ["describe", "--depth", "20", "--solver", "heun", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert d["params"] == 269_722 and d["flops"] == FLOPS[20] and d["layers"] == 20
    assert d["stages"][0]["steps"] == [
        {"scheme": "heun", "fields": 2},
        {"scheme": "euler", "fields": 1},
    ]


def test_describe_table_command_28px_grayscale():
    args = ["describe", "--solver", "lm", "--in-channels", "1", "--image-size", "28"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "params 269,434" in result.output  # 269,722 - 2 x 16 x 9 (one input channel)
    assert "6 learnable scheme coefficients" in result.output


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--depth", "21"], "invalid depth 21"),
        (["--block", "x"], "unknown block 'x'"),
        (["--shortcut", "D"], "unknown shortcut 'D'"),
        (["--solver", "rk9"], "unknown solver 'rk9'"),
    ],
)
def test_describe_bad_input_is_one_line_exit_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["describe", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--arch", "resnet9"], "unknown arch 'resnet9'"),
        (["--downsample", "field"], "applies to arch 'single' only"),
        (["--arch", "single", "--depth", "9"], "depth = 2N + 2"),
        (["--arch", "resnet18", "--solver", "ode-dopri5"], "needs a stacked scheme"),
    ],
)
def test_describe_bad_arch_is_one_line_exit_2(args, needle, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["describe", *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_describe_table_command_resnet18():
    out = CliRunner().invoke(app, ["describe", "--arch", "resnet18", "--solver", "heun"])
    assert out.exit_code == 0, out.output
    assert "ResNet-18 (resnet18) heun" in out.output and "params 11,689,512" in out.output
    assert "fixed by the architecture" in out.output
