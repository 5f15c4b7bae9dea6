"""Person verification (pipelines/verify.py) and its quality reasons, on tracks and frames made here.

Most tests inject a fake person detector (the documented `detector` parameter of `choose_subject`): it "sees"
a person in a window when the person's face and hip centre are both inside it, as BlazePose's detector needs.
The tests at the end run the real BlazePose files when they are in the models directory and skip otherwise.
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from ragar_data.errors import ModelUnavailable
from ragar_data.pipelines import verify
from ragar_data.pipelines.config import SelectConfig, VerifyConfig, load_preset
from ragar_data.pipelines.plates import plate_from_samples
from ragar_data.pipelines.quality import main_part_fractions, person_reasons
from ragar_data.pipelines.subject import SubjectTrack
from ragar_data.pipelines.track import Tracks
from ragar_data.subject_masks import SubjectMasks

FRAMES, WIDTH, HEIGHT = 30, 320, 180


class FakeDetector:
    """people[position] = list of (face (x, y), hip (x, y)); a person is found in a track's window (the box grown
    1.5x about its centre, as BlazePoseDetector's box_padding) when both points are inside it. The frame's
    first pixel carries the clip position (see `frame_rgb`)."""

    def __init__(self, people: dict):
        self.people, self.calls, self.frames = people, 0, 0

    def detect_in_boxes(self, frames, boxes):
        self.calls, self.frames = self.calls + 1, self.frames + len(frames)
        found = []
        for frame, box in zip(frames, boxes):
            centre, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]).max() * 0.75
            window = np.r_[centre - half, centre + half]
            seen = [(f, h) for f, h in self.people.get(int(frame[0, 0, 0]), [])
                    if verify._inside(np.asarray([f, h]), window).all()]
            found.append(_detections(seen))
        return found

    def detect_people(self, frames):
        return [_detections(self.people.get(int(frame[0, 0, 0]), [])) for frame in frames]

    def landmarks_in_boxes(self, frames, boxes):
        """The landmark model's view of each box: a person (pose flag 1, nose at the face, feet as far below the
        hip as the face is above it) when a person's face and hip are inside the box, nobody otherwise."""
        landmarks, flags = np.zeros((len(frames), 33, 5), np.float32), np.zeros(len(frames), np.float32)
        for index, (frame, box) in enumerate(zip(frames, boxes)):
            for face, hip in self.people.get(int(frame[0, 0, 0]), []):
                if verify._inside(np.asarray([face, hip]), box).all():
                    flags[index] = 1.0
                    landmarks[index, :, :2] = hip
                    landmarks[index, 0, :2] = face
                    landmarks[index, list(verify.FEET), :2] = (hip[0], 2 * hip[1] - face[1])
                    landmarks[index, :, 4] = 1.0
        rois = np.concatenate([(boxes[:, :2] + boxes[:, 2:]) / 2, (boxes[:, 2:] - boxes[:, :2]).max(1, keepdims=True)
                               * 1.25, np.zeros((len(boxes), 1))], axis=1)
        return SimpleNamespace(landmarks=landmarks, pose_flag=flags, rois=rois,
                               mask_logits=np.full((len(frames), 256, 256), -1.0, np.float32))


def _detections(seen):
    hips = np.asarray([h for _, h in seen], np.float32).reshape(-1, 2)
    boxes = np.concatenate([hips - 40, hips + 40, np.full((len(hips), 1), 0.9)], axis=1).astype(np.float32)
    keypoints = np.zeros((len(hips), 4, 2), np.float32)
    keypoints[:, 0] = hips
    rois = np.concatenate([hips, np.full((len(hips), 1), 190.0), np.zeros((len(hips), 1))], axis=1)  # hip-head x2.5
    return SimpleNamespace(boxes=boxes, keypoints=keypoints, rois=rois)


def frame_rgb(position):
    return np.full((4, 4, 3), position, np.uint8)


def make_tracks(rows: dict) -> Tracks:
    """rows: track id -> (positions, boxes (n, 4))."""
    frame, track_id, boxes = [], [], []
    for tid, (positions, track_boxes) in rows.items():
        frame += list(positions)
        track_id += [tid] * len(positions)
        boxes += list(track_boxes)
    return Tracks(np.asarray(frame, np.int32), np.asarray(track_id, np.int32), np.asarray(boxes, np.float32),
                  np.ones(len(frame), np.float32), FRAMES)


