"""Attribute recognition metrics on the 45 one-hot RA-GAR labels, as the paper and the PAR literature define them.

Owns: label-based mA, the paper's label-wise accuracy, the instance set (precision, recall, the paper's F1, the
harmonic-mean F1, Jaccard accuracy), per-attribute accuracy and balanced accuracy, breakdowns by covariate
subset, and the majority-class floor predictor. It does not own model outputs or covariate extraction
(`ragar_data.split.covariate_groups`).

Which definitions reproduce the paper's tables (F1 / Precision / Recall / Acc / mA):
- ``f1`` is the mean of per-sample F1 (the VTB / VTF_PAR convention). In all 19 rows of the paper's Tables 3
  and 4 the printed F1 is 0.05 to 1.35 points below 2·P̄·R̄/(P̄+R̄) of the printed P̄ and R̄; the mean of
  per-sample F1 is never above that value (Jensen: the harmonic mean is concave) and fits. The harmonic mean
  of mean precision and mean recall (Rethinking_of_PAR's F1) is kept as ``f1_harmonic``.
- ``acc`` is label-wise accuracy (TP + TN) / 45 per sample, averaged: it reconstructs CLIP-GAR's 84.31 exactly
  from its P and R. The Jaccard instance accuracy of the PAR literature is ``par_accuracy``.

Conventions (those of Rethinking_of_PAR `metrics/pedestrian_metrics.py`):
- a label is predicted positive when its score is strictly above `threshold` (sigmoid scores, 0.5); with
  ``mode="argmax"`` (softmax models) exactly the highest-scoring class of each attribute is positive;
- every ratio has 1e-20 added to its denominator, so 0/0 counts as 0: a label that is never positive in the
  ground truth contributes TPR = 0 to mA (its mA term is TNR / 2, see `never_positive_labels`); a sample with
  no predicted positive has precision, F1 and Jaccard accuracy 0; a sample with no true positive
  (unannotated) has recall 0.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ragar_data.attributes import AttributeSchema, default_schema
from ragar_data.errors import InputError

EPS = 1e-20
MODES = ("sigmoid", "argmax")
# The paper's table order: F1 / Precision / Recall / Acc / mA
HEADLINE = (("F1", "f1"), ("Precision", "precision"), ("Recall", "recall"), ("Acc", "acc"), ("mA", "mA"))


def predicted_labels(scores: np.ndarray, schema: AttributeSchema | None = None, threshold: float = 0.5,
                     mode: str = "sigmoid") -> np.ndarray:
    """(N, 45) bool predictions from scores: thresholded (sigmoid) or one class per attribute (argmax)."""
    schema = schema or default_schema()
    scores = np.asarray(scores)
    if mode == "sigmoid":
        return scores > threshold
    if mode == "argmax":
        return schema.to_one_hot(schema.from_scores(scores)) > 0
    raise InputError(f"mode must be one of {MODES}, got {mode!r}")


def _check_inputs(scores, one_hot, schema: AttributeSchema) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    one_hot = np.asarray(one_hot)
    expected = schema.total_classes
    if scores.ndim != 2 or scores.shape[1] != expected:
        raise InputError(f"scores: expected shape (N, {expected}), got {scores.shape}")
    if one_hot.shape != scores.shape:
        raise InputError(f"one_hot: expected the shape of scores {scores.shape}, got {one_hot.shape}")
    if scores.shape[0] == 0:
        raise InputError("no samples to score")
    if not np.isfinite(scores).all():
        raise InputError("scores contain NaN or infinite values")
    if not np.isin(one_hot, (0, 1)).all():
        raise InputError("one_hot must hold only 0 and 1 (class indices go through AttributeSchema.to_one_hot)")
    return scores, one_hot.astype(bool)


def compute_metrics(scores: np.ndarray, one_hot: np.ndarray, schema: AttributeSchema | None = None,
                    threshold: float = 0.5, mode: str = "sigmoid") -> dict:
    """All metrics of (N, 45) scores against (N, 45) one-hot ground truth.

    Returns floats in [0, 1]:
      ``mA``                 mean over labels of (TPR + TNR) / 2 (label-based);
      ``acc``                the paper's "Acc": label-wise accuracy (TP + TN) / 45 per sample, averaged;
      ``precision``, ``recall``  per sample |pred & true| / |pred| and / |true|, averaged over samples;
      ``f1``                 the paper's F1: per sample 2 P R / (P + R), averaged over samples;
      ``f1_harmonic``        2 P R / (P + R) of the mean precision and mean recall (Rethinking_of_PAR's F1;
                             never below ``f1``);
      ``par_accuracy``       Jaccard instance accuracy |pred & true| / |pred | true|, averaged over samples;
    per-label arrays ``label_tpr``, ``label_tnr``, ``label_mA``, ``label_precision``, ``label_positives``
    (ground-truth positive counts) with ``label_names``; and ``per_attribute`` {name: {accuracy,
    balanced_accuracy, num_samples}} from the argmax of each attribute's block of scores against the true
    class (samples whose block has no single true class are left out; balanced accuracy averages the recall of
    the classes present in the ground truth). Empty-set conventions: see the module docstring.
    """
    schema = schema or default_schema()
    scores, truth = _check_inputs(scores, one_hot, schema)
    predicted = predicted_labels(scores, schema, threshold, mode)

    true_pos = (truth & predicted).sum(0).astype(np.float64)
    true_neg = (~truth & ~predicted).sum(0).astype(np.float64)
    positives = truth.sum(0).astype(np.float64)
    negatives = (~truth).sum(0).astype(np.float64)
    label_tpr = true_pos / (positives + EPS)
    label_tnr = true_neg / (negatives + EPS)
    label_ma = (label_tpr + label_tnr) / 2
    label_precision = true_pos / (predicted.sum(0) + EPS)

    intersection = (truth & predicted).sum(1).astype(np.float64)
    union = (truth | predicted).sum(1).astype(np.float64)
    sample_precision = intersection / (predicted.sum(1) + EPS)
    sample_recall = intersection / (truth.sum(1) + EPS)
    sample_f1 = 2 * sample_precision * sample_recall / (sample_precision + sample_recall + EPS)
    precision, recall = float(sample_precision.mean()), float(sample_recall.mean())

    return {
        "num_samples": int(scores.shape[0]),
        "mode": mode,
        "threshold": float(threshold) if mode == "sigmoid" else None,
        "mA": float(label_ma.mean()),
        "acc": float((truth == predicted).mean()),
        "par_accuracy": float((intersection / (union + EPS)).mean()),
        "precision": precision,
        "recall": recall,
        "f1": float(sample_f1.mean()),
        "f1_harmonic": float(2 * precision * recall / (precision + recall + EPS)),
        "label_names": schema.label_names(),
        "label_tpr": label_tpr,
        "label_tnr": label_tnr,
        "label_mA": label_ma,
        "label_precision": label_precision,
        "label_positives": positives.astype(np.int64),
        "per_attribute": per_attribute_accuracy(scores, truth, schema),
    }


def per_attribute_accuracy(scores: np.ndarray, truth: np.ndarray, schema: AttributeSchema) -> dict:
    """{attribute: {accuracy, balanced_accuracy, num_samples}} from the argmax within each attribute block."""
    results = {}
    for attribute, offset in zip(schema.attributes, schema.offsets):
        block_truth = truth[:, offset:offset + attribute.num_classes]
        known = block_truth.sum(1) == 1
        true_class = block_truth[known].argmax(1)
        predicted_class = scores[known, offset:offset + attribute.num_classes].argmax(1)
        correct = predicted_class == true_class
        present = np.unique(true_class)
        recalls = [correct[true_class == c].mean() for c in present]
        results[attribute.name] = {
            "accuracy": float(correct.mean()) if known.any() else 0.0,
            "balanced_accuracy": float(np.mean(recalls)) if recalls else 0.0,
            "num_samples": int(known.sum()),
        }
    return results


def metrics_by_subset(scores: np.ndarray, one_hot: np.ndarray, groups: Mapping[str, np.ndarray],
                      schema: AttributeSchema | None = None, threshold: float = 0.5,
                      mode: str = "sigmoid") -> dict:
    """{group name: {value: metrics of the samples with that value}}, e.g. groups from `covariate_groups`."""
    scores, one_hot = np.asarray(scores), np.asarray(one_hot)
    results = {}
    for name, values in groups.items():
        values = np.asarray(values)
        if values.shape[0] != scores.shape[0]:
            raise InputError(f"group {name!r}: {values.shape[0]} values for {scores.shape[0]} samples")
        results[name] = {}
        for value in sorted(set(values.tolist())):
            selected = values == value
            results[name][value] = compute_metrics(scores[selected], one_hot[selected], schema, threshold, mode)
    return results


def never_positive_labels(metrics: Mapping) -> list[str]:
    """Names of the labels with no positive sample in the ground truth of ``metrics``: their mA term is capped
    at TNR / 2, so mA over a test split with such labels cannot reach 1."""
    positives = np.asarray(metrics["label_positives"])
    return [name for name, count in zip(metrics["label_names"], positives) if count == 0]


def majority_class_scores(train_one_hot: np.ndarray, n: int, schema: AttributeSchema | None = None) -> np.ndarray:
    """(n, 45) scores of the floor predictor: 1 for each attribute's most frequent training class, else 0.

    Ties go to the lower class index. Scores of 0/1 predict exactly one class per attribute in both modes.
    """
    schema = schema or default_schema()
    counts = np.asarray(train_one_hot, dtype=np.float64).reshape(-1, schema.total_classes).sum(0)
    majority = schema.from_scores(counts[None, :])
    return np.repeat(schema.to_one_hot(majority), n, axis=0).astype(np.float32)


def headline(metrics: Mapping) -> dict[str, float]:
    """The paper's table columns F1 / Precision / Recall / Acc / mA, in percent."""
    return {label: 100.0 * float(metrics[key]) for label, key in HEADLINE}


def to_jsonable(metrics):
    """Metrics with arrays as lists and dict keys as strings, ready for json.dump."""
    if isinstance(metrics, Mapping):
        return {str(k): to_jsonable(v) for k, v in metrics.items()}
    if isinstance(metrics, np.ndarray):
        return metrics.tolist()
    if isinstance(metrics, (list, tuple)):
        return [to_jsonable(v) for v in metrics]
    if isinstance(metrics, np.generic):
        return metrics.item()
    return metrics
