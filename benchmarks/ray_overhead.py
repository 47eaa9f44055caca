"""What the Ray executor costs per run on CPU, against the sequential executor.

The same small study (one scheme x N lrs) runs with ``--executor sequential`` and with
``--executor ray`` on a local one-CPU Ray instance (one run at a time on one torch thread, as
the sequential executor with OMP_NUM_THREADS=1). A first sequential study warms torch up; the
first Ray study starts its worker process (cold); then sequential and Ray studies alternate
(``--rounds`` pairs, medians), the Ray worker reused. Printed: the Ray start-up (``ray.init``),
the wall times, the overhead per run,
the checkpoint size and the time one epoch's item (checkpoint bytes) takes from a worker to the
study directory. Run from the repository root:

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/ray_overhead.py --runs 8
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path


def _ship(data: bytes, items: int):
    """A worker-side generator yielding the same checkpoint bytes ``items`` times."""
    for _ in range(items):
        yield data


def _timed(fn, *args, **kwargs) -> float:
    t = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="runs per study (lrs)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="sequential / warm Ray pairs")
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--dataset", default="synthetic:train=256,test=128,size=8")
    args = parser.parse_args()

    import ray

    from odenet.studies import StudySpec, run_study
    from odenet.studies.executors.ray import RayConfig
    from odenet.training import TrainConfig
    from odenet.training.checkpoint import CHECKPOINT, save_bytes

    cpus = 1  # one task at a time, one torch thread: the sequential executor's conditions
    lrs = tuple(round(0.05 * (i + 1), 2) for i in range(args.runs))
    base = TrainConfig(dataset=args.dataset, epochs=args.epochs, device="cpu")
    spec = StudySpec(
        base=base.replace(width=args.width), orders=(1,), depths=(args.depth,), lrs=lrs,
        executor="sequential",
    )  # fmt: skip
    ray_spec = replace(spec, executor="ray")
    with tempfile.TemporaryDirectory() as tmp:
        _timed(run_study, spec, Path(tmp) / "warm-up", quiet=True)  # torch's first-use costs
        t = time.perf_counter()
        ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - t
        options = {"quiet": True, "ray": RayConfig(cpus_per_run=cpus)}
        cold = _timed(run_study, ray_spec, Path(tmp) / "ray-cold", **options)
        sequential, warm = [], []  # alternated, so that a change of load hits both
        for i in range(args.rounds):
            sequential.append(_timed(run_study, spec, Path(tmp) / f"seq{i}", quiet=True))
            warm.append(_timed(run_study, ray_spec, Path(tmp) / f"ray{i}", **options))
        seq = statistics.median(sequential)

        checkpoint = (Path(tmp) / "seq0" / "runs").glob(f"*/{CHECKPOINT}").__next__().read_bytes()
        remote = ray.remote(_ship).options(num_returns="streaming")
        items = 20
        list(map(ray.get, remote.remote(checkpoint, 1)))  # a warm worker
        t = time.perf_counter()
        for i, ref in enumerate(remote.remote(checkpoint, items)):
            save_bytes(Path(tmp) / f"ship{i}.pt", ray.get(ref))
        per_item = (time.perf_counter() - t) / items
        ray.shutdown()

    n = args.runs
    print(f"study: {n} runs x {args.epochs} epochs, depth {args.depth}, width {args.width}, "
          f"{args.dataset}, {cpus} CPU")  # fmt: skip
    print(f"ray.init (local instance, once per study): {startup:6.2f} s")
    print(f"sequential (median of {args.rounds}): {seq:6.2f} s  ({seq / n:.3f} s per run)")
    for name, wall in (("ray, cold worker", cold), ("ray, warm worker", statistics.median(warm))):
        print(
            f"{name}: {wall:6.2f} s  ({wall / n:.3f} s per run; "
            f"overhead {(wall - seq) / n:+.3f} s per run)"
        )
    print(f"checkpoint: {len(checkpoint) / 1024:.1f} KiB; one epoch's item from the worker to "
          f"the study directory: {per_item * 1e3:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