def walker_box(t):
    """A walker crossing from x 40 to 260, body (shoulders down) 60..160; its head is 35..58 above it."""
    x = 40 + 220 * t / (FRAMES - 1)
    return np.array([x - 15, 60, x + 15, 160], np.float32), np.array([x - 8, 35, x + 8, 58], np.float32)


def scene(head_track=True):
    """Track 1: a static table in the image centre all clip long (the weights-free rule prefers it); track 2:
    the walker's body; track 3: the walker's head tracked apart. The walker's face and hip are known."""
    positions = np.arange(FRAMES)
    rows = {1: (positions, [np.array([130, 100, 190, 170])] * FRAMES),
            2: (positions[14:], [walker_box(t)[0] for t in positions[14:]])}
    if head_track:
        rows[3] = (positions[14:], [walker_box(t)[1] for t in positions[14:]])
    people = {int(t): [((walker_box(t)[1][0] + 8, 46.0), (walker_box(t)[0][0] + 15, 110.0))] for t in positions}
    return make_tracks(rows), people


def config(**verify_options):
    preset = load_preset("default")
    preset.verify = VerifyConfig(**{"backend": "blazepose", **verify_options})
    return preset


# ---------------------------------------------------------------------------------------------- choice
def test_weights_free_rule_takes_the_static_table_and_verification_takes_the_walker():
    tracks, people = scene()
    chosen, verification = verify.choose_subject(tracks, (WIDTH, HEIGHT), frame_rgb, None, config())
    assert chosen.track_id == 1 and verification is None  # the failure seen on real footage

    tracks, people = scene()
    detector = FakeDetector(people)
    chosen, verification = verify.choose_subject(tracks, (WIDTH, HEIGHT), frame_rgb, detector, config())
    assert chosen.track_id == 2 and verification.people == {2}
    assert verification.verdicts[1].person_frames == 0
    # 8 frames of each track, batched, in two windows each
    assert detector.calls == 2 * int(np.ceil(3 * 8 / verify.BATCH_FRAMES)) and detector.frames == 2 * 3 * 8
    # the head fragment is joined: the subject's boxes reach the head's top
    assert verification.joined == [3]
    assert np.allclose(chosen.boxes[:, 1], 35)
    assert person_reasons(verification, chosen, None, config().verify, SelectConfig()) == []


def test_split_head_and_legs_become_one_person():
    """Neither a head track nor a legs track shows face and hip together; their union does."""
    positions = np.arange(FRAMES)
    heads = [np.array([150, 0, 170, 20]) + [t, 0, t, 0] for t in positions]
    legs = [np.array([140, 90, 180, 170]) + [t, 0, t, 0] for t in positions]  # even 2.5x wide, no face in view
    tracks = make_tracks({4: (positions, heads), 7: (positions[:25], legs[:25])})
    people = {int(t): [((160.0 + t, 10.0), (160.0 + t, 112.0))] for t in positions}
    chosen, verification = verify.choose_subject(tracks, (WIDTH, HEIGHT), frame_rgb, FakeDetector(people),
                                                 config())
    assert chosen is not None and chosen.track_id == 4 and verification.people == {4}
    assert 7 not in tracks.ids() and verification.joined == [7]
    union = chosen.boxes[:25]
    assert np.allclose(union[:, 1], 0) and np.allclose(union[:, 3], 170)


def test_a_clip_without_people_keeps_a_track_to_inspect_and_fails_as_not_a_person():
    positions = np.arange(FRAMES)
    tracks = make_tracks({1: (positions, [np.array([130, 100, 190, 170])] * FRAMES)})
    chosen, verification = verify.choose_subject(tracks, (WIDTH, HEIGHT), frame_rgb, FakeDetector({}), config())
    assert chosen.track_id == 1 and verification.people == set()
    reasons = person_reasons(verification, chosen, None, config().verify, SelectConfig())
    assert reasons[0].startswith("not a person: the person detector saw a person in the subject track on 0 of 8")
    assert any(r.startswith("static: no walking motion") for r in reasons)


