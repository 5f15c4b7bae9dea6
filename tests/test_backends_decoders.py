"""Keypoint decoders and normalisations of the paper-stack backends, on cases worked out by hand."""
import numpy as np
import pytest
import torch

from ragar_data.pipelines.backends import keypoints as kp
from ragar_data.pipelines.backends.motionbert import crop_scale, denormalize, flip_h36m, pixel_normalize


def test_simcc_decoding_argmax_over_split_ratio_and_min_score():
    simcc_x = np.full((1, 2, 384), -0.5, np.float32)
    simcc_y = np.full((1, 2, 512), -0.5, np.float32)
    simcc_x[0, 0, 101] = 0.8
    simcc_y[0, 0, 300] = 0.6
    # keypoint 1: both maxima negative -> invalid (-1) with the smaller maximum as score
    simcc_x[0, 1, 7] = -0.1
    locations, scores = kp.decode_simcc(simcc_x, simcc_y, split_ratio=2.0)
    assert locations[0, 0].tolist() == [50.5, 150.0]
    assert scores[0, 0] == pytest.approx(0.6)  # min(0.8, 0.6), mmpose convention
    assert locations[0, 1].tolist() == [-1.0, -1.0]
    assert scores[0, 1] == pytest.approx(-0.5)


def test_box_to_center_scale_pads_and_fixes_aspect():
    centers, scales = kp.boxes_to_center_scale(np.array([[10, 20, 50, 120]]), (192, 256), padding=1.25)
    # w, h = 40, 100 -> padded 50, 125; aspect 0.75: 50 < 125 * 0.75, so the width grows to 93.75
    assert centers[0].tolist() == [30.0, 70.0]
    assert scales[0].tolist() == pytest.approx([93.75, 125.0])
    _, wide = kp.boxes_to_center_scale(np.array([[0, 0, 100, 10]]), (192, 256), padding=1.0)
    assert wide[0].tolist() == pytest.approx([100.0, 100 / 0.75])


def test_plain_warp_maps_box_centre_to_input_centre_and_back():
    centers = np.array([[30.0, 70.0]], np.float32)
    scales = np.array([[93.75, 125.0]], np.float32)
    matrix = kp.warp_matrices(centers, scales, (192, 256), udp=False)[0]
    assert matrix @ np.array([30, 70, 1.0]) == pytest.approx([96.0, 128.0])
    # the box's left edge lands on input x = 0, its top edge on input y = 0
    assert matrix @ np.array([30 - 93.75 / 2, 70 - 62.5, 1.0]) == pytest.approx([0.0, 0.0], abs=1e-4)
    back = kp.input_to_image(np.array([[[96.0, 128.0], [0.0, 0.0]]]), centers, scales, (192, 256))
    assert back[0].ravel().tolist() == pytest.approx([30.0, 70.0, 30 - 46.875, 7.5])


def test_udp_warp_maps_box_edges_to_end_pixels():
    centers = np.array([[100.0, 50.0]])
    scales = np.array([[48.0, 64.0]])
    matrix = kp.warp_matrices(centers, scales, (192, 256), udp=True)[0]
    assert matrix @ np.array([76.0, 18.0, 1.0]) == pytest.approx([0.0, 0.0], abs=1e-4)
    assert matrix @ np.array([124.0, 82.0, 1.0]) == pytest.approx([191.0, 255.0])


def test_heatmap_udp_integer_peak_without_refinement():
    heatmaps = np.zeros((1, 1, 64, 48), np.float32)
    heatmaps[0, 0, 40, 12] = 0.9
    locations, scores = kp.decode_heatmaps_udp(heatmaps, (192, 256), refine=False)
    # UDP: heatmap pixel x maps to x / (48 - 1) * 192 input pixels
    assert locations[0, 0].tolist() == pytest.approx([12 / 47 * 192, 40 / 63 * 256])
    assert scores[0, 0] == pytest.approx(0.9)
    empty = kp.decode_heatmaps_udp(np.zeros((1, 1, 64, 48), np.float32), (192, 256), refine=True)
    assert empty[0][0, 0].tolist() == pytest.approx([-192 / 47, -256 / 63])  # invalid stays -1 before scaling


