"""Identity recognition (Table 7): protocol determinism, OpenGait's metrics and losses, the P x K sampler."""
import hashlib
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from ragar_data.errors import InputError
from ragar_data.recognition import retrieval
from ragar_data.recognition.losses import part_cross_entropy, triplet_loss
from ragar_data.recognition.protocol import (canonical_json, default_train_count, draw_protocol, read_protocol,
                                             write_protocol)
from ragar_data.recognition.sampler import TripletBatches


def _real_keys(subjects=12, views=(0, 72, 144), conditions=("nm-01", "bg-01", "cl-01")):
    return [f"{s:03d}-c0-{c}-{v:03d}" for s in range(1, subjects + 1) for c in conditions for v in views]


# ------------------------------------------------------------------------------------------ protocol

# sha256 of the canonical protocol of _real_keys() with seed 7: numpy's PCG64 stream and our sorting are the same on
# every platform, so this digest must not change between machines (a change means the draw changed)
PINNED_DIGEST = "4480a34b726186b1fd0a7019d7290b05d8a760357a25f2d12264d20175f60552"


def test_the_same_seed_gives_a_byte_identical_protocol_file(tmp_path):
    first = write_protocol(draw_protocol(_real_keys(), seed=7), tmp_path / "a.json")
    shuffled = list(reversed(_real_keys()))
    second = write_protocol(draw_protocol(shuffled, seed=7), tmp_path / "b.json")
    assert first.read_bytes() == second.read_bytes()
    assert draw_protocol(_real_keys(), seed=8) != draw_protocol(_real_keys(), seed=7)


def test_the_protocol_file_is_identical_in_another_process_with_another_hash_seed(tmp_path):
    script = ("import sys, json; from ragar_data.recognition.protocol import canonical_json, draw_protocol; "
              f"keys = json.loads({json.dumps(json.dumps(_real_keys()))}); "
              "sys.stdout.write(canonical_json(draw_protocol(keys, seed=7)))")
    outputs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                              env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout for seed in ("1", "2")}
    assert outputs == {canonical_json(draw_protocol(_real_keys(), seed=7))}
    digest = hashlib.sha256(outputs.pop().encode()).hexdigest()
    assert digest == PINNED_DIGEST


def test_protocol_has_seven_real_sequences_per_subject_one_gallery_and_scaled_training_count(tmp_path):
    keys = _real_keys(subjects=12)
    keys.remove("001-c0-nm-01-000")
    keys.remove("001-c0-bg-01-000")
    keys.remove("001-c0-cl-01-000")  # subject 001 keeps 6 sequences: excluded
    protocol = draw_protocol(keys, seed=3)
    assert protocol.excluded == {"001": 6}
    assert len(protocol.train_subjects) == default_train_count(11) == 2
    assert set(protocol.train_subjects).isdisjoint(protocol.test_subjects)
    assert len(protocol.train_subjects) + len(protocol.test_subjects) == 11
    for subject, drawn in protocol.sequences.items():
        assert len(drawn) == len(set(drawn)) == 7
        assert all(k.startswith(f"{subject}-c0-") for k in drawn)
    assert len(protocol.gallery_keys()) == len(protocol.test_subjects)
    assert len(protocol.probe_keys()) == 6 * len(protocol.test_subjects)
    path = write_protocol(protocol, tmp_path / "p.json")
    assert read_protocol(path) == protocol
    document = json.loads(path.read_text())
    assert document["train_rule"].startswith("scaled") and document["seed"] == 3


def test_default_training_count_follows_the_paper():
    assert default_train_count(533) == 100 and default_train_count(1000) == 100
    assert default_train_count(96) == 18  # round(96 x 100 / 533)
    assert default_train_count(4) == 2
    with pytest.raises(InputError, match="at least 4 subjects"):
        default_train_count(3)


def test_simulated_sequences_and_bad_files_are_refused(tmp_path):
    with pytest.raises(InputError, match="combination 0"):
        draw_protocol(["001-c1-nm-01-000"])
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(InputError, match="bad.json"):
        read_protocol(bad)


# ------------------------------------------------------------------------------------------ metrics


def test_part_distance_is_the_mean_of_per_part_euclidean_distances():
    probe = np.zeros((1, 2, 2), np.float32)
    gallery = np.array([[[3.0, 0.0], [4.0, 1.0]]], np.float32)  # part 0 at distance 5, part 1 at distance 1
    assert retrieval.part_distance(probe, gallery).shape == (1, 1)
    assert retrieval.part_distance(probe, gallery)[0, 0] == pytest.approx(3.0)