def test_two_people_in_the_subject_box_are_several_people_and_one_seen_twice_is_not():
    """A blob of two walkers side by side (box 60 x 100): hips 30 px apart; the same walker found twice: 3 px."""
    positions = np.arange(FRAMES)
    centres = 60 + 6 * positions
    tracks = make_tracks({1: (positions, [np.array([c - 30, 60, c + 30, 160]) for c in centres])})
    crowded = {int(t): [((c - 15, 46.0), (c - 15, 110.0)), ((c + 15, 46.0), (c + 15, 110.0))]
               for t, c in zip(positions, centres)}
    twice = {int(t): [((c, 46.0), (c, 110.0)), ((c + 3, 46.0), (c + 3, 111.0))] for t, c in zip(positions, centres)}
    for seen, expected in ((crowded, True), (twice, False)):
        chosen, verification = verify.choose_subject(tracks, (WIDTH, HEIGHT), frame_rgb, FakeDetector(seen),
                                                     config())
        reasons = person_reasons(verification, chosen, None, config().verify, SelectConfig())
        assert chosen.track_id == 1
        assert any(r.startswith("several people: the subject track holds two or more people on 8 of 8")
                   for r in reasons) == expected, reasons


def test_a_track_that_starts_on_a_table_is_cut_to_the_walkers_frames():
    """Frames 0-9: the track's box on the table; from frame 10 on the walker passing it (the tracker kept the id)."""
    positions = np.arange(FRAMES)
    boxes = [np.array([130, 100, 190, 170]) if t < 10 else walker_box(t)[0] for t in positions]
    tracks = make_tracks({1: (positions, boxes)})
    people = {int(t): [((walker_box(t)[1][0] + 8, 46.0), (walker_box(t)[0][0] + 15, 110.0))]
              for t in positions if t >= 10}
    chosen, verification = verify.choose_subject(tracks, (WIDTH, HEIGHT), frame_rgb, FakeDetector(people), config())
    assert chosen.frame.tolist() == list(range(10, FRAMES)) and verification.trimmed == 10
    assert np.allclose(chosen.boxes[0], walker_box(10)[0])


def test_a_person_standing_still_is_static():
    positions = np.arange(FRAMES)
    tracks = make_tracks({2: (positions, [np.array([140, 60, 170, 160])] * FRAMES)})
    people = {int(t): [((155.0, 46.0), (155.0, 110.0))] for t in positions}
    chosen, verification = verify.choose_subject(tracks, (WIDTH, HEIGHT), frame_rgb, FakeDetector(people), config())
    reasons = person_reasons(verification, chosen, None, config().verify, SelectConfig())
    assert chosen.track_id == 2 and [r.split(":")[0] for r in reasons] == ["static"]


def test_fragmented_masks_fail_and_a_whole_one_passes():
    whole = np.zeros((40, 20), bool)
    whole[2:38, 5:15] = True
    broken = whole.copy()
    broken[18:22] = False  # two halves of equal size
    assert main_part_fractions([whole, broken]).tolist() == [1.0, 0.5]
    subject = SubjectTrack(2, np.arange(10), np.tile([0, 0, 20, 40], (10, 1)).astype(np.float32), 1.0, True)
    verification = verify.Verification({2: verify.TrackVerdict(2, 8, 8)}, {2})
    for crops, failing in (([whole] * 10, False), ([broken] * 4 + [whole] * 6, True)):
        masks = SubjectMasks(np.tile([0, 0, 20, 40], (10, 1)).astype(np.int32), crops, (100, 100))
        reasons = person_reasons(verification, subject, masks, VerifyConfig(), SelectConfig())
        assert any(r.startswith("fragmented mask: on 40% of frames") for r in reasons) == failing


def test_no_verification_adds_no_reason():
    subject = SubjectTrack(2, np.arange(10), np.zeros((10, 4), np.float32), 1.0, False)
    assert person_reasons(None, subject, None, VerifyConfig(), SelectConfig()) == []


