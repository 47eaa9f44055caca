"""Fixed studies whose numbers a refactoring must not change.

    python benchmarks/fixed_studies.py record OUT.json [--odenet "python -m odenet"]
    python benchmarks/fixed_studies.py compare BEFORE.json AFTER.json

``record`` runs a set of small studies (synthetic data, every wiring family: RK stackings,
lm, plain, learned tableaux, continuous, pre-activation with shortcut C, the single-stage
network with a swept downsampling position, the fused executor on CPU), one ``odenet train``
run, and ``analyze`` / ``landscape`` on one of the studies, all through the command line with
one thread, and stores every number they print as JSON. ``compare`` says which numbers differ
(exactly: the same code path on the same machine gives the same bits). Timings, paths,
versions and dates are left out. Takes ~10 minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

S = "--dataset synthetic:train=512,test=256,size=8 --width 4 --epochs 2 --device cpu -q"
STUDIES = {
    "rk": f"{S} --depths 8,14 --orders 1,2,4 --solvers lm,plain,ralston --lrs 0.1,0.8 --seeds 0",
    "preact_c": f"{S} --depths 8 --orders 1,3 --solvers ab2,learn-rk4 --lrs 0.2 --seeds 1 "
    "--set block=preact --set shortcut=C",
    "single": f"{S} --depths 14 --orders 1,4 --lrs 0.1 --seeds 0 --set arch=single "
    "--axis downsample=stem,field",
    "ode": f"{S} --depths 8 --orders 1 --solvers ode-rk4 --lrs 0.1 --seeds 0",
    "fused": f"{S} --depths 8 --orders 1,2 --lrs 0.1,0.4 --seeds 0,1 --executor fused "
    "--axis weight_decay=0,5e-4",
}
TRAIN = (
    "train --dataset synthetic:train=512,test=256,size=8 --depth 14 --solver rk4 --width 4 "
    "--epochs 2 --device cpu --json"
)
ANALYZE = "analyze {dir} --lr all --seed all --limit-data 64 --eigen-images 4 --no-figures --json"
LANDSCAPE = "landscape {dir} --points 5 --limit-data 64 --trace-probes 2 --power-iters 4 --json"
# keys whose values depend on time, place or version, not on the numerics
VOLATILE = {
    "seconds", "started", "finished", "run_dir", "provenance", "device", "executor", "files",
    "figures", "path", "paths", "study_dir", "created", "host", "pid", "elapsed", "time",
    "torch_version", "odenet_version", "python", "warnings", "members", "images_per_s",
    "slice_file",  # its name hashes the file's settings; its values are kept as "slice"
    "checkpoint",  # a hash of checkpoint.pt, which holds each epoch's wall-clock seconds
}  # fmt: skip


def _run(odenet: list[str], args: str, cwd: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*odenet, *shlex.split(args)], cwd=cwd, env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"`odenet {args}` exited {proc.returncode}: {proc.stderr.strip()}")
    return json.loads(proc.stdout) if "--json" in args else {}


def _strip(value):
    if isinstance(value, str) and value.startswith("{"):  # JSON text (a slice's settings)
        try:
            return json.dumps(_strip(json.loads(value)), sort_keys=True)
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def record(out: Path, odenet: list[str]) -> None:
    found: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for name, args in STUDIES.items():
            print(f"study {name}", file=sys.stderr)
            _run(odenet, f"study {args} --out {name}", cwd)
            found[f"study:{name}"] = _strip(_run(odenet, f"report {name} --json", cwd))
        print("train", file=sys.stderr)
        found["train"] = _strip(_run(odenet, TRAIN, cwd))
        print("analyze, landscape", file=sys.stderr)
        found["analyze"] = _strip(_run(odenet, ANALYZE.format(dir="rk"), cwd))
        landscape = _run(odenet, LANDSCAPE.format(dir="rk"), cwd)
        for model in landscape.get("models", []):
            if model.get("slice_file"):  # the slice itself: every loss and accuracy on the grid
                with np.load(cwd / model["slice_file"]) as npz:
                    model["slice"] = {k: npz[k].tolist() for k in sorted(npz.files)}
        found["landscape"] = _strip(landscape)
    out.write_text(json.dumps(found, indent=1, sort_keys=True))


def _diff(a, b, where: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{where}.{k}: only in {'after' if k in b else 'before'}")
            else:
                _diff(a[k], b[k], f"{where}.{k}", out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: {a!r} -> {b!r}")


def compare(before: Path, after: Path) -> int:
    a, b = _strip(json.loads(before.read_text())), _strip(json.loads(after.read_text()))
    diffs: list[str] = []
    for key in a:
        if key in b:
            _diff(a[key], b[key], key, diffs)
        else:
            diffs.append(f"{key}: missing after")
    print("\n".join(diffs[:200]) or "identical: every recorded number is unchanged")
    return 1 if diffs else 0


if __name__ == "__main__":
    cmd, *rest = sys.argv[1:] or ["--help"]
    if cmd == "record" and rest:
        odenet = [sys.executable, "-m", "odenet"]
        if "--odenet" in rest:
            odenet = shlex.split(rest[rest.index("--odenet") + 1])
        record(Path(rest[0]).absolute(), odenet)
    elif cmd == "compare" and len(rest) == 2:
        sys.exit(compare(Path(rest[0]), Path(rest[1])))
    else:
        print(__doc__)
        sys.exit(2)
