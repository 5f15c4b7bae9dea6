"""Sequence keys and the raw video layout."""
import pytest

from ragar_data.identity import CONDITIONS, VIEWS, SequenceKey, scan_raw_tree, scan_raw_videos


def test_key_string_round_trip_and_properties():
    key = SequenceKey("042", 2, "cl-02", 324)
    assert str(key) == "042-c2-cl-02-324"
    assert SequenceKey.parse(str(key)) == key
    assert key.condition_group == "cl" and not key.is_real and key.type_name == "c2-cl-02"
    assert len(VIEWS) == 10 and VIEWS[-1] == 324 and len(CONDITIONS) == 8


@pytest.mark.parametrize("bad", ["042-c3-nm-01-000", "042-c0-xx-01-000", "04-2-c0-nm-01-000", "042-c0-nm-01-36"])
def test_bad_keys_are_refused(bad):
    with pytest.raises(ValueError):
        SequenceKey.parse(bad)


def test_scan_raw_videos_reads_the_layout_and_lists_other_files(tmp_path):
    keys = [SequenceKey("001", 0, "nm-01", 0), SequenceKey("002", 1, "bg-02", 36)]
    for key in keys:
        path = tmp_path / key.raw_video_relpath()
        path.parent.mkdir(parents=True)
        path.write_bytes(b"")
    (tmp_path / "notes.mp4").write_bytes(b"")
    (tmp_path / "001" / "c0" / "nm-01" / "readme.txt").write_text("x")
    found = scan_raw_videos(tmp_path)
    assert [k for k, _ in found] == keys
    assert found[1][1] == tmp_path / "002/c1/bg-02/036.mp4"
    skipped = dict(scan_raw_tree(tmp_path).skipped)
    assert set(skipped) == {tmp_path / "notes.mp4", tmp_path / "001/c0/nm-01/readme.txt"}
    assert "a file where a <subject> folder is expected" in skipped[tmp_path / "notes.mp4"]
