"""A study's spec travels from run_study to the executor through few files, each entered at
most twice: it is checked once when built, and no layer hands it back and forth."""

import sys
from collections import Counter
from pathlib import Path

import odenet
from odenet.studies import run_study, spec_from_sources
from odenet.studies.executors.base import Executor

ROOT = Path(odenet.__file__).parent


def test_the_spec_enters_each_file_at_most_twice_on_its_way_to_the_executor(tmp_path, one_thread):
    spec = spec_from_sources(
        orders="1", depths="8", lrs="0.1", seeds="0",
        settings={"dataset": "synthetic:train=64,test=32,size=8", "epochs": 1, "width": 4,
                  "device": "cpu"},
    )  # fmt: skip
    files: list[str] = []  # odenet files entered by a call that holds the spec, repeats collapsed
    submitted = []

    def profile(frame, event, arg):
        if event != "call" or submitted:
            return
        path = frame.f_code.co_filename
        if not path.startswith(str(ROOT)):
            return
        if frame.f_code.co_name == "submit" and isinstance(frame.f_locals.get("self"), Executor):
            submitted.append(path)
            return
        if any(value is spec for value in frame.f_locals.values()):
            name = str(Path(path).relative_to(ROOT))
            if not files or files[-1] != name:
                files.append(name)

    sys.setprofile(profile)
    try:
        run_study(spec, tmp_path / "study", quiet=True)
    finally:
        sys.setprofile(None)
    assert submitted, "the study never reached an executor"
    assert files[0] == "studies/api.py"
    visits = Counter(files)
    assert max(visits.values()) <= 2, files
    assert len(files) <= 6, files
