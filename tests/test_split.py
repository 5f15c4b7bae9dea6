"""Subject partitions: the released RA-GAR partition reproduced exactly, the seeded split, partition files."""
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ragar_data.attributes import default_schema
from ragar_data.cli.main import cli
from ragar_data.identity import SequenceKey
from ragar_data.shards import make_record, update_index, write_shard
from ragar_data.split import (RELEASED_CANONICAL_SHA256, RELEASED_FILE_SHA256, Partition, PartitionError,
                              covariate_groups, load_partition, partition_json, seeded_partition, split_dataset,
                              split_subjects, train_count_for)

SCHEMA = default_schema()
# OpenGait's released file is not committed: a copy beside the checkout (../shared/upstream), or $RAGAR_PARTITION
RELEASED = next((p for p in (Path(__file__).resolve().parents[2] / "shared" / "upstream" / "ragar.json",
                             Path(os.environ.get("RAGAR_PARTITION", "/nonexistent")),
                             Path("/work/shared/upstream/ragar.json")) if p.is_file()),
                Path("shared/upstream/ragar.json"))
needs_released = pytest.mark.skipif(not RELEASED.is_file(), reason=f"released partition {RELEASED} not present "
                                                                   f"(OpenGait datasets/RAGAR/ragar.json)")


def random_labels(num_subjects, seed=0, names=None):
    """subject -> 3 label arrays (one per combination), every class drawn uniformly."""
    rng = np.random.default_rng(seed)
    names = names or [f"{i:03d}" for i in range(1, num_subjects + 1)]
    return {s: [np.array([rng.integers(n) for n in SCHEMA.num_classes], np.int8) for _ in range(3)] for s in names}


def make_dataset(root, subject_labels, conditions=("nm-01",), views=(0,)):
    records = []
    for subject, per_combination in subject_labels.items():
        for combination, labels in enumerate(per_combination):
            for condition in conditions:
                for view in views:
                    records.append(make_record(
                        SequenceKey(subject, combination, condition, view), image_width=8, image_height=8,
                        labels=labels, frame_index=np.zeros(0, np.int32), boxes=np.zeros((0, 4), np.float32),
                        silhouette_frame_index=np.zeros(0, np.int32)))
    update_index(root, [write_shard(root, "part-000", records)])
    return root


@pytest.fixture(scope="module")
def dataset_533(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("ragar533"), random_labels(533))


@needs_released
def test_official_reproduces_the_released_partition(dataset_533, tmp_path):
    released = json.loads(RELEASED.read_text())
    out = tmp_path / "partition.json"
    partition, summary = split_dataset(dataset_533, "official", out, released_partition=RELEASED)
    assert partition.protocol == "released" and summary["released_partition"]
    assert list(partition.train) == released["TRAIN_SET"] and list(partition.test) == released["TEST_SET"]
    assert partition.canonical_sha256() == summary["canonical_sha256"] == RELEASED_CANONICAL_SHA256
    # written exactly as OpenGait ships it
    assert hashlib.sha256(out.read_bytes()).hexdigest() == RELEASED_FILE_SHA256
    assert json.loads(out.read_text()) == released
    assert summary["subjects"] == {"train": 250, "test": 283, "unassigned": 0}
    assert summary["sequences"] == {"train": 750, "test": 849, "unassigned": 0}
    assert "reproduced exactly" in partition.notes[0]
    assert (tmp_path / "split_summary.json").is_file()


@needs_released
def test_released_file_is_found_through_env_and_dataset_folder(dataset_533, tmp_path, monkeypatch):
    monkeypatch.setenv("RAGAR_PARTITION", str(RELEASED))
    assert split_dataset(dataset_533, out=tmp_path / "a.json")[0].protocol == "released"
    monkeypatch.delenv("RAGAR_PARTITION")
    dataset = make_dataset(tmp_path / "ds", random_labels(533, seed=3))
    shutil.copy(RELEASED, dataset / "ragar.json")  # a user's copy in their dataset, never in the repository
    partition, summary = split_dataset(dataset)
    assert partition.protocol == "released"
    assert hashlib.sha256((dataset / "partition.json").read_bytes()).hexdigest() == RELEASED_FILE_SHA256
    assert json.loads((dataset / "split_summary.json").read_text())["protocol"] == "released"


