"""The captured training step (CUDA graphs through torch.compile reduce-overhead).

No GPU runs the tests, so capture is exercised on CPU by adding "cpu" to CAPTURE_DEVICES: the
dispatch (full batches compiled, the partial last batch eager, one step mark per captured
step) with a recording stand-in for torch.compile, and, in a slow test, the real
torch.compile(mode="reduce-overhead") (inductor on CPU; no graphs there) against eager training.
"""

import dataclasses

import pytest
import torch
from float32_bounds import bf16_training_rtol, training_rtol

from odenet.data import load_dataset
from odenet.errors import ConfigError
from odenet.nets import build_model
from odenet.training import TrainConfig, train
from odenet.training import device as device_module
from odenet.training.device import CapturedForward, Placement, compiled_forward
from odenet.training.fused import train_fused

SPEC = "synthetic:train=256,test=64,size=8"  # 256 = 5 x 48 + 16: a partial last batch
CPU = Placement(torch.device("cpu"), amp=False, channels_last=False)


@pytest.fixture(scope="module")
def data():
    return load_dataset(SPEC)


def cfg(**kw) -> TrainConfig:
    base = dict(dataset=SPEC, depth=8, width=4, epochs=2, batch_size=48, lr=0.05, device="cpu")
    return TrainConfig().replace(**{**base, **kw})