# ---------------------------------------------------------------------------------------------- plates
def test_people_standing_in_most_samples_are_kept_out_of_the_plate():
    rng = np.random.default_rng(0)
    background = rng.integers(60, 200, (48, 64, 3)).astype(np.uint8)
    samples = np.repeat(background[None], 20, axis=0)
    people = np.zeros((20, 48, 64), bool)
    for index in range(14):  # someone in front of the table in 70% of the samples, in different clothes
        samples[index, 10:40, 20:36] = 20 + 3 * index
        people[index, 8:42, 18:38] = True
    plain = plate_from_samples(samples)
    masked = plate_from_samples(samples, exclude=people)
    assert np.abs(plain[12:38, 22:34].astype(int) - background[12:38, 22:34]).mean() > 40
    assert np.abs(masked[12:38, 22:34].astype(int) - background[12:38, 22:34]).max() <= 2
    # a spot covered in (almost) every sample keeps every sample's vote: the same plate as without masks
    everywhere = np.zeros_like(people)
    everywhere[:, 10:40, 20:36] = True
    assert np.array_equal(plate_from_samples(samples, exclude=everywhere), plain)


def test_plate_person_masks_cover_each_detected_persons_region():
    people = {3: [((30.0, 10.0), (32.0, 30.0))]}
    masks = verify.plate_person_masks(FakeDetector(people), 0.5)(np.stack([frame_rgb(2), frame_rgb(3)])
                                                                  .repeat(20, 1).repeat(20, 2))
    assert not masks[0].any() and masks[1].all()  # a 190-pixel ROI around (32, 30) covers the 80x80 sample


# ------------------------------------------------------------------------------------------ switching on
def test_without_model_files_the_default_preset_runs_and_hashes_as_before(tmp_path):
    preset = load_preset("default")
    assert preset.verify.backend == "blazepose" and not preset.verify.required
    off = verify.active_verification(preset, tmp_path)
    assert off.verify.backend is None
    without = load_preset("default")
    without.verify = VerifyConfig()  # a preset with no verify section at all
    assert off.hash() == without.hash() != preset.hash()
    detector, line = verify.build_verifier(off.verify)
    assert detector is None and line.startswith("verify: no person verification")


def test_a_preset_that_requires_verification_names_the_missing_files(tmp_path):
    with pytest.raises(ModelUnavailable, match=r"required by this preset: missing .*pose_detection.tflite"):
        verify.active_verification(load_preset("blazepose"), tmp_path)


# ------------------------------------------------------------------------------------- real model files
def _models_dir():
    from ragar_data import weights

    directory = weights.default_models_dir()
    if not weights.get_spec("blazepose").is_present(directory):
        pytest.skip(f"BlazePose files not in {directory} (`ragar-data models download blazepose` adds them)")
    return directory


def test_real_detector_verifies_a_synthetic_walker_and_rejects_a_background_box():
    from ragar_data.pipelines.backends.blazepose_detect import BlazePoseDetector
    from ragar_data.synth.config import SynthConfig
    from ragar_data.synth.generate import sequence_keys
    from ragar_data.synth.sequence import stream_sequence

    detector = BlazePoseDetector(models_dir=_models_dir())
    synth = SynthConfig(subjects=1, views=(90,), conditions=("nm-01",), combinations=(0,), seconds=0.3,
                        width=640, height=360)
    frames, truth = stream_sequence(synth, sequence_keys(synth)[0])
    frames = np.stack(list(frames))
    count = len(frames)
    walker = truth["boxes"][:, :4].astype(np.float32)
    corner = np.tile([[560, 10, 630, 120]], (count, 1)).astype(np.float32)  # sky / wall, no one there
    tracks = Tracks(np.r_[np.arange(count), np.arange(count)].astype(np.int32),
                    np.r_[np.ones(count), np.full(count, 2)].astype(np.int32), np.concatenate([walker, corner]),
                    np.ones(2 * count, np.float32), count)
    verdicts = verify.verify_tracks(tracks, lambda p: frames[p], detector, VerifyConfig(backend="blazepose"), 3)
    assert verdicts[1].person_fraction >= 0.75 and verdicts[2].person_fraction == 0.0  # 7 of 8 seen here


