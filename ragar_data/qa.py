"""QA of an extraction run against the synthetic generator's ground truth (`ragar-data qa RUN --ground-truth SYNTH`).

Per sequence, over the frames where the ground-truth subject is visible:
- silhouette IoU: the run's full-resolution subject mask (kept with `extract --keep-masks`, before
  normalisation) against the true mask; a frame without an extracted mask counts IoU 0;
- normalised silhouette IoU: the same masks and the true ones through OpenGait's normalisation (64x64, what the
  shards hold), binarised at grey level 128, over the frames whose true silhouette survives normalisation; an
  extracted frame missing there counts 0;
- subject-track recall: frames whose extracted subject box overlaps the true box with IoU >= `match_iou`;
  the subject track counts as *found* when recall >= 0.5;
- identity switches: each frame's true box is matched to the tracker's track with the highest box IoU (>=
  `match_iou`, over all tracks of the clip); every change of the matched id between consecutive matched frames
  is a switch (the MOT IDSW of the subject);
- 2D keypoints (when the run has keypoints_2d), against the generator's COCO-17 over its visible joints: mean
  pixel distance, the same divided by the true box height, and PCK, the fraction of joints within
  0.05 and 0.1 of the true box height (whatever the predicted score);
- 3D keypoints (when the run has keypoints_3d), against the generator's H36M-17 (camera frame, metres):
  N-MPJPE, root-relative joints scaled by the least-squares factor onto the truth (the lifter's units are
  normalised), in metres; and PA-MPJPE, the mean joint error after the best similarity transform (Procrustes:
  rotation, scale, translation per frame), in millimetres.
Summary: means over sequences (IoU also over all frames), sequences with the subject found, total switches; PCK
pooled over all visible joints, per joint and per view; PA-MPJPE per view (mean over sequences); silhouette IoU
under the name of the run's segmenter backend (`run.json`'s config), with the pose and lift backends.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ragar_data.atomic import atomic_write_json
from ragar_data.errors import RagarDataError
from ragar_data.identity import SequenceKey

PCK_THRESHOLDS = (0.05, 0.1)  # fractions of the true box height


@dataclass
class SequenceQA:
    key: str
    frames: int  # ground-truth frames with the subject visible
    silhouette_iou: float | None
    recall: float
    found: bool
    identity_switches: int
    keypoints_2d_error_px: float | None = None
    keypoints_2d_error_rel: float | None = None
    keypoints_3d_nmpjpe: float | None = None
    keypoints_3d_pa_mpjpe_mm: float | None = None
    quality_ok: bool = True
    silhouette_iou_64: float | None = None
    # PCK counts per COCO-17 joint: visible joints, and those within each of PCK_THRESHOLDS (one list each)
    keypoints_2d_visible: list | None = None
    keypoints_2d_hits: list | None = None

    def pck(self) -> list[float] | None:
        """PCK of this sequence at each of PCK_THRESHOLDS, over all its visible joints."""
        if not self.keypoints_2d_visible or not sum(self.keypoints_2d_visible):
            return None
        return [sum(hits) / sum(self.keypoints_2d_visible) for hits in self.keypoints_2d_hits]


@dataclass
class QAReport:
    run: str
    ground_truth: str
    sequences: list = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    stages: dict = field(default_factory=dict)  # preset and the segment / pose2d / lift3d backends of the run

    def to_json(self) -> dict:
        return {"run": self.run, "ground_truth": self.ground_truth, "stages": self.stages, "summary": self.summary,
                "sequences": [asdict(s) for s in self.sequences]}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes a (N, 4) with b (M, 4) -> (N, M); NaN boxes give 0."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.nan_to_num(np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0))


def identity_switches(truth_boxes: np.ndarray, truth_frames: np.ndarray, track_frames: np.ndarray,
                      track_ids: np.ndarray, track_boxes: np.ndarray, match_iou: float = 0.5) -> int:
    matched = []
    for frame, box in zip(truth_frames, truth_boxes):
        rows = np.flatnonzero(track_frames == frame)
        if rows.size == 0:
            continue
        overlaps = box_iou(box[None], track_boxes[rows])[0]
        if overlaps.max() >= match_iou:
            matched.append(int(track_ids[rows[overlaps.argmax()]]))
    return int(sum(a != b for a, b in zip(matched, matched[1:])))


def nmpjpe(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean joint error after root-centring and the least-squares scale of predicted onto truth, per frame."""
    predicted = predicted - predicted[:, :1]
    truth = truth - truth[:, :1]
    scale = (predicted * truth).sum(axis=(1, 2)) / np.maximum((predicted * predicted).sum(axis=(1, 2)), 1e-12)
    return float(np.linalg.norm(scale[:, None, None] * predicted - truth, axis=-1).mean())


