"""Configs and specs as earlier versions stored them (study.sqlite, checkpoint.pt,
result.json), for the tests that load them: small dicts, no files needed."""

# What odenet 0.1.0 stored (study.sqlite runs.config, checkpoint.pt, result.json provenance):
# flat, the model's fields beside the others, without the fields added since.
V010_CONFIG = {
    "dataset": "synthetic:train=256,test=128,size=8", "depth": 8, "solver": "euler",
    "block": "postact", "shortcut": "A", "width": 4, "epochs": 2, "lr": 0.1, "batch_size": 128,
    "momentum": 0.9, "nesterov": True, "weight_decay": 0.0005, "schedule": "onecycle",
    "warmup_epochs": 0.0, "label_smoothing": 0.0, "seed": 0, "limit_train": None,
    "limit_test": None, "data_dir": None, "device": "cpu", "amp": None, "channels_last": None,
    "augment": True, "cuda_graphs": None, "divergence_threshold": 10000.0,
}  # fmt: skip
# ... and what the main branch before the config tree stored: flat, every field of its day
MAIN_CONFIG = {**V010_CONFIG, "pad": 4, "log_every": 0, "arch": "cifar", "downsample": "stem"}

# The spec as stored by odenet 0.1.0 (flat) and by the main branch before the config tree
# (format 2: a flat "base"), for `odenet study --dataset synthetic:train=256,test=128,size=8
# --depths 8 --width 4 --device cpu --epochs 2 --orders 1,2 --lrs 0.1 --seeds 0,1` (and
# `--axis weight_decay=0,5e-4` for the second).
V010_SPEC = {
    "orders": [1, 2], "solvers": [], "depths": [8], "lrs": [0.1], "seeds": [0, 1], "epochs": 2,
    "dataset": "synthetic:train=256,test=128,size=8", "limit_train": None, "limit_test": None,
    "batch_size": 128, "schedule": "onecycle", "device": "cpu", "width": 4, "block": "postact",
    "shortcut": "A", "data_dir": None, "executor": "auto", "fuse_max": 8, "cuda_graphs": None,
}  # fmt: skip
MAIN_SPEC = {
    "format": 2, "base": {**MAIN_CONFIG, "depth": 20}, "orders": [1, 2], "solvers": [],
    "depths": [8], "lrs": [0.1], "seeds": [0, 1], "sweep": {"weight_decay": [0.0, 0.0005]},
    "executor": "auto", "fuse_max": 8,
}  # fmt: skip
