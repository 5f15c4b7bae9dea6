"""Silhouette normalisation equals OpenGait's pretreatment, checked against a per-frame reference.

`pretreat_reference` (tests/factories.py) is our own per-frame transcription of the rules of OpenGait's
`datasets/pretreatment.py` (`imgs2pickle`): threshold, row crop, cubic resize by height, x-centre by the
cumulative column sum, zero-padded window. The library version is vectorised; both must agree byte for byte.
"""
from __future__ import annotations

import warnings

import cv2
import numpy as np
import pytest

from ragar_data.silhouettes import FewFramesWarning, cut_width, cutting_columns, normalise_sequence
from factories import pretreat_reference, walker_masks


def assert_same_as_reference(masks, size=64):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewFramesWarning)
        frames, kept = normalise_sequence(masks, size=size)
    expected_frames, expected_kept = pretreat_reference(masks, size=size)
    np.testing.assert_array_equal(kept, expected_kept)
    assert frames.dtype == np.uint8 and frames.shape == (len(expected_kept), size, size)
    np.testing.assert_array_equal(frames, expected_frames)
    return frames, kept


@pytest.mark.parametrize("height,width", [(90, 160), (180, 320), (161, 91), (320, 180), (97, 333), (64, 63)])
def test_walkers_match_reference(height, width):
    rng = np.random.default_rng(height * 1000 + width)
    masks = walker_masks(24, height, width, rng)
    frames, kept = assert_same_as_reference(masks)
    assert len(kept) == 24  # every walker frame has enough pixels
    assert frames.max() == 255


@pytest.mark.parametrize("size", [64, 128])
def test_border_cases_match_reference(size):
    rng = np.random.default_rng(size)
    height, width = 120, 175
    sequences = [
        walker_masks(12, height, width, rng, x_shift=-0.47),  # leaves through the left border
        walker_masks(12, height, width, rng, x_shift=0.45),  # touches the right border
        walker_masks(12, height, width, rng, scale=1.6),  # taller than the image: touches top and bottom
        walker_masks(12, height, width, rng, scale=0.35, y_shift=-0.3),  # small, near the top
    ]
    for masks in sequences:
        assert_same_as_reference(masks, size=size)


def test_wide_and_tall_blobs():
    masks = np.zeros((4, 60, 200), np.uint8)
    masks[0, 28:33, 10:190] = 255  # very wide, 5 rows tall: resized width far beyond the window
    masks[1, :, 100:103] = 255  # thin full-height bar
    masks[2, 5:55, 0:30] = 255  # touching the left edge
    masks[3, 5:55, 170:200] = 255  # touching the right edge
    frames, kept = assert_same_as_reference(masks)
    np.testing.assert_array_equal(kept, [0, 1, 2, 3])


def test_empty_frames_and_threshold_edge():
    masks = np.zeros((8, 50, 60), np.uint8)
    masks[1, 10:50, 20] = 250  # pixel sum 40 * 250 = 10000 exactly: dropped (upstream keeps only > 10000)
    masks[2, 10:50, 20] = 250
    masks[2, 9, 20] = 1  # 10001: kept
    masks[3, 11:50, 20] = 255  # 39 white pixels = 9945: dropped
    masks[4, 10:50, 20] = 255  # 40 white pixels = 10200: kept
    masks[5] = walker_masks(1, 50, 60, np.random.default_rng(5))[0]
    masks[7] = masks[5]
    frames, kept = assert_same_as_reference(masks)
    np.testing.assert_array_equal(kept, [2, 4, 5, 7])


def test_centre_at_column_zero_is_dropped_like_upstream():
    # A 2-column image whose left column holds most of the mass: the resized image's first column
    # already exceeds half the total, so upstream's `if not x_center` drops it.
    masks = np.zeros((2, 64, 2), np.uint8)
    masks[0, :, 0] = 255
    masks[1, :, :] = 255
    frames, kept = assert_same_as_reference(masks)
    assert 0 not in kept.tolist()


def test_bool_masks_equal_uint8_masks():
    rng = np.random.default_rng(7)
    masks = walker_masks(10, 90, 160, rng)
    from_bool, kept_bool = normalise_sequence(masks > 0)
    from_uint8, kept_uint8 = normalise_sequence(masks)
    np.testing.assert_array_equal(from_bool, from_uint8)
    np.testing.assert_array_equal(kept_bool, kept_uint8)