def pa_mpjpe(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(F,) mean joint error per frame after aligning `predicted` (F, J, 3) onto `truth` with the similarity
    transform of least squared error (orthogonal Procrustes with scale, no reflection), in the truth's units."""
    predicted = predicted - predicted.mean(axis=1, keepdims=True)
    truth = truth - truth.mean(axis=1, keepdims=True)
    u, singular, vt = np.linalg.svd(np.einsum("fji,fjk->fik", predicted, truth))
    sign = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)  # a reflection fits best: take the best rotation
    u[:, :, -1] *= sign[:, None]
    singular[:, -1] *= sign
    rotation = u @ vt
    scale = singular.sum(axis=1) / np.maximum((predicted ** 2).sum(axis=(1, 2)), 1e-12)
    aligned = scale[:, None, None] * predicted @ rotation
    return np.linalg.norm(aligned - truth, axis=-1).mean(axis=1)


def pck_counts(predicted: np.ndarray, truth: np.ndarray, heights: np.ndarray,
               thresholds=PCK_THRESHOLDS) -> tuple[np.ndarray, np.ndarray]:
    """Visible joints (J,) of `truth` (F, J, 3; visibility > 0) and those of `predicted` (F, J, >=2) within
    each threshold x the frame's box height (`heights` (F,)): (len(thresholds), J). NaN predictions miss."""
    seen = truth[..., 2] > 0
    distance = np.linalg.norm(predicted[..., :2] - truth[..., :2], axis=-1) / np.maximum(heights, 1.0)[:, None]
    within = distance[None] <= np.asarray(thresholds, np.float64)[:, None, None]
    return seen.sum(axis=0), (within & seen[None]).sum(axis=1)


def sequence_qa(key: str, record: dict, truth: dict, tracks: dict | None, masks, match_iou: float = 0.5) -> SequenceQA:
    truth_masks = truth["masks"]
    visible = np.flatnonzero(truth_masks.reshape(len(truth_masks), -1).any(axis=1))
    truth_frames = truth["frame_index"][visible]
    truth_boxes = truth["boxes"][visible]
    position = {int(f): i for i, f in enumerate(record["frame_index"])}
    rows = [position.get(int(f)) for f in truth_frames]
    extracted = np.asarray([r is not None for r in rows])
    recall_hits = np.zeros(len(visible), bool)
    for i, row in enumerate(rows):
        if row is not None:
            recall_hits[i] = box_iou(record["boxes"][row][None], truth_boxes[i][None])[0, 0] >= match_iou
    recall = float(recall_hits.mean()) if len(visible) else 0.0
    iou = result_iou_64 = None
    if masks is not None:
        ious = np.zeros(len(visible))
        for i, (row, truth_index) in enumerate(zip(rows, visible)):
            if row is None:
                continue
            mask, gt = masks.full(row), truth_masks[truth_index]
            union = np.count_nonzero(mask | gt)
            ious[i] = np.count_nonzero(mask & gt) / union if union else 1.0
        iou = float(ious.mean()) if len(ious) else None
        result_iou_64 = normalised_iou(masks, rows, truth_masks[visible], key)
    switches = 0
    if tracks is not None:
        switches = identity_switches(truth_boxes, truth_frames, tracks["frame_index"], tracks["track_id"],
                                     tracks["boxes"], match_iou)
    result = SequenceQA(key, int(len(visible)), iou, recall, recall >= 0.5, switches,
                        quality_ok=bool(record.get("quality_ok", True)), silhouette_iou_64=result_iou_64)
    both = [(row, int(t)) for row, t in zip(rows, visible) if row is not None]
    if record.get("keypoints_2d") is not None and both:
        predicted = record["keypoints_2d"][[r for r, _ in both]]
        true = truth["keypoints_2d"][[t for _, t in both]]
        seen = true[..., 2] > 0
        if seen.any():
            errors = np.linalg.norm(predicted[..., :2] - true[..., :2], axis=-1)
            heights = (truth["boxes"][[t for _, t in both], 3] - truth["boxes"][[t for _, t in both], 1])
            result.keypoints_2d_error_px = float(errors[seen].mean())
            result.keypoints_2d_error_rel = float((errors / np.maximum(heights, 1)[:, None])[seen].mean())
            visible, hits = pck_counts(np.asarray(predicted, np.float64), np.asarray(true, np.float64), heights)
            result.keypoints_2d_visible, result.keypoints_2d_hits = visible.tolist(), hits.tolist()
    if record.get("keypoints_3d") is not None and both:
        predicted = np.asarray(record["keypoints_3d"][[r for r, _ in both]], np.float64)
        true = np.asarray(truth["keypoints_3d"][[t for _, t in both]], np.float64)
        result.keypoints_3d_nmpjpe = nmpjpe(predicted, true)
        finite = np.isfinite(predicted).all(axis=(1, 2))
        if finite.any():  # metres -> millimetres
            result.keypoints_3d_pa_mpjpe_mm = 1000.0 * float(pa_mpjpe(predicted[finite], true[finite]).mean())
    return result


