"""The ImageNet family (ResNet-18 ... -152) at every stacked scheme.

Parameter counts are torchvision's (He et al. 2015, v1.5); the euler networks are checked
against an independent torchvision-style implementation written here.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from typer.testing import CliRunner

import odenet
from odenet.cli import app
from odenet.errors import ConfigError
from odenet.nets import ModelConfig, build_model, count_flops, count_parameters, describe, fuse
from odenet.nets.fused import stack_inputs
from odenet.solvers import StackedSolver, available, get

COUNTS = {
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "resnet152": 60_192_808,
}
# every scheme that wires distinct fields with an identity path (RK and multistep families)
STACKED = [n for n in available() if isinstance(get(n), StackedSolver) and get(n).family != "plain"]


def _meta(arch: str, solver: str) -> odenet.ResNet:
    """The real module, built on the meta device (shapes only: fast even for ResNet-152)."""
    with torch.device("meta"):
        return build_model(arch=arch, solver=solver)


@pytest.mark.parametrize("arch", sorted(COUNTS))
def test_euler_parameter_counts_are_torchvision(arch):
    model = _meta(arch, "euler")
    assert count_parameters(model) == (COUNTS[arch], 0)
    assert model.config.depth == int(arch[6:]) and model.config.num_classes == 1000


def _check_matched(arch: str) -> None:
    """Every stacked scheme: the euler parameter count and euler's conv + linear FLOPs."""
    ref = count_flops(_meta(arch, "euler"), image_size=64)
    assert ref[0] == ref[1] > 0
    for solver in STACKED:
        model = _meta(arch, solver)
        assert count_parameters(model)[0] == COUNTS[arch], solver
        assert count_flops(model, image_size=64)[1] == ref[1], solver


@pytest.mark.parametrize("arch", ["resnet18", "resnet34"])
def test_every_stacked_scheme_has_the_same_parameters_and_conv_flops(arch):
    _check_matched(arch)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["resnet50", "resnet101", "resnet152"])
def test_every_stacked_scheme_has_the_same_parameters_and_conv_flops_bottleneck(arch):
    _check_matched(arch)


def test_every_stacked_scheme_has_the_same_parameters_resnet50():
    """The bottleneck family in the default run (FLOPs for 50/101/152: the slow test above)."""
    for solver in STACKED:
        assert count_parameters(_meta("resnet50", solver))[0] == COUNTS["resnet50"], solver


def test_resnet50_flops_at_224_are_the_published_macs():
    """4,089,184,256 multiply-adds (the 4.09 GMACs torchvision/ptflops report), 2 FLOPs each."""
    s = describe(ModelConfig(arch="resnet50", num_classes=1000))
    assert s.image_size == 224 and s.layers == 50 and s.depth == 50
    assert s.conv_linear_flops == 2 * 4_089_184_256


# ---- an independent torchvision-style ResNet (the reference for euler) ----------------------
class _Block(nn.Module):
    def __init__(self, cin: int, planes: int, stride: int, bottleneck: bool) -> None:
        super().__init__()
        out = planes * (4 if bottleneck else 1)
        if bottleneck:
            self.convs = nn.ModuleList(
                [
                    nn.Conv2d(cin, planes, 1, bias=False),
                    nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
                    nn.Conv2d(planes, out, 1, bias=False),
                ]
            )
        else:
            self.convs = nn.ModuleList(
                [
                    nn.Conv2d(cin, planes, 3, stride, 1, bias=False),
                    nn.Conv2d(planes, planes, 3, 1, 1, bias=False),
                ]
            )
        self.bns = nn.ModuleList([nn.BatchNorm2d(c.out_channels) for c in self.convs])
        self.down = None
        if stride != 1 or cin != out:
            self.down = nn.Sequential(
                nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out)
            )

    def forward(self, x):
        h = x
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns)):
            h = bn(conv(h))
            if i < len(self.convs) - 1:
                h = F.relu(h)
        return F.relu(h + (x if self.down is None else self.down(x)))


class _Reference(nn.Module):
    def __init__(self, counts, bottleneck: bool, classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        layers, cin = [], 64
        for i, n in enumerate(counts):
            planes = 64 * 2**i
            blocks = []
            for j in range(n):
                blocks.append(_Block(cin, planes, 2 if (j == 0 and i > 0) else 1, bottleneck))
                cin = planes * (4 if bottleneck else 1)
            layers.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.layers(x), 1), 1))


