"""Training throughput: the usual per-sample DataLoader loop (fp32) vs odenet's engine.

Both loops train the same network (same config, same initial weights) with SGD on the same
CIFAR-shaped random uint8 images for a fixed number of steps, after a few untimed warm-up
steps, and report training images per second:

  (a) "dataloader": a map-style Dataset that decodes one sample at a time (uint8 -> float,
      normalise, pad-4 random crop, horizontal flip, as torchvision transforms do), batched by
      torch.utils.data.DataLoader (shuffle, workers, pinned memory on CUDA), copied to the
      device, fp32, contiguous (NCHW) memory format;
  (b) "odenet": ``odenet.training.train`` (device-resident batches with on-device
      augmentation; bf16 autocast, channels_last and CUDA-graph capture on CUDA by default);
  (c) on CUDA only, the same engine with ``cuda_graphs=False``: what the capture adds.

Usage:  python benchmarks/train_throughput.py --depth 20 --batch-size 128 --steps 50
It prints one line per loop and the ratios to (a). Not part of the test run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from odenet.data import ArrayDataset
from odenet.nets import ModelConfig, build_from_config
from odenet.training import TrainConfig, TrainResult, train
from odenet.training.device import resolve, synchronize

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)


class PerSample(Dataset):
    """One (image, label) at a time, the way CIFAR scripts with torchvision transforms do."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.mean = torch.tensor(MEAN).view(-1, 1, 1)
        self.std = torch.tensor(STD).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        x = self.images[i].float().div_(255)
        x = F.pad(x, (4, 4, 4, 4))
        top, left = torch.randint(0, 9, (2,)).tolist()
        x = x[:, top : top + self.images.shape[-2], left : left + self.images.shape[-1]]
        if torch.rand(()) < 0.5:
            x = x.flip(-1)
        return (x - self.mean) / self.std, self.labels[i]


def dataloader_loop(config: TrainConfig, data: ArrayDataset, steps: int, warmup: int, workers: int):
    """(a): images/s of the classic fp32 DataLoader loop over ``steps`` timed steps."""
    device = resolve(config).device
    model = build_from_config(
        config.model_for(data),
        torch.Generator().manual_seed(config.seed),
    ).to(device)
    params = list(model.parameters())  # torch's SGD, weight decay on conv/linear weights
    optimizer = torch.optim.SGD(
        [{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
         {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
        lr=config.lr, momentum=config.momentum, nesterov=config.nesterov,
    )  # fmt: skip
    loader = DataLoader(
        PerSample(data.train_images, data.train_labels), batch_size=config.batch_size,
        shuffle=True, num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
        persistent_workers=workers > 0,
    )  # fmt: skip
    model.train()
    done, start = 0, None
    while done < warmup + steps:
        for x, y in loader:
            if done == warmup:
                synchronize(device)
                start = time.perf_counter()
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if done == warmup + steps:
                break
    synchronize(device)
    return steps * config.batch_size / (time.perf_counter() - start)


def train_seconds(results: list[TrainResult], images: int) -> float:
    """Training wall time of one-epoch runs of ``images`` images each (a fused group shares it):
    the epoch's images over its images/s, evaluation excluded."""
    return images / results[0].history[0].images_per_s


def engine_rate(run, batch_size: int, steps: int, warmup: int) -> float:
    """Images/s of ``steps`` steps of the engine: ``run(limit_train)`` -> results of one epoch
    is timed at ``warmup + steps`` and at ``warmup`` steps and the difference taken, so start-up
    (and any capture) cancels. The engine reads the device only every few steps (no per-step
    hook to time), hence two runs rather than marks inside one."""
    long, short = ((n * batch_size) for n in (warmup + steps, warmup))
    seconds = train_seconds(run(long), long) - train_seconds(run(short), short)
    return steps * batch_size / max(seconds, 1e-9)


def odenet_loop(config: TrainConfig, data: ArrayDataset, steps: int, warmup: int) -> float:
    """(b): images/s of ``odenet.training.train`` over the same timed steps (one epoch)."""

    def run(limit: int) -> list[TrainResult]:
        return [train(dataclasses.replace(config, limit_train=limit), dataset=data)]

    return engine_rate(run, config.batch_size, steps, warmup)


def random_dataset(n_train: int, n_test: int, image_size: int) -> ArrayDataset:
    """CIFAR-shaped random uint8 images and labels (seed 0), named "bench"."""
    g = torch.Generator().manual_seed(0)
    shape = (n_train, 3, image_size, image_size)
    return ArrayDataset(
        name="bench", train_images=torch.randint(0, 256, shape, dtype=torch.uint8, generator=g),
        train_labels=torch.randint(0, 10, (n_train,), generator=g),
        test_images=torch.randint(0, 256, (n_test, *shape[1:]), dtype=torch.uint8, generator=g),
        test_labels=torch.randint(0, 10, (n_test,), generator=g),
        num_classes=10, mean=MEAN, std=STD, augment="crop-flip",
    )  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depth", type=int, default=20)
    p.add_argument("--solver", default="euler")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=50, help="timed steps per loop")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for (a)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print a JSON object instead")
    args = p.parse_args()

    data = random_dataset((args.warmup + args.steps) * args.batch_size, args.batch_size,
                          args.image_size)  # fmt: skip
    config = TrainConfig(
        dataset="bench", model=ModelConfig(depth=args.depth, solver=args.solver, width=args.width),
        epochs=1, lr=0.05, batch_size=args.batch_size, schedule="constant", device=args.device,
        limit_test=args.batch_size,
    )  # fmt: skip
    placement = resolve(config)
    a = dataloader_loop(config, data, args.steps, args.warmup, args.workers)
    b = odenet_loop(config, data, args.steps, args.warmup)
    on_cuda = placement.device.type == "cuda"
    eager = dataclasses.replace(config, cuda_graphs=False)
    c = odenet_loop(eager, data, args.steps, args.warmup) if on_cuda else None
    row = {
        "device": torch.cuda.get_device_name() if placement.device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(), "model": f"resnet-{args.depth} {args.solver} "
        f"w{args.width}", "batch": args.batch_size, "steps": args.steps,
        "dataloader_img_s": round(a, 1), "odenet_img_s": round(b, 1), "ratio": round(b / a, 3),
        "odenet_no_graphs_img_s": c and round(c, 1), "no_graphs_ratio": c and round(c / a, 3),
        "odenet_amp": placement.amp, "odenet_channels_last": placement.channels_last,
    }  # fmt: skip
    if args.json:
        print(json.dumps(row))
        return
    print(
        f"device {row['device']} ({row['threads']} threads), {row['model']}, batch "
        f"{args.batch_size}, {args.steps} timed steps after {args.warmup} warm-up"
    )
    print(f"(a) per-sample DataLoader, fp32 ({args.workers} workers): {a:10.1f} img/s")
    print(
        f"(b) odenet engine (amp={placement.amp}, channels_last={placement.channels_last}):"
        f" {b:10.1f} img/s"
    )
    if c is not None:
        print(f"(c) odenet engine without CUDA graphs: {c:10.1f} img/s  ratio (c)/(a) {c / a:.3f}")
    print(f"ratio (b)/(a): {b / a:.3f}")


if __name__ == "__main__":
    main()