@pytest.mark.slow
def test_extraction_says_which_verification_ran_and_the_blazepose_preset_fills_every_column(tmp_path):
    from ragar_data.pipelines.runner import RunOptions, extract
    from ragar_data.shards import ShardDataset
    from ragar_data.synth import SynthConfig, generate

    synth = tmp_path / "synth"
    generate(synth, SynthConfig(subjects=1, views=(72,), conditions=("nm-01",), combinations=(0,), seconds=1.0,
                                width=320, height=180))
    lines = []
    summary = extract(tmp_path / "off", load_preset("default"), videos=synth / "videos",
                      options=RunOptions(models_dir=tmp_path / "no-models"), log=lines.append)
    assert [line for line in summary.lines() if line.startswith("verify:")] == [
        line for line in lines if line.startswith("verify:")]
    assert summary.lines()[-1].startswith("verify: no person verification")

    models = _models_dir()
    summary = extract(tmp_path / "on", load_preset("blazepose"), videos=synth / "videos",
                      options=RunOptions(models_dir=models), log=lambda line: None)
    assert summary.lines()[-1].startswith("verify: person verification with blazepose")
    dataset = ShardDataset(tmp_path / "on")
    row = dataset.read_record(dataset.keys()[0])
    assert row["quality_ok"], row["quality_reasons"]
    assert row["keypoints_2d"].shape == (row["num_frames"], 17, 3) and row["keypoints_2d_model"] == "blazepose"
    assert row["keypoints_3d"].shape == (row["num_frames"], 17, 3) and row["keypoints_3d_model"] == "blazepose"
    assert np.abs(row["keypoints_3d"][:, 0]).max() == 0  # root-relative (pelvis at the origin)
    assert row["num_silhouettes"] >= 10


def test_fragmented_frames_are_dropped_only_when_verification_ran():
    from ragar_data.pipelines.quality import rejected_frames as fragmented_frames

    whole = np.zeros((40, 20), bool)
    whole[2:38, 5:15] = True
    broken = whole.copy()
    broken[18:22] = False
    masks = SubjectMasks(np.tile([0, 0, 20, 40], (3, 1)).astype(np.int32), [whole, broken, whole], (100, 100))
    verification = verify.Verification({}, set())
    assert fragmented_frames(verification, masks, VerifyConfig()).tolist() == [False, True, False]
    assert fragmented_frames(None, masks, VerifyConfig()).tolist() == [False, False, False]


def test_stages_of_the_default_preset_build_without_the_person_model_files(tmp_path):
    from ragar_data.pipelines.processing import build_stages

    stages = build_stages(load_preset("default"), models_dir=tmp_path)
    assert stages.verifier is None and stages.skipped[-1].startswith("verify: no person verification")
    with pytest.raises(ModelUnavailable, match=r"blazepose: missing .*pose_detection.tflite"):
        build_stages(load_preset("blazepose"), models_dir=tmp_path)


def test_without_model_files_the_verify_line_names_them_and_the_download_command(tmp_path):
    from ragar_data.pipelines.processing import build_stages

    off = verify.active_verification(load_preset("default"), tmp_path)  # what extract does first
    line = build_stages(off, models_dir=tmp_path).skipped[-1]
    assert "off in this preset" not in line
    assert "pose_detection.tflite" in line and "`ragar-data models download blazepose`" in line
    paper = verify.build_verifier(load_preset("paper").verify, tmp_path, preset="paper")[1]
    assert paper == "verify: no person verification (off in this preset)"


# ------------------------------------------------------------------------------------ per-frame check
def _landmarks(nose, foot, presence=1.0):
    marks = np.zeros((1, 33, 5), np.float32)
    marks[0, :, 4] = presence
    marks[0, 0, :2], marks[0, list(verify.FEET), :2] = nose, foot
    return marks