def _load_reference(model: odenet.ResNet, ref: _Reference) -> None:
    """Copy model's weights (and BN statistics) into ref, module by module."""
    pairs = [(model.stem_conv, ref.conv1), (model.stem_norm, ref.bn1), (model.fc, ref.fc)]
    for stage, layer in zip(model.stages, ref.layers):
        for j, (field, block) in enumerate(zip(stage.fields, layer)):
            convs = [m for m in field.children() if isinstance(m, nn.Conv2d)]
            norms = [m for m in field.children() if isinstance(m, nn.BatchNorm2d)]
            pairs += list(zip(convs, block.convs)) + list(zip(norms, block.bns))
            if j == 0 and stage.shortcut is not None:
                pairs += [
                    (stage.shortcut.conv, block.down[0]),
                    (stage.shortcut.norm, block.down[1]),
                ]
            elif j == 0:
                assert block.down is None
    for ours, theirs in pairs:
        theirs.load_state_dict(ours.state_dict())
    assert sum(p.numel() for p in ref.parameters()) == count_parameters(model)[0]


@pytest.mark.parametrize("arch, counts, bottleneck", [
    ("resnet18", (2, 2, 2, 2), False),
    ("resnet50", (3, 4, 6, 3), True),
])  # fmt: skip
def test_euler_is_exactly_the_torchvision_network(arch, counts, bottleneck):
    g = torch.Generator().manual_seed(1)
    model = build_model(arch=arch, solver="euler", num_classes=7, generator=g)
    for m in model.modules():  # non-trivial BN statistics, so eval mode tests them
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
    ref = _Reference(counts, bottleneck, 7)
    _load_reference(model, ref)
    model.eval()
    ref.eval()
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        ours, theirs = model(x), ref(x)
    assert ours.shape == (2, 7)
    # the same float32 operations in the same order; a few hundred ulps of the logits' scale
    # leave room for a different summation inside the kernels
    tol = 300 * torch.finfo(torch.float32).eps * float(theirs.abs().max())
    torch.testing.assert_close(ours, theirs, rtol=0, atol=tol)


def test_rk4_resnet18_trains_a_step():
    g = torch.Generator().manual_seed(0)
    model = build_model(arch="resnet18", solver="rk4", num_classes=5, generator=g)
    x, y = torch.randn(2, 3, 32, 32, generator=g), torch.tensor([1, 4])
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert [len(s.fields) for s in model.stages] == [2, 2, 2, 2]
    assert [p.scheme for p in model.stages[0].plan()] == ["heun"]  # remainder rule: 2 fields


def test_python_api_is_a_drop_in_module():
    with torch.device("meta"):
        model = odenet.build_model(arch="resnet50", solver="rk4", num_classes=1000)
    assert isinstance(model, nn.Module) and model.config.arch == "resnet50"
    assert odenet.build_model(56, "rk4").config.depth == 56  # the CIFAR call is unchanged


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"arch": "resnet50", "block": "preact"}, "post-activation"),
        ({"arch": "resnet18", "solver": "ode-rk4"}, "needs a stacked scheme"),
        ({"arch": "resnet18", "downsample": "field"}, "applies to arch 'single' only"),
        ({"arch": "resnet200"}, "unknown arch 'resnet200'"),
        ({"arch": "cifar"}, "needs a depth"),
    ],
)
def test_invalid_arch_settings_fail_with_one_line(kwargs, needle):
    with pytest.raises(ConfigError, match=needle) as info:
        build_model(**kwargs)
    assert "\n" not in str(info.value)


def test_describe_command_resnet50_rk4_json():
    out = CliRunner().invoke(app, ["describe", "--arch", "resnet50", "--solver", "rk4", "--json"])
    assert out.exit_code == 0, out.output
    s = json.loads(out.output)
    assert s["params"] == 25_557_032 and s["arch"] == "resnet50" and s["shortcut"] == "B"
    assert [st["channels"] for st in s["stages"]] == [256, 512, 1024, 2048]
    assert [st["fields"] for st in s["stages"]] == [3, 4, 6, 3]
    assert [st["steps"][0]["scheme"] for st in s["stages"]] == ["rk3", "rk4", "rk4", "rk3"]


def test_fused_resnet18_members_equal_separate_networks():
    """The max-pool stem and projection shortcuts fuse (studies fuse runs on CUDA)."""
    gens = [torch.Generator().manual_seed(s) for s in range(2)]
    models = [build_model(arch="resnet18", solver="heun", num_classes=3, generator=g) for g in gens]
    fused = fuse(models).eval()  # eval: training-mode BN over 2 images at 1x1 amplifies noise
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(2, 3, 32, 32, generator=g) for _ in models]
    out = fused(stack_inputs(xs))
    for m, (model, x) in enumerate(zip(models, xs)):
        torch.testing.assert_close(out[:, m], model.eval()(x))
