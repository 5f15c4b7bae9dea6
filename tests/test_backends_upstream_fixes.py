"""Paper-stack details found by comparing with upstream code: decoded keypoint locations kept as mmpose keeps
them (never moved to the image origin), DSTformer's LayerNorm eps, the [0, 1] clip of confidences fed to
MotionBERT, and the MotionBERT variant read off a checkpoint given without `model:`."""
import numpy as np
import pytest
import torch

from ragar_data.errors import ModelUnavailable
from ragar_data.pipelines.backends import keypoints as kp
from ragar_data.pipelines.backends import motionbert as mb

FRAMES = np.full((1, 240, 320, 3), 90, np.uint8)
BOXES = np.array([[120.0, 40.0, 200.0, 220.0]], np.float32)


def test_vitpose_keeps_a_refined_location_left_of_the_crop():
    from ragar_data.pipelines.backends.vitpose import ViTPoseEstimator

    estimator = ViTPoseEstimator.__new__(ViTPoseEstimator)
    estimator.input_size, estimator.padding, estimator.blur_kernel, estimator.batch_size = (192, 256), 1.25, 11, 8
    columns, rows = np.meshgrid(np.arange(48), np.arange(64))
    peak = np.exp(-((columns + 1.5) ** 2 + (rows - 30) ** 2) / (2 * 2.0 ** 2))  # centred left of column 0
    heatmaps = np.tile(peak, (1, 17, 1, 1)).astype(np.float32)
    estimator.heatmaps = lambda tensor: heatmaps
    keypoints = estimator.estimate(FRAMES, BOXES)
    locations, scores = kp.decode_heatmaps_udp(heatmaps, (192, 256))
    assert (locations[..., 0] < 0).all() and (scores > 0.5).all()  # a live joint past the crop's edge
    centers, scales = kp.boxes_to_center_scale(BOXES, (192, 256), 1.25)
    expected = kp.input_to_image(locations, centers, scales, (192, 256))
    np.testing.assert_allclose(keypoints[..., :2], expected, atol=1e-4)
    assert (keypoints[..., 0] > 50).all()  # near the crop's left edge (~52 px), not at the origin


def test_rtmpose_keeps_the_decoded_location_of_an_invalid_keypoint():
    from ragar_data.pipelines.backends.rtmpose import RTMPoseEstimator

    estimator = RTMPoseEstimator.__new__(RTMPoseEstimator)
    estimator.input_size, estimator.padding, estimator.split_ratio, estimator.batch_size = (192, 256), 1.25, 2.0, 8
    simcc_x, simcc_y = np.full((1, 17, 384), 0.1, np.float32), np.full((1, 17, 512), 0.1, np.float32)
    simcc_x[0, :, 100], simcc_y[0, :, 300] = 0.8, 0.9
    simcc_x[0, 3], simcc_y[0, 3] = -0.3, -0.2  # both maxima negative: invalid, location -1
    estimator.raw_outputs = lambda tensor: (simcc_x, simcc_y)
    keypoints = estimator.estimate(FRAMES, BOXES)
    centers, scales = kp.boxes_to_center_scale(BOXES, (192, 256), 1.25)
    expected = kp.input_to_image(np.array([[[-1.0, -1.0]]]), centers, scales, (192, 256))[0, 0]
    np.testing.assert_allclose(keypoints[0, 3, :2], expected, atol=1e-4)
    assert keypoints[0, 3, 2] == pytest.approx(-0.3) and (keypoints[0, 3, :2] > 10).all()  # not the origin
    np.testing.assert_allclose(keypoints[0, 0, :2],
                               kp.input_to_image(np.array([[[50.0, 150.0]]]), centers, scales, (192, 256))[0, 0])


def test_dstformer_layernorms_use_upstream_eps():
    network = mb.DSTformer(dim_feat=32, dim_rep=32, depth=1, num_heads=4, maxlen=9)
    norms = [m for m in network.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 2 * 4 + 1 and all(m.eps == 1e-6 for m in norms)


def _lifter(normalization="crop_scale"):
    lifter = mb.MotionBertLifter.__new__(mb.MotionBertLifter)
    lifter.normalization = normalization
    return lifter


def test_motionbert_input_confidences_are_clipped_to_unit_range():
    generator = np.random.default_rng(0)
    keypoints = np.concatenate([generator.uniform(100, 200, (5, 17, 2)), np.full((5, 17, 1), 0.8)], -1)
    dead, hot = keypoints.copy(), keypoints.copy()
    dead[:, 9] = [900.0, 900.0, -0.4]  # an invalid RTMPose joint (negative SimCC score) far away
    hot[:, 16, 2] = 1.7  # right ankle, H36M joint 3
    reference = keypoints.copy()
    reference[:, 9] = [900.0, 900.0, 0.0]
    motion, offset, scale = _lifter().normalize(dead, (640, 480))
    expected, expected_offset, expected_scale = _lifter().normalize(reference, (640, 480))
    assert scale == expected_scale and scale < 150  # the far joint does not widen the square
    np.testing.assert_allclose(motion, expected)
    pixel, _, _ = _lifter("pixel").normalize(hot, (640, 480))
    assert pixel[..., 2].max() == 1.0 and pixel[..., 2].min() >= 0


def _checkpoint(path, **architecture):
    from ragar_data.atomic import atomic_torch_save

    torch.manual_seed(0)
    network = mb.DSTformer(depth=1, maxlen=9, dim_rep=32, **architecture)
    state = {"module." + key: value for key, value in network.state_dict().items()}
    atomic_torch_save(path, {"epoch": 0, "model_pos": state})
    return path


def test_motionbert_weights_without_model_take_the_matching_variant(tmp_path):
    lite = mb.MotionBertLifter(models_dir=tmp_path, weights=_checkpoint(tmp_path / "lite.bin", dim_feat=256,
                                                                       mlp_ratio=4))
    assert lite.name == "motionbert-lite" and lite.rootrel is False
    full = mb.MotionBertLifter(models_dir=tmp_path, weights=_checkpoint(tmp_path / "ft.bin", dim_feat=512,
                                                                       mlp_ratio=2))
    assert full.name == "motionbert-ft-h36m" and full.rootrel is True
    other = _checkpoint(tmp_path / "other.bin", dim_feat=64, mlp_ratio=2)
    with pytest.raises(ModelUnavailable, match="matches no known MotionBERT variant"):
        mb.MotionBertLifter(models_dir=tmp_path, weights=other)
    assert mb.MotionBertLifter(models_dir=tmp_path, weights=other, rootrel=False).rootrel is False
