"""Each paper-stack backend on a random-init model written in the official format, loaded through the registry
and run on a small generated clip: output shapes, value ranges, and that the output depends on the input.
Random weights give meaningless numbers; the file formats and I/O contracts are what is tested."""
import os
import pickle
import socket

import numpy as np
import pytest
import torch

from ragar_data.errors import ModelUnavailable
from ragar_data.pipelines.backends import keypoints as kp
from ragar_data.pipelines.backends.random_models import random_frames, write_random_models


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    os.environ.setdefault("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics")))
    torch.set_num_threads(1)
    directory = tmp_path_factory.mktemp("models")
    write_random_models(directory)
    return directory


@pytest.fixture(scope="module")
def clip():
    """Frames (T, 90, 160, 3) RGB and the subject's box per frame: a rendered synthetic walker when the generator
    is available, else smooth noise with a bright figure drawn in."""
    try:
        from ragar_data.identity import SequenceKey
        from ragar_data.synth.config import SynthConfig
        from ragar_data.synth.sequence import render_sequence
    except ImportError:
        frames = random_frames(6, 90, 160, seed=1)
        frames[:, 15:80, 70:90] = 220
        return frames, np.tile(np.array([[70, 15, 90, 80]], np.float32), (6, 1))
    frames, truth = render_sequence(SynthConfig(width=160, height=90, seconds=0.2, fps=30),
                                    SequenceKey("001", 0, "nm-01", 36))
    return frames, np.asarray(truth["boxes"], np.float32)


def _crop_regions(boxes, padding=1.25, input_size=(192, 256)):
    centers, scales = kp.boxes_to_center_scale(boxes, input_size, padding)
    return centers - scales / 2, centers + scales / 2


# -------------------------------------------------------------------------------------------------- YOLO
def test_yolo_detects_offline_with_person_boxes(models_dir, clip, monkeypatch):
    from ragar_data.pipelines.backends.yolo import YoloDetector

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:2]}")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    frames, _ = clip
    detector = YoloDetector(models_dir=models_dir, model="yolo11m", imgsz=160, conf=0.001)
    assert detector.name == "yolo11m" and os.environ["YOLO_OFFLINE"] == "1"
    detections = detector.detect(frames)
    assert len(detections) == len(frames)
    for rows in detections:
        assert rows.dtype == np.float32 and rows.ndim == 2 and rows.shape[1] == 5
        assert np.all(rows[:, 4] >= 0.001) and np.all(rows[:, 2] >= rows[:, 0])
    raw = detector.raw_output(frames[:2])
    assert raw.shape[:2] == (2, 84)  # 4 box coordinates + 80 COCO class scores per anchor
    assert np.abs(detector.raw_output(255 - frames[:2]) - raw).max() > 1e-3
    assert sum(len(rows) for rows in detections) > 0


@pytest.mark.filterwarnings("ignore")  # exporter deprecation and tracer notices from torch and ultralytics
def test_yolo_runs_an_onnx_export(models_dir, clip, tmp_path):
    from ultralytics import YOLO

    from ragar_data.pipelines.backends.yolo import YoloDetector

    source = tmp_path / "yolo11n.pt"
    source.write_bytes((models_dir / "yolo11n" / "yolo11n.pt").read_bytes())
    exported = YOLO(str(source)).export(format="onnx", imgsz=160, simplify=False, verbose=False)
    frames, _ = clip
    detector = YoloDetector(models_dir=models_dir, weights=exported, imgsz=160, conf=0.1)
    detections = detector.detect(frames)
    assert len(detections) == len(frames) and all(rows.shape[1] == 5 for rows in detections)
    assert sum(len(rows) for rows in detections) > 0


def test_yolo_missing_weights_fail_before_ultralytics_sees_them(tmp_path):
    from ragar_data.pipelines.backends.yolo import YoloDetector

    with pytest.raises(ModelUnavailable, match="ragar-data models download yolo11m"):
        YoloDetector(models_dir=tmp_path, model="yolo11m")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        YoloDetector(models_dir=tmp_path, weights=tmp_path / "yolo11m.pt")
    assert list(tmp_path.iterdir()) == []  # nothing downloaded or created


