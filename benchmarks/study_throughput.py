"""Study throughput: the aggregate images/s of a K-member learning-rate sweep, three ways.

For each depth, K runs (same config, lrs spread geometrically over [lr_min, lr_max], seeds
0..K-1) each train ``--steps`` timed steps (after ``--warmup`` untimed ones) on the same
CIFAR-shaped random uint8 images:

  (a) "dataloader": the usual fp32 loop, run by run: a per-sample map-style Dataset
      (decode, normalise, pad-4 crop, flip) batched by torch.utils.data.DataLoader;
  (b) "sequential": odenet's engine (``train``) run by run, as the sequential executor does
      (device-resident batches; bf16 autocast and channels_last on CUDA);
  (c) "fused": ``train_fused`` on all K runs at once (one grouped network; CUDA graphs on
      CUDA by default).

Aggregate images/s = (K x steps x batch) / (sum of the timed seconds); with ``--repeats R``
each way is measured R times, interleaved, and the best is kept. ``--members 8,16,32`` measures
(c) for each K; (a) and (b), run by run, are measured once on the smallest K runs (each run
costs the same, so their aggregate rate does not depend on K). Prints one line per way and
the ratios (b)/(a), (c)/(a), (c)/(b). Not part of the test run.

Usage:  python benchmarks/study_throughput.py --depths 20,56 --members 8,32 --steps 50 --device auto
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

# benchmarks/ is on the path when this script runs
from train_throughput import dataloader_loop, engine_rate, odenet_loop, random_dataset

from odenet.data import ArrayDataset
from odenet.nets import ModelConfig
from odenet.training import TrainConfig
from odenet.training.device import resolve
from odenet.training.fused import train_fused


def fused_seconds(configs: list[TrainConfig], data: ArrayDataset, steps: int, warmup: int) -> float:
    """(c): timed seconds of ``steps`` fused steps of all members."""
    b = configs[0].batch_size

    def run(limit: int):
        return train_fused([dataclasses.replace(c, limit_train=limit) for c in configs],
                           dataset=data)  # fmt: skip

    return steps * b / engine_rate(run, b, steps, warmup)


def sweep(depth: int, args: argparse.Namespace, data: ArrayDataset) -> list[dict]:
    """One row per K in ``--members``; (a) and (b) are measured once, on the smallest K runs
    (run by run, every run costs the same, so their aggregate rate does not depend on K)."""
    sizes, b = sorted(args.members), args.batch_size
    base = TrainConfig(
        dataset="bench", model=ModelConfig(depth=depth, solver=args.solver, width=args.width),
        epochs=1, batch_size=b, schedule="constant", device=args.device, limit_test=b,
        limit_train=(args.warmup + args.steps) * b,
    )  # fmt: skip

    def configs(k: int) -> list[TrainConfig]:
        ratio = (args.lr_max / args.lr_min) ** (1 / max(k - 1, 1))
        return [dataclasses.replace(base, lr=args.lr_min * ratio**i, seed=i) for i in range(k)]

    baseline = configs(sizes[0])
    a = s = float("inf")
    fused = dict.fromkeys(sizes, float("inf"))
    for _ in range(args.repeats):  # interleaved; the best of each way (shared machines are noisy)
        rates = [dataloader_loop(c, data, args.steps, args.warmup, args.workers) for c in baseline]
        a = min(a, sum(args.steps * b / r for r in rates) / len(baseline))  # seconds per run
        s = min(s, sum(args.steps * b / odenet_loop(c, data, args.steps, args.warmup)
                       for c in baseline) / len(baseline))  # fmt: skip
        for k in sizes:
            fused[k] = min(fused[k], fused_seconds(configs(k), data, args.steps, args.warmup))
    placement = resolve(base)
    device = torch.cuda.get_device_name() if placement.device.type == "cuda" else "cpu"
    rows = []
    for k in sizes:
        images, f = k * args.steps * b, fused[k]
        rows.append({
            "device": device, "threads": torch.get_num_threads(),
            "model": f"resnet-{depth} {args.solver} w{args.width}", "members": k, "batch": b,
            "steps": args.steps, "dataloader_img_s": round(images / (k * a), 1),
            "sequential_img_s": round(images / (k * s), 1), "fused_img_s": round(images / f, 1),
            "sequential_vs_dataloader": round(a / s, 3), "fused_vs_dataloader": round(k * a / f, 3),
            "fused_vs_sequential": round(k * s / f, 3), "amp": placement.amp,
            "channels_last": placement.channels_last,
        })  # fmt: skip
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--depths", default="20,56", help="comma-separated depths (6n + 2)")
    p.add_argument("--members", default="8", help="runs in the lr sweep (K); a list measures each")
    p.add_argument("--solver", default="euler")
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=50, help="timed steps per run")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    p.add_argument("--repeats", type=int, default=1, help="measure each way this often; best")
    p.add_argument("--workers", type=int, default=2, help="DataLoader workers for (a)")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--lr-min", type=float, default=0.01)
    p.add_argument("--lr-max", type=float, default=0.2)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print one JSON object per depth")
    args = p.parse_args()
    args.members = [int(k) for k in args.members.split(",")]

    data = random_dataset((args.warmup + args.steps) * args.batch_size, args.batch_size,
                          args.image_size)  # fmt: skip
    for depth in (int(d) for d in args.depths.split(",")):
        for row in sweep(depth, args, data):
            if args.json:
                print(json.dumps(row))
                continue
            print(
                f"device {row['device']} ({row['threads']} threads), {row['model']}, "
                f"{row['members']} members, batch {row['batch']}, {row['steps']} timed steps "
                f"after {args.warmup}, best of {args.repeats}"
            )
            a, b = row["dataloader_img_s"], row["sequential_img_s"]
            print(f"  (a) per-sample DataLoader fp32, run by run: {a:10.1f} img/s")
            print(f"  (b) sequential executor (train), run by run: {b:10.1f} img/s")
            print(
                f"  (c) fused executor (train_fused), K at once: {row['fused_img_s']:10.1f} img/s"
            )
            print(
                f"  ratios: (b)/(a) {row['sequential_vs_dataloader']:.3f}  (c)/(a) "
                f"{row['fused_vs_dataloader']:.3f}  (c)/(b) {row['fused_vs_sequential']:.3f}"
            )


if __name__ == "__main__":
    main()