def test_a_frame_is_whole_only_with_a_person_whose_head_and_a_foot_are_inside_the_image():
    settings = VerifyConfig()
    cases = {"whole": (_landmarks((50, 10), (50, 90)), 0.9, True),
             "no person": (_landmarks((50, 10), (50, 90)), 0.2, False),
             "feet below the image": (_landmarks((50, 10), (50, 130)), 0.9, False),
             "head above the image": (_landmarks((50, -5), (50, 90)), 0.9, False),
             "landmarks not present": (_landmarks((50, 10), (50, 90), presence=0.1), 0.9, False)}
    for name, (marks, flag, expected) in cases.items():
        assert verify.whole_people(marks, np.array([flag]), (100, 100), settings).tolist() == [expected], name
    boxes = np.array([[10, 5, 60, 95], [10, 5, 60, 100], [0, 5, 60, 95]], np.float32)
    assert verify.boxes_inside(boxes, (100, 100)).tolist() == [True, False, False]  # a box at the border: cut


def _checks(person: np.ndarray, whole: bool = True) -> verify.FrameChecks:
    """One frame's check whose ROI is the 256 x 256 image itself (ROI space = image space)."""
    packed = np.packbits(person.reshape(1, -1), axis=1)
    return verify.FrameChecks(np.array([whole]), np.array([[128.0, 128.0, 256.0, 0.0]]), packed, np.array([True]))


def test_frames_whose_silhouette_does_not_match_the_person_are_left_out():
    from ragar_data.pipelines.quality import mask_agreement, rejected_frames

    person = np.zeros((256, 256), bool)
    person[40:200, 100:140] = True
    pole = person.copy()
    pole[5:40, 118:121] = True  # a thin pole joined to the head: IoU stays high, the height does not
    half = person.copy()
    half[:, 120:] = False  # half a walker
    settings = VerifyConfig()
    for mask, expected in ((person, False), (pole, True), (half, True)):
        masks = SubjectMasks.from_full(mask[None])
        verification = verify.Verification({}, set(), frames=_checks(person))
        assert rejected_frames(verification, masks, settings).tolist() == [expected]
    ious, heights = mask_agreement(_checks(person), SubjectMasks.from_full(pole[None]))
    assert ious[0] > 0.9 and heights[0] > settings.max_height_ratio
    unseen = verify.Verification({}, set(), frames=_checks(person, whole=False))
    assert rejected_frames(unseen, SubjectMasks.from_full(person[None]), settings).tolist() == [True]


def test_too_few_whole_person_frames_fail_the_sequence_with_a_named_reason():
    person = np.zeros((256, 256), bool)
    person[40:200, 100:140] = True
    subject = SubjectTrack(1, np.arange(1), np.array([[100, 40, 140, 200]], np.float32), 1.0, True)
    verdict = verify.TrackVerdict(1, sampled=8, person_frames=8)
    masks = SubjectMasks.from_full(person[None])
    for whole, expected in ((True, []), (False, ["no whole person"])):
        verification = verify.Verification({1: verdict}, {1}, frames=_checks(person, whole))
        reasons = person_reasons(verification, subject, masks, VerifyConfig(min_whole_frames=1), SelectConfig())
        assert [r.split(":")[0] for r in reasons] == expected


def test_the_walker_chosen_by_verification_has_its_frames_checked():
    tracks, people = scene()
    def full_frame(position):  # frame_rgb at the clip's size: the check reads the image borders
        return np.full((HEIGHT, WIDTH, 3), position, np.uint8)

    chosen, verification = verify.choose_subject(tracks, (WIDTH, HEIGHT), full_frame, FakeDetector(people), config())
    assert verification.frames is not None and len(verification.frames.whole) == len(chosen.frame)
    assert verification.frames.whole.all()  # the fake model sees the walker's face and hip in every box
    _, unchecked = verify.choose_subject(scene()[0], (WIDTH, HEIGHT), full_frame, FakeDetector(people),
                                         config(frame_check=False))
    assert unchecked.frames is None


def test_leading_and_trailing_frames_without_a_person_are_cut_from_the_subject_track():
    subject = SubjectTrack(1, np.arange(10, 16), np.tile([100.0, 40, 140, 200], (6, 1)), 1.0, True)
    person = np.array([False, False, True, False, True, False])  # floor tape, the walker, a miss, the walker, ...
    checks = verify.FrameChecks(person.copy(), np.zeros((6, 4)), np.zeros((6, 8192), np.uint8), person.copy())
    assert verify.trim_to_checked(subject, checks) == 3
    assert subject.frame.tolist() == [12, 13, 14] and checks.person.tolist() == [True, False, True]
    assert len(subject.boxes) == len(checks.whole) == len(checks.rois) == len(checks.person_masks) == 3


