"""The installed console script: its command list, how commands find the dataset, exit codes and messages."""
import io
import re
import subprocess
import sys

import av
import numpy as np
import pytest
from click.testing import CliRunner

from ragar_data import __version__
from ragar_data.attributes import default_schema
from ragar_data.cli import common
from ragar_data.cli.main import COMMANDS, cli
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey
from ragar_data.progress import Progress, track
from ragar_data.shards import make_record, update_index, write_shard
from ragar_data.training.config import CONFIG_DIR

SCHEMA = default_schema()


def _dataset(folder, labelled=True):
    """Two subjects x two walks, no frames: enough for split and stats."""
    rng = np.random.default_rng(0)
    records = [make_record(SequenceKey(f"{s:03d}", 0, condition, 0), image_width=8, image_height=8,
                           labels=(np.array([rng.integers(n) for n in SCHEMA.num_classes], np.int8) if labelled
                                   else np.full(len(SCHEMA), -1, np.int8)),
                           frame_index=np.zeros(0, np.int32), boxes=np.zeros((0, 4), np.float32),
                           silhouette_frame_index=np.zeros(0, np.int32))
               for s in (1, 2, 3, 4) for condition in ("nm-01", "cl-01")]
    update_index(folder, [write_shard(folder, "part-000", records)])
    return folder


def test_help_lists_every_command_with_a_description_and_the_exit_codes():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name, (_, _, description) in COMMANDS.items():
        assert name in result.output and description.split()[0] in result.output
    assert "Exit status:" in result.output and "3 extract finished but some sequences failed" in result.output


def test_every_listed_command_imports():
    runner = CliRunner()
    for name in COMMANDS:
        result = runner.invoke(cli, [name, "--help"])
        assert result.exit_code == 0, f"{name}: {result.output} {result.exception!r}"


