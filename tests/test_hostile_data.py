"""Hostile and careless inputs: pickles and checkpoints that would run code, damaged pickles, edited dataset
indexes, export folders holding other files. Each case asserts the outcome users see: a clear error (exit code
1 through the CLI, no traceback), nothing run, nothing deleted that ragar-data did not write."""
from __future__ import annotations

import io
import json
import os
import pickle
import pickletools
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from ragar_data.cli.main import cli
from ragar_data.errors import RagarDataError, ShardError
from ragar_data.export_tree import MANIFEST_NAME
from ragar_data.identity import SequenceKey
from ragar_data.opengait import TreeLayoutError, export_opengait, import_opengait, read_pickle
from ragar_data.pose_export import export_pose
from ragar_data.safe_load import UnsafePickleError, load_torch_checkpoint
from ragar_data.shards import ShardDataset, make_record, update_index, write_shard

KEY = SequenceKey("001", 0, "nm-01", 0)


class SystemCall:
    """Unpickling this runs a shell command (the classic `__reduce__` payload)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class StealthyArray:
    """Unpickling this writes a file and returns a valid silhouette array: the import would look fine."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        code = f"open({str(self.marker)!r}, 'w').close() or __import__('numpy').zeros((3, 64, 64), 'uint8')"
        return eval, (code,)


