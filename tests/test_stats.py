"""Dataset statistics: counts per class and covariate, the `stats` CLI and its bar chart."""
import json

import numpy as np
from click.testing import CliRunner

from ragar_data.attributes import default_schema
from ragar_data.cli.main import cli
from ragar_data.identity import SequenceKey
from ragar_data.shards import make_record, update_index, write_shard
from ragar_data.stats import dataset_stats, sequence_stats

SCHEMA = default_schema()


def test_sequence_stats_counts():
    keys = ["001-c0-nm-01-000", "001-c0-bg-01-036", "001-c1-cl-02-036", "002-c0-nm-02-000", "002-c2-nm-03-072"]
    labels = np.zeros((5, 15), np.int8)
    labels[2, 0] = 1            # one female sequence
    labels[3] = -1              # not annotated
    labels[4, 2] = 4            # height = last class
    labels[4, 3] = -1           # partly annotated
    stats = sequence_stats(keys, labels)
    assert (stats["sequences"], stats["subjects"], stats["subject_combinations"]) == (5, 2, 4)
    assert stats["classes"]["gender"] == {"male": 3, "female": 1}
    assert stats["classes"]["height"] == {"very short": 3, "short": 0, "medium": 0, "tall": 0, "very tall": 1}
    assert sum(stats["classes"]["body_mass"].values()) == 3
    assert stats["unlabelled_sequences"] == 1 and stats["partly_labelled_sequences"] == 1
    assert stats["condition_group"] == {"nm": 3, "bg": 1, "cl": 1}
    assert stats["condition"]["nm-01"] == 1 and stats["condition"]["cl-01"] == 0
    assert stats["view"][0] == 2 and stats["view"][36] == 2 and stats["view"][72] == 1 and stats["view"][324] == 0
    assert stats["combination"] == {"real": 3, "simulated": 2}
    assert stats["sequences_per_subject"] == {"min": 2, "max": 3, "mean": 2.5, "expected": 240}


def test_stats_cli_prints_tables_and_writes_png(tmp_path):
    rng = np.random.default_rng(0)
    records = [make_record(SequenceKey(f"{s:03d}", c, condition, view), image_width=8, image_height=8,
                           labels=np.array([rng.integers(n) for n in SCHEMA.num_classes], np.int8),
                           frame_index=np.zeros(0, np.int32), boxes=np.zeros((0, 4), np.float32),
                           silhouette_frame_index=np.zeros(0, np.int32))
               for s in (1, 2) for c in (0, 1) for condition in ("nm-01", "cl-01") for view in (0, 36)]
    dataset = tmp_path / "ds"
    records[0]["quality_ok"], records[0]["quality_reasons"] = False, ["too few silhouettes"]
    records[1]["frame_index"], records[1]["boxes"] = np.arange(4, dtype=np.int32), np.zeros((4, 4), np.float32)
    update_index(dataset, [write_shard(dataset, "part-000", records)])
    totals = dataset_stats(dataset)
    assert totals["sequences"] == 16
    assert totals["quality"] == {"ok": 15, "failed": 1, "reasons": {"too few silhouettes": 1}}
    assert totals["frames_per_sequence"] == {"min": 0, "max": 4, "mean": 0.25}
    png, counts = tmp_path / "classes.png", tmp_path / "stats.json"
    result = CliRunner().invoke(cli, ["stats", str(dataset), "--png", str(png), "--json", str(counts)])
    assert result.exit_code == 0, result.output
    assert "too few silhouettes: 1" in result.output
    assert "Sequences per attribute class" in result.output and "arm_swing_direction" in result.output
    assert "condition_group" in result.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
    saved = json.loads(counts.read_text())
    assert saved["combination"] == {"real": 8, "simulated": 8} and saved["view"]["36"] == 8
    result = CliRunner().invoke(cli, ["stats", str(tmp_path)])
    assert result.exit_code != 0 and "no dataset index" in result.output
