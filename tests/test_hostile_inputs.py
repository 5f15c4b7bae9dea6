"""Hostile and careless inputs: the raw tree, manifests, annotation files and training runs.

Every case ends in a clear error naming the file (and line), a listed skip, or the right result: never a
silently wrong output, a traceback, or a write into the dataset by training.
"""
from __future__ import annotations

import json
import os
import warnings

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ragar_data.annotations import check_annotations, expected_columns, parse_annotations, read_annotations
from ragar_data.attributes import default_schema
from ragar_data.cli.main import cli
from ragar_data.errors import AnnotationError, RagarDataError
from ragar_data.identity import RawLayoutError, SequenceKey
from ragar_data.pipelines.sources import InputError, read_inputs
from ragar_data.shards import make_record, update_index, write_shard

SCHEMA = default_schema()
HEADER = ",".join(expected_columns(SCHEMA))
MANIFEST_HEADER = "video,subject,combination,condition,view,start_frame,end_frame"


def touch(root, *relpaths):
    for relpath in relpaths:
        path = root / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not really a video")
    return root


def annotation_row(subject, combination, cells=None):
    cells = cells if cells is not None else [a.classes[0] for a in SCHEMA.attributes]
    return ",".join([subject, str(combination), *cells])


# ------------------------------------------------------------------------------------------ raw tree


@pytest.mark.parametrize("first, second", [("001/c0/nm-01/0.mp4", "001/c0/nm-01/000.mp4"),
                                           ("001/c0/nm-01/036.mp4", "001/c00/nm-01/036.mp4"),
                                           ("001/c0/nm-01/036.mp4", "001/c0/nm-01/036.avi")])
def test_two_videos_of_one_sequence_are_refused_naming_both(tmp_path, first, second):
    touch(tmp_path, first, second)
    with pytest.raises(RawLayoutError) as error:
        read_inputs(tmp_path)
    assert str(tmp_path / first) in str(error.value) and str(tmp_path / second) in str(error.value)


BROKEN_NAMES = {
    "001/c0/nm-01/00-1.mp4": "view '00-1'",
    "001/c0/xx-01/036.mp4": "not a condition",
    "001/c3/nm-01/036.mp4": "not a combination folder",
    "001/C0/nm-01/036.mp4": "lower case: 'c0'",
    "001/c0/NM-01/036.mp4": "not a condition (lower case)",
    "001/c0/nm-1/036.mp4": "not a condition",
    "001/c0/nm-01/360.mp4": "view 360 is not an angle",
    "001/c0/nm-01/٠٣٦.mp4": "ASCII digits",  # Arabic-Indic digits: int() would read 36
    "001/c0/nm-01/０３６.mp4": "ASCII digits",  # fullwidth digits
    "001/c0/nm-01/036.mp4.part": "not a video file",
    "001/c0/nm-01/notes.txt": "not a video file",
    "001/c0/nm-01/take2/036.mp4": "too deep",
    "sub-1/c0/nm-01/036.mp4": "subject id",
    "é01/c0/nm-01/036.mp4": "subject id",
    "loose.mp4": "a file where a <subject> folder",
}


def test_entries_breaking_the_layout_are_listed_with_the_reason(tmp_path):
    touch(tmp_path, "001/c0/nm-01/036.mp4", ".DS_Store", "001/c0/nm-01/.036.mp4.swp", *BROKEN_NAMES)
    inputs = read_inputs(tmp_path)
    assert [str(u.key) for u in inputs.units] == ["001-c0-nm-01-036"]
    reasons = dict(inputs.skipped)
    for relpath, reason in BROKEN_NAMES.items():
        # a bad folder is listed once, as the folder, and not descended into
        folder = tmp_path / relpath
        while str(folder) not in reasons and folder != tmp_path:
            folder = folder.parent
        assert reason in reasons[str(folder)], (relpath, reasons.get(str(folder)))
    assert not any(".DS_Store" in path or ".swp" in path for path in reasons)  # hidden names are not the layout
    report = "\n".join(inputs.report())
    assert f"skipped {len(inputs.skipped)} entries" in report and "00-1.mp4: view" in report


