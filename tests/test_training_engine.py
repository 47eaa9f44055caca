"""The engine's device-side divergence rule, host reads, step log and capture fallback.

The reference is an independent plain loop (torch.optim.SGD + LambdaLR, ``loss.item()`` and the
divergence check before every update, as the engine did before the check moved to the device):
on CPU the engine's per-step losses, divergence step and results must equal it bitwise.
"""

import dataclasses
import logging
import math

import pytest
import torch
import torch.nn.functional as F
from float32_bounds import training_rtol
from torch.optim.lr_scheduler import LambdaLR

from odenet.data import load_dataset, make_loaders
from odenet.nets import build_from_config
from odenet.training import StepLog, TrainCallbacks, TrainConfig, engine, train, train_fused
from odenet.training import device as device_module
from odenet.training.device import data_seed
from odenet.training.schedules import LRSchedule

SPEC = "synthetic:train=320,test=64,size=8"  # batch 8: 40 steps an epoch, 2 reads
STEPS = 40


@pytest.fixture(scope="module")
def data():
    return load_dataset(SPEC)


def cfg(**kw) -> TrainConfig:
    base = dict(dataset=SPEC, depth=8, width=4, epochs=2, batch_size=8, lr=0.05, device="cpu")
    return TrainConfig().replace(**{**base, **kw})


