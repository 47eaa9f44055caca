"""learn-<tableau>: Runge-Kutta stackings whose A and b are learned per step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import odenet.solvers as S
from odenet.cli import app
from odenet.data import load_dataset
from odenet.nets import ModelConfig, build_model, count_parameters, describe
from odenet.nets.stage import scheme_coefficients
from odenet.solvers.stability import stability_function
from odenet.training import TrainCallbacks, TrainConfig, train
from odenet.training.checkpoint import load_checkpoint
from odenet.training.sgd import MemberSGD

SPEC = "synthetic:train=128,test=64,size=8"


def _pair(base: str, depth: int, seed: int = 0):
    fixed = build_model(depth, base, generator=torch.Generator().manual_seed(seed))
    learned = build_model(depth, "learn-" + base, generator=torch.Generator().manual_seed(seed))
    return fixed, learned


@pytest.mark.parametrize(
    "base, depth", [("rk4", 20), ("rk4", 32), ("heun", 20), ("gill", 32), ("cv8", 14)]
)
def test_at_init_equals_the_fixed_tableau_network_bitwise(base, depth):
    fixed, learned = _pair(base, depth)
    fs, ls = fixed.state_dict(), learned.state_dict()
    assert set(fs) <= set(ls) and all(torch.equal(fs[k], ls[k]) for k in fs)
    assert all(".coefficients." in k for k in set(ls) - set(fs))
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    assert torch.equal(fixed(x), learned(x))  # train mode (batch statistics)
    fixed.eval(), learned.eval()
    with torch.no_grad():
        assert torch.equal(fixed(x), learned(x))


def test_plan_coefficients_and_counts():
    model = build_model(32, "learn-rk4")  # n = 5: one rk4 step + one euler step per stage
    report = scheme_coefficients(model)
    assert [st["stage"] for st in report] == [1, 2, 3]
    steps = report[0]["steps"]
    assert [s["scheme"] for s in steps] == ["rk4", "euler"]
    assert steps[0]["a"] == [[], [0.5], [0.0, 0.5], [0.0, 0.0, 1.0]]
    assert steps[0]["b"] == pytest.approx([1 / 6, 1 / 3, 1 / 3, 1 / 6], abs=1e-7)
    assert steps[1] == {"scheme": "euler", "a": [[]], "b": [1.0]}
    assert [(p.scheme, p.fields) for p in model.stages[0].plan()] == [
        ("learn-rk4", 4),
        ("learn-euler", 1),
    ]
    weights, extra = count_parameters(model)
    assert weights == count_parameters(build_model(32, "rk4"))[0]
    assert extra == 3 * ((6 + 4) + (0 + 1))  # per stage: rk4 A (6) + b (4), euler b (1)
    summary = describe(ModelConfig(depth=32, solver="learn-rk4"), image_size=8)
    assert summary.extra_params == extra and summary.family == "learned-rk"


def test_coefficients_get_gradients_and_no_weight_decay():
    model = build_model(32, "learn-rk4", generator=torch.Generator().manual_seed(0))
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    model(x).logsumexp(dim=1).sum().backward()
    coeffs = model.coefficient_parameters()
    assert len(coeffs) == 3 * 3  # rk4's a and b, euler's b (it has no A) in each stage
    for p in coeffs:
        assert p.ndim == 1 and p.grad is not None and p.grad.abs().sum() > 0
    # every entry of rk4's A gets a gradient, its zeros included (they are learnable)
    a_rk4 = model.stages[1].coefficients.a["0"]
    assert a_rk4.numel() == 6 and (a_rk4.grad != 0).all()
    # weight decay alone (zero gradients, no momentum) moves the weights, never the coefficients
    config = TrainConfig(
        dataset=SPEC, model=ModelConfig(depth=32, solver="learn-rk4"), weight_decay=1.0,
        momentum=0.0, nesterov=False,
    )  # fmt: skip
    opt = MemberSGD(model, 1, config, [0.5])
    before = {id(p): p.detach().clone() for p in model.parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step(torch.ones(1, dtype=torch.bool), 1.0)
    for p in model.parameters():
        assert torch.equal(p, before[id(p)]) == (p.ndim <= 1)
    assert all(p.ndim <= 1 for p in coeffs)


def test_classic_solve_and_stability_are_the_initial_tableau():
    f = lambda t, y: -y + torch.sin(torch.as_tensor(t))  # noqa: E731
    y0 = torch.tensor([1.0, 2.0], dtype=torch.float64)
    for base in ("heun", "rk4", "nystrom5"):
        assert torch.equal(
            S.solve(f, y0, 0.0, 1.0, 7, "learn-" + base), S.solve(f, y0, 0, 1, 7, base)
        )
        z = np.linspace(-3, 1, 11) + 0.5j
        assert np.array_equal(stability_function("learn-" + base)(z), stability_function(base)(z))
        assert S.get("learn-" + base).order == S.get(base).order


def test_every_runge_kutta_method_has_a_learnable_variant():
    rk = [n for n in S.available() if isinstance(S.get(n), S.RungeKutta)]
    assert [n for n in S.available() if n.startswith("learn-")] == ["learn-" + n for n in rk]


class StopAfter(TrainCallbacks):
    def on_epoch_end(self, m) -> None:
        if m.epoch == 1:
            raise KeyboardInterrupt


@pytest.mark.parametrize("depth", [8, 14])
def test_trains_resumes_bitwise_and_reports_the_learned_tableau(depth, tmp_path):
    data = load_dataset(SPEC)
    config = TrainConfig(
        dataset=SPEC, model=ModelConfig(depth=depth, width=4, solver="learn-rk4"), epochs=2,
        batch_size=32, device="cpu",
    )  # fmt: skip
    full = train(config, dataset=data, out_dir=tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train(config, dataset=data, out_dir=tmp_path / "cut", callbacks=StopAfter())
    resumed = train(config, dataset=data, out_dir=tmp_path / "cut")
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "cut")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert [m.test_loss for m in resumed.history] == [m.test_loss for m in full.history]
    learned = full.provenance["coefficients"]
    assert learned == resumed.provenance["coefficients"]
    # the report is the checkpoint's coefficients, and training moved them off the tableau
    first = learned[0]["steps"][0]
    key = "stages.0.coefficients.b.0"
    assert first["b"] == a["model"][key].tolist() and first["b"] != [1.0] * len(first["b"])
    assert full.extra_params == sum(
        v.numel() for k, v in a["model"].items() if ".coefficients." in k
    )


def test_cli_json_result_contains_the_learned_tableau(tmp_path):
    args = [
        "train", "--dataset", SPEC, "--depth", "8", "--width", "4", "--solver", "learn-rk4",
        "--epochs", "2", "--device", "cpu", "--out", str(tmp_path), "--json",
    ]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    coeffs = data["provenance"]["coefficients"]
    assert [c["stage"] for c in coeffs] == [1, 2, 3]
    assert coeffs[0]["steps"][0]["scheme"] == "euler" and len(coeffs[0]["steps"][0]["b"]) == 1
    assert data["extra_params"] == 3
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["provenance"]["coefficients"] == coeffs
