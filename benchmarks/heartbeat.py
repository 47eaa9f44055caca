"""What the lease heartbeat costs a study's training, on CPU.

Two measurements of the same small study (one scheme x ``--runs`` lrs, sequential executor,
one torch thread):

1. before / after: ``odenet study`` in a subprocess with the code of ``--before`` (a checkout
   without leases, e.g. the main branch) and of this checkout, alternated ``--rounds`` times.
2. stress: the study in this process with the heartbeat at its real interval (10 s: at most
   one renewal per run here) and at ``--stress-interval`` (default 0.01 s: a renewal every
   10 ms, ~1000x the real rate), alternated ``--rounds`` times.

3. per write: what the lease check adds to one write of a run's rows (a renewal inside the
   same transaction), and one renewal of the heartbeat thread; the training loop pays the
   first at each host read (every 32 steps) and before each checkpoint.

Printed per way: the median over rounds of the training throughput (images/s of the training
passes, the store's ``images_per_s``, averaged over every epoch of every run) and of the sum
of the epochs' wall seconds. The ways alternate in the order A B B A A B ..., so that a load
that changes over time (a shared machine) falls on both. Run from the repository root:

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python benchmarks/heartbeat.py --before /path/to/main
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _study_args(args: argparse.Namespace) -> list[str]:
    lrs = ",".join(f"{0.05 * (i + 1):g}" for i in range(args.runs))
    return ["study", "--dataset", args.dataset, "--depths", str(args.depth), "--width",
            str(args.width), "--orders", "1", "--lrs", lrs, "--epochs", str(args.epochs),
            "--device", "cpu", "--executor", "sequential", "--quiet"]  # fmt: skip


def _measure(out: Path) -> tuple[float, float]:
    """(mean training images/s over every epoch of every run, sum of the epochs' seconds)."""
    with sqlite3.connect(out / "study.sqlite") as con:
        rows = con.execute("SELECT images_per_s, seconds FROM epochs").fetchall()
    return statistics.fmean(r[0] for r in rows), sum(r[1] for r in rows)


def _subprocess_study(code: str, args: argparse.Namespace, out: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": code, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "odenet", *_study_args(args), "--out", str(out)]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return _measure(out)


def _in_process_study(interval: float, args: argparse.Namespace, out: Path):
    import odenet.studies.runner as runner
    from odenet.cli import main

    real = runner.heartbeat_interval
    runner.heartbeat_interval = lambda grace: interval
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the summary table
            main([*_study_args(args), "--out", str(out)])
    except SystemExit as done:
        assert done.code in (0, None), done.code
    finally:
        runner.heartbeat_interval = real
    return _measure(out)


def _report(name: str, results: list[tuple[float, float]]) -> None:
    rate = statistics.median(r[0] for r in results)
    seconds = statistics.median(r[1] for r in results)
    spread = ", ".join(f"{r[0]:.0f}" for r in results)
    print(f"  {name:<34} {rate:8.1f} img/s   {seconds:6.2f} s of epochs   (rounds: {spread})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a checkout without leases (its repository root)")
    parser.add_argument("--runs", type=int, default=4, help="runs per study (lrs)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--depth", type=int, default=8)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--dataset", default="synthetic:train=4096,test=128,size=16")
    parser.add_argument("--stress-interval", type=float, default=0.01)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    here = str(Path(__file__).resolve().parents[1])
    print(
        f"study: {args.runs} runs x {args.epochs} epochs, depth {args.depth}, width "
        f"{args.width}, {args.dataset}, sequential, 1 thread; medians of {args.rounds}"
    )
    ways = {"after (leases, this checkout)": here}
    if args.before:
        ways = {"before (no leases)": args.before, **ways}
    stress = {"heartbeat every 10 s": 10.0,
              f"heartbeat every {args.stress_interval:g} s": args.stress_interval}  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        print("1. odenet study in a subprocess")
        _alternate(ways, lambda code, out: _subprocess_study(code, args, out), args.rounds, tmp)
        print("2. this checkout, in one process")
        _alternate(stress, lambda every, out: _in_process_study(every, args, out), args.rounds,
                   tmp)  # fmt: skip
        print("3. one write of a run's rows (median of 2000)")
        _writes(Path(tmp) / "writes")


def _writes(path: Path) -> None:
    from odenet.studies.spec import StudySpec
    from odenet.studies.store import Lease, Store
    from odenet.training import TrainConfig

    store = Store.create(path, StudySpec(base=TrainConfig(dataset="synthetic")), {})
    lease = Lease.new()
    (run_id,) = store.claim(1, "sequential", lease=lease)
    rows = [{"step": 1, "loss": 1.0, "lr": 0.1}]
    ways = {
        "record_steps without a lease": lambda: store.record_steps(run_id, rows),
        "record_steps under the lease": lambda: store.record_steps(run_id, rows,
                                                                   lease=lease.token),
        "heartbeat renewal (thread)": lambda: store.renew({run_id: lease.token}),
    }  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(2000):
        for name, write in ways.items():
            start = time.perf_counter()
            write()
            times[name].append(time.perf_counter() - start)
    for name, got in times.items():
        print(f"  {name:<34} {statistics.median(got) * 1e6:8.0f} us")


def _alternate(ways: dict, study, rounds: int, tmp: str) -> None:
    """``study(value, out)`` for each way, ``rounds`` times (ABBA order); one line per way."""
    results: dict[str, list] = {name: [] for name in ways}
    for i in range(rounds):
        order = list(ways.items())
        for j, (name, value) in enumerate(order if i % 2 == 0 else order[::-1]):
            out = Path(tmp) / f"{len(os.listdir(tmp))}-{i}-{j}"
            results[name].append(study(value, out))
    for name, got in results.items():
        _report(name, got)


if __name__ == "__main__":
    main()
