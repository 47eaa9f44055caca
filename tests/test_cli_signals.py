"""SIGTERM is treated like Ctrl-C (issue 19, item 1): one line, the running run goes back to
pending, exit 143; at start-up too. (With real processes, also as PID 1 of a PID namespace:
tests/test_studies_containers.py.)"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import odenet.training
from odenet.studies.store import Store

ROOT = Path(__file__).resolve().parents[1]
TERMINATED = "terminated (SIGTERM); run the same command to resume"
STUDY = ["study", "--dataset", "synthetic:train=64,test=32,size=8", "--depths", "8",
         "--width", "4", "--orders", "1", "--lrs", "0.1,0.2", "--epochs", "1", "--device",
         "cpu", "-q"]  # fmt: skip


def test_sigterm_mid_study_gives_the_run_back_and_exits_143(tmp_path, run_cli, monkeypatch):
    """The handler raises Terminated in the main thread wherever it is (here: inside a run's
    training); the runner gives the run back; the handler that was there before is back."""

    def terminated(config, **kw):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # interrupted by the handler's exception
        raise AssertionError("SIGTERM was not handled")

    monkeypatch.setattr(odenet.training, "train", terminated)
    before = signal.getsignal(signal.SIGTERM)
    code, out, err = run_cli([*STUDY, "--out", str(tmp_path)])
    assert code == 143 and err == TERMINATED + "\n"
    assert signal.getsignal(signal.SIGTERM) is before
    assert Store.open(tmp_path).counts()["pending"] == 2  # nothing left 'running'


def test_sigterm_at_start_up_is_one_line_exit_143(tmp_path):
    """SIGTERM while the command starts (torch being loaded), as for Ctrl-C."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "odenet", *STUDY, "--out", "D"], cwd=tmp_path,
                            env=env, stderr=subprocess.PIPE, text=True)  # fmt: skip
    maps = Path(f"/proc/{proc.pid}/maps")
    end = time.monotonic() + 120
    while "libtorch" not in maps.read_text():
        assert proc.poll() is None and time.monotonic() < end
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and err == TERMINATED + "\n"
    assert not (tmp_path / "D").exists()