class CountingLandmarks(FakeDetector):
    """FakeDetector that records the clip positions the landmark model looked at."""

    def __init__(self, people):
        super().__init__(people)
        self.looked = []

    def landmarks_in_boxes(self, frames, boxes):
        self.looked += [int(frame[0, 0, 0]) for frame in frames]
        return super().landmarks_in_boxes(frames, boxes)


def test_a_strided_frame_check_places_the_person_edges_as_checking_every_frame():
    def full_frame(position):  # the check reads the image borders
        return np.full((HEIGHT, WIDTH, 3), position, np.uint8)

    boxes = np.stack([walker_box(t)[0] for t in range(FRAMES)]) - [0, 30, 0, 0]  # body and head
    people = {t: [((walker_box(t)[1][0] + 8, 46.0), (walker_box(t)[0][0] + 15, 110.0))] for t in range(5, 23)}
    people[14] = []  # one frame the model misses, between two looked-at frames that see the walker

    def checked(stride):
        detector = CountingLandmarks(people)
        subject = SubjectTrack(2, np.arange(FRAMES), boxes.astype(np.float32).copy(), 1.0, True)
        return verify.check_frames(subject, full_frame, detector, VerifyConfig(frame_stride=stride)), detector

    every, every_model = checked(1)
    strided, strided_model = checked(4)
    assert every.person.tolist() == [5 <= t <= 22 and t != 14 for t in range(FRAMES)]
    expected = every.person.copy()
    expected[14] = True  # left unchecked, it takes the verdict of frames 12 and 16
    assert strided.person.tolist() == expected.tolist() and strided.whole.tolist() == expected.tolist()
    # coarse rows 0, 4, ..., 28, 29, then the frames between 4 and 8 and between 20 and 24 (the edges)
    assert strided_model.looked == [0, 4, 8, 12, 16, 20, 24, 28, 29, 5, 6, 7, 21, 22, 23]
    assert strided.checked.sum() == 15 and every.checked.all() and len(every_model.looked) == FRAMES
    # an unchecked frame's ROI is the nearest checked frame's, moved with the box
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert np.allclose(strided.rois[10, :2], strided.rois[8, :2] + centres[10] - centres[8])
    assert np.array_equal(strided.person_masks[10], strided.person_masks[8])


def test_the_wide_window_skipped_where_the_tight_one_holds_a_person_changes_no_verdict(monkeypatch):
    """verify_tracks looks in the wide window only where the tight one holds no person of the box; the subject's
    samples get it afterwards (`subject_verdict`): the choice, the verdicts read later and the joins are those of
    looking in both windows everywhere."""
    def choose():
        tracks, people = scene()
        detector = FakeDetector(people)
        return verify.choose_subject(tracks, (WIDTH, HEIGHT), frame_rgb, detector, config(frame_check=False)), detector

    (chosen, verification), skipping = choose()
    monkeypatch.setattr(verify, "_holds_person", lambda *args: False)  # the wide window everywhere
    (everywhere, reference), both = choose()
    assert chosen.track_id == everywhere.track_id == 2 and verification.people == reference.people
    np.testing.assert_array_equal(chosen.boxes, everywhere.boxes)
    assert verification.joined == reference.joined == [3]
    mine, theirs = verification.verdicts[2], reference.verdicts[2]
    assert (mine.person_frames, mine.several_frames) == (theirs.person_frames, theirs.several_frames)
    assert mine.regions.keys() == theirs.regions.keys()
    assert all(np.array_equal(mine.regions[p], theirs.regions[p]) for p in mine.regions)
    assert all(np.array_equal(mine.hips[p], theirs.hips[p]) for p in mine.hips)
    for track_id, verdict in reference.verdicts.items():
        assert verification.verdicts[track_id].person_frames == verdict.person_frames
    assert skipping.frames == both.frames  # here every non-subject sample misses: the same looks, in another order