# ---------------------------------------------------------------------------------------------- PP-HumanSeg
def test_humanseg_masks_stay_in_the_crop_and_follow_the_input(models_dir, clip):
    from ragar_data.pipelines.backends.humanseg import HumanSegOnnx, crop_windows

    frames, boxes = clip
    segmenter = HumanSegOnnx(models_dir=models_dir, padding=1.2)
    assert segmenter.input_size == (192, 192) and segmenter.name == "pp-humanseg-v2"
    masks = segmenter.segment(frames, boxes)
    assert masks.shape == frames.shape[:3] and masks.dtype == bool
    windows = crop_windows(boxes, (160, 90), 1.2)
    outside = np.ones_like(masks)
    for index, (x1, y1, x2, y2) in enumerate(windows):
        outside[index, y1:y2, x1:x2] = False
    assert not masks[outside].any()
    assert masks.any()
    assert not np.array_equal(segmenter.segment(255 - frames, boxes), masks)
    # extraction reads the windows: the same crops as cutting the full-frame masks
    from ragar_data.pipelines.segment import masks_from_model
    from ragar_data.subject_masks import SubjectMasks

    windowed, cut = masks_from_model(segmenter, frames, boxes), SubjectMasks.from_full(masks)
    np.testing.assert_array_equal(windowed.origins, cut.origins)
    assert all(np.array_equal(a, b) for a, b in zip(windowed.crops, cut.crops))


def test_humanseg_reads_the_argmax_export_too(tmp_path, clip):
    """The `inference_model` zips without softmax end in an argmax: int32 labels [N, H, W]."""
    from ragar_data.pipelines.backends.humanseg import HumanSegOnnx, person_probability
    from ragar_data.pipelines.backends.random_models import _export_onnx, _TinySegmenter

    class ArgmaxSegmenter(_TinySegmenter):
        def forward(self, x):
            return super().forward(x).argmax(dim=1).to(torch.int32)

    path = tmp_path / "argmax.onnx"
    _export_onnx(ArgmaxSegmenter(), torch.zeros(1, 3, 192, 192), path, "x", ["output"])
    frames, boxes = clip
    masks = HumanSegOnnx(models_dir=tmp_path, weights=path).segment(frames, boxes)
    assert masks.shape == frames.shape[:3] and masks.any()
    assert person_probability(np.array([[[0, 1], [1, 0]]], np.int32)).tolist() == [[[0.0, 1.0], [1.0, 0.0]]]
    softmax = np.stack([np.full((1, 2, 2), 0.3), np.full((1, 2, 2), 0.7)], axis=1).astype(np.float32)
    assert np.allclose(person_probability(softmax), 0.7)


def test_humanseg_paddle_backend_names_the_install_command(tmp_path):
    from ragar_data.pipelines.backends.humanseg import HumanSegPaddle

    folder = tmp_path / "pp-humanseg-v2-paddle" / "human_pp_humansegv2_lite_192x192_inference_model_with_softmax"
    folder.mkdir(parents=True)
    try:
        import paddle  # noqa: F401
    except ImportError:
        with pytest.raises(ModelUnavailable, match="paddlepaddle"):
            HumanSegPaddle(models_dir=tmp_path)
    else:
        pytest.skip("paddlepaddle is installed here; the missing-package message cannot be shown")


# -------------------------------------------------------------------------------------------------- RTMPose
def test_rtmpose_keypoints_in_source_pixels(models_dir, clip):
    from ragar_data.pipelines.backends.rtmpose import RTMPoseEstimator

    frames, boxes = clip
    estimator = RTMPoseEstimator(models_dir=models_dir, model="rtmpose-m")
    assert estimator.input_size == (192, 256)
    keypoints = estimator.estimate(frames, boxes)
    assert keypoints.shape == (len(frames), 17, 3) and keypoints.dtype == np.float32
    low, high = _crop_regions(boxes)
    valid = keypoints[..., 2] > 0
    inside = (keypoints[..., :2] >= low[:, None] - 1e-3) & (keypoints[..., :2] <= high[:, None] + 1e-3)
    assert valid.any() and inside.all(axis=-1)[valid].all()
    assert not np.allclose(estimator.estimate(255 - frames, boxes), keypoints)