def test_unreadable_folder_and_broken_link_are_listed(tmp_path, monkeypatch):
    touch(tmp_path, "001/c0/nm-01/036.mp4", "002/c0/nm-01/036.mp4")
    (tmp_path / "001/c0/nm-01/072.mp4").symlink_to(tmp_path / "nowhere.mp4")
    locked = str(tmp_path / "002" / "c0")
    real_scandir = os.scandir

    def scandir(path="."):  # chmod 000 does not stop root, so refuse the folder here
        if str(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    inputs = read_inputs(tmp_path)
    reasons = dict(inputs.skipped)
    assert [str(u.key) for u in inputs.units] == ["001-c0-nm-01-036"]
    assert "cannot read this folder: Permission denied" in reasons[locked]
    assert "not a regular file" in reasons[str(tmp_path / "001/c0/nm-01/072.mp4")]


def test_linked_subject_folder_is_read(tmp_path):
    touch(tmp_path / "elsewhere", "c0/nm-01/036.mp4")
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "007").symlink_to(tmp_path / "elsewhere")
    assert [str(u.key) for u in read_inputs(tmp_path / "videos").units] == ["007-c0-nm-01-036"]


def test_views_outside_ragar_are_accepted_with_a_note(tmp_path):
    touch(tmp_path, "001/c0/nm-01/037.mp4", "001/c0/nm-01/036.mp4", "001/c0/bg-01/037.mp4")
    inputs = read_inputs(tmp_path, strict=True)  # accepted even under --strict: other camera setups exist
    assert [u.key.view for u in inputs.units] == [37, 36, 37]
    assert inputs.notes == ["view 37 (2 sequence(s)) is not one of RA-GAR's views 0, 36, ..., 324"]


def test_strict_refuses_skipped_entries_before_any_work(tmp_path):
    videos = touch(tmp_path / "videos", "001/c0/nm-01/036.mp4", "001/c0/nm-01/00-1.mp4")
    with pytest.raises(InputError, match="--strict: the input has 1 skipped"):
        read_inputs(videos, strict=True)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["extract", "--videos", str(videos), "--out", str(out), "--strict",
                                      "--no-progress"])
    assert result.exit_code == 1 and "00-1.mp4: view '00-1'" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not out.exists()  # nothing written, not even the run state


def test_a_tree_with_nothing_readable_says_what_it_skipped(tmp_path):
    touch(tmp_path, "001/C0/nm-01/036.mp4")
    with pytest.raises(InputError, match="(?s)no videos in the raw layout.*C0: not a combination folder"):
        read_inputs(tmp_path)


@pytest.mark.parametrize("key", ["001-c0-nm-01-036\n", "001-c٠-nm-01-036", "001-c0-nm-01-٠٣٦",
                                 "00１-c0-nm-01-036"])
def test_sequence_keys_are_ascii_and_whole(key):
    with pytest.raises(ValueError):
        SequenceKey.parse(key)
    with pytest.raises(ValueError):
        SequenceKey("001\n", 0, "nm-01", 36)


@pytest.mark.slow
def test_extraction_lists_and_counts_skipped_entries(tmp_path):
    from ragar_data.pipelines.config import load_preset
    from ragar_data.pipelines.runner import RunOptions, extract
    from ragar_data.synth import SynthConfig, generate

    generate(tmp_path / "synth", SynthConfig.small(subjects=1, views=(90,), conditions=("nm-01",), seconds=0.5,
                                                   width=160, height=90, combinations=(0,)), progress=False)
    videos = tmp_path / "synth" / "videos"
    touch(videos, "001/c0/nm-01/notes.txt", "001/C1/nm-01/090.mp4")
    logged = []
    summary = extract(tmp_path / "out", load_preset(), videos=videos, options=RunOptions(progress=False),
                      log=logged.append)
    assert summary.processed == 1 and len(summary.skipped_inputs) == 2
    assert any("notes.txt: not a video file" in line for line in logged)
    assert "2 input entr(ies) skipped" in "\n".join(summary.lines())
    stored = json.loads((tmp_path / "out" / "extract" / "summary.json").read_text())
    assert len(stored["skipped_inputs"]) == 2