def test_dark_refinement_recovers_subpixel_gaussian_centre():
    ys, xs = np.mgrid[0:64, 0:48]
    centre = (20.3, 30.7)
    heatmap = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * 2.0 ** 2)).astype(np.float32)
    heatmaps = torch.from_numpy(heatmap[None, None])
    locations, _ = kp.heatmap_maximum(heatmaps)
    assert locations[0, 0].tolist() == [20.0, 31.0]
    refined = kp.refine_dark_udp(locations, heatmaps, kernel_size=11)
    assert refined[0, 0].tolist() == pytest.approx(list(centre), abs=0.02)


def test_coco_to_h36m_by_hand():
    coco = np.zeros((1, 17, 3))
    coco[0, :, 0] = np.arange(17)
    coco[0, :, 1] = np.arange(17) * 10
    coco[0, :, 2] = 1.0
    h36m = kp.coco_to_h36m(coco)[0]
    assert h36m[0, :2].tolist() == [11.5, 115.0]  # root = mid-hip (11, 12)
    assert h36m[8, :2].tolist() == [5.5, 55.0]  # neck = mid-shoulder (5, 6)
    assert h36m[7, :2].tolist() == [8.5, 85.0]  # belly = mid(root, neck)
    assert h36m[10, :2].tolist() == [1.5, 15.0]  # head = mid-eyes (1, 2)
    assert h36m[:, 0].tolist() == [11.5, 12, 14, 16, 11, 13, 15, 8.5, 5.5, 0, 1.5, 5, 7, 9, 6, 8, 10]
    assert np.all(h36m[:, 2] == 1.0)


def test_crop_scale_and_its_inverse_by_hand():
    motion = np.array([[[100, 50, 1.0], [300, 150, 1.0], [200, 100, 0.5], [150, 75, 1.0], [900, 900, 0.0]]])
    normalised, offset, scale = crop_scale(motion)
    # square side 200 (the x extent); offset ((100 + 300 - 200) / 2, (50 + 150 - 200) / 2) = (100, 0)
    assert scale == 200.0 and offset.tolist() == [100.0, 0.0]
    assert normalised[0, 0].tolist() == [-1.0, -0.5, 1.0]
    assert normalised[0, 1].tolist() == [1.0, 0.5, 1.0]
    assert normalised[0, 2].tolist() == [0.0, 0.0, 0.5]
    assert normalised[0, 4, :2].tolist() == [1.0, 1.0]  # a zero-confidence joint is clipped, not used for the box
    lifted = np.array([[[1.0, 0.5, 0.5]]])
    assert denormalize(lifted, offset, scale)[0, 0].tolist() == [300.0, 150.0, 50.0]
    assert crop_scale(motion[:, :3])[2] == 0.0  # fewer than 4 valid joints: zeros, as upstream


def test_pixel_normalisation_and_inverse():
    motion = np.array([[[80.0, 45.0, 1.0], [125.0, 45.0, 1.0]]])
    normalised, offset, scale = pixel_normalize(motion, (160, 90))
    assert normalised[0, :, :2].tolist() == [[0.0, 0.0], [1.0, 0.0]]  # centre, then +min(w, h) / 2
    assert denormalize(normalised[..., :3], offset, scale)[0, 1, :2].tolist() == pytest.approx([125.0, 45.0])


def test_flip_mirrors_x_and_swaps_sides():
    pose = torch.arange(17 * 3, dtype=torch.float32).reshape(1, 17, 3)
    flipped = flip_h36m(pose)
    assert flipped[0, 1].tolist() == [-12.0, 13.0, 14.0]  # right hip takes the left hip (4), x negated
    assert flipped[0, 0].tolist() == [-0.0, 1.0, 2.0]
    assert torch.equal(flip_h36m(flipped), pose)
