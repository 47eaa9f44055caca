"""The training engine on a tiny synthetic task: learning, determinism, bitwise resume,
divergence without side effects, result files and load_trained."""

import dataclasses
import json
import math

import pytest
import torch

from odenet.data import load_dataset
from odenet.errors import ConfigError
from odenet.nets import ModelConfig
from odenet.training import TrainCallbacks, TrainConfig, evaluate, load_trained, train
from odenet.training.checkpoint import load_checkpoint
from odenet.training.device import resolve
from odenet.training.engine import READ_EVERY
from odenet.training.sgd import MemberSGD

SPEC = "synthetic:train=256,test=64,size=8"  # mechanics: tiny and fast
LEARN = "synthetic:train=1024,test=256,size=16"  # learning: a small net gets it in 4 epochs


@pytest.fixture(scope="module")
def data():
    return load_dataset(SPEC)


def cfg(**kw) -> TrainConfig:
    base = dict(dataset=SPEC, depth=8, width=4, epochs=3, batch_size=64, lr=0.1, device="cpu")
    return TrainConfig().replace(**{**base, **kw})


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def assert_same_optimizer(a: dict, b: dict) -> None:
    """The optimizer state of two checkpoints: momentum buffers and the steps taken."""
    assert a["step"] == b["step"]
    assert_same_tensors(a["momentum"], b["momentum"])


def metrics(result):  # everything but wall-clock measurements
    return [(m.epoch, m.train_loss, m.train_acc, m.test_loss, m.test_acc, m.lr)
            for m in result.history]  # fmt: skip


class StopAfter(TrainCallbacks):
    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, m) -> None:
        if m.epoch == self.epoch:
            raise KeyboardInterrupt


class Recorder(TrainCallbacks):
    def __init__(self) -> None:
        self.events = []

    def on_epoch_start(self, epoch, steps):
        self.events.append(("start", epoch, steps))

    def on_step(self, epoch, step, loss):
        self.events.append(("step", epoch, step))

    def on_epoch_end(self, m):
        self.events.append(("end", m.epoch))


def test_learns_and_reports_every_epoch(tmp_path):
    rec = Recorder()
    config = cfg(dataset=LEARN, epochs=4, width=8)
    r = train(config, dataset=load_dataset(LEARN), callbacks=rec, out_dir=tmp_path)
    assert r.status == "done" and r.epochs_done == 4 and r.diverged_epoch is None
    assert [m.epoch for m in r.history] == [1, 2, 3, 4]
    assert r.history[-1].train_loss < r.history[0].train_loss
    assert r.test_acc >= 0.5  # 10 classes: chance is 0.1
    assert r.best_test_acc == max(m.test_acc for m in r.history)
    assert all(m.seconds > 0 and m.images_per_s > 0 for m in r.history)
    steps = math.ceil(1024 / 64)
    # on_step at every host read (every READ_EVERY steps and at the epoch's end) only
    reads = [*range(READ_EVERY, steps, READ_EVERY), steps]
    assert rec.events[: len(reads) + 2] == [
        ("start", 1, steps),
        *(("step", 1, s) for s in reads),
        ("end", 1),
    ]
    # one-cycle: the lr of the last step of the last epoch is close to 0
    assert r.history[-1].lr == pytest.approx(0.1 * (1 / (4 * steps)) / 0.7)
    saved = json.loads((tmp_path / "result.json").read_text())
    assert saved["test_acc"] == r.test_acc and saved["diverged"] is False
    assert saved["epochs"] == 4 and saved["provenance"]["config"] == dataclasses.asdict(config)
    assert r.params > 0 and r.extra_params == 0 and r.device == "cpu"


def test_same_seed_same_weights_other_seed_differs(data, tmp_path):
    train(cfg(epochs=1), dataset=data, out_dir=tmp_path / "a")
    train(cfg(epochs=1), dataset=data, out_dir=tmp_path / "b")
    train(cfg(epochs=1, seed=1), dataset=data, out_dir=tmp_path / "c")
    a, b, c = (load_checkpoint(tmp_path / k)["model"] for k in "abc")
    assert_same_tensors(a, b)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_resume_after_interrupt_matches_uninterrupted_run_bitwise(data, tmp_path):
    config = cfg(epochs=3)
    full = train(config, dataset=data, out_dir=tmp_path / "full")
    with pytest.raises(KeyboardInterrupt):
        train(config, dataset=data, out_dir=tmp_path / "cut", callbacks=StopAfter(1))
    assert load_checkpoint(tmp_path / "cut")["epoch"] == 1
    assert not (tmp_path / "cut" / "result.json").exists()
    resumed = train(config, dataset=data, out_dir=tmp_path / "cut")
    assert metrics(resumed) == metrics(full)
    a, b = load_checkpoint(tmp_path / "full"), load_checkpoint(tmp_path / "cut")
    assert_same_tensors(a["model"], b["model"])
    assert_same_optimizer(a, b)
    assert a["step"] == 3 * 4  # 256 images at batch 64: 4 steps an epoch
    assert torch.equal(a["rng"]["train_loader"], b["rng"]["train_loader"])


