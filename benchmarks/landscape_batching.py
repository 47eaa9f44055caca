"""Landscape slice evaluation: points/s batched over points (vmap) vs one point at a time.

    python benchmarks/landscape_batching.py --depth 20 --solver euler --points 16 \
        --images 512 --points-per-batch 4,8,16 [--device cuda]

Builds a CIFAR-shaped ResNet (random init, eval mode, BN running stats set to non-trivial
values), a fixed batch set of random images, and a 1D grid of ``--points`` points along one
filter-normalised direction. Times ``SliceEvaluator`` in "loop" mode and in "vmap" mode for
each points-per-batch setting (after one warm-up chunk), checks the values agree, and prints
points/s and the speed-up.
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from odenet.analysis.directions import make_directions, trained_parameters
from odenet.analysis.slices import GridSpec, SliceEvaluator
from odenet.nets import build_model


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _time(evaluator, theta, dirs, coords, device) -> tuple[float, torch.Tensor]:
    evaluator.evaluate(theta, dirs, coords[: evaluator.points_per_batch])  # warm-up chunk
    _sync(device)
    start = time.perf_counter()
    loss, _ = evaluator.evaluate(theta, dirs, coords)
    _sync(device)
    return time.perf_counter() - start, loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--solver", default="euler")
    ap.add_argument("--points", type=int, default=16, help="grid points timed")
    ap.add_argument("--images", type=int, default=512, help="images in the data subset")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--points-per-batch", default="4,8,16")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    model = build_model(args.depth, args.solver, generator=gen)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_var"):
                buf.uniform_(0.5, 2.0, generator=gen)
            elif name.endswith("running_mean"):
                buf.normal_(0.0, 0.1, generator=gen)
    model = model.to(device).eval()
    x = torch.randn(args.images, 3, args.image_size, args.image_size, generator=gen)
    y = torch.randint(0, 10, (args.images,), generator=gen)
    batches = [
        (x[i : i + args.batch_size].to(device), y[i : i + args.batch_size].to(device))
        for i in range(0, args.images, args.batch_size)
    ]
    theta = trained_parameters(model)
    dirs = make_directions(model, 1, seed=0)
    coords = GridSpec(1, -1.0, 1.0, args.points).coords()

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"device {device} ({name or 'cpu'}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    print(
        f"ResNet-{args.depth} {args.solver}, {args.images} images of {args.image_size}px "
        f"in batches of {args.batch_size}, {args.points} points"
    )
    loop = SliceEvaluator(model, batches, points_per_batch=1, mode="loop")
    t_loop, ref = _time(loop, theta, dirs, coords, device)
    print(f"{'one at a time':>22}: {args.points / t_loop:8.2f} points/s")
    for ppb in (int(p) for p in args.points_per_batch.split(",")):
        ev = SliceEvaluator(model, batches, points_per_batch=ppb, mode="vmap")
        t, loss = _time(ev, theta, dirs, coords, device)
        diff = (loss - ref).abs().max().item()
        print(
            f"{f'vmap, {ppb} per pass':>22}: {args.points / t:8.2f} points/s  "
            f"x{t_loop / t:5.2f}  (max |loss diff| {diff:.1e})"
        )


if __name__ == "__main__":
    main()