# ------------------------------------------------------------------------------------------ manifest


def write_manifest(tmp_path, lines, name="manifest.csv", encoding="utf-8"):
    touch(tmp_path, "rec/a.mp4", "rec/b.mp4")
    path = tmp_path / name
    path.write_bytes(("\n".join(lines) + "\n").encode(encoding))
    return path


def test_manifest_line_numbers_count_blank_lines_and_quoted_breaks(tmp_path):
    path = write_manifest(tmp_path, [MANIFEST_HEADER, "", "rec/a.mp4,001,0,nm-01,36,,", "", "",
                                     '"rec/\nb.mp4",001,0,nm-02,36,,', "rec/b.mp4,001,0,xx-01,36,,"])
    with pytest.raises(InputError) as error:
        read_inputs(manifest=path)
    assert f"{path}:8: condition 'xx-01'" in str(error.value)  # the bad row is on line 8 of the file
    assert f"{path}:6:" not in str(error.value)


@pytest.mark.parametrize("header, named", [
    (MANIFEST_HEADER + ",notes", "unknown ['notes']"),
    ("video,subject,combination,condition,view,start_frames,end_frame", "unknown ['start_frames']"),
    ("video,subject,combination,condition,view,view", "repeated ['view']"),
    ("video,subject,combination,condition", "missing ['view']"),
    ("video,subject,combination,condition,view,", "#6 (empty name)"),
])
def test_manifest_columns_are_never_dropped_silently(tmp_path, header, named):
    path = write_manifest(tmp_path, [header, "rec/a.mp4,001,0,nm-01,36,0,10"])
    with pytest.raises(InputError) as error:
        read_inputs(manifest=path)
    assert f"{path}:1: manifest header" in str(error.value) and named in str(error.value)


@pytest.mark.parametrize("row, message", [
    ("rec/a.mp4,001,0,nm-01,36,20,10", "frame range [20, 10) is empty"),
    ("rec/a.mp4,001,0,nm-01,36,-5,10", "start_frame '-5' is not a non-negative integer"),
    ("rec/a.mp4,001,0,nm-01,36,0,-1", "end_frame '-1'"),
    ("rec/a.mp4,001,0,nm-01,٣٦,,", "view '٣٦' is not a non-negative integer in ASCII digits"),
    ("rec/a.mp4,001,1_0,nm-01,36,,", "combination '1_0'"),  # int() would read 10
    ("rec/a.mp4,001,0,nm-01,+36,,", "view '+36'"),
    ("rec/a.mp4,001,0,nm-01,360,,", "view 360 is not an angle"),
    ("rec/a.mp4,001,0,nm-01,36,,,extra", "expected 7 fields as in the header, found 8"),
    (",001,0,nm-01,36,,", "empty video path"),
    ("rec/a.mp4,0 01,0,nm-01,36,,", "subject id '0 01'"),
])
def test_bad_manifest_rows_name_their_line(tmp_path, row, message):
    path = write_manifest(tmp_path, [MANIFEST_HEADER, "rec/b.mp4,001,0,nm-02,36,,", row])
    with pytest.raises(InputError) as error:
        read_inputs(manifest=path)
    assert f"{path}:3: " in str(error.value) and message in str(error.value)