def reference(config: TrainConfig, data):
    """(per-step losses [(global step, loss, lr)], (epoch, step) of divergence or None)."""
    model = build_from_config(config.model_for(data),
                              torch.Generator().manual_seed(config.seed))  # fmt: skip
    loader, _ = make_loaders(data, batch_size=config.batch_size, device="cpu",
                             seed=data_seed(config.seed))  # fmt: skip
    params = list(model.parameters())
    opt = torch.optim.SGD(
        [{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
         {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
        lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
    )  # fmt: skip
    steps = len(loader)
    sched = LambdaLR(opt, LRSchedule(config.schedule, steps * config.epochs))
    rows = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        for step, (x, y) in enumerate(loader, start=1):
            loss = F.cross_entropy(model(x).float(), y)
            value = loss.item()
            if not math.isfinite(value) or value > config.divergence_threshold:
                return rows, (epoch, step)
            rows.append(((epoch - 1) * steps + step, value, opt.param_groups[0]["lr"]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return rows, None


class Log(TrainCallbacks):
    def __init__(self) -> None:
        self.rows: list[StepLog] = []
        self.calls = 0

    def on_log(self, rows) -> None:
        self.calls += 1
        self.rows.extend(rows)


@pytest.fixture
def reads(monkeypatch):
    """Counts the engine's device -> host reads, per epoch."""
    counts = [0]
    real = engine.host_read

    def counting(t):
        counts[0] += 1
        return real(t)

    monkeypatch.setattr(engine, "host_read", counting)
    return counts


def test_step_losses_and_reads_of_a_run(data, reads):
    config = cfg(log_every=1)
    log = Log()
    result = train(config, dataset=data, callbacks=log)
    rows, diverged = reference(config, data)
    assert diverged is None and result.status == "done"
    assert [(r.step, r.loss, r.lr) for r in log.rows] == rows  # bitwise, every step
    steps = STEPS
    per_epoch = math.ceil(steps / engine.READ_EVERY) + 1  # training reads + the evaluation
    assert reads[0] == config.epochs * per_epoch
    assert log.calls == config.epochs * math.ceil(steps / engine.READ_EVERY)
    assert result.history[0].train_loss == pytest.approx(sum(r[1] for r in rows[:STEPS]) / STEPS)


def test_a_diverging_run_stops_before_the_same_update(data, reads, tmp_path):
    """lr 2 makes the loss rise above its start; the threshold is put between the highest loss
    and every loss before it (taken from the reference trajectory on this machine's kernels, so
    the test does not depend on where rounding takes the trajectory), so the first step above it
    is mid-run, and the engine, reading the flags every 32 steps, records that very (epoch, step)
    and logs no step after."""
    probe = cfg(lr=2.0, schedule="constant", divergence_threshold=1e30, log_every=1)
    losses = [loss for _, loss, _ in reference(probe, data)[0]]
    peak = losses.index(max(losses))  # the first step with the highest loss
    assert peak > 0  # the loss rises above its start
    threshold = (losses[peak] + max(losses[:peak])) / 2
    config = dataclasses.replace(probe, divergence_threshold=threshold)
    rows, diverged = reference(config, data)
    assert diverged == (peak // STEPS + 1, peak % STEPS + 1) != (1, 1)  # mid-run: the mask works
    log = Log()
    result = train(config, dataset=data, callbacks=log, out_dir=tmp_path)
    assert (result.status, result.diverged_epoch, result.diverged_step) == ("diverged", *diverged)
    assert [(r.step, r.loss, r.lr) for r in log.rows] == rows
    assert result.epochs_done == diverged[0] - 1
    assert reads[0] <= diverged[0] * (math.ceil(STEPS / engine.READ_EVERY) + 1)


def test_a_diverging_member_of_a_fused_group(data, reads):
    """lr 1e4 (400 at the one-cycle start): step 1 is fine, step 2 blows up, robustly (a
    borderline divergence would depend on fused vs separate rounding)."""
    good, bad = cfg(lr=0.05, seed=0), cfg(lr=1e4, seed=1)
    _, diverged = reference(bad, data)
    assert diverged == (1, 2)
    logs = [Log(), Log()]
    results = train_fused([good, bad], dataset=data, callbacks=logs)
    assert [r.status for r in results] == ["done", "diverged"]
    assert (results[1].diverged_epoch, results[1].diverged_step) == diverged
    assert reads[0] == good.epochs * (math.ceil(STEPS / engine.READ_EVERY) + 1)
    assert [(r.step, r.lr) for r in logs[1].rows] == [(1, bad.lr * 0.04)]  # step 1 only
    alone = Log()
    separate = train(good, dataset=data, callbacks=alone)  # the other member, as a run
    # fused vs plain convolutions: the longest sum a weight gradient over 8 x 8 x 8 positions,
    # 2 x 40 steps (tests/float32_bounds.py)
    rtol = training_rtol(8 * 8 * 8, 2 * STEPS)
    assert [(r.step, r.lr) for r in logs[0].rows] == [(r.step, r.lr) for r in alone.rows]
    for a, b in zip(logs[0].rows, alone.rows, strict=True):
        assert a.loss == pytest.approx(b.loss, rel=rtol)
    for a, b in zip(results[0].history, separate.history, strict=True):
        assert a.train_loss == pytest.approx(b.train_loss, rel=rtol)


def test_log_every_and_resume_continue_the_step_count(data, tmp_path):
    config = cfg(log_every=7)
    full = Log()
    train(config, dataset=data, callbacks=full)
    assert [r.step for r in full.rows] == list(range(7, 2 * STEPS + 1, 7))

    class StopAfterFirst(Log):
        def on_epoch_end(self, metrics):
            raise KeyboardInterrupt

    first, rest = StopAfterFirst(), Log()
    with pytest.raises(KeyboardInterrupt):
        train(config, dataset=data, callbacks=first, out_dir=tmp_path)
    train(config, dataset=data, callbacks=rest, out_dir=tmp_path)
    assert first.rows + rest.rows == full.rows
    auto = Log()  # log_every 0: max(1, 80 // 100) = every step
    train(dataclasses.replace(config, log_every=0), dataset=data, callbacks=auto)
    assert [r.step for r in auto.rows] == list(range(1, 2 * STEPS + 1))


@pytest.mark.parametrize("when", ["compile", "first call"])
def test_a_failing_capture_trains_eagerly_and_says_so(monkeypatch, data, caplog, when):
    eager = train(cfg(epochs=1, cuda_graphs=False), dataset=data)
    assert eager.provenance["engine"] == "eager" and "engine_fallback" not in eager.provenance

    def broken_compile(model, **options):
        if when == "compile":
            raise RuntimeError("inductor is unavailable\nsecond line")

        def forward(x):
            raise RuntimeError("graph capture failed\nsecond line")

        return forward

    monkeypatch.setattr(device_module, "CAPTURE_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(torch, "compile", broken_compile)
    with caplog.at_level(logging.WARNING, logger="odenet.training"):
        result = train(cfg(epochs=1, cuda_graphs=True), dataset=data)
    reason = "RuntimeError: " + ("inductor is unavailable" if when == "compile" else
                                 "graph capture failed")  # fmt: skip
    assert result.status == "done"
    assert result.provenance["engine"] == "eager"
    assert result.provenance["engine_fallback"] == reason
    (line,) = [r.getMessage() for r in caplog.records]
    assert reason in line and "\n" not in line
    assert [m.train_loss for m in result.history] == [m.train_loss for m in eager.history]


def test_a_working_capture_is_recorded(monkeypatch, data):
    monkeypatch.setattr(device_module, "CAPTURE_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(torch, "compile", lambda model, **options: model)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: None)
    result = train(cfg(epochs=1, cuda_graphs=True), dataset=data)
    assert result.provenance["engine"] == "compiled"  # "cuda-graphs" on a CUDA device
    assert "engine_fallback" not in result.provenance


def test_a_format_1_checkpoint_still_resumes(data, tmp_path):
    """Format 1 (before the one engine) held torch.optim.SGD's and LambdaLR's state dicts: a
    run interrupted there resumes bitwise as one that never stopped."""
    import warnings

    from odenet.training.checkpoint import CHECKPOINT, load_checkpoint

    config = cfg(epochs=2)
    full = train(config, dataset=data)

    class StopAfterFirst(TrainCallbacks):
        def on_epoch_end(self, metrics):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, dataset=data, callbacks=StopAfterFirst(), out_dir=tmp_path)
    state = load_checkpoint(tmp_path)
    model = build_from_config(config.model_for(data))
    params = list(model.parameters())
    opt = torch.optim.SGD(
        [{"params": [p for p in params if p.ndim > 1]},
         {"params": [p for p in params if p.ndim <= 1]}], lr=config.lr, momentum=0.9,
    )  # fmt: skip
    for name, p in model.named_parameters():
        opt.state[p]["momentum_buffer"] = state["momentum"][name]
    sched = LambdaLR(opt, LRSchedule(config.schedule, STEPS * config.epochs))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()"
        for _ in range(state["step"]):
            sched.step()
    old = {k: v for k, v in state.items() if k not in ("step", "momentum")}
    torch.save({**old, "format": 1, "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict()}, tmp_path / CHECKPOINT)  # fmt: skip
    resumed = train(config, dataset=data, out_dir=tmp_path)
    assert [dataclasses.astuple(m)[:6] for m in resumed.history] == [
        dataclasses.astuple(m)[:6] for m in full.history
    ]
    assert load_checkpoint(tmp_path)["format"] == 2