@needs_released
def test_released_partition_recognised_by_canonical_digest_and_tampering_refused(tmp_path):
    released = json.loads(RELEASED.read_text())
    reordered = {"TEST_SET": sorted(released["TEST_SET"]), "TRAIN_SET": sorted(released["TRAIN_SET"])[::-1]}
    (tmp_path / "reordered.json").write_text(json.dumps(reordered))
    assert load_partition(tmp_path / "reordered.json").is_released
    tampered = {"TRAIN_SET": released["TRAIN_SET"][1:], "TEST_SET": released["TEST_SET"] + released["TRAIN_SET"][:1]}
    (tmp_path / "tampered.json").write_text(json.dumps(tampered, indent=4))
    assert load_partition(tmp_path / "tampered.json").protocol == "file"
    with pytest.raises(PartitionError, match="tampered.json: not the released RA-GAR partition"):
        split_subjects(random_labels(533), "official",
                       released_partition=load_partition(tmp_path / "tampered.json"))
    dataset = make_dataset(tmp_path / "ds", random_labels(4, names=["001", "002", "003", "004"]))
    with pytest.raises(PartitionError, match="--protocol"):
        split_dataset(dataset, released_partition=tmp_path / "tampered.json")


@needs_released
def test_released_partition_over_a_partial_dataset(tmp_path):
    released = json.loads(RELEASED.read_text())
    present = released["TRAIN_SET"][:5] + released["TEST_SET"][:7]
    partition = split_subjects(random_labels(0, names=present), "official",
                               released_partition=load_partition(RELEASED))
    assert partition.protocol == "released-subset"
    assert list(partition.train) == released["TRAIN_SET"][:5] and list(partition.test) == released["TEST_SET"][:7]
    assert "521 of its 533 subjects are not in the data" in " ".join(partition.notes)
    # synthetic subjects with other ids: seeded, and it says why
    other = split_subjects(random_labels(0, names=["s1", "s2", "s3"]), "official",
                           released_partition=load_partition(RELEASED))
    assert other.protocol == "seeded" and "not those of the released partition" in other.notes[0]


def test_seeded_split_without_the_released_file(dataset_533, tmp_path, monkeypatch):
    monkeypatch.delenv("RAGAR_PARTITION", raising=False)
    first, summary = split_dataset(dataset_533, "official", tmp_path / "one.json")
    second, _ = split_dataset(dataset_533, "official", tmp_path / "two.json")
    assert first.protocol == "seeded"
    assert first.notes[0].startswith("NOT the released RA-GAR partition: seeded split (seed 0)")
    assert len(first.train) == 250 and len(first.test) == 283
    assert not set(first.train) & set(first.test)
    assert (tmp_path / "one.json").read_bytes() == (tmp_path / "two.json").read_bytes()
    assert summary["classes_missing"] == {"train": [], "test": []}
    for side in ("train", "test"):
        counts = [n for per_class in summary["class_subjects"][side].values() for n in per_class.values()]
        assert len(counts) == 45 and min(counts) > 0
    assert json.loads((tmp_path / "one.summary.json").read_text())["subjects"]["train"] == 250
    other_seed = split_subjects(random_labels(533), "seeded", seed=1)
    assert set(other_seed.train) != set(first.train) and len(other_seed.train) == 250


def test_seeded_split_balances_classes():
    labels = random_labels(533, seed=7)
    partition = seeded_partition(labels)
    train = set(partition.train)
    for label in range(45):
        holders = [s for s, arrays in labels.items() if SCHEMA.to_one_hot(np.stack(arrays))[:, label].any()]
        share = sum(s in train for s in holders) / len(holders)
        assert abs(share - 250 / 533) < 0.1, SCHEMA.label_names()[label]


def test_seeded_split_is_pinned():
    # a fixed, RNG-free label table: this partition must come out the same on every machine and numpy 2.x
    names = [f"{i:03d}" for i in range(1, 13)]
    labels = {s: [np.array([(i + j * k) % n for j, n in enumerate(SCHEMA.num_classes)], np.int8) for k in range(3)]
              for i, s in enumerate(names)}
    partition = seeded_partition(labels, seed=0)
    assert len(partition.train) == train_count_for(12) == 6
    assert partition.train == ("001", "002", "003", "004", "008", "011")
    assert len(partition.notes) == 2  # every class on both sides


def test_other_subject_counts_keep_the_proportion():
    assert train_count_for(533) == 250 and train_count_for(100) == 47 and train_count_for(2) == 1
    partition = seeded_partition(random_labels(100))
    assert (len(partition.train), len(partition.test)) == (47, 53)
    assert "not the paper's 533" in partition.notes[1] and "= 47 train" in partition.notes[1]
    with pytest.raises(PartitionError, match="at least 2"):
        train_count_for(1)