def test_manifest_duplicates_and_missing_videos(tmp_path):
    path = write_manifest(tmp_path, [MANIFEST_HEADER, "rec/a.mp4,001,0,nm-01,36,,", "rec/b.mp4,001,0,nm-01,36,,"])
    with pytest.raises(InputError, match=r"manifest.csv:3: sequence 001-c0-nm-01-036 is already on line 2"):
        read_inputs(manifest=path)
    path = write_manifest(tmp_path, [MANIFEST_HEADER, "rec/a.mp4,001,0,nm-01,36,0,9", "rec/./a.mp4,001,0,nm-02,36,0,9"])
    with pytest.raises(InputError, match=r"manifest.csv:3: the same video and frame range is already on line 2"):
        read_inputs(manifest=path)  # a copy-pasted row under another key
    assert len(read_inputs(manifest=write_manifest(tmp_path, [MANIFEST_HEADER, "rec/a.mp4,001,0,nm-01,36,0,9",
                                                               "rec/a.mp4,001,0,nm-02,36,9,"])).units) == 2
    path = write_manifest(tmp_path, [MANIFEST_HEADER, "rec/a.mp4,001,0,nm-01,36,,", "", "gone.mp4,002,0,nm-01,36,,"])
    inputs = read_inputs(manifest=path)  # kept as a unit: the runner logs it as a failure and goes on
    assert len(inputs.units) == 2 and inputs.missing == [f"{path}:4: gone.mp4 (not a file)"]
    assert f"{path}:4: gone.mp4" in "\n".join(inputs.report())
    with pytest.raises(InputError, match="1 missing video"):
        read_inputs(manifest=path, strict=True)


@pytest.mark.parametrize("encoding, line", [("latin-1", 3), ("utf-16", 1)])
def test_manifest_in_another_encoding_names_the_line(tmp_path, encoding, line):
    path = write_manifest(tmp_path, [MANIFEST_HEADER, "rec/a.mp4,001,0,nm-01,36,,", "rec/é.mp4,002,0,nm-01,36,,"],
                          encoding=encoding)
    with pytest.raises(InputError, match=rf"manifest.csv:{line}: not UTF-8 text"):
        read_inputs(manifest=path)