def test_rank1_and_map_on_a_known_ranking():
    # probe A: nearest is A (rank 1); probe B: nearest C, then B (AP 1/2); probe C: its match is third (AP 1/3)
    distances = np.array([[0.1, 0.5, 0.9], [0.4, 0.3, 0.1], [0.1, 0.2, 0.3]])
    scores = retrieval.rank1_and_map(distances, ["A", "B", "C"], ["A", "B", "C"])
    assert scores["Rank-1"] == pytest.approx(100 / 3)
    assert scores["mAP"] == pytest.approx(100 * (1 + 1 / 2 + 1 / 3) / 3)


def test_map_with_two_gallery_matches_averages_precision_at_each_match():
    distances = np.array([[0.1, 0.2, 0.3]])  # order: A, B, A -> precisions 1 and 2/3 at the matches
    scores = retrieval.rank1_and_map(distances, ["A"], ["A", "B", "A"])
    assert scores["mAP"] == pytest.approx(100 * (1 + 2 / 3) / 2) and scores["Rank-1"] == 100


def test_attributes_join_every_part_along_channels_and_can_fix_a_wrong_match():
    gallery = np.array([[[0.0]], [[1.0]]], np.float32)  # (2, 1, 1)
    probe = np.array([[[0.9]]], np.float32)  # nearer the second subject's feature
    one_hot_gallery = np.array([[1, 0], [0, 1]], np.float32)
    one_hot_probe = np.array([[1, 0]], np.float32)  # but annotated like the first
    assert retrieval.rank1_and_map(retrieval.part_distance(probe, gallery), ["a"], ["a", "b"])["Rank-1"] == 0
    joined_probe = retrieval.with_attributes(probe, one_hot_probe, 1.0)
    joined_gallery = retrieval.with_attributes(gallery, one_hot_gallery, 1.0)
    assert joined_gallery.shape == (2, 3, 1)
    assert retrieval.rank1_and_map(retrieval.part_distance(joined_probe, joined_gallery), ["a"], ["a", "b"])[
        "Rank-1"] == 100
    features = np.ones((4, 9, 3), np.float32)  # every part has norm 3
    assert retrieval.attribute_scale(features, one_hot_norm=np.sqrt(15)) == pytest.approx(3 / np.sqrt(15))


def test_breakdown_splits_probes_by_covariate():
    distances = np.array([[0.1, 0.9], [0.9, 0.1], [0.1, 0.9]])
    out = retrieval.breakdown(distances, ["a", "b", "b"], ["a", "b"], {"condition": ["nm", "nm", "cl"]})
    assert out["condition=nm"]["Rank-1"] == 100 and out["condition=cl"]["Rank-1"] == 0


# ------------------------------------------------------------------------------------------ losses and sampler


def test_triplet_loss_is_zero_when_identities_are_apart_by_more_than_the_margin():
    labels = torch.tensor([0, 0, 1, 1])
    apart = torch.tensor([[0.0], [0.0], [5.0], [5.0]])[:, :, None]  # (4, 1, 1)
    assert float(triplet_loss(apart, labels)) == 0.0
    mixed = torch.tensor([[0.0], [1.0], [0.5], [5.0]])[:, :, None]
    # per hand: active hinges (anchor, pos, neg): all d_ap - d_an + 0.2 > 0 averaged
    loss = float(triplet_loss(mixed, labels))
    d = torch.cdist(mixed[:, :, 0], mixed[:, :, 0])
    hinges = [float(d[a, p] - d[a, n] + 0.2) for a in range(4) for p in range(4) for n in range(4)
              if labels[a] == labels[p] and labels[a] != labels[n]]
    active = [h for h in hinges if h > 0]
    assert loss == pytest.approx(sum(active) / len(active), rel=1e-5)


def test_part_cross_entropy_averages_parts():
    logits = torch.zeros(2, 3, 4)
    assert float(part_cross_entropy(logits, torch.tensor([0, 2]))) == pytest.approx(np.log(3))


def test_sampler_gives_p_identities_times_k_and_is_deterministic_per_batch():
    labels = [0] * 5 + [1] * 2 + [2] * 6
    sampler = TripletBatches(labels, identities=2, per_identity=4, batches=5, seed=1)
    batches = list(sampler)
    assert len(batches) == 5
    for batch in batches:
        groups = [batch[i:i + 4] for i in (0, 4)]
        owners = [{labels[i] for i in group} for group in groups]
        assert all(len(o) == 1 for o in owners) and owners[0] != owners[1]
    resumed = TripletBatches(labels, identities=2, per_identity=4, batches=5, seed=1, start_batch=3)
    assert list(resumed) == batches[3:]
    with pytest.raises(InputError, match="P = 4"):
        TripletBatches(labels, identities=4, per_identity=2, batches=1)