def test_rtmpose_feeds_a_fixed_batch_export_one_crop_at_a_time(models_dir, clip, tmp_path):
    from ragar_data.pipelines.backends.random_models import _export_onnx, _TinySimCC
    from ragar_data.pipelines.backends.rtmpose import RTMPoseEstimator

    torch.manual_seed(0)
    network = _TinySimCC(192, 256)
    _export_onnx(network, torch.zeros(1, 3, 256, 192), tmp_path / "dynamic.onnx", "input", ["simcc_x", "simcc_y"])
    _export_onnx(network, torch.zeros(1, 3, 256, 192), tmp_path / "fixed.onnx", "input", ["simcc_x", "simcc_y"],
                 dynamic_batch=False)
    frames, boxes = clip
    fixed = RTMPoseEstimator(models_dir=tmp_path, weights=tmp_path / "fixed.onnx").estimate(frames, boxes)
    dynamic = RTMPoseEstimator(models_dir=tmp_path, weights=tmp_path / "dynamic.onnx").estimate(frames, boxes)
    np.testing.assert_allclose(fixed, dynamic, atol=1e-4)


def test_rtmpose_rejects_an_onnx_without_the_simcc_outputs(tmp_path):
    from ragar_data.pipelines.backends.random_models import _export_onnx, _TinySimCC
    from ragar_data.pipelines.backends.rtmpose import RTMPoseEstimator

    path = tmp_path / "wrong.onnx"
    _export_onnx(_TinySimCC(192, 256), torch.zeros(1, 3, 256, 192), path, "input", ["x_logits", "y_logits"])
    with pytest.raises(ModelUnavailable, match="simcc_x"):
        RTMPoseEstimator(models_dir=tmp_path, weights=path)


# -------------------------------------------------------------------------------------------------- ViTPose
def test_vitpose_folder_and_upstream_checkpoint_agree(models_dir, clip):
    from ragar_data.pipelines.backends.vitpose import ViTPoseEstimator

    frames, boxes = clip
    estimator = ViTPoseEstimator(models_dir=models_dir, model="vitpose-b", flip_test=True)
    keypoints = estimator.estimate(frames, boxes)
    assert keypoints.shape == (len(frames), 17, 3) and keypoints.dtype == np.float32
    low, high = _crop_regions(boxes)
    valid = keypoints[..., 2] > 0
    inside = (keypoints[..., :2] >= low[:, None] - 1) & (keypoints[..., :2] <= high[:, None] + 1)
    # DARK's Newton step may overshoot on the flat, multi-peaked heatmaps of random weights (upstream does not
    # clamp it either), so only most keypoints must lie in the crop.
    assert valid.any() and inside.all(axis=-1)[valid].mean() > 0.9
    assert not np.allclose(estimator.estimate(255 - frames, boxes), keypoints)
    # the same weights in the original ViTPose key layout convert to the same network
    upstream = ViTPoseEstimator(models_dir=models_dir, model="vitpose-b-upstream", flip_test=True)
    np.testing.assert_allclose(upstream.estimate(frames, boxes), keypoints, atol=1e-4)


def test_vitpose_refuses_the_transformers_default_label_count(models_dir, tmp_path):
    from transformers import VitPoseForPoseEstimation

    from ragar_data.pipelines.backends.vitpose import ViTPoseEstimator

    network = VitPoseForPoseEstimation.from_pretrained(str(models_dir / "vitpose-b"), local_files_only=True)
    network.config.num_labels = 2
    network.save_pretrained(tmp_path / "bad")
    with pytest.raises(ModelUnavailable, match="num_labels=17"):
        ViTPoseEstimator(models_dir=tmp_path, weights=tmp_path / "bad")


# ------------------------------------------------------------------------------------------------ MotionBERT
def test_motionbert_checkpoint_has_the_official_layout(models_dir):
    from ragar_data.pipelines.backends.motionbert import DSTformer

    from ragar_data.safe_load import load_torch_checkpoint

    path = models_dir / "motionbert-ft-h36m" / "best_epoch.bin"
    checkpoint = load_torch_checkpoint(path)
    # upstream train.py's dict, min_loss a numpy scalar named as numpy 1.x wrote it: plain weights_only refuses it
    assert {"epoch", "lr", "optimizer", "model_pos", "min_loss"} <= set(checkpoint)
    assert type(checkpoint["min_loss"]) is np.float64
    with pytest.raises(pickle.UnpicklingError, match="numpy.core.multiarray.scalar"):
        torch.load(path, weights_only=True)
    keys = set(checkpoint["model_pos"])
    assert all(key.startswith("module.") for key in keys)
    assert {"module.joints_embed.weight", "module.blocks_st.0.attn_s.qkv.weight", "module.blocks_ts.1.mlp_t.fc2.bias",
            "module.blocks_st.0.norm2_t.weight", "module.ts_attn.1.weight", "module.pre_logits.fc.weight",
            "module.head.bias", "module.temp_embed", "module.pos_embed", "module.norm.weight"} <= keys
    # official full model: 10 blocks x 24 tensors + joints_embed, norm, pre_logits.fc, head (2 each) + 2 embeddings
    # + ts_attn (2 per depth)
    full = DSTformer(dim_feat=512, mlp_ratio=2, depth=5)
    assert len(full.state_dict()) == 10 * 24 + 8 + 2 + 10
    assert full.temp_embed.shape == (1, 243, 1, 512) and full.pos_embed.shape == (1, 17, 512)