def run_cli(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    # a clean failure is click's SystemExit; anything else escaped as a traceback
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def tree_with_pickle(root, data: bytes):
    """An OpenGait tree holding one sequence pickle with bytes `data`."""
    path = root / KEY.subject / KEY.type_name / KEY.view_name / f"{KEY.view_name}.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    return path


def numpy1_pickle(array: np.ndarray, protocol: int) -> bytes:
    """`array` pickled as numpy 1.x writes it: module names `numpy.core.*` instead of numpy 2's `numpy._core.*`."""
    data = pickle.dumps(array, protocol=protocol)
    if protocol >= 4:  # SHORT_BINUNICODE carries its length; re-frame afterwards
        data = data.replace(b"\x8c\x16numpy._core.multiarray", b"\x8c\x15numpy.core.multiarray")
        data = data.replace(b"\x8c\x13numpy._core.numeric", b"\x8c\x12numpy.core.numeric")
    else:
        data = data.replace(b"numpy._core.", b"numpy.core.")
    data = pickletools.optimize(data)
    assert b"numpy.core." in data and b"numpy._core" not in data
    return data


def tiny_dataset(folder, subjects=("001",), views=(0, 36), with_pose=True, seed=0, shard="part-0"):
    rng = np.random.default_rng(seed)
    records = []
    for subject in subjects:
        for view in views:
            frames = (rng.integers(0, 2, (4, 64, 64)) * 255).astype(np.uint8)
            keypoints = rng.uniform(0, 100, (4, 17, 3)).astype(np.float32) if with_pose else None
            records.append(make_record(
                SequenceKey(subject, 0, "nm-01", view), image_width=160, image_height=120,
                labels=np.zeros(15, np.int8), frame_index=np.arange(4, dtype=np.int32),
                boxes=np.zeros((4, 4), np.float32), silhouettes=frames,
                silhouette_frame_index=np.arange(4, dtype=np.int32), keypoints_2d=keypoints,
                keypoints_2d_model="test" if with_pose else None))
    update_index(folder, [write_shard(folder, shard, records)])
    return records


# ------------------------------------------------------------------------------------------------ pickles
@pytest.mark.parametrize("payload", [SystemCall, StealthyArray])
def test_import_refuses_a_pickle_that_runs_code(tmp_path, payload):
    marker = tmp_path / "marker"
    path = tree_with_pickle(tmp_path / "tree", pickle.dumps(payload(marker)))
    result = run_cli("import", "opengait", tmp_path / "tree", tmp_path / "data")
    assert result.exit_code == 1
    assert str(path) in result.output and "refused global" in result.output
    assert ("system" in result.output) if payload is SystemCall else ("builtins.eval" in result.output)
    assert not marker.exists() and not (tmp_path / "data").exists()
    pickle.loads(path.read_bytes())  # the payload is live: plain pickle runs it
    assert marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("numpy_major", [1, 2])
def test_real_numpy_pickles_load(tmp_path, protocol, numpy_major):
    silhouettes = (np.random.default_rng(protocol).integers(0, 2, (5, 64, 64)) * 255).astype(np.uint8)
    data = pickle.dumps(silhouettes, protocol=protocol) if numpy_major == 2 else numpy1_pickle(silhouettes, protocol)
    tree_with_pickle(tmp_path / "tree", data)
    summary = import_opengait(tmp_path / "tree", tmp_path / "data", progress=False)
    assert summary.sequences == 1
    record = ShardDataset(tmp_path / "data").read_record(str(KEY))
    np.testing.assert_array_equal(record["silhouettes"], silhouettes)


def test_numpy_scalars_containers_and_fortran_arrays_load(tmp_path):
    value = {"poses": [np.asfortranarray(np.ones((3, 2), np.float32))], "score": np.float64(0.5), "n": (1, "a")}
    for protocol in (2, 5):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        loaded = read_pickle(path)
        np.testing.assert_array_equal(loaded["poses"][0], value["poses"][0])
        assert loaded["score"] == 0.5 and type(loaded["score"]) is np.float64 and loaded["n"] == (1, "a")


@pytest.mark.parametrize("name, data, message", [
    ("object array", pickle.dumps(np.array([1, "a"], dtype=object)), "object dtype"),
    ("matrix subclass", pickle.dumps(np.eye(2).view(np.matrix)), "numpy.matrix"),
    ("other codec", b"\x80\x02c_codecs\nencode\nX\x03\x00\x00\x00abcX\x06\x00\x00\x00base64\x86R.", "base64"),
    ("a class instance", pickle.dumps(SequenceKey("001", 0, "nm-01", 0)), "ragar_data.identity"),
])
def test_other_pickle_content_is_refused(tmp_path, name, data, message):
    path = tmp_path / "x.pkl"
    path.write_bytes(data)
    with pytest.raises(UnsafePickleError, match=message) as error:
        read_pickle(path)
    assert str(path) in str(error.value)


def test_damaged_and_wrong_pickles_give_clear_errors(tmp_path):
    good = pickle.dumps(np.zeros((3, 64, 64), np.uint8), protocol=4)
    cases = {"truncated": (good[: len(good) // 2], "cannot unpickle"),
             "not a pickle": (b"\x89PNG\r\n\x1a\n", "cannot unpickle"),
             "a number": (pickle.dumps(3.5), "expected a numpy array, found float"),
             "float silhouettes": (pickle.dumps(np.zeros((3, 64, 64))), "expected silhouettes uint8"),
             "2-D array": (pickle.dumps(np.zeros((64, 64), np.uint8)), "expected silhouettes uint8"),
             "empty sequence": (pickle.dumps(np.zeros((0, 64, 64), np.uint8)), "T > 0")}
    for name, (data, message) in cases.items():
        root = tmp_path / name.replace(" ", "-")
        path = tree_with_pickle(root / "tree", data)
        result = run_cli("import", "opengait", root / "tree", root / "data")
        assert result.exit_code == 1 and message in result.output and str(path) in result.output, name
        assert not (root / "data").exists(), name
    with pytest.raises(TreeLayoutError, match="expected pose"):
        import_opengait(tree_with_pickle(tmp_path / "pose" / "tree", pickle.dumps(np.zeros((4, 17, 2)))).parents[3],
                        tmp_path / "pose" / "data", modality="pose", progress=False)


# ------------------------------------------------------------------------------------------------ checkpoints
def _write_models_dir(root, name, filename, payload):
    path = root / name / filename
    path.parent.mkdir(parents=True)
    torch.save(payload, path)
    return path


@pytest.mark.parametrize("name, filename, key", [("motionbert-ft-h36m", "best_epoch.bin", "model_pos"),
                                                 ("vitpose-b-upstream", "vitpose-b.pth", "state_dict")])
def test_models_check_refuses_a_checkpoint_that_runs_code(tmp_path, name, filename, key):
    marker = tmp_path / "marker"
    path = _write_models_dir(tmp_path / "models", name, filename,
                             {key: {"w": torch.zeros(2)}, "min_loss": SystemCall(marker)})
    result = run_cli("models", "check", name, "--models-dir", tmp_path / "models")
    assert result.exit_code == 1 and "error" in result.output and "UnsafePickleError" in result.output
    assert str(path) in result.output and "system" in result.output
    assert not marker.exists()


def test_yolo_refuses_a_pt_that_runs_code(tmp_path, monkeypatch):
    from ragar_data.pipelines.backends.random_models import write_random_models

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics"))
    official = write_random_models(tmp_path / "models", names=["yolo11n"])["yolo11n"]
    assert run_cli("models", "check", "yolo11n", "--models-dir", tmp_path / "models").exit_code == 0
    marker = tmp_path / "marker"
    checkpoint = torch.load(official, weights_only=False)  # the test's own file
    checkpoint["train_args"] = SystemCall(marker)
    torch.save(checkpoint, _write_models_dir(tmp_path / "crafted", "yolo11n", "yolo11n.pt", {}))
    result = run_cli("models", "check", "yolo11n", "--models-dir", tmp_path / "crafted")
    assert result.exit_code == 1 and "UnsafePickleError" in result.output
    assert not marker.exists()


def test_lifter_refuses_a_crafted_checkpoint(tmp_path):
    from ragar_data.pipelines.backends.motionbert import MotionBertLifter

    marker = tmp_path / "marker"
    path = tmp_path / "best_epoch.bin"
    torch.save({"model_pos": {}, "epoch": StealthyArray(marker)}, path)
    with pytest.raises(UnsafePickleError, match="refused global eval"):
        MotionBertLifter(models_dir=tmp_path, weights=path)
    assert not marker.exists()


def _rename_numpy_core(path):
    with zipfile.ZipFile(path) as source:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as target:
            for info in source.infolist():
                data = source.read(info.filename)
                target.writestr(info.filename, data.replace(b"numpy._core.", b"numpy.core.")
                                if info.filename.endswith("data.pkl") else data)
    path.write_bytes(out.getvalue())


@pytest.mark.parametrize("numpy_major", [1, 2])
def test_checkpoints_with_numpy_scalars_load(tmp_path, numpy_major):
    path = tmp_path / "ckpt.bin"
    torch.save({"epoch": 3, "lr": 1e-4, "min_loss": np.float64(37.2), "best": np.float32(1.5),
                "step": np.int64(7), "model_pos": {"w": torch.arange(3.0)}}, path)
    if numpy_major == 1:
        _rename_numpy_core(path)
    checkpoint = load_torch_checkpoint(path)
    assert checkpoint["min_loss"] == 37.2 and type(checkpoint["min_loss"]) is np.float64
    assert checkpoint["step"] == 7 and torch.equal(checkpoint["model_pos"]["w"], torch.arange(3.0))
    with pytest.raises(UnsafePickleError, match=r"refused global numpy\.(_core|core)\.multiarray\.scalar"):
        load_torch_checkpoint(path, allow_numpy_scalars=False)


def test_training_checkpoint_with_a_payload_is_refused(tmp_path):
    from ragar_data.training.build import read_checkpoint

    marker = tmp_path / "marker"
    path = tmp_path / "last.pt"
    torch.save({"format": "x", "config": SystemCall(marker)}, path)
    with pytest.raises(RagarDataError, match=str(path)):
        read_checkpoint(path)
    assert not marker.exists()


def test_torchscript_text_weights_need_an_official_digest(tmp_path, monkeypatch):
    from ragar_data.models import text_encoders

    scripted = tmp_path / "RN50.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))

    def no_jit_load(*args, **kwargs):
        raise AssertionError("a TorchScript archive of unknown origin must not be opened")

    monkeypatch.setattr(torch.jit, "load", no_jit_load)
    with pytest.raises(text_encoders.UnsafeWeightsError, match="not one of OpenAI's"):
        text_encoders.encode_sentences_open_clip("RN50-quickgelu", scripted, ["a"])
    # the registry's pin for RN50.pt is among the accepted digests; a file with that digest passes the check
    assert "afeb0e10f9e5a86da6080e35cf09123aca3b358a0c3e3b6c78a7b63bc04b6762" in text_encoders.official_torchscript_digests()
    monkeypatch.setattr(text_encoders, "official_torchscript_digests", lambda: {text_encoders.file_sha256(scripted)})
    text_encoders.check_torchscript_trusted(scripted)


# ------------------------------------------------------------------------------------------------ readers
def _edit_index(folder, edit):
    index = json.loads((folder / "index.json").read_text())
    edit(index)
    (folder / "index.json").write_text(json.dumps(index))


def test_reordered_index_is_caught(tmp_path):
    records = tiny_dataset(tmp_path / "data")
    _edit_index(tmp_path / "data", lambda index: index["shards"][0]["keys"].reverse())
    dataset = ShardDataset(tmp_path / "data")
    with pytest.raises(ShardError, match="the index lists"):
        dataset.read_record(records[0]["key"], ["silhouettes"])
    result = run_cli("export", "opengait", tmp_path / "data", tmp_path / "tree")
    assert result.exit_code == 1 and "the index lists" in result.output


def test_read_record_checks_the_rows_key(tmp_path):
    records = tiny_dataset(tmp_path / "data")
    dataset = ShardDataset(tmp_path / "data")
    assert dataset.read_record(records[1]["key"], ["view"]) == {"view": 36}  # key read for the check, not returned
    dataset._locations[records[0]["key"]] = dataset._locations[records[1]["key"]]  # a stale location
    with pytest.raises(ShardError, match=f"holds sequence {records[1]['key']}, not {records[0]['key']}"):
        dataset.read_record(records[0]["key"])


@pytest.mark.parametrize("file", ["../x.parquet", "/tmp/x.parquet", "shards/../../x.parquet", "index.json",
                                  "shards/sub/x.parquet", "shards/x.txt"])
def test_index_entries_stay_inside_shards(tmp_path, file):
    tiny_dataset(tmp_path / "data")
    _edit_index(tmp_path / "data", lambda index: index["shards"][0].update(file=file))
    with pytest.raises(ShardError, match="may only name files inside"):
        ShardDataset(tmp_path / "data")
    result = run_cli("export", "opengait", tmp_path / "data", tmp_path / "tree")
    assert result.exit_code == 1 and "may only name files inside" in result.output
    assert not (tmp_path / "tree").exists()


def test_index_entry_through_a_symlink_out_of_shards_is_refused(tmp_path):
    tiny_dataset(tmp_path / "outside")
    tiny_dataset(tmp_path / "data", subjects=("002",))
    (tmp_path / "data" / "shards" / "link.parquet").symlink_to(tmp_path / "outside" / "shards" / "part-0.parquet")
    _edit_index(tmp_path / "data", lambda index: index["shards"][0].update(file="shards/link.parquet"))
    with pytest.raises(ShardError, match="symbolic link to .*outside"):
        ShardDataset(tmp_path / "data")
    result = run_cli("export", "opengait", tmp_path / "data", tmp_path / "tree")
    assert result.exit_code == 1 and "outside the dataset's shards/ folder" in result.output


def test_export_checks_row_counts(tmp_path):
    tiny_dataset(tmp_path / "data")

    def drop_one(index):
        index["shards"][0]["rows"] -= 1
        index["shards"][0]["keys"].pop()
        index["sequences"] -= 1

    _edit_index(tmp_path / "data", drop_one)
    result = run_cli("export", "opengait", tmp_path / "data", tmp_path / "tree")
    assert result.exit_code == 1 and "2 rows, the index says 1" in result.output
    _edit_index(tmp_path / "data", lambda index: index["shards"][0]["keys"].append("x"))
    result = run_cli("export", "pose", tmp_path / "data", tmp_path / "pose")
    assert result.exit_code == 1 and "lists 2 keys for 1 rows" in result.output


# ------------------------------------------------------------------------------------------------ export trees
def _pickles(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.pkl"))


def test_export_refuses_a_folder_it_did_not_write(tmp_path):
    tiny_dataset(tmp_path / "data")
    tree = tmp_path / "tree"
    (tree / "009" / "c0-nm-01" / "000").mkdir(parents=True)
    theirs = tree / "009" / "c0-nm-01" / "000" / "000.pkl"
    theirs.write_bytes(b"someone else's")
    result = run_cli("export", "opengait", tmp_path / "data", tree)
    assert result.exit_code == 1 and "not written by ragar-data" in result.output
    assert _pickles(tree) == ["009/c0-nm-01/000/000.pkl"] and not (tree / MANIFEST_NAME).exists()
    result = run_cli("export", "opengait", tmp_path / "data", tree, "--overwrite")
    assert result.exit_code == 0 and "1 other files in the folder were not written by this export" in result.output
    assert theirs.read_bytes() == b"someone else's" and len(_pickles(tree)) == 3


def test_export_rewrites_changed_and_removes_stale_pickles(tmp_path):
    records = tiny_dataset(tmp_path / "data", views=(0, 36, 72))
    tree = tmp_path / "tree"
    first = export_opengait(tmp_path / "data", tree, progress=False)
    assert first.written == 3
    again = export_opengait(tmp_path / "data", tree, progress=False)
    assert again.written == 0 and again.existing == 3 and not again.removed
    # the dataset changes: view 72 goes, view 36 gets other silhouettes
    changed = dict(records[1], silhouettes=np.zeros((2, 64, 64), np.uint8) + 255,
                   silhouette_frame_index=np.arange(2, dtype=np.int32))
    for name in ("silhouette_encoding", "num_silhouettes", "silhouette_height", "silhouette_width"):
        changed[name] = None
    update_index(tmp_path / "data", [write_shard(tmp_path / "data", "part-0", [records[0], changed])])
    third = export_opengait(tmp_path / "data", tree, progress=False)
    assert third.written == 1 and third.existing == 1 and third.removed == ["001/c0-nm-01/072/072.pkl"]
    assert _pickles(tree) == ["001/c0-nm-01/000/000.pkl", "001/c0-nm-01/036/036.pkl"]
    assert not (tree / "001" / "c0-nm-01" / "072").exists()  # its emptied folder goes too
    assert read_pickle(tree / "001/c0-nm-01/036/036.pkl").shape == (2, 64, 64)


def test_export_of_another_dataset_into_the_same_folder(tmp_path):
    tiny_dataset(tmp_path / "a", subjects=("001",))
    tiny_dataset(tmp_path / "b", subjects=("002",))
    tree = tmp_path / "tree"
    export_opengait(tmp_path / "a", tree, progress=False)
    (tree / "notes.txt").write_text("mine")
    result = run_cli("export", "opengait", tmp_path / "b", tree)
    assert result.exit_code == 1 and "holds the silhouette export of" in result.output
    assert _pickles(tree) == ["001/c0-nm-01/000/000.pkl", "001/c0-nm-01/036/036.pkl"]
    result = run_cli("export", "pose", tmp_path / "a", tree)  # another modality of the same dataset
    assert result.exit_code == 1 and "not the pose export" in result.output
    result = run_cli("export", "opengait", tmp_path / "b", tree, "--overwrite")
    assert result.exit_code == 0 and "removed 2 files" in result.output
    assert _pickles(tree) == ["002/c0-nm-01/000/000.pkl", "002/c0-nm-01/036/036.pkl"]
    assert (tree / "notes.txt").read_text() == "mine"


def test_export_never_deletes_or_silently_replaces_a_changed_file(tmp_path):
    records = tiny_dataset(tmp_path / "data")
    tree = tmp_path / "tree"
    export_opengait(tmp_path / "data", tree, progress=False)
    edited = tree / "001/c0-nm-01/036/036.pkl"
    edited.write_bytes(pickle.dumps(np.ones((1, 64, 64), np.uint8)))  # the user's own change
    result = run_cli("export", "opengait", tmp_path / "data", tree)
    assert result.exit_code == 1 and "not written by this export" in result.output and str(edited) in result.output
    # the sequence leaves the dataset: the changed file is not ours to delete
    update_index(tmp_path / "data", [write_shard(tmp_path / "data", "part-0", [records[0]])])
    summary = export_opengait(tmp_path / "data", tree, progress=False)
    assert summary.changed == ["001/c0-nm-01/036/036.pkl"] and edited.is_file()


def test_a_hostile_manifest_cannot_delete_outside_the_folder(tmp_path):
    tiny_dataset(tmp_path / "data")
    tree = tmp_path / "tree"
    export_opengait(tmp_path / "data", tree, progress=False)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    manifest = json.loads((tree / MANIFEST_NAME).read_text())
    manifest["files"]["../victim.txt"] = {"key": None, "sha256": "0" * 64}
    (tree / MANIFEST_NAME).write_text(json.dumps(manifest))
    result = run_cli("export", "opengait", tmp_path / "data", tree)
    assert result.exit_code == 1 and "is not a path inside" in result.output
    assert victim.read_text() == "keep me"


def test_interrupted_export_resumes(tmp_path, monkeypatch):
    from ragar_data import export_tree

    tiny_dataset(tmp_path / "data", views=(0, 36, 72))
    tree = tmp_path / "tree"
    calls = []
    real_write = export_tree.atomic_write_bytes

    def dies_on_the_third_pickle(path, data):
        calls.append(path)
        if len([c for c in calls if str(c).endswith(".pkl")]) == 3:
            raise KeyboardInterrupt
        real_write(path, data)

    monkeypatch.setattr(export_tree, "atomic_write_bytes", dies_on_the_third_pickle)
    with pytest.raises(KeyboardInterrupt):
        export_opengait(tmp_path / "data", tree, progress=False)
    monkeypatch.setattr(export_tree, "atomic_write_bytes", real_write)
    summary = export_opengait(tmp_path / "data", tree, progress=False)  # no --overwrite needed
    assert summary.existing == 2 and summary.written == 1 and len(_pickles(tree)) == 3


def test_export_pose_without_keypoints_fails(tmp_path):
    tiny_dataset(tmp_path / "data", with_pose=False)
    result = run_cli("export", "pose", tmp_path / "data", tmp_path / "pose")
    assert result.exit_code == 1 and "no sequence has 2D keypoints" in result.output
    assert not (tmp_path / "pose").exists()
    with pytest.raises(RagarDataError, match="no sequence has 2D keypoints"):
        export_pose(tmp_path / "data", tmp_path / "pose", progress=False)


def test_a_bad_split_file_writes_nothing(tmp_path):
    tiny_dataset(tmp_path / "data")
    (tmp_path / "split.json").write_text('{"TRAIN_SET": ["001"], "TEST_SET": ["001"]}')
    result = run_cli("export", "opengait", tmp_path / "data", tmp_path / "tree", "--split", tmp_path / "split.json")
    assert result.exit_code == 1 and str(tmp_path / "split.json") in result.output
    assert not (tmp_path / "tree").exists()