def test_console_script_prints_version():
    result = subprocess.run([sys.executable, "-m", "ragar_data.cli.main", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and __version__ in result.stdout


# --- the dataset: --dataset, ./dataset, the current folder, the deprecated positional ---

def test_default_dataset_is_dot_dataset_then_the_current_folder(tmp_path):
    with pytest.raises(RagarDataError, match=r"no dataset at ./dataset \(and the current folder is not one\): pass "
                                             r"--dataset DIR or run `ragar-data extract` first"):
        common.default_dataset(tmp_path)
    (tmp_path / "dataset").mkdir()  # an unfinished extraction is still the default: the library names the gap
    assert str(common.default_dataset(tmp_path)) == "dataset"
    _dataset(tmp_path / "elsewhere")
    assert str(common.default_dataset(tmp_path / "elsewhere")) == "."
    _dataset(tmp_path / "dataset")
    assert str(common.default_dataset(tmp_path)) == "dataset"


@pytest.mark.parametrize("where", ["project", "inside"])
def test_split_and_stats_find_the_dataset_without_arguments(tmp_path, monkeypatch, where):
    _dataset(tmp_path / "dataset")
    monkeypatch.chdir(tmp_path if where == "project" else tmp_path / "dataset")
    result = CliRunner().invoke(cli, ["split", "--protocol", "official"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dataset" / "partition.json").is_file()
    assert "train: 2 subjects" in result.output
    result = CliRunner().invoke(cli, ["stats"])
    assert result.exit_code == 0 and "sequences" in result.output and "deprecated" not in result.output


def test_no_dataset_is_one_error_line_and_exit_1(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for command in (["split"], ["stats"], ["export", "opengait", "tree"], ["qa", "--ground-truth", "."],
                    ["train", "classification", "--config", "smoke"]):
        result = CliRunner().invoke(cli, command)
        assert result.exit_code == 1, (command, result.output)
        assert result.stderr == ("error: no dataset at ./dataset (and the current folder is not one): pass "
                                 "--dataset DIR or run `ragar-data extract` first\n"), command
        assert "Traceback" not in result.output


def test_old_positional_spellings_still_work_with_a_note(tmp_path, monkeypatch):
    dataset = _dataset(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["split", str(dataset)])
    assert result.exit_code == 0, result.output
    assert result.stderr.count("\n") == 1 and "positional DATASET is deprecated" in result.stderr
    assert "--dataset" in result.stderr and (dataset / "partition.json").is_file()
    result = CliRunner().invoke(cli, ["export", "opengait", str(dataset), "tree_old"])
    assert result.exit_code == 0 and "deprecated" in result.stderr
    result = CliRunner().invoke(cli, ["export", "opengait", "tree_new", "-d", str(dataset)])
    assert result.exit_code == 0 and "deprecated" not in result.stderr
    assert sorted(p.name for p in (tmp_path / "tree_old").iterdir()) == sorted(
        p.name for p in (tmp_path / "tree_new").iterdir())
    result = CliRunner().invoke(cli, ["split", str(dataset), "--dataset", str(tmp_path / "other")])
    assert result.exit_code == 2 and "the dataset is given twice" in result.output


# --- one error wrapper ---

def test_library_errors_are_one_line_exit_1_and_usage_errors_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("subject,combination\n1,9\n")
    result = CliRunner().invoke(cli, ["annotations", "convert", str(bad), str(tmp_path / "out.csv")])
    assert result.exit_code == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.output
    assert "bad.csv:2: column combination" in result.stderr
    assert not isinstance(result.exception, RagarDataError)  # handled, not raised
    result = CliRunner().invoke(cli, ["split", "--protocol"])
    assert result.exit_code == 2 and "requires an argument" in result.output
    result = CliRunner().invoke(cli, ["extract"])
    assert result.exit_code == 2 and "give --videos DIR or --manifest CSV" in result.output


def test_extract_exits_3_when_a_sequence_fails(tmp_path):
    video = tmp_path / "raw" / "001" / "c0" / "nm-01" / "000.mp4"
    video.parent.mkdir(parents=True)
    video.write_bytes(b"not a video")
    result = CliRunner().invoke(cli, ["extract", "--videos", str(tmp_path / "raw"), "-o", str(tmp_path / "ds"),
                                      "--no-progress"])
    assert result.exit_code == common.EXIT_SOME_FAILED, result.output
    assert "1 failed" in result.output and (tmp_path / "ds" / "extract" / "failures.jsonl").stat().st_size > 0


# --- train: packaged configs in --help, the CLIP weights message first ---

def test_train_help_lists_every_packaged_config():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"clipgar", "smoke", "short_cpu", "table5_cpu"} <= set(names)
    for arguments in (["train", "--help"], ["train", "clipgar", "--help"]):
        output = CliRunner().invoke(cli, arguments, terminal_width=200).output
        listed = output.split("Packaged configs (--config NAME):")[1].splitlines()
        assert [line.split()[0] for line in listed if line.strip()] == names
    assert re.search(r"\bsmoke +A tiny CPU run", output) and "(no weights needed)" in output
    assert re.search(r"\bclipgar +CLIP-GAR with the paper's settings", output)
    assert "needs the CLIP RN50 weights" in output


def test_train_clipgar_without_weights_says_what_to_do_before_anything_else(tmp_path, monkeypatch):
    from ragar_data.models import text_encoders

    expected = tmp_path / "models" / "clip-rn50" / "RN50.pt"
    monkeypatch.setattr(text_encoders, "DEFAULT_CLIP_WEIGHTS", expected)
    monkeypatch.chdir(tmp_path)  # no dataset here either: the weights message comes first, alone
    result = CliRunner().invoke(cli, ["train", "clipgar"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    for remedy in ("--config smoke", "--set text.backend=learned", "ragar-data models download clip-rn50",
                   str(expected), "--set text.weights=PATH"):
        assert remedy in result.stderr
    result = CliRunner().invoke(cli, ["train", "clipgar", "--set", "text.weights=/nowhere/RN50.pt"])
    assert result.exit_code == 1 and "/nowhere/RN50.pt" in result.stderr and "--config smoke" in result.stderr


# --- small fixes ---

def test_models_check_fails_when_a_model_is_missing(tmp_path):
    result = CliRunner().invoke(cli, ["models", "check", "clip-rn50", "--models-dir", str(tmp_path)])
    assert result.exit_code == 1 and "missing" in result.stdout
    assert "ragar-data models download clip-rn50" in result.stderr


def test_stats_without_labels_says_so_and_writes_no_png(tmp_path):
    dataset = _dataset(tmp_path / "data", labelled=False)
    png = tmp_path / "classes.png"
    result = CliRunner().invoke(cli, ["stats", "-d", str(dataset), "--png", str(png)])
    assert result.exit_code == 0, result.output
    assert ("no attribute labels in this dataset: all 8 sequences have labels -1; pass --annotations CSV to "
            "`ragar-data extract`") in result.output
    assert "Sequences per attribute class" not in result.output and "not written" in result.output
    assert not png.exists()


def test_synth_small_preset_and_the_ra_gar_size_warning(tmp_path, monkeypatch):
    import ragar_data.synth

    seen = {}

    def fake_generate(out, config, workers, progress):
        seen["config"] = config
        return {"sequences": 0, "out_dir": out, "rendered": 0, "skipped": 0, "frames": 0,
                "frames_per_second": 0.0, "video_codec": "none"}

    monkeypatch.setattr(ragar_data.synth, "generate", fake_generate)
    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "s"), "--subjects", "4", "--small", "--width", "320"])
    assert result.exit_code == 0 and "warning" not in result.output
    config = seen["config"]
    assert (config.views, config.conditions, config.seconds) == ((0, 72), ("nm-01", "bg-01", "cl-01"), 1.5)
    assert (config.width, config.height) == (320, 270)  # the explicit width wins
    result = CliRunner().invoke(cli, ["synth", str(tmp_path / "s"), "--subjects", "4"])
    assert result.stderr.startswith("warning: 960 sequences, 86400 frames at 1920x1080: estimated ")
    assert "--small" in result.stderr and result.stderr.count("\n") == 1


def test_viz_mp4_plays_at_the_source_frame_rate(tmp_path):
    runner = CliRunner()
    synth = runner.invoke(cli, ["synth", str(tmp_path / "s"), "--subjects", "1", "--views", "0", "--combinations",
                                "0", "--conditions", "nm-01", "--seconds", "1", "--fps", "10", "--width", "192",
                                "--height", "108", "--quiet"])
    assert synth.exit_code == 0, synth.output
    extract = runner.invoke(cli, ["extract", "--videos", str(tmp_path / "s" / "videos"), "-o", str(tmp_path / "d"),
                                  "--no-progress"])
    assert extract.exit_code == 0, extract.output
    clip = tmp_path / "clip.mp4"
    result = runner.invoke(cli, ["viz", "001-c0-nm-01-000", "-d", str(tmp_path / "d"), "--videos",
                                 str(tmp_path / "s" / "videos"), "--out", str(clip)])
    assert result.exit_code == 0, result.output
    with av.open(str(clip)) as container:
        assert container.streams.video[0].average_rate == 10


# --- progress ---

class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_prints_plain_lines_off_a_terminal():
    stream = io.StringIO()
    with Progress("extract", 200, unit="frame", stream=stream) as progress:
        for _ in range(200):
            progress.advance()
        progress.note("12.0 frames/s")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue() and len(lines) == 10  # one per tenth, nothing more
    assert lines[0].startswith("extract: 20/200 frame (10%)") and lines[-1].startswith("extract: 200/200 frame (100%)")


def test_progress_total_can_grow_and_time_also_prints():
    stream = io.StringIO()
    progress = Progress("extract", None, unit="frame", stream=stream, interval_s=0.0)
    progress.advance(5)
    progress.total = 50  # learned once the video is opened
    progress.advance(45)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("extract: 5 frame,") and lines[-1].startswith("extract: 50/50 frame (100%)")


def test_progress_draws_a_bar_on_a_terminal_and_nothing_when_disabled():
    terminal = _Terminal()
    with Progress("synth", 3, unit="seq", stream=terminal) as progress:
        progress.advance(3)
    assert "\r" in terminal.getvalue() and "3/3" in terminal.getvalue()
    quiet = io.StringIO()
    assert list(track(range(3), "x", enabled=False)) == [0, 1, 2]
    with Progress("synth", 3, stream=quiet, enabled=False) as progress:
        progress.advance(3)
    assert quiet.getvalue() == ""
