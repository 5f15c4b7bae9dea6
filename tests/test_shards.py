"""Shard round trip, integrity errors and atomic writes."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ragar_data.errors import ShardError
from ragar_data.identity import SequenceKey
from ragar_data.shards import (
    ShardDataset, iter_records, make_record, read_index, read_table, shard_spec, update_index, write_shard,
)


def _record(rng, subject="001", view=36, frames=7, binary=True, poses=True):
    key = SequenceKey(subject, 1, "bg-02", view)
    silhouettes = (rng.random((frames - 1, 64, 64)) > 0.5).astype(np.uint8) * 255
    if not binary:
        silhouettes = rng.integers(0, 256, (frames - 1, 64, 64), dtype=np.uint8)
    return make_record(
        key, camera="cam3", illumination=0.61, source=str(key.raw_video_relpath()), image_width=1920,
        image_height=1080, fps=30.0, labels=rng.integers(-1, 2, 15).astype(np.int8),
        frame_index=np.arange(frames, dtype=np.int32) + 5, boxes=rng.random((frames, 4)).astype(np.float32),
        track_id=3, silhouettes=silhouettes, silhouette_frame_index=np.arange(1, frames, dtype=np.int32) + 5,
        keypoints_2d=rng.random((frames, 17, 3)).astype(np.float32) if poses else None,
        keypoints_2d_model="rtmpose-m" if poses else None,
        keypoints_3d=rng.random((frames, 17, 3)).astype(np.float32) if poses else None,
        keypoints_3d_model="motionbert-ft-h36m" if poses else None,
        quality_ok=False, quality_reasons=["too few frames", "truncated"], pipeline_hash="abc",
    )


def _assert_records_equal(expected, actual):
    for name in shard_spec().names:
        if name == "silhouettes" or isinstance(expected[name], np.ndarray):
            continue
        if expected[name] is None and name.startswith(("num_", "silhouette_")):  # derived by the writer
            continue
        assert actual[name] == expected[name] or (
            isinstance(expected[name], float) and np.isclose(actual[name], expected[name])
        ), name
    for name in ("labels", "frame_index", "boxes", "silhouette_frame_index", "keypoints_2d", "keypoints_3d"):
        if expected[name] is None:
            assert actual[name] is None
        else:
            np.testing.assert_array_equal(actual[name], expected[name])
            assert actual[name].dtype == np.asarray(expected[name]).dtype


@pytest.fixture
def dataset(tmp_path):
    rng = np.random.default_rng(0)
    records = [_record(rng, view=v, binary=v != 72, poses=v != 108) for v in (0, 36, 72, 108)]
    info = write_shard(tmp_path, "part-0000", records)
    update_index(tmp_path, [info])
    return tmp_path, records


def test_round_trip_is_exact_for_every_column(dataset):
    root, records = dataset
    read_back = list(iter_records(root / "shards/part-0000.parquet"))
    assert len(read_back) == len(records)
    for expected, actual in zip(records, read_back):
        _assert_records_equal(expected, actual)
        np.testing.assert_array_equal(actual["silhouettes"], expected["silhouettes"])
        assert (actual["num_frames"], actual["num_silhouettes"]) == (7, 6)
    assert read_back[0]["silhouette_encoding"] == "packbits"
    assert read_back[2]["silhouette_encoding"] == "uint8"


def test_random_access_by_key_reads_one_record(dataset):
    root, records = dataset
    data = ShardDataset(root)
    assert len(data) == 4 and data.keys() == sorted(r["key"] for r in records)
    record = data.read_record(records[2]["key"])
    np.testing.assert_array_equal(record["silhouettes"], records[2]["silhouettes"])
    assert data.read_record(records[3]["key"], columns=["key", "labels"])["labels"].tolist() == \
        records[3]["labels"].tolist()
    with pytest.raises(KeyError, match="not in the dataset"):
        data.read_record("999-c0-nm-01-000")


def test_plain_pyarrow_pandas_and_duckdb_read_a_shard(dataset):
    root, records = dataset
    path = root / "shards/part-0000.parquet"
    table = pq.read_table(path)
    assert table.num_rows == 4
    frame = table.to_pandas()
    assert list(frame["view"]) == [0, 36, 72, 108]
    duckdb = pytest.importorskip("duckdb")
    count, frames = duckdb.sql(f"select count(*), sum(num_frames) from '{path}' where condition = 'bg-02'").fetchall()[0]
    assert (count, frames) == (4, 28)


def test_truncated_shard_names_the_file(dataset):
    root, _ = dataset
    path = root / "shards/part-0000.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ShardError, match="part-0000.parquet"):
        read_table(path)
    with pytest.raises(ShardError, match="part-0000.parquet.*sha256"):
        ShardDataset(root).read_record(read_index(root)["shards"][0]["keys"][0])


def test_flipped_byte_is_detected_by_index_digest_and_page_checksums(dataset):
    root, _ = dataset
    path = root / "shards/part-0000.parquet"
    original = path.read_bytes()
    chunk = pq.ParquetFile(path).metadata.row_group(0).column(shard_spec().names.index("silhouettes"))
    step = max(1, chunk.total_compressed_size // 12)
    for offset in range(chunk.data_page_offset, chunk.data_page_offset + chunk.total_compressed_size, step):
        data = bytearray(original)
        data[offset] ^= 0xFF
        path.write_bytes(bytes(data))
        with pytest.raises(ShardError, match="part-0000.parquet"):
            ShardDataset(root).read_record(read_index(root)["shards"][0]["keys"][0])
        with pytest.raises(ShardError, match="part-0000.parquet"):  # without the index: Parquet page checksums
            list(iter_records(path))


def test_schema_mismatch_names_the_file(tmp_path):
    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"key": ["a"]}), path)
    with pytest.raises(ShardError, match="other.parquet.*not a ragar-data shard"):
        read_table(path)
    wrong = shard_spec().arrow_schema().remove(1)  # drop 'subject'
    pq.write_table(wrong.empty_table(), path)
    with pytest.raises(ShardError, match="other.parquet.*subject"):
        read_table(path)
    newer = shard_spec().arrow_schema().with_metadata({b"ragar_data.shard_schema_version": b"99"})
    pq.write_table(newer.empty_table(), path)
    with pytest.raises(ShardError, match="other.parquet.*version 99"):
        read_table(path)


def test_bad_record_is_refused_with_its_key(tmp_path):
    record = _record(np.random.default_rng(1))
    record["boxes"] = np.zeros((3, 4), np.float32)  # 7 frames expected
    with pytest.raises(ShardError, match="001-c1-bg-02-036.*boxes"):
        write_shard(tmp_path, "bad", [record])
    assert not list(tmp_path.rglob("*.parquet"))


def test_write_killed_midway_leaves_no_half_shard(tmp_path):
    script = textwrap.dedent(f"""
        import os, numpy as np
        import ragar_data.shards as shards
        os.replace = lambda *args: os._exit(9)  # the process dies after the bytes are written, before the rename
        from ragar_data.identity import SequenceKey
        record = shards.make_record(SequenceKey("001", 0, "nm-01", 0), image_width=8, image_height=8,
            labels=np.zeros(15, np.int8), frame_index=np.arange(3, dtype=np.int32),
            boxes=np.zeros((3, 4), np.float32), silhouettes=np.zeros((2, 64, 64), np.uint8),
            silhouette_frame_index=np.arange(2, dtype=np.int32))
        shards.write_shard({str(tmp_path)!r}, "part-0000", [record])
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == 9, result.stderr.decode()
    assert not (tmp_path / "shards/part-0000.parquet").exists()
    update_index(tmp_path)
    assert json.loads((tmp_path / "index.json").read_text())["sequences"] == 0
    assert [p.name for p in (tmp_path / "shards").iterdir() if not p.name.startswith(".")] == []


def test_update_index_adds_shards_found_on_disk(dataset):
    root, _ = dataset
    os.remove(root / "index.json")
    index = update_index(root)
    assert index["sequences"] == 4 and len(index["shards"][0]["sha256"]) == 64


def test_written_files_follow_the_umask_not_0600(dataset):
    root, _ = dataset
    assert (root / "shards/part-0000.parquet").stat().st_mode & 0o044 == 0o044
    assert (root / "index.json").stat().st_mode & 0o044 == 0o044


def test_a_null_list_row_does_not_shift_the_rows_after_it(tmp_path):
    rng = np.random.default_rng(1)
    records = [_record(rng, view=0, poses=False), _record(rng, view=36), _record(rng, view=72, poses=False),
               _record(rng, view=108)]
    info = write_shard(tmp_path, "part-0000", records)
    for expected, actual in zip(records, iter_records(tmp_path / info.file)):
        _assert_records_equal(expected, actual)  # before: a null row added one NaN item to the next row