def normalised_iou(masks, rows: list, truth_masks: np.ndarray, key: str, size: int = 64) -> float | None:
    """Mean IoU of the OpenGait-normalised (size x size, binarised at 128) extracted and true silhouettes over the
    true frames that normalisation keeps; `rows[i]` is the extracted row of true frame i (None: not extracted)."""
    import warnings

    from ragar_data.silhouettes import FewFramesWarning, normalise_sequence

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FewFramesWarning)
        truth, truth_kept = normalise_sequence(truth_masks, size=size, name=key)
    if not len(truth_kept):
        return None
    extracted, extracted_rows = masks.silhouettes(np.arange(len(masks)), size, name=key)
    by_row = {int(row): frame for row, frame in zip(extracted_rows, extracted)}
    ious = np.zeros(len(truth_kept))
    for i, (index, gt) in enumerate(zip(truth_kept, truth)):
        frame = by_row.get(rows[index]) if rows[index] is not None else None
        if frame is not None:
            ours, theirs = frame >= 128, gt >= 128
            union = np.count_nonzero(ours | theirs)
            ious[i] = np.count_nonzero(ours & theirs) / union if union else 1.0
    return float(ious.mean())


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarise(rows: list[SequenceQA]) -> dict:
    frames = sum(r.frames for r in rows)
    with_iou = [r for r in rows if r.silhouette_iou is not None]
    return {
        "sequences": len(rows),
        "mean_silhouette_iou": _mean([r.silhouette_iou for r in rows]),
        "frame_weighted_silhouette_iou": (sum(r.silhouette_iou * r.frames for r in with_iou) /
                                          max(1, sum(r.frames for r in with_iou))) if with_iou else None,
        "min_silhouette_iou": min((r.silhouette_iou for r in with_iou), default=None),
        "mean_silhouette_iou_64": _mean([r.silhouette_iou_64 for r in rows]),
        "subject_track_recall": (sum(r.recall * r.frames for r in rows) / frames) if frames else 0.0,
        "subject_found": sum(r.found for r in rows),
        "identity_switches": sum(r.identity_switches for r in rows),
        "keypoints_2d_error_px": _mean([r.keypoints_2d_error_px for r in rows]),
        "keypoints_2d_error_rel": _mean([r.keypoints_2d_error_rel for r in rows]),
        "keypoints_3d_nmpjpe": _mean([r.keypoints_3d_nmpjpe for r in rows]),
        "keypoints_3d_pa_mpjpe_mm": _mean([r.keypoints_3d_pa_mpjpe_mm for r in rows]),
        "quality_ok": sum(r.quality_ok for r in rows),
        "keypoints_2d_pck": pck_summary(rows),
        "keypoints_3d_pa_mpjpe_mm_per_view": _per_view(rows, lambda r: r.keypoints_3d_pa_mpjpe_mm),
    }


def _view(row: SequenceQA) -> str:
    return f"{SequenceKey.parse(row.key).view:03d}"


def _per_view(rows: list[SequenceQA], value) -> dict | None:
    views = {}
    for row in rows:
        if value(row) is not None:
            views.setdefault(_view(row), []).append(value(row))
    return {view: float(np.mean(values)) for view, values in sorted(views.items())} or None