def test_png_round_trip_matches(tmp_path):
    # Upstream reads PNG files in grayscale; our arrays must give what it gets from those files.
    rng = np.random.default_rng(11)
    masks = walker_masks(6, 120, 160, rng, x_shift=0.3)
    for frame, mask in enumerate(masks):
        cv2.imwrite(str(tmp_path / f"{frame:03d}.png"), mask)
    images = [cv2.imread(str(path), cv2.IMREAD_GRAYSCALE) for path in sorted(tmp_path.glob("*.png"))]
    expected_frames, expected_kept = pretreat_reference(images)
    frames, kept = normalise_sequence(masks)
    np.testing.assert_array_equal(frames, expected_frames)
    np.testing.assert_array_equal(kept, expected_kept)


def test_few_frames_warns_and_empty_sequence():
    masks = np.zeros((6, 40, 40), np.uint8)
    masks[2, 5:35, 10:30] = 255
    with pytest.warns(FewFramesWarning, match="001-c0-nm-01-000: only 1 of 6"):
        frames, kept = normalise_sequence(masks, name="001-c0-nm-01-000")
    assert frames.shape == (1, 64, 64) and kept.tolist() == [2]
    with pytest.warns(FewFramesWarning):
        frames, kept = normalise_sequence(np.zeros((3, 40, 40), bool))
    assert frames.shape == (0, 64, 64) and kept.shape == (0,)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="bool or uint8"):
        normalise_sequence(np.zeros((2, 10, 10), np.float32))
    with pytest.raises(ValueError, match=r"\(T, H, W\)"):
        normalise_sequence(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="even"):
        normalise_sequence(np.zeros((1, 10, 10), np.uint8), size=63)
    tall = np.zeros((1, 200, 2), np.uint8)
    tall[0, :, :] = 255  # 200 rows, 2 columns: int(64 * 2 / 200) == 0
    with pytest.raises(ValueError, match="width 0"):
        normalise_sequence(tall, name="seq-x")


def test_cut_width():
    assert cutting_columns(64) == 10 and cutting_columns(128) == 20
    frames = np.arange(2 * 64 * 64).reshape(2, 64, 64)
    cut = cut_width(frames, 64)
    assert cut.shape == (2, 64, 44)
    np.testing.assert_array_equal(cut, frames[:, :, 10:54])
    assert cut_width(np.zeros((3, 128, 128)), 128).shape == (3, 128, 88)
    with pytest.raises(ValueError, match="expected 64"):
        cut_width(np.zeros((1, 128, 128)), 64)


def _padded_subject_masks(masks, padding, rng):
    """SubjectMasks as the segmenter keeps them: each frame's mask cropped to a padded box (not tight), at
    the box's offset in the full frame."""
    from ragar_data.pipelines.segment import SubjectMasks

    height, width = masks.shape[1:]
    origins, crops = [], []
    for mask in masks > 0:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        if rows.size == 0:
            origins.append((0, 0, 0, 0))
            crops.append(np.zeros((0, 0), bool))
            continue
        x0 = max(0, int(cols[0]) - int(rng.integers(0, padding)))
        y0 = max(0, int(rows[0]) - int(rng.integers(0, padding)))
        x1 = min(width, int(cols[-1]) + 1 + int(rng.integers(0, padding)))
        y1 = min(height, int(rows[-1]) + 1 + int(rng.integers(0, padding)))
        origins.append((x0, y0, x1, y1))
        crops.append(mask[y0:y1, x0:x1].copy())
    return SubjectMasks(np.asarray(origins, np.int32), crops, (width, height))


@pytest.mark.parametrize("x_shift", [-0.3, 0.0, 0.25])
def test_extraction_silhouettes_equal_upstream_pretreatment_of_full_frame_masks(x_shift):
    """The extraction's own path (SubjectMasks.silhouettes, as the runner calls it) gives exactly the frames
    OpenGait's pretreatment makes from the full-frame masks, wherever the walker stands in the frame."""
    from ragar_data.pipelines.segment import SubjectMasks

    rng = np.random.default_rng(7)
    masks = walker_masks(70, 135, 240, rng, scale=0.9, x_shift=x_shift)
    expected_frames, expected_kept = pretreat_reference(masks)
    for subject_masks in (SubjectMasks.from_full(masks > 0), _padded_subject_masks(masks, 9, rng)):
        frames, kept = subject_masks.silhouettes(np.arange(len(masks)), 64, name="001-c0-nm-01-000")
        np.testing.assert_array_equal(kept, expected_kept)
        np.testing.assert_array_equal(frames, expected_frames)