def test_manifest_cli_errors_exit_2_without_traceback(tmp_path):
    path = write_manifest(tmp_path, [MANIFEST_HEADER + ",notes", "rec/a.mp4,001,0,nm-01,36,,,x"])
    result = CliRunner().invoke(cli, ["extract", "--manifest", str(path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "unknown ['notes']" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------ annotations


@pytest.mark.parametrize("encoding, line", [("utf-16", 1), ("utf-16-le", 1), ("latin-1", 3), ("cp1252", 3)])
def test_annotations_in_another_encoding_name_the_line(tmp_path, encoding, line):
    cells = [a.classes[0] for a in SCHEMA.attributes]
    text = "\n".join([HEADER, annotation_row("001", 0), annotation_row("José", 0, cells)]) + "\n"
    path = tmp_path / "labels.csv"
    path.write_bytes(text.encode(encoding))
    problems = check_annotations(path)
    assert [(p.line, p.is_error) for p in problems] == [(line, True)] and "not UTF-8 text" in problems[0].message
    with pytest.raises(AnnotationError, match=rf"labels.csv:{line}: not UTF-8"):
        read_annotations(path)


def test_header_only_annotation_file_warns(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text(HEADER + "\n\n")
    problems = check_annotations(path)
    assert [(p.severity, p.line) for p in problems] == [("warning", 0)] and "header only" in problems[0].message
    with pytest.warns(UserWarning, match="labels.csv: warning: header only"):
        assert read_annotations(path) == {}
    path.write_text(HEADER + "\n" + annotation_row("001", 0) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(read_annotations(path)) == [("001", 0)]


@pytest.mark.parametrize("digit", ["١", "１", "۱", "¹"])
def test_non_ascii_digits_are_not_class_indices(digit):
    cells = [a.classes[0] for a in SCHEMA.attributes]
    cells[0] = digit
    table, problems = parse_annotations(HEADER + "\n" + annotation_row("001", 0, cells) + "\n")
    assert not table and [(p.line, p.column) for p in problems] == [(2, "gender")]
    cells[0] = "1"
    table, problems = parse_annotations(HEADER + "\n" + annotation_row("001", 0, cells) + "\n")
    assert table[("001", 0)][0] == 1 and not problems
    table, problems = parse_annotations(HEADER + "\n" + annotation_row("001", digit) + "\n")
    assert not table and problems[0].column == "combination"


# ------------------------------------------------------------------------------------------ training


def tiny_dataset(root, official=None):
    rng = np.random.default_rng(0)
    records = []
    for number, subject in enumerate(("001", "002", "003", "004", "005", "006")):
        labels = np.array([number % n for n in SCHEMA.num_classes], np.int8)
        for condition in ("nm-01", "bg-01"):
            frames = 6
            silhouettes = (rng.random((frames, 64, 64)) > 0.5).astype(np.uint8) * 255
            records.append(make_record(
                SequenceKey(subject, 0, condition, 0), image_width=64, image_height=64, labels=labels,
                frame_index=np.arange(frames, dtype=np.int32), boxes=np.zeros((frames, 4), np.float32),
                silhouettes=silhouettes, silhouette_frame_index=np.arange(frames, dtype=np.int32)))
    update_index(root, [write_shard(root, "part-0000", records)])
    if official is not None:
        (root / "partition.json").write_text(official)
    return root


def tiny_config(run, dataset, *extra):
    from ragar_data.training.config import load_config

    return load_config("smoke", [f"train.output_dir={run}", f"data.dataset={dataset}", "model.channels=[4,8,8,16]",
                                 "text.dim=16", "data.frames=4", "train.batch_size=2", "data.row_cache=false",
                                 "train.classification_iterations=2", "train.checkpoint_every=1", *extra])


def test_resume_with_another_config_is_refused_naming_the_keys(tmp_path):
    from ragar_data.training.stages import train_classification

    torch.set_num_threads(1)
    dataset, run = tiny_dataset(tmp_path / "data"), tmp_path / "run"
    first = train_classification(tiny_config(run, dataset), progress=False)
    last = run / "classification" / "last.pt"
    before = last.read_bytes()
    with pytest.raises(RagarDataError) as error:
        train_classification(tiny_config(run, dataset, "optim.lr=0.5", "model.parts=2",
                                         "train.classification_iterations=4"), progress=False)
    message = str(error.value)
    assert "optim.lr: 0.001 -> 0.5" in message and "model.parts: 4 -> 2" in message and "--restart" in message
    assert "train.classification_iterations: 2 -> 4" in message and "align_iterations" not in message
    assert last.read_bytes() == before  # refused before anything was written
    # settings that do not change what is computed may change on resume
    again = train_classification(tiny_config(run, dataset, "train.log_every=7", "train.align_iterations=99",
                                             "data.num_workers=0", "train.device=cpu"), progress=False)
    assert again.losses == {}  # already at its last iteration: nothing retrained
    # --restart starts over with the new config
    restarted = train_classification(tiny_config(run, dataset, "optim.lr=0.5"), resume=False, progress=False)
    assert sorted(restarted.losses) == [1, 2] and restarted.losses[1] == pytest.approx(first.losses[1])


def test_training_never_writes_into_the_dataset(tmp_path):
    from ragar_data.split import load_partition
    from ragar_data.training.stages import train_classification

    torch.set_num_threads(1)
    official = json.dumps({"TRAIN_SET": ["001", "002", "003"], "TEST_SET": ["004", "005", "006"]})
    dataset = tiny_dataset(tmp_path / "data", official)
    before = {p.name: p.read_bytes() for p in dataset.rglob("*") if p.is_file()}
    run = tmp_path / "run"
    train_classification(tiny_config(run, dataset, "data.split=seeded"), progress=False)
    assert {p.name: p.read_bytes() for p in dataset.rglob("*") if p.is_file()} == before  # official kept
    recorded = load_partition(run / "partition.json")
    assert recorded.protocol == "file" and len(recorded.train) + len(recorded.test) == 6
    # without any partition file in the dataset, the seeded split is still resolved in memory only
    bare = tiny_dataset(tmp_path / "bare")
    before = sorted(p.name for p in bare.iterdir())
    train_classification(tiny_config(tmp_path / "run2", bare), progress=False)
    assert sorted(p.name for p in bare.iterdir()) == before
    assert (tmp_path / "run2" / "partition.json").is_file()
    # a resumed run on another partition (same config) is refused
    run3 = tmp_path / "run3"
    train_classification(tiny_config(run3, dataset), progress=False)
    assert load_partition(run3 / "partition.json").train == ("001", "002", "003")
    (dataset / "partition.json").write_text(official.replace('"003"', '"x"').replace('"004"', '"003"'))
    with pytest.raises(RagarDataError, match="run3/partition.json: this run was trained on another partition"):
        train_classification(tiny_config(run3, dataset), progress=False)


def test_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    from ragar_data.training.build import CHECKPOINT_FORMAT, model_from_checkpoint, read_checkpoint
    from ragar_data.training.stages import train_classification

    torch.set_num_threads(1)
    dataset, run = tiny_dataset(tmp_path / "data"), tmp_path / "run"
    result = train_classification(tiny_config(run, dataset), progress=False)
    state = read_checkpoint(result.checkpoint)
    state["config"]["model"]["channels"] = [4, 8, 8, 32]  # the weights no longer fit the config's model
    assert state["format"] == CHECKPOINT_FORMAT
    forged = tmp_path / "forged.pt"
    torch.save(state, forged)
    with pytest.raises(RagarDataError, match="do not fit this model's architecture.*shapes differ"):
        model_from_checkpoint(forged)
    runner = CliRunner()
    for arguments in (["evaluate", str(forged), "--dataset", str(dataset)],
                      ["predict", str(forged), str(dataset), "--out", str(tmp_path / "p.parquet")]):
        outcome = runner.invoke(cli, arguments)
        assert outcome.exit_code == 1 and "do not fit this model's architecture" in outcome.output, outcome.output
        assert not isinstance(outcome.exception, Exception) or isinstance(outcome.exception, SystemExit)
    # the fusion stage started from an align checkpoint of another architecture
    from ragar_data.training.build import build_clipgar
    from ragar_data.training.stages import load_weights

    torch.save(dict(state, stage="align", kind="clipgar"), tmp_path / "align.pt")
    with pytest.raises(RagarDataError, match="do not fit"):
        load_weights(build_clipgar(tiny_config(run, dataset), SCHEMA), tmp_path / "align.pt", SCHEMA)


def test_restart_flag_on_the_cli(tmp_path):
    dataset, run = tiny_dataset(tmp_path / "data"), tmp_path / "run"
    common = ["train", "classification", "--config", "smoke", "--dataset", str(dataset), "--out", str(run),
              "--set", "model.channels=[4,8,8,16]", "--set", "text.dim=16", "--set", "data.frames=4",
              "--set", "train.batch_size=2", "--set", "train.classification_iterations=1",
              "--set", "data.row_cache=false"]
    runner = CliRunner()
    assert runner.invoke(cli, common).exit_code == 0
    changed = runner.invoke(cli, [*common, "--set", "optim.lr=0.01"])
    assert changed.exit_code == 1 and "optim.lr: 0.001 -> 0.01" in changed.output
    assert runner.invoke(cli, [*common, "--set", "optim.lr=0.01", "--restart"]).exit_code == 0


def test_fusion_does_not_resume_over_a_retrained_align_stage(tmp_path):
    from ragar_data.training.stages import train_clipgar

    torch.set_num_threads(1)
    dataset, run = tiny_dataset(tmp_path / "data"), tmp_path / "run"
    settings = ["train.align_iterations=2", "train.fusion_iterations=2"]
    train_clipgar(tiny_config(run, dataset, *settings), progress=False)
    assert "align/final.pt sha256" in torch.load(run / "fusion" / "last.pt", weights_only=True)["origin"]
    train_clipgar(tiny_config(run, dataset, *settings), ("align",), resume=False, progress=False)
    (run / "align" / "final.pt").write_bytes((run / "align" / "final.pt").read_bytes() + b"\0")  # other bytes
    with pytest.raises(RagarDataError, match="the stage started from align/final.pt sha256"):
        train_clipgar(tiny_config(run, dataset, *settings), ("fusion",), progress=False)