def _pck_table(visible: np.ndarray, hits: np.ndarray) -> dict:
    return {f"{t:g}": (float(h.sum() / visible.sum()) if visible.sum() else None)
            for t, h in zip(PCK_THRESHOLDS, hits)}


def pck_summary(rows: list[SequenceQA]) -> dict | None:
    """PCK pooled over the visible joints of all sequences: overall, per COCO-17 joint, per view; each a dict
    threshold -> fraction (None where no joint was visible)."""
    from ragar_data.synth.ground_truth import COCO17_JOINTS

    counted = [r for r in rows if r.keypoints_2d_visible is not None]
    if not counted:
        return None
    visible = np.asarray([r.keypoints_2d_visible for r in counted])  # (S, J)
    hits = np.asarray([r.keypoints_2d_hits for r in counted])  # (S, thresholds, J)
    views = np.asarray([_view(r) for r in counted])
    return {
        "thresholds": list(PCK_THRESHOLDS), "relative_to": "true box height",
        "all": _pck_table(visible.sum(axis=0), hits.sum(axis=0)),
        "per_joint": {name: _pck_table(visible[:, j], hits[:, :, j].sum(axis=0)) for j, name in enumerate(COCO17_JOINTS)},
        "per_view": {view: _pck_table(visible[views == view].sum(axis=0), hits[views == view].sum(axis=0))
                     for view in sorted(set(views))},
    }


def run_qa(run_dir: str | Path, ground_truth: str | Path, *, match_iou: float = 0.5, json_path: str | Path | None
           = None, log=None) -> QAReport:
    """Compare the shards (and side data) of `run_dir` with `ground_truth` (the synth output folder or its
    `ground_truth/` subfolder). Writes `json_path` (default RUN/extract/qa.json) and prints a table via `log`."""
    from ragar_data.run_state import current_run
    from ragar_data.shards import ShardDataset
    from ragar_data.synth.ground_truth import ground_truth_relpath, load_ground_truth

    run_dir, ground_truth = Path(run_dir), Path(ground_truth)
    truth_root = ground_truth / "ground_truth" if (ground_truth / "ground_truth").is_dir() else ground_truth
    folder, run_info = current_run(run_dir)
    dataset = ShardDataset(run_dir)
    columns = ["frame_index", "boxes", "keypoints_2d", "keypoints_3d", "quality_ok"]
    rows = []
    for key in dataset.keys():
        truth_path = truth_root / ground_truth_relpath(SequenceKey.parse(key))
        if not truth_path.is_file():
            raise RagarDataError(f"{truth_path}: no ground truth for sequence {key} (is {ground_truth} the synth "
                                 f"output that {run_dir} was extracted from?)")
        truth = load_ground_truth(truth_path)
        record = dataset.read_record(key, columns)
        rows.append(sequence_qa(key, record, truth, folder.read_tracks(key), folder.read_masks(key), match_iou))
    stages = run_stages(run_info)
    summary = summarise(rows)
    summary["silhouette_iou_by_segmenter"] = ({stages["segment"]: summary["mean_silhouette_iou"]}
                                              if summary["mean_silhouette_iou"] is not None else None)
    report = QAReport(str(run_dir), str(ground_truth), rows, summary, stages)
    target = Path(json_path) if json_path else folder.root / "qa.json"
    atomic_write_json(target, report.to_json(), indent=1)
    if log is not None:
        for line in format_table(report):
            log(line)
        log(f"qa written to {target}")
    return report


def run_stages(run_info: dict) -> dict:
    """The preset name and the backend of each stage qa measures, from a run's `run.json`."""
    config = run_info.get("config") or {}
    stages = {"preset": config.get("name")}
    for stage in ("segment", "pose2d", "lift3d"):
        stages[stage] = (config.get(stage) or {}).get("backend")
    return stages


