"""The issue's cases as written, refusals before writing, exit codes and Ctrl-C
(issue 11, items 5 and 7; the cases at the end of the issue, landscape's aside)."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = "synthetic:train=256,test=128,size=8"
SMALL = ["--dataset", DATA, "--depths", "8", "--width", "4", "--orders", "1,2", "--epochs", "1"]
INTERRUPTED = "interrupted; run the same command to resume"


def _default_sigint() -> None:
    # A job started in the background of a non-interactive shell (as CI may start the suite)
    # inherits SIGINT ignored, and Python then keeps ignoring it by design; the child gets the
    # default disposition back, as a command typed at a terminal has.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _odenet(*args, cwd=None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "odenet", *map(str, args)], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_default_sigint,
    )  # fmt: skip


def _run(*args, cwd=None) -> tuple[int, str, str]:
    proc = _odenet(*args, cwd=cwd)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, out, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- the cases of the issue, run as written ------------------------------------------------
@pytest.mark.slow
def test_case_all_diverged_study_then_report(tmp_path):
    code, _, err = _run("study", *SMALL, "--lrs", "100000", "--out", "D", cwd=tmp_path)
    assert code == 0, err
    code, out, err = _run("report", "D", cwd=tmp_path)
    assert code == 0, err
    names = {p.name for p in (tmp_path / "D" / "figures").iterdir()}
    assert {"accuracy_vs_lr.png", "accuracy_vs_depth.svg", "training_curves.png"} <= names
    # and the csv case on it: refused, nothing written, the study still reports
    db = (tmp_path / "D" / "study.sqlite").read_bytes()
    code, _, err = _run("report", "D", "--csv", "D/study.sqlite", cwd=tmp_path)
    assert code == 2 and _one_line(err).startswith("error: --csv 'D/study.sqlite' is inside")
    assert (tmp_path / "D" / "study.sqlite").read_bytes() == db
    assert _run("report", "D", cwd=tmp_path)[0] == 0


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--limit-train", "100000"], "--limit-train 100000 is more than the 256 images"),
     (["--seeds", "99999999999999999999"], "above 2**63 - 1")],
)  # fmt: skip
def test_case_refused_before_the_study_directory_exists(tmp_path, option, message):
    code, _, err = _run("study", *SMALL, "--lrs", "0.1", *option, "--out", "D", cwd=tmp_path)
    assert code == 2 and message in _one_line(err)
    assert not (tmp_path / "D").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--limit-test", "129"], "--limit-test 129 is more than the 128 images"),
     (["--seeds", "0,9223372036854775808"], "above 2**63 - 1"),
     (["--width", "1000000"], "needs about"),
     (["--config", "{tmp}/s.toml"], "data_dir")],  # the TOML's data_dir = 7
)  # fmt: skip
def test_refused_before_the_study_directory_exists(tmp_path, run_cli, option, message):
    (tmp_path / "s.toml").write_text("data_dir = 7\n")
    option = [o.format(tmp=tmp_path) for o in option]
    code, out, err = run_cli(["study", *SMALL, "--lrs", "0.1", *option, "--out",
                              str(tmp_path / "D")])  # fmt: skip
    assert code == 2 and out == "" and message in _one_line(err)
    assert not (tmp_path / "D").exists()


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--depth", "8", "--solver", "ode-rk4", "--ode-t1", "inf"],
      "ode_t1 must be in (0, 1e+06] (float32 cannot integrate longer intervals), got inf"),
     (["--depth", "20", "--width", "1000000"], "needs about 14.8 PiB to train its parameters")],
)  # fmt: skip
def test_case_describe_refuses_absurd_models_within_seconds(option, message):
    start = time.monotonic()
    code, _, err = _run("describe", *option)
    assert code == 2 and message in _one_line(err)
    assert time.monotonic() - start < 120  # seconds (torch's import), not an allocation


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--solver", "ode-dopri5", "--ode-rtol", "1e-300"], "ode_rtol must be in [1e-12, 1]"),
     (["--solver", "ode-dopri5", "--ode-atol", "nan"], "ode_atol must be in [1e-12, 1]"),
     (["--solver", "ode-rk4", "--ode-step-size", "1e-300"], "ode_step_size must be in"),
     (["--width", "4096"], "more than this machine's")],
)  # fmt: skip
def test_describe_refuses_absurd_options(run_cli, option, message):
    code, out, err = run_cli(["describe", "--depth", "8", *option])
    assert code == 2 and out == "" and message in _one_line(err)


def test_train_out_must_be_a_writable_directory(tmp_path, run_cli):
    (tmp_path / "file").write_text("keep")
    args = ["train", "--dataset", DATA, "--depth", "8", "--width", "4", "--epochs", "1"]
    code, _, err = run_cli([*args, "--out", str(tmp_path / "file")])
    assert code == 2 and "exists and is not a directory" in _one_line(err)
    assert (tmp_path / "file").read_text() == "keep"
    code, _, err = run_cli([*args, "--out", str(tmp_path / "file" / "sub")])
    assert code == 2 and "is not writable" in _one_line(err)
    code, _, err = run_cli([*args, "--out", "/proc/self/odenet-run"])  # unwritable even by root
    assert code == 2 and "is not writable" in _one_line(err)
    code, _, err = run_cli([*args, "--seed", str(2**63)])
    assert code == 2 and "above 2**63 - 1" in _one_line(err)


# ---- exit codes ----------------------------------------------------------------------------
def test_failed_runs_exit_1_diverged_exit_0(tmp_path, run_cli, monkeypatch):
    import odenet.training

    train = odenet.training.train

    def flaky(config, **kw):
        if config.lr == 0.2:
            raise RuntimeError("boom")
        return train(config, **kw)

    monkeypatch.setattr(odenet.training, "train", flaky)
    argv = ["study", *SMALL, "--lrs", "0.1,0.2", "--out", str(tmp_path), "-q"]
    code, _, err = run_cli(argv)
    assert code == 1 and _one_line(err).startswith("error: 2 run(s) failed (d8-euler-lr0.2")
    monkeypatch.setattr(odenet.training, "train", train)
    assert run_cli(argv)[0] == 0  # retried: every run done


def _poll(predicate, proc, timeout=300.0):
    start = time.monotonic()
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - start < timeout
        time.sleep(0.05)


def test_ctrl_c_at_start_up_is_one_line_exit_130(tmp_path):
    """SIGINT while the command starts (torch being loaded: the process has mapped libtorch
    but written nothing). Before odenet's code runs at all (Python's own start-up, `site`)
    an interrupt is the interpreter's: that window is not odenet's to handle."""
    proc = _odenet("study", *SMALL, "--lrs", "0.1", "--out", "D", "-q", cwd=tmp_path)
    maps = Path(f"/proc/{proc.pid}/maps")
    _poll(lambda: "libtorch" in maps.read_text(), proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and _one_line(err) == INTERRUPTED
    assert not (tmp_path / "D").exists()


def test_start_up_handler_prints_the_line_and_exits_130():
    """``python -m odenet`` installs this handler before importing the CLI (typer, rich)."""
    code = (
        "import os, signal, time; import odenet.__main__ as m; "
        "signal.signal(signal.SIGINT, m._interrupted_at_startup); "
        "os.kill(os.getpid(), signal.SIGINT); time.sleep(60)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 130 and done.stderr == INTERRUPTED + "\n"


@pytest.mark.slow
def test_ctrl_c_mid_run_is_one_line_exit_130_and_the_same_command_resumes(tmp_path):
    args = ["study", *SMALL[:-1], "4", "--lrs", "0.1,0.2", "--out", "D", "-q"]
    proc = _odenet(*args, cwd=tmp_path)
    db = tmp_path / "D" / "study.sqlite"

    def training() -> bool:
        if not db.is_file():
            return False
        try:
            with sqlite3.connect(db) as con:
                return con.execute("SELECT MAX(epochs_done) FROM runs").fetchone()[0] >= 1
        except sqlite3.Error:
            return False

    _poll(training, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and _one_line(err) == INTERRUPTED
    with sqlite3.connect(db) as con:  # the interrupted run was given back
        assert con.execute("SELECT COUNT(*) FROM runs WHERE status = 'running'").fetchone()[0] == 0
    code, _, err = _run(*args, cwd=tmp_path)
    assert code == 0, err
    with sqlite3.connect(db) as con:
        assert con.execute("SELECT DISTINCT status FROM runs").fetchall() == [("done",)]


# ---- the memory estimate -------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw", [{"depth": 20}, {"depth": 32, "width": 8}, {"depth": 20, "block": "preact"},
           {"depth": 14, "solver": "rk4", "in_channels": 1},
           {"arch": "single", "depth": 14, "width": 32},
           {"arch": "resnet50", "num_classes": 1000}],
)  # fmt: skip
def test_memory_estimate_counts_the_convolutions_exactly(kw):
    """The estimate's parameters are exactly the model's stem and field convolution weights
    (projection shortcuts, norms and the head left out: a lower bound), from the config."""
    from torch import nn

    from odenet.nets import ModelConfig, build_from_config
    from odenet.nets.memory import TRAIN_BYTES_PER_PARAM, estimate

    config = ModelConfig(**kw)
    model = build_from_config(config)
    convs = sum(m.weight.numel() for name, m in model.named_modules()
                if isinstance(m, nn.Conv2d) and "shortcut" not in name)  # fmt: skip
    est = estimate(config, image_size=32, batch_size=2)
    assert est.params == convs < sum(p.numel() for p in model.parameters())
    assert est.param_bytes == TRAIN_BYTES_PER_PARAM * convs
    if config.arch == "cifar":  # 6 maps per field, float32, batch 2, sides 32, 16, 8
        n, w = config.blocks_per_stage, config.width
        maps = n * (w * 32 * 32 + 2 * w * 16 * 16 + 4 * w * 8 * 8)
        assert est.activation_bytes == 2 * 4 * 6 * maps


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("seed", 2**63, "above 2**63 - 1"), ("seed", -1, "non-negative"),
     ("data_dir", 7, "data_dir must be a path"), ("dataset", 5, "dataset must be a name"),
     ("augment", "yes", "augment must be true or false"), ("amp", 1.5, "amp must be true")],
)  # fmt: skip
def test_train_config_refuses_wrong_types_and_ranges(field, value, message):
    from odenet.errors import ConfigError
    from odenet.training import TrainConfig

    TrainConfig(seed=2**63 - 1).validate()  # the largest seed is fine
    with pytest.raises(ConfigError, match=message.replace("*", r"\*")):
        TrainConfig(**{field: value}).validate()
