"""The single-stage network (arch "single", depth = 2N + 2): closed-form budgets, the two
downsampling positions, every scheme, training and the command line."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from odenet.cli import app, main
from odenet.errors import ConfigError
from odenet.nets import ModelConfig, build_model, count_flops, count_parameters, describe, fuse
from odenet.nets.fused import stack_inputs
from odenet.solvers import StackedSolver, available, get
from odenet.training import TrainConfig, load_trained, train

STACKED = [n for n in available() if isinstance(get(n), StackedSolver) and get(n).family != "plain"]


def _single(depth, solver="euler", downsample="stem", **kw):
    kw.setdefault("in_channels", 1)
    return build_model(depth, solver, arch="single", downsample=downsample, **kw)


def _params(c0: int, c: int, n: int, k: int) -> int:
    """stem conv + norm, n fields of two 3x3 convs and two norms, the linear head."""
    return 9 * c0 * c + 2 * c + n * (18 * c * c + 4 * c) + c * k + k


def _flops(c0: int, c: int, n: int, k: int, h: int, stem_out: int) -> int:
    """2 per multiply-add: stem at stem_out^2 outputs, every field conv at h^2, the head."""
    return 2 * (9 * c0 * c * stem_out**2 + n * 2 * 9 * c * c * h * h + c * k)


@pytest.mark.parametrize("depth, n", [(4, 1), (14, 6), (18, 8)])
@pytest.mark.parametrize("downsample", ["stem", "field"])
def test_parameters_closed_form(depth, n, downsample):
    model = _single(depth, downsample=downsample, width=12)
    assert model.config.blocks_per_stage == n and len(model.stages) == 1
    assert count_parameters(model) == (_params(1, 12, n, 10), 0)


def test_shortcut_b_adds_one_projection_only_where_the_field_downsamples():
    extra = 16 * 16 + 2 * 16  # 1x1 conv + norm on the stride-2 field
    stem = count_parameters(_single(14, shortcut="B", width=16))[0]
    field = count_parameters(_single(14, downsample="field", shortcut="B", width=16))[0]
    assert stem == _params(1, 16, 6, 10) and field == stem + extra


@pytest.mark.parametrize("downsample, stem_out", [("stem", 14), ("field", 28)])
def test_flops_closed_form_28px(downsample, stem_out):
    total, conv_linear = count_flops(_single(14, downsample=downsample, width=16), 28)
    assert total == conv_linear == _flops(1, 16, 6, 10, 14, stem_out)


@pytest.mark.parametrize("downsample", ["stem", "field"])
def test_every_stacked_scheme_has_the_same_budget(downsample):
    ref = describe(
        ModelConfig(arch="single", depth=14, downsample=downsample, in_channels=1), image_size=28
    )
    assert ref.params == _params(1, 16, 6, 10) and ref.layers == 14
    for solver in STACKED:
        cfg = ModelConfig(
            arch="single", depth=14, downsample=downsample, in_channels=1, solver=solver
        )
        s = describe(cfg, image_size=28)
        assert (s.params, s.conv_linear_flops) == (ref.params, ref.conv_linear_flops), solver


@pytest.mark.parametrize("downsample, stage_in", [("stem", 14), ("field", 28)])
def test_where_the_resolution_halves(downsample, stage_in):
    model = _single(8, downsample=downsample)
    seen = {}
    model.stages[0].register_forward_hook(
        lambda m, args, out: seen.update(inp=args[0].shape, out=out.shape)
    )
    model(torch.zeros(2, 1, 28, 28))
    assert seen["inp"] == (2, 16, stage_in, stage_in) and seen["out"] == (2, 16, 14, 14)
    stride = model.stages[0].fields[0].conv1.stride
    assert (model.stem_conv.stride, stride) == (
        ((2, 2), (1, 1)) if downsample == "stem" else ((1, 1), (2, 2))
    )


@pytest.mark.parametrize("solver", [*STACKED, "ode-euler"])
@pytest.mark.parametrize("downsample", ["stem", "field"])
def test_forward_backward_every_scheme(solver, downsample):
    g = torch.Generator().manual_seed(0)
    model = _single(8, solver, downsample, width=8, generator=g)
    x = torch.randn(3, 1, 16, 16, generator=g)
    loss = F.cross_entropy(model(x), torch.tensor([0, 3, 9]))
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"depth": 7}, r"depth = 2N \+ 2"),
        ({"depth": 2}, r"depth = 2N \+ 2"),
        ({"depth": 8, "downsample": "middle"}, "unknown downsample 'middle'"),
    ],
)
def test_bad_single_configs(kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        build_model(arch="single", **kwargs)


def test_cifar_rejects_a_field_downsample():
    with pytest.raises(ConfigError, match="applies to arch 'single' only"):
        build_model(20, arch="cifar", downsample="field")


def test_train_config_carries_arch_and_downsample(tmp_path):
    cfg = TrainConfig(
        dataset="synthetic:train=64,test=32,size=12,classes=3", epochs=1, batch_size=32,
        device="cpu", model=ModelConfig(arch="single", downsample="field", depth=6, width=4),
    )  # fmt: skip
    mc = cfg.model
    assert (mc.arch, mc.downsample, mc.blocks_per_stage) == ("single", "field", 2)
    result = train(cfg, out_dir=tmp_path / "run")
    assert result.status == "done"
    assert result.params == _params(3, 4, 2, 3)
    model, stored = load_trained(tmp_path / "run")  # the checkpoint rebuilds the same network
    assert (stored.model.arch, stored.model.downsample) == ("single", "field")
    assert model.config == mc.for_data(3, 3) and model.stem_conv.stride == (1, 1)


def test_describe_command_single():
    args = ["describe", "--arch", "single", "--depth", "14", "--downsample", "field"]
    out = CliRunner().invoke(app, [*args, "--in-channels", "1", "--image-size", "28", "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    assert s["arch"] == "single" and s["params"] == _params(1, 16, 6, 10)
    assert s["stages"] == [
        {"index": 1, "channels": 16, "stride": 2, "fields": 6,
         "steps": [{"scheme": "euler", "fields": 1}] * 6},
    ]  # fmt: skip


@pytest.mark.parametrize("downsample", ["stem", "field"])
def test_fused_members_equal_separate_networks(downsample):
    """Studies fuse runs on CUDA: the single-stage layout fuses like the CIFAR one."""
    gens = [torch.Generator().manual_seed(s) for s in range(2)]
    models = [_single(6, "rk4", downsample, width=4, generator=g) for g in gens]
    fused = fuse(models)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(3, 1, 12, 12, generator=g) for _ in models]
    out = fused(stack_inputs(xs))
    for m, (model, x) in enumerate(zip(models, xs)):
        torch.testing.assert_close(out[:, m], model(x))


def test_downsample_is_a_study_axis(tmp_path, capsys):
    """`odenet study --set arch=single --axis downsample=stem,field`: one run per position."""
    out = tmp_path / "study"
    with pytest.raises(SystemExit) as exit_:
        main([
            "study", "--set", "arch=single", "--axis", "downsample=stem,field", "--depths", "6",
            "--orders", "1", "--lrs", "0.1", "--seeds", "0", "--epochs", "1", "--width", "4",
            "--dataset", "synthetic:train=64,test=32,size=12,classes=3", "--device", "cpu",
            "--out", str(out), "--json",
        ])  # fmt: skip
    assert exit_.value.code == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [(r["id"], r["downsample"], r["status"]) for r in runs] == [
        ("d6-euler-lr0.1-dsstem-s0", "stem", "done"),
        ("d6-euler-lr0.1-dsfield-s0", "field", "done"),
    ]
    strides = {}
    for r in runs:
        model, config = load_trained(out / "runs" / r["id"])
        assert (config.model.arch, config.model.downsample) == ("single", r["downsample"])
        strides[r["downsample"]] = model.stem_conv.stride
    assert strides == {"stem": (2, 2), "field": (1, 1)}


def test_study_depths_follow_the_arch_rule(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["study", "--set", "arch=single", "--depths", "19", "--dry-run"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--depths: invalid depth 19" in err and "2N + 2" in err and err.count("\n") == 1
