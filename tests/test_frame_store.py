"""FrameFile (a long clip's per-frame arrays in a temporary file) reads back what numpy would, and the subject's
bit-packed crops give back the masks they were made from."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ragar_data.pipelines.frame_store import FrameFile
from ragar_data.subject_masks import PackedCrops, SubjectMasks


def filled(array: np.ndarray, folder, packed=False) -> FrameFile:
    frames = FrameFile(array.shape[1:], array.dtype, folder=folder, packed=packed)
    for frame in array:
        frames.append(frame)
    return frames


def test_indexing_reads_what_numpy_gives(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (23, 9, 14, 3), dtype=np.uint8)
    frames = filled(images, tmp_path)
    assert frames.shape == images.shape and len(frames) == 23 and frames.size == images.size
    for key in (5, -1, np.int64(7), slice(None), slice(3, 20, 4), [4, 0, 4], np.array([22, 1]),
                (2, slice(1, 5), slice(3, 9)), (slice(0, 6), slice(None), slice(None, None, 2)), (3, 4, 5)):
        np.testing.assert_array_equal(frames[key], images[key])
    np.testing.assert_array_equal(np.concatenate(list(frames.chunks(5))), images)
    with pytest.raises(IndexError, match="frame 23 out of range"):
        frames[23]
    with pytest.raises(TypeError, match="index frames by"):
        frames[..., 0]
    with pytest.raises(ValueError, match="expected"):
        frames[0] = images[0, :4]


def test_packed_masks_written_from_threads_read_back(tmp_path):
    masks = np.random.default_rng(1).random((40, 27, 35)) > 0.6  # 945 pixels: not a whole number of bytes
    reference = filled(np.zeros((40, 2), np.uint8), tmp_path)
    stored = FrameFile.like(reference, masks.shape[1:], bool, packed=True)
    assert isinstance(FrameFile.like(np.zeros((3, 2)), (4,), bool), np.ndarray)  # short clips stay in memory
    assert not stored[39].any()  # unwritten frames read as zeros

    def write(position):
        stored[position] = masks[position]

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(write, range(40)))
    assert stored[3].dtype == bool
    np.testing.assert_array_equal(stored[:], masks)
    assert list(tmp_path.iterdir()) == []  # the files have no name: nothing is left after a kill


def test_packed_crops_give_back_the_masks_and_the_same_file_format():
    rng = np.random.default_rng(2)
    crops = [rng.random((h, w)) > 0.5 for h, w in ((30, 11), (0, 0), (7, 3), (1, 1))]
    origins = np.asarray([[5, 2, 16, 32], [0, 0, 0, 0], [40, 1, 43, 8], [9, 9, 10, 10]], np.int32)
    masks = SubjectMasks(origins, crops, (64, 48))
    assert isinstance(masks.crops, PackedCrops) and len(masks) == 4 and masks.crops.shape(0) == (30, 11)
    assert all(np.array_equal(a, b) for a, b in zip(masks.crops, crops))
    np.testing.assert_array_equal(masks.areas(), [c.sum() for c in crops])
    # the --keep-masks file: the crops' bits one after the other, as before packing in memory
    import io

    with np.load(io.BytesIO(masks.to_bytes())) as npz:
        np.testing.assert_array_equal(npz["bits"], np.packbits(np.concatenate([c.ravel() for c in crops])))
        np.testing.assert_array_equal(npz["sizes"], [c.shape for c in crops])
    again = SubjectMasks.from_bytes(masks.to_bytes())
    assert all(np.array_equal(again.full(i), masks.full(i)) for i in range(4))