def test_motionbert_lifts_long_sequences_in_243_frame_chunks(models_dir):
    from ragar_data.pipelines.backends.motionbert import MotionBertLifter

    lifter = MotionBertLifter(models_dir=models_dir, model="motionbert-ft-h36m")
    assert lifter.rootrel and lifter.flip and lifter.architecture["dim_feat"] == 64
    generator = np.random.default_rng(0)
    keypoints = np.concatenate([generator.uniform(40, 120, size=(250, 17, 2)), np.full((250, 17, 1), 0.9)], -1)
    poses = lifter.lift(keypoints.astype(np.float32), (160, 90))
    assert poses.shape == (250, 17, 3) and poses.dtype == np.float32
    assert np.all(poses[:, 0] == 0)  # rootrel: root joint zeroed
    assert np.isfinite(poses).all() and np.abs(poses).max() < 10
    motion, _, _ = lifter.normalize(keypoints, (160, 90))
    motion = motion.astype(np.float32)
    np.testing.assert_allclose(poses[:243], lifter.run_clips(motion[:243]), atol=1e-5)
    np.testing.assert_allclose(poses[243:], lifter.run_clips(motion[243:]), atol=1e-5)
    moved = keypoints.copy()
    moved[:, 9, :2] += 15  # the nose moves
    assert not np.allclose(lifter.lift(moved.astype(np.float32), (160, 90)), poses)


def test_motionbert_lite_keeps_the_global_root(models_dir):
    from ragar_data.pipelines.backends.motionbert import MotionBertLifter

    lifter = MotionBertLifter(models_dir=models_dir, model="motionbert-lite")
    keypoints = np.concatenate([np.random.default_rng(1).uniform(0, 100, (20, 17, 2)), np.ones((20, 17, 1))], -1)
    poses = lifter.lift(keypoints, (160, 90))
    assert not lifter.rootrel and poses[0, 0, 2] == 0 and np.abs(poses[1:, 0]).sum() > 0


def test_motionbert_rejects_a_checkpoint_without_model_pos(tmp_path):
    from ragar_data.pipelines.backends.motionbert import MotionBertLifter

    path = tmp_path / "other.bin"
    torch.save({"model": {}}, path)
    with pytest.raises(ModelUnavailable, match="model_pos"):
        MotionBertLifter(models_dir=tmp_path, weights=path)


def test_yolo_letterboxes_frames_itself_as_ultralytics_would(models_dir):
    """The detector resizes a large frame to the letterbox size before ultralytics sees it (the BGR copy is then
    of the small image): the boxes equal those of ultralytics on the whole frame."""
    from ragar_data.pipelines.backends.yolo import YoloDetector, letterbox_resized

    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (2, 270, 480, 3), np.uint8)
    detector = YoloDetector(models_dir=models_dir, model="yolo11m", imgsz=160, conf=0.001)
    ours = detector.detect(frames)
    upstream = detector.model.predict([np.ascontiguousarray(f[..., ::-1]) for f in frames], imgsz=160, conf=0.001,
                                      iou=detector.iou, classes=[0], device="cpu", verbose=False)
    assert sum(len(rows) for rows in ours) > 0
    for rows, result in zip(ours, upstream):
        expected = np.concatenate([result.boxes.xyxy.numpy(), result.boxes.conf.numpy()[:, None]], axis=1)
        np.testing.assert_allclose(rows, expected, atol=1e-3)
    image, scale = letterbox_resized(frames[0], 160)
    assert image.shape == (90, 160, 3) and np.allclose(scale, 3.0)
    assert letterbox_resized(frames[0], 640)[0].shape == (270, 480, 3)  # smaller than the letterbox: as it is