class Recorder:
    """Stands in for torch.compile: calls the module, counting batch sizes and step marks."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[int] = []
        self.marks = 0
        monkeypatch.setattr(device_module, "CAPTURE_DEVICES", ("cuda", "cpu"))
        monkeypatch.setattr(torch, "compile", self.compile)
        monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", self.mark)

    def compile(self, model, **options):
        assert options == {"mode": "reduce-overhead", "dynamic": False}

        def forward(x):
            assert self.marks == len(self.calls) + 1, "each captured step starts with a mark"
            self.calls.append(x.shape[0])
            return model(x)

        return forward

    def mark(self) -> None:
        self.marks += 1


def test_capture_is_off_on_cpu_and_refused_when_forced():
    model = build_model(8, "euler", width=4)
    assert compiled_forward(model, CPU, enabled=None, batch_size=8) is model
    assert compiled_forward(model, CPU, enabled=False, batch_size=8) is model
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA device"):
        compiled_forward(model, CPU, enabled=True, batch_size=8)


def test_default_capture_follows_the_device(monkeypatch):
    Recorder(monkeypatch)
    model = build_model(8, "euler", width=4)
    assert isinstance(compiled_forward(model, CPU, enabled=None, batch_size=8), CapturedForward)
    assert compiled_forward(model, CPU, enabled=False, batch_size=8) is model


def test_train_captures_full_batches_and_runs_the_partial_one_eagerly(monkeypatch, data):
    eager = train(cfg(cuda_graphs=False), dataset=data)
    recorder = Recorder(monkeypatch)
    captured = train(cfg(cuda_graphs=True), dataset=data)
    assert recorder.calls == [48] * 5 * 2  # 5 full batches per epoch; the 16 go eagerly
    assert recorder.marks == 10
    # The stand-in computes what the model computes: the same run, bit for bit.
    assert [m.train_loss for m in captured.history] == [m.train_loss for m in eager.history]
    assert captured.test_acc == eager.test_acc


def test_train_fused_captures_full_batches(monkeypatch, data):
    configs = [cfg(cuda_graphs=True, lr=lr, seed=s) for lr, s in ((0.05, 0), (0.2, 1))]
    eager = train_fused([dataclasses.replace(c, cuda_graphs=False) for c in configs], dataset=data)
    recorder = Recorder(monkeypatch)
    captured = train_fused(configs, dataset=data)
    assert recorder.calls == [48] * 5 * 2
    for a, b in zip(captured, eager):
        assert [m.train_loss for m in a.history] == [m.train_loss for m in b.history]


def test_many_architectures_in_one_process_are_all_captured(monkeypatch):
    """Dynamo compiles one function (ResNet.forward) at most 8 ways, then runs it eagerly: a
    study of 9+ architectures would silently lose its capture without the reset per capture.
    Dynamo's own backend ("eager") keeps this fast; failing on the limit makes it visible: the
    failure is caught (the run goes on eagerly), so the test asserts that none happened."""
    import torch._dynamo.config as dynamo_config

    monkeypatch.setattr(device_module, "CAPTURE_COMPILE", {"backend": "eager", "dynamic": False})
    monkeypatch.setattr(dynamo_config, "fail_on_recompile_limit_hit", True)
    x = torch.randn(2, 3, 8, 8)
    solvers = ("euler", "midpoint", "heun", "ralston", "rk3", "heun3", "rk4", "rk38", "gill")
    for solver in solvers:  # nine architectures (dynamo guards on each stage's solver)
        forward = CapturedForward(build_model(8, solver, width=4), batch_size=2)
        forward(x).sum().backward()
        # a compile failure (the limit hit among them) is caught and trains eagerly: only the
        # absence of a fallback says that this architecture was captured
        assert (forward.fallback, forward.engine) == (None, "cuda-graphs"), solver


@pytest.mark.slow
def test_real_compile_trains_like_eager(monkeypatch, data):
    """torch.compile(mode="reduce-overhead") itself, on CPU: forward and backward compiled by
    inductor, BatchNorm buffers mutated inside the graph, a partial batch eager in between."""
    monkeypatch.setattr(device_module, "CAPTURE_DEVICES", ("cuda", "cpu"))
    torch._dynamo.reset()
    config = cfg(solver="heun", epochs=2)
    eager = train(dataclasses.replace(config, cuda_graphs=False), dataset=data)
    compiled = train(dataclasses.replace(config, cuda_graphs=True), dataset=data)
    # inductor's fused kernels sum in other orders than eager's: the longest sum is a weight
    # gradient over 48 x 8 x 8 positions, 2 x 6 steps (tests/float32_bounds.py)
    rtol = training_rtol(48 * 8 * 8, 12)
    for a, b in zip(compiled.history, eager.history):
        assert a.train_loss == pytest.approx(b.train_loss, rel=rtol)
        assert a.test_loss == pytest.approx(b.test_loss, rel=rtol)


@pytest.mark.parametrize("executor", ["sequential", "fused"])
def test_the_study_switch_reaches_every_run(monkeypatch, tmp_path, executor):
    """`odenet study --no-cuda-graphs` turns capture off for every run, and may change when
    the study resumes (how a step runs, not what it computes): interrupted after an epoch
    without capture and resumed with it, the study ends as an uninterrupted one."""
    from odenet.studies import StudySpec, run_study
    from odenet.studies.runner import StudyObserver

    class StopAfterAnEpoch(StudyObserver):
        def on_epoch_end(self, run, metrics):
            raise KeyboardInterrupt

    base = TrainConfig(epochs=2, dataset=SPEC, batch_size=48, device="cpu", cuda_graphs=False)
    spec = StudySpec(base=base.replace(width=4), orders=(1,), depths=(8,), lrs=(0.05, 0.2),
                     executor=executor)  # fmt: skip
    reference = run_study(spec, tmp_path / "reference", quiet=True)
    recorder = Recorder(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_study(spec, tmp_path / "study", observer=StopAfterAnEpoch())
    assert recorder.calls == []
    unset = dataclasses.replace(spec, base=spec.base.replace(cuda_graphs=None))
    resumed = run_study(unset, tmp_path / "study", quiet=True)
    # 5 full batches an epoch: fused, both runs' second epoch at once; sequential, the first
    # run's second epoch and both epochs of the second run
    assert len(recorder.calls) == (5 if executor == "fused" else 15)
    for a, b in zip(resumed.records, reference.records, strict=True):
        assert (a.status, a.epochs_done, a.test_acc, a.train_loss) == (
            b.status, b.epochs_done, b.test_acc, b.train_loss
        )  # fmt: skip


def test_study_refuses_cuda_graphs_without_cuda(run_cli, tmp_path):
    code, out, err = run_cli(["study", "--dataset", SPEC, "--depths", "8", "--orders", "1",
                              "--lrs", "0.1", "--epochs", "1", "--device", "cpu",
                              "--cuda-graphs", "--out", str(tmp_path / "s")])  # fmt: skip
    assert code == 2
    assert "--cuda-graphs needs a CUDA device" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.slow
def test_the_cuda_defaults_emulated_on_cpu(monkeypatch, data):
    """Everything CUDA turns on by default (bf16 autocast, NHWC, capture through the real
    torch.compile) at once, for a fused group with a diverging member and a single run: the
    same outcomes as eager training, the losses equal to bf16 precision."""
    base = cfg(depth=14, solver="rk4", amp=True, channels_last=True)
    configs = [
        dataclasses.replace(base, lr=lr, seed=s) for lr, s in ((0.05, 0), (0.2, 1), (1e4, 2))
    ]
    eager = train_fused([dataclasses.replace(c, cuda_graphs=False) for c in configs], dataset=data)
    single_eager = train(dataclasses.replace(configs[0], cuda_graphs=False), dataset=data)
    monkeypatch.setattr(device_module, "CAPTURE_DEVICES", ("cuda", "cpu"))
    captured = train_fused(configs, dataset=data)
    single = train(configs[0], dataset=data)
    assert [r.status for r in captured] == [r.status for r in eager] == ["done", "done", "diverged"]
    assert (captured[2].diverged_epoch, captured[2].diverged_step) == (
        eager[2].diverged_epoch, eager[2].diverged_step
    )  # fmt: skip
    rtol = bf16_training_rtol(2 * 6)  # 2 epochs of 6 steps (5 captured + 1 eager)
    for a, b in zip([*captured, single], [*eager, single_eager]):
        for x, y in zip(a.history, b.history, strict=True):
            assert x.train_loss == pytest.approx(y.train_loss, rel=rtol)
            assert x.test_loss == pytest.approx(y.test_loss, rel=rtol)
