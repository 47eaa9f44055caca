"""The CIFAR family: He et al.'s ResNet-d exactly, every solver trains, configs fail in one line."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from odenet.errors import ConfigError
from odenet.nets import ModelConfig, build_from_config, build_model
from odenet.solvers import StackedSolver, available, get

STACKED = [n for n in available() if isinstance(get(n), StackedSolver)]


class _HeBlock(nn.Module):
    """Reference basic block (He et al. 2015, option A), written independently of odenet.nets."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.pad = (cout - cin) // 2
        self.stride = stride

    def forward(self, x):
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        sc = x
        if self.stride != 1 or self.pad:
            sc = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return F.relu(out + sc)


class _HeResNet(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, cin = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(n):
                blocks.append(_HeBlock(cin, cout, stride if i == 0 else 1))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


@pytest.mark.parametrize("train", [False, True])
def test_euler_postact_a_is_he_resnet20(train):
    g = torch.Generator().manual_seed(3)
    model = build_model(20, "euler", generator=g)
    ref = _HeResNet(3)
    ours, theirs = model.state_dict(), ref.state_dict()
    assert [v.shape for v in ours.values()] == [v.shape for v in theirs.values()]
    ref.load_state_dict(dict(zip(theirs, ours.values())))
    model.train(train)
    ref.train(train)
    x = torch.randn(4, 3, 32, 32, generator=g)
    torch.testing.assert_close(model(x), ref(x), rtol=1e-5, atol=1e-5)


def test_initialisation_is_a_function_of_the_generator():
    a = build_model(20, "lm", generator=torch.Generator().manual_seed(7))
    b = build_model(20, "lm", generator=torch.Generator().manual_seed(7))
    c = build_model(20, "lm", generator=torch.Generator().manual_seed(8))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["stem_conv.weight"], sc["stem_conv.weight"])
    assert not torch.equal(sa["stages.0.coefficients.k"], sc["stages.0.coefficients.k"])
    # kaiming normal, fan_out, relu: std = sqrt(2 / (9 * 64)) for the last stage's 3x3 convs
    w = a.stages[2].fields[1].conv2.weight
    assert abs(w.std().item() / (2 / (9 * 64)) ** 0.5 - 1) < 0.05


def _forward_backward(depth: int, solver: str, size: int, **kw) -> None:
    g = torch.Generator().manual_seed(0)
    model = build_model(depth, solver, generator=g, **kw)
    c = kw.get("in_channels", 3)
    x = torch.randn(2, c, size, size, generator=g)
    logits = model(x)
    assert logits.shape == (2, kw.get("num_classes", 10))
    F.cross_entropy(logits, torch.tensor([0, 1])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # every field's convolutions are used (each field exactly once): all get a gradient
    for name, p in model.named_parameters():
        if name.endswith("conv1.weight") or name.endswith("conv2.weight"):
            assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("solver", STACKED)
def test_forward_backward_depth20_every_solver(solver):
    _forward_backward(20, solver, 32)


@pytest.mark.parametrize("solver", STACKED)
def test_forward_backward_depth56_every_solver(solver):
    _forward_backward(56, solver, 16)


@pytest.mark.slow
@pytest.mark.parametrize("solver", STACKED)
def test_forward_backward_depth56_every_solver_32px(solver):
    _forward_backward(56, solver, 32)


@pytest.mark.parametrize(
    ("block", "shortcut", "norm"),
    [("preact", "A", None), ("postact", "B", "gn"), ("preact", "B", "bn")],
)
def test_variants_on_28x28_single_channel(block, shortcut, norm):
    _forward_backward(
        20, "rk4", 28, block=block, shortcut=shortcut, norm=norm, in_channels=1, num_classes=7
    )


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"depth": 21}, "depth"),
        ({"depth": 2}, "depth"),
        ({"block": "bottleneck"}, "block"),
        ({"shortcut": "D"}, "shortcut"),
        ({"solver": "rk5"}, "solver"),
        ({"norm": "ln"}, "norm"),
        ({"width": 0}, "width"),
        ({"ode_t1": -1.0}, "ode_t1"),
    ],
)
def test_invalid_config_fails_with_one_line(kwargs, needle):
    with pytest.raises(ConfigError) as err:
        build_from_config(ModelConfig(**kwargs))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg
    if needle in ("block", "shortcut", "solver"):
        assert "expected one of" in msg


def test_build_model_rejects_unknown_options():
    with pytest.raises(ConfigError, match="unknown option"):
        build_model(20, "ode-dopri5", tolerance=1e-3)


def test_build_model_records_its_config():
    model = build_model(
        20, get("heun"), width=8, num_classes=5, generator=torch.Generator().manual_seed(0)
    )
    assert model.config == ModelConfig(
        depth=20, solver="heun", width=8, in_channels=3, num_classes=5
    )
    assert model.nfe is None


def _cifar_params(n: int) -> int:
    """Option A, width 16, 10 classes: stem, three stages of n fields, head (closed form)."""
    w = (16, 32, 64)
    stem = 9 * 3 * 16 + 2 * 16
    stages = sum(
        9 * cin * c + 9 * c * c + 4 * c + (n - 1) * (18 * c * c + 4 * c)
        for cin, c in zip((16, 16, 32), w)
    )
    return stem + stages + 64 * 10 + 10


def test_resnet1202_builds_with_the_closed_form_parameter_count():
    """He et al.'s deepest CIFAR network (n = 200, about 19.4M parameters), on the meta device."""
    assert _cifar_params(3) == 269_722  # the closed form agrees with the published ResNet-20
    with torch.device("meta"):
        model = build_model(1202, "rk4")
    assert sum(p.numel() for p in model.parameters()) == _cifar_params(200) == 19_421_274
    assert [len(s.fields) for s in model.stages] == [200, 200, 200]


@pytest.mark.slow
def test_resnet1202_forward_backward():
    g = torch.Generator().manual_seed(0)
    model = build_model(1202, "euler", generator=g)
    loss = model(torch.randn(2, 3, 8, 8, generator=g)).square().mean()
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(model.stem_conv.weight.grad).all()