def _fmt(value, digits=3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_table(report: QAReport) -> list[str]:
    posed = any(r.keypoints_2d_error_px is not None or r.keypoints_3d_nmpjpe is not None for r in report.sequences)
    header = f"{'sequence':<22}{'frames':>7}{'IoU':>8}{'recall':>8}{'found':>7}{'switches':>9}"
    lines = [header + (f"{'2D px':>8}{'PCK.05':>8}{'PCK.1':>8}{'PA mm':>8}" if posed else "")]
    for r in report.sequences:
        line = (f"{r.key:<22}{r.frames:>7}{_fmt(r.silhouette_iou):>8}{_fmt(r.recall):>8}"
                f"{'yes' if r.found else 'NO':>7}{r.identity_switches:>9}")
        if posed:
            pck = r.pck() or [None, None]
            line += (f"{_fmt(r.keypoints_2d_error_px, 1):>8}{_fmt(pck[0]):>8}{_fmt(pck[-1]):>8}"
                     f"{_fmt(r.keypoints_3d_pa_mpjpe_mm, 1):>8}")
        lines.append(line)
    s = report.summary
    lines.append(f"mean silhouette IoU {_fmt(s['mean_silhouette_iou'])} (frame-weighted "
                 f"{_fmt(s['frame_weighted_silhouette_iou'])}, min {_fmt(s['min_silhouette_iou'])}; normalised 64x64 "
                 f"{_fmt(s['mean_silhouette_iou_64'])}); subject track "
                 f"recall {_fmt(s['subject_track_recall'])}; subject found in {s['subject_found']}/{s['sequences']}; "
                 f"identity switches {s['identity_switches']}")
    stages = report.stages
    if s.get("silhouette_iou_by_segmenter"):
        lines.append("silhouette IoU by segmenter: " + ", ".join(
            f"{name} {_fmt(value)}" for name, value in s["silhouette_iou_by_segmenter"].items()))
    if s["keypoints_2d_error_px"] is not None:
        lines.append(f"2D keypoints ({stages.get('pose2d')}): error {_fmt(s['keypoints_2d_error_px'], 1)} px "
                     f"({_fmt(s['keypoints_2d_error_rel'])} of box height)")
    if s.get("keypoints_2d_pck"):
        lines.extend(pck_lines(s["keypoints_2d_pck"]))
    if s["keypoints_3d_nmpjpe"] is not None:
        lines.append(f"3D keypoints ({stages.get('lift3d')}): PA-MPJPE {_fmt(s['keypoints_3d_pa_mpjpe_mm'], 1)} mm, "
                     f"N-MPJPE {_fmt(s['keypoints_3d_nmpjpe'])} m")
        per_view = s.get("keypoints_3d_pa_mpjpe_mm_per_view") or {}
        if per_view:
            lines.append("PA-MPJPE (mm) per view: " + ", ".join(f"{v} {_fmt(x, 1)}" for v, x in per_view.items()))
    if s["mean_silhouette_iou"] is None:
        lines.append("silhouette IoU not measured: extract with --keep-masks to keep the full-resolution masks")
    return lines


def comparison_table(reports: list[QAReport]) -> list[str]:
    """The summaries of several runs on the same ground truth side by side, one row per run."""
    lines = [f"{'run':<28}{'preset':>10}{'segment':>12}{'IoU':>7}{'found':>8}{'switches':>9}{'pose2d':>11}"
             f"{'PCK@0.05':>9}{'PCK@0.1':>8}{'lift3d':>11}{'PA-MPJPE mm':>12}"]
    for report in reports:
        s, stages = report.summary, report.stages
        pck = (s.get("keypoints_2d_pck") or {}).get("all") or {}
        lines.append(f"{Path(report.run).name[-28:]:<28}{str(stages.get('preset')):>10}{str(stages.get('segment')):>12}"
                     f"{_fmt(s['mean_silhouette_iou']):>7}{s['subject_found']:>4}/{s['sequences']:<3}"
                     f"{s['identity_switches']:>9}{str(stages.get('pose2d')):>11}{_fmt(pck.get('0.05')):>9}"
                     f"{_fmt(pck.get('0.1')):>8}{str(stages.get('lift3d')):>11}"
                     f"{_fmt(s['keypoints_3d_pa_mpjpe_mm'], 1):>12}")
    return lines


def pck_lines(pck: dict) -> list[str]:
    """PCK table: one row per joint and per view, a column per threshold, the pooled value last."""
    thresholds = [f"{t:g}" for t in pck["thresholds"]]
    lines = ["PCK of 2D keypoints (within a fraction of the true box height, over visible joints)",
             f"{'joint / view':<16}" + "".join(f"{'PCK@' + t:>10}" for t in thresholds)]
    for title, table in (*pck["per_joint"].items(), *((f"view {v}", x) for v, x in pck["per_view"].items()),
                         ("all", pck["all"])):
        lines.append(f"{title:<16}" + "".join(f"{_fmt(table[t]):>10}" for t in thresholds))
    return lines
