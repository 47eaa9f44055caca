"""The acceptance: a fused run of K = 3 members matches three separate train() runs.

Tiny config (synthetic 8x8 images, depth 8, width 4, 96 images, batch 32, 2 epochs = 6 steps),
different lrs and seeds. Compared: per-epoch losses/accuracies/lrs, final weights, momentum
buffers and scheduler state in each member's checkpoint. Then one member is forced to diverge
(lr 1e4) and the other two must still match their separate runs; finally an interrupted fused
group is resumed, one member by train() and two fused, and still matches.
"""

import dataclasses

import pytest
import torch
from float32_bounds import assert_close_tensor, training_rtol
from threads import one_torch_thread

from odenet.data import load_dataset
from odenet.errors import ConfigError
from odenet.nets import ModelConfig
from odenet.training import TrainCallbacks, TrainConfig, load_trained, train
from odenet.training.checkpoint import load_checkpoint, load_result
from odenet.training.fused import train_fused

DATASET = "synthetic:train=96,test=32,size=8"
BASE = TrainConfig(
    dataset=DATASET, epochs=2, batch_size=32, device="cpu", model=ModelConfig(depth=8, width=4)
)
MEMBERS = [(0.05, 0), (0.2, 1), (0.5, 2)]  # (lr, seed)
DIVERGING = (1e4, 3)
# fused (grouped) vs plain convolutions sum in other orders: the longest sum is a weight
# gradient over 32 x 8 x 8 positions, and a run takes 2 x 3 steps (tests/float32_bounds.py);
# measured here: train_loss and weights within ~1e-5 relative, 100x below the bound
RTOL = training_rtol(32 * 8 * 8, 6)


def configs(members):
    return [dataclasses.replace(BASE, lr=lr, seed=s) for lr, s in members]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with one_torch_thread():
        root = tmp_path_factory.mktemp("fused")
        ds = load_dataset(DATASET)
        separate = {}
        for c in configs([*MEMBERS, DIVERGING]):
            separate[c.seed] = (
                train(c, out_dir=root / f"sep{c.seed}", dataset=ds),
                root / f"sep{c.seed}",
            )
        yield ds, root, separate


def assert_same_run(fused_result, fused_dir, ref_result, ref_dir):
    assert fused_result.status == ref_result.status
    assert fused_result.diverged_epoch == ref_result.diverged_epoch
    assert fused_result.diverged_step == ref_result.diverged_step
    assert fused_result.epochs_done == ref_result.epochs_done
    assert fused_result.params == ref_result.params
    for a, b in zip(fused_result.history, ref_result.history, strict=True):
        assert a.epoch == b.epoch
        assert a.lr == b.lr  # host arithmetic, the same in both
        for key in ("train_loss", "test_loss"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), rel=RTOL), key
        for key, images in (("train_acc", 96), ("test_acc", 32)):  # one flipped image at most
            assert getattr(a, key) == pytest.approx(getattr(b, key), abs=1.01 / images), key
    a, b = load_checkpoint(fused_dir), load_checkpoint(ref_dir)
    assert (a is None) == (b is None)
    if a is None:
        return
    assert a["epoch"] == b["epoch"] and a["config"] == b["config"]
    assert list(a["model"]) == list(b["model"])
    for key in a["model"]:
        if a["model"][key].is_floating_point():
            assert_close_tensor(a["model"][key], b["model"][key], RTOL, msg=key)
        else:  # BN's num_batches_tracked
            assert torch.equal(a["model"][key], b["model"][key]), key
    ma, mb = a["momentum"], b["momentum"]  # the optimizer state: momentum buffers ...
    assert sorted(ma) == sorted(mb)
    for name in ma:
        assert_close_tensor(ma[name], mb[name], RTOL, msg=name)
    assert a["step"] == b["step"]  # ... and the schedule's position
    for name in ("train_loader", "test_loader"):
        assert torch.equal(a["rng"][name], b["rng"][name])


def test_fused_group_matches_separate_runs(env):
    ds, root, separate = env
    dirs = [root / f"fused{s}" for _, s in MEMBERS]
    results = train_fused(configs(MEMBERS), out_dirs=dirs, dataset=ds)
    for (_, seed), result, out in zip(MEMBERS, results, dirs):
        ref, ref_dir = separate[seed]
        assert result.status == "done"
        assert_same_run(result, out, ref, ref_dir)
        assert result.provenance["execution"] == {"executor": "fused", "members": 3}
        assert load_result(out)["provenance"]["config"]["seed"] == seed
        model, config = load_trained(out)  # the member loads like any run
        assert config.seed == seed and model.config.depth == 8


def test_diverging_member_does_not_change_the_others(env):
    ds, root, separate = env
    group = [MEMBERS[0], DIVERGING, MEMBERS[2]]
    dirs = [root / f"div{s}" for _, s in group]
    results = train_fused(configs(group), out_dirs=dirs, dataset=ds)
    assert [r.status for r in results] == ["done", "diverged", "done"]
    for (_, seed), result, out in zip(group, results, dirs):
        assert_same_run(result, out, *separate[seed])


def test_interrupted_group_resumes_fused_or_sequentially(env):
    ds, root, separate = env
    dirs = [root / f"resume{s}" for _, s in MEMBERS]

    class StopAfterFirstEpoch(TrainCallbacks):
        def on_epoch_end(self, metrics):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_fused(configs(MEMBERS), out_dirs=dirs, dataset=ds,
                    callbacks=[StopAfterFirstEpoch(), None, None])  # fmt: skip
    assert all(load_checkpoint(d)["epoch"] == 1 for d in dirs)  # every member was saved
    first = train(configs(MEMBERS)[0], out_dir=dirs[0], dataset=ds)  # a fused checkpoint
    rest = train_fused(configs(MEMBERS[1:]), out_dirs=dirs[1:], dataset=ds)
    for (_, seed), result, out in zip(MEMBERS, [first, *rest], dirs):
        assert_same_run(result, out, *separate[seed])
    again = train_fused(configs(MEMBERS), out_dirs=dirs, dataset=ds)  # finished: read back
    assert [r.to_dict() for r in again] == [load_result(d) for d in dirs]


def test_only_lr_and_seed_may_differ():
    a, b = configs(MEMBERS[:2])
    with pytest.raises(ConfigError, match="depth"):
        train_fused([a, b.replace(depth=14)])
    with pytest.raises(ConfigError, match="sequential"):
        train_fused([c.replace(solver="lm") for c in (a, b)])


def test_channels_last_group_matches_separate_runs(env):
    """NHWC weights and gradients (the CUDA default) through fusing, MemberSGD and masking."""
    ds, root, _ = env
    group = [MEMBERS[1], DIVERGING]
    nhwc = [dataclasses.replace(c, channels_last=True) for c in configs(group)]
    separate = [train(c, out_dir=root / f"nhwc-sep{c.seed}", dataset=ds) for c in nhwc]
    dirs = [root / f"nhwc{s}" for _, s in group]
    results = train_fused(nhwc, out_dirs=dirs, dataset=ds)
    assert [r.status for r in results] == ["done", "diverged"]
    for c, result, out, ref in zip(nhwc, results, dirs, separate):
        assert result.provenance["channels_last"] is True
        assert_same_run(result, out, ref, root / f"nhwc-sep{c.seed}")