def test_a_class_of_one_subject_is_named():
    labels = {s: [np.zeros(15, np.int8)] for s in ("a", "b", "c", "d")}
    labels["c"] = [np.eye(1, 15, 0, dtype=np.int8)[0]]  # gender=female only in subject c
    notes = " ".join(seeded_partition(labels).notes)
    assert "gender=female occurs only in subject c" in notes
    assert "age=elderly occurs in no subject" in notes


def test_partition_file_round_trip_in_opengait_format(tmp_path):
    partition = Partition(("001", "003"), ("002",), "seeded", seed=0)
    path = tmp_path / "p.json"
    path.write_text(partition_json(partition))
    assert json.load(open(path)) == {"TRAIN_SET": ["001", "003"], "TEST_SET": ["002"]}
    loaded = load_partition(path)
    assert (loaded.train, loaded.test, loaded.protocol) == (("001", "003"), ("002",), "file")


@pytest.mark.parametrize("content, message", [
    ("{not json", "not a JSON partition file"),
    ('["001"]', "expected an object"),
    ('{"TRAIN_SET": ["001"]}', "missing \\['TEST_SET'\\]"),
    ('{"TRAIN_SET": ["001"], "TEST_SET": ["002"], "VAL_SET": []}', "unexpected \\['VAL_SET'\\]"),
    ('{"TRAIN_SET": [1], "TEST_SET": ["002"]}', "TRAIN_SET\\[0\\] = 1"),
    ('{"TRAIN_SET": [], "TEST_SET": ["002"]}', "TRAIN_SET must be a non-empty list"),
    ('{"TRAIN_SET": ["001", "001"], "TEST_SET": ["002"]}', "more than once: \\['001'\\]"),
    ('{"TRAIN_SET": ["001", "002"], "TEST_SET": ["002"]}', "in both TRAIN_SET and TEST_SET: \\['002'\\]"),
])
def test_malformed_partition_files(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(PartitionError, match=f"bad.json: .*{message}"):
        load_partition(path)
    with pytest.raises(PartitionError, match="missing.json"):
        load_partition(tmp_path / "missing.json")


def test_protocol_file_is_validated_against_the_dataset(tmp_path):
    dataset = make_dataset(tmp_path / "ds", random_labels(0, names=["001", "002", "003"]),
                           conditions=("nm-01", "cl-01"), views=(0, 36))
    (tmp_path / "mine.json").write_text('{"TRAIN_SET": ["001"], "TEST_SET": ["002"]}')
    partition, summary = split_dataset(dataset, tmp_path / "mine.json")
    assert partition.protocol == "file" and "1 subject(s) of the dataset are in neither set" in partition.notes[0]
    assert summary["sequences"] == {"train": 12, "test": 12, "unassigned": 12}
    (tmp_path / "unknown.json").write_text('{"TRAIN_SET": ["001", "999"], "TEST_SET": ["002"]}')
    with pytest.raises(PartitionError, match=r"unknown.json: 1 subject\(s\) of the partition are not in the "
                                             r"dataset: \['999'\]"):
        split_dataset(dataset, tmp_path / "unknown.json")


def test_cli_split(tmp_path, monkeypatch):
    monkeypatch.delenv("RAGAR_PARTITION", raising=False)
    dataset = make_dataset(tmp_path / "ds", random_labels(20, seed=2))
    result = CliRunner().invoke(cli, ["split", str(dataset), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "NOT the released RA-GAR partition: seeded split (seed 3) of 20 subjects, 9 train / 11 test" in result.output
    assert json.loads((dataset / "partition.json").read_text())["TRAIN_SET"]
    result = CliRunner().invoke(cli, ["split", str(dataset), "--released", str(tmp_path / "nope.json")])
    assert result.exit_code != 0 and "nope.json: released partition file not found" in result.output
    result = CliRunner().invoke(cli, ["split", str(dataset), "--protocol", "seeded", "--released", "x.json"])
    assert result.exit_code != 0 and "applies to protocol 'official', not 'seeded'" in result.output


def test_covariate_groups():
    groups = covariate_groups(["001-c0-nm-01-000", "001-c2-cl-02-324", SequenceKey("7", 1, "bg-01", 72)])
    assert groups["condition"].tolist() == ["nm", "cl", "bg"]
    assert groups["view"].tolist() == [0, 324, 72]
    assert groups["combination"].tolist() == ["real", "simulated", "simulated"]
