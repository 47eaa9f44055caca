"""The CUDA defaults on a real GPU (`python -m pytest -m gpu`); skipped where CUDA is absent.

They repeat contracts the CPU suite checks (tests/test_training_capture.py,
tests/test_fused_training.py) under what CUDA turns on by default: bf16 autocast, NHWC and
CUDA-graph capture. bf16 makes runs agree only to bf16 rounding (tests/float32_bounds.py).
"""

import dataclasses

import pytest
import torch
from float32_bounds import bf16_training_rtol

from odenet.data import load_dataset
from odenet.training import TrainConfig, train, train_fused

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
SPEC = "synthetic:train=256,test=64,size=8"  # 5 full batches of 48 and a partial one


@pytest.fixture(scope="module")
def data():
    return load_dataset(SPEC)


def cfg(**kw) -> TrainConfig:
    base = dict(dataset=SPEC, depth=14, width=8, solver="rk4", epochs=2, batch_size=48,
                lr=0.05, device="cuda")  # fmt: skip
    return TrainConfig().replace(**{**base, **kw})


def assert_close_runs(a, b) -> None:
    assert (a.status, a.diverged_epoch, a.diverged_step) == (
        b.status, b.diverged_epoch, b.diverged_step
    )  # fmt: skip
    rtol = bf16_training_rtol(2 * 6)  # 2 epochs of 6 steps (tests/float32_bounds.py)
    for x, y in zip(a.history, b.history, strict=True):
        assert x.train_loss == pytest.approx(y.train_loss, rel=rtol)
        assert x.test_loss == pytest.approx(y.test_loss, rel=rtol)


def test_captured_training_matches_eager(data):
    eager = train(cfg(cuda_graphs=False), dataset=data)
    captured = train(cfg(), dataset=data)
    prov = captured.provenance
    assert prov["device"].startswith("cuda") and prov["amp"] and prov["channels_last"]
    assert prov["engine"] == "cuda-graphs" and "engine_fallback" not in prov
    assert eager.provenance["engine"] == "eager"
    assert_close_runs(captured, eager)


def test_fused_group_matches_separate_runs(data):
    configs = [cfg(lr=lr, seed=s) for lr, s in ((0.05, 0), (0.2, 1), (1e4, 2))]
    separate = [train(c, dataset=data) for c in configs]
    fused = train_fused(configs, dataset=data)
    assert [r.status for r in fused] == ["done", "done", "diverged"]
    for a, b in zip(fused, separate):
        assert_close_runs(a, b)
    eager = train_fused([dataclasses.replace(c, cuda_graphs=False) for c in configs], dataset=data)
    for a, b in zip(fused, eager):
        assert_close_runs(a, b)