def test_finished_run_is_returned_and_other_config_is_refused(data, tmp_path):
    config = cfg(epochs=1)
    first = train(config, dataset=data, out_dir=tmp_path)
    rec = Recorder()
    again = train(config, dataset=data, out_dir=tmp_path, callbacks=rec)
    assert rec.events == [] and again.to_dict() == first.to_dict()
    with pytest.raises(ConfigError, match="lr: 0.1 there, 0.2 now"):
        train(dataclasses.replace(config, lr=0.2), dataset=data, out_dir=tmp_path)


def test_divergence_is_a_result_and_leaves_no_trace(data, tmp_path):
    before = train(cfg(epochs=1), dataset=data, out_dir=tmp_path / "before")
    bad = train(cfg(epochs=2, lr=1000.0), dataset=data, out_dir=tmp_path / "bad")
    assert bad.status == "diverged" and bad.to_dict()["diverged"] is True
    assert bad.diverged_epoch >= 1 and bad.diverged_step >= 1
    assert bad.epochs_done == len(bad.history) == bad.diverged_epoch - 1
    assert json.loads((tmp_path / "bad" / "result.json").read_text())["diverged"] is True
    after = train(cfg(epochs=1), dataset=data, out_dir=tmp_path / "after")
    assert metrics(after) == metrics(before)
    assert_same_tensors(load_checkpoint(tmp_path / "before")["model"],
                        load_checkpoint(tmp_path / "after")["model"])  # fmt: skip


def test_threshold_stops_at_the_first_step_exactly(data):
    rec = Recorder()
    r = train(cfg(divergence_threshold=0.5), dataset=data, callbacks=rec)  # loss ~ ln 10
    assert (r.status, r.diverged_epoch, r.diverged_step, r.epochs_done) == ("diverged", 1, 1, 0)
    assert r.test_acc is None and r.history == [] and rec.events == [("start", 1, 4)]


def test_load_trained_gives_the_last_epoch_model_in_eval_mode(data, tmp_path):
    config = cfg(epochs=1)
    r = train(config, dataset=data, out_dir=tmp_path)
    model, loaded = load_trained(tmp_path)
    assert loaded == config and not model.training
    from odenet.data import make_loaders

    _, test = make_loaders(data, batch_size=64, device="cpu", seed=0)
    loss, acc = evaluate(model, test, resolve(config))
    assert (loss, acc) == (r.history[-1].test_loss, r.history[-1].test_acc)


def test_weight_decay_only_on_conv_and_linear_weights():
    """With zero gradients and no momentum a step is pure weight decay: p -> p - lr wd p for
    conv/linear weights (ndim > 1), and nothing moves for norms, biases or lm's k scalars."""
    from odenet.nets import build_from_config

    config = cfg(solver="lm", momentum=0.0, nesterov=False, weight_decay=0.5)
    model = build_from_config(config.model, torch.Generator().manual_seed(0))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = MemberSGD(model, 1, config, [0.1])
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step(torch.ones(1, dtype=torch.bool), 1.0)
    names = [n for n, _ in model.named_parameters()]
    assert any("coeff" in n or n.endswith(".k") for n in names)  # lm's k scalars are there
    for n, p in model.named_parameters():
        decay = torch.zeros_like(p).add(before[n], alpha=0.5)  # torch.optim.SGD's own ops
        expected = before[n].add(decay, alpha=-0.1) if p.ndim > 1 else before[n]
        assert torch.equal(p.detach(), expected), n


def test_dataset_name_must_match_the_config(data):
    with pytest.raises(ConfigError, match="set TrainConfig.dataset"):
        train(dataclasses.replace(cfg(), dataset="cifar10"), dataset=data)


@pytest.mark.slow
def test_fashion_mnist_depth8_learns_in_two_epochs_on_4000_images(tmp_path):
    """The CPU acceptance check (docs/performance.md: 62-65% measured; chance is 10%)."""
    from odenet.errors import DataError

    try:
        data = load_dataset("fashion-mnist", download=False)
    except DataError as err:
        pytest.skip(f"Fashion-MNIST not available offline: {err}")
    config = TrainConfig(dataset="fashion-mnist", epochs=2, limit_train=4000, limit_test=2000,
                         device="cpu", model=ModelConfig(depth=8))  # fmt: skip
    r = train(config, dataset=data)
    assert r.status == "done" and r.history[1].train_loss < r.history[0].train_loss
    assert r.test_acc >= 0.5
