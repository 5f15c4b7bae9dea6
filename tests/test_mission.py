"""The mission's commands as a new user types them, in a fresh project folder (issue 10).

    ragar-data extract --videos raw/
    ragar-data split --protocol official
    ragar-data train clipgar

Videos come from a tiny synthetic set. Without the CLIP RN50 weights, `train clipgar` must stop at once with
one message naming both ways on, and `--config smoke` (one of them) must then train.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ragar_data.shards import ShardDataset

# The console script of this interpreter's environment, as a user runs it.
RAGAR_DATA = str(Path(sys.executable).with_name("ragar-data"))


def _run(*arguments: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([RAGAR_DATA, *arguments], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_the_mission_commands_as_typed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = dict(os.environ, RAGAR_MODELS_DIR=str(tmp_path / "models"))  # no weights there
    # 4 subjects (the seeded split puts 2 on each side), one view, one combination, two walks, 1 s at 160x90
    synth = _run("synth", "raw_synth", "--subjects", "4", "--views", "0", "--combinations", "0", "--conditions",
                 "nm-01,cl-01", "--seconds", "1", "--width", "160", "--height", "90", "--quiet", env=env)
    assert synth.returncode == 0, synth.stderr
    Path("raw").symlink_to(Path("raw_synth") / "videos")

    # --annotations because training needs labels: raw videos carry none, and without the CSV every sequence
    # would be labelled -1 (the command as typed works, but gives nothing to train on).
    extract = _run("extract", "--videos", "raw/", "--annotations", "raw_synth/annotations.csv", env=env)
    assert extract.returncode == 0, extract.stderr
    assert len(ShardDataset("dataset")) == 8

    split = _run("split", "--protocol", "official", env=env)
    assert split.returncode == 0, split.stderr
    partition = json.loads(Path("dataset/partition.json").read_text())
    assert len(partition["TRAIN_SET"]) == 2 and len(partition["TEST_SET"]) == 2

    train = _run("train", "clipgar", env=env)
    assert train.returncode == 1 and train.stdout == ""
    assert train.stderr.count("\n") == 1 and train.stderr.startswith("error: ")
    expected = tmp_path / "models" / "clip-rn50" / "RN50.pt"
    for remedy in ("--config smoke", "--set text.backend=learned", "ragar-data models download clip-rn50",
                   str(expected)):
        assert remedy in train.stderr

    smoke = _run("train", "clipgar", "--config", "smoke", env=env)
    assert smoke.returncode == 0, smoke.stderr
    assert Path("runs/smoke/fusion/final.pt").is_file() and "fusion:" in smoke.stdout
    # off a terminal the progress is plain lines, no carriage-return redraws
    assert "\r" not in extract.stderr + smoke.stderr and "align: 6/6 it (100%)" in smoke.stderr
