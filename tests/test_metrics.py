"""Metrics against hand-computed values on a 2-attribute (2 + 3 classes) schema, and their edge cases."""
import numpy as np
import pytest

from ragar_data.attributes import Attribute, AttributeSchema, default_schema
from ragar_data.metrics import (compute_metrics, headline, majority_class_scores, metrics_by_subset,
                                never_positive_labels, predicted_labels, to_jsonable)
from ragar_data.split import covariate_groups


def small_schema() -> AttributeSchema:
    def attribute(id, name, classes):
        return Attribute(id, name, name, "is", "global", "static", tuple(classes))

    return AttributeSchema(1, "The {subject} of this pedestrian silhouette {verb} {value}.",
                           (attribute("A1", "a", ["a0", "a1"]), attribute("A2", "b", ["b0", "b1", "b2"])))


# labels: a0 a1 | b0 b1 b2 ; class b2 is never positive in the ground truth
TRUTH = np.array([
    [1, 0, 1, 0, 0],  # a0, b0
    [0, 1, 0, 1, 0],  # a1, b1
    [1, 0, 0, 1, 0],  # a0, b1
])
SCORES = np.array([
    [0.9, 0.2, 0.6, 0.7, 0.1],   # predicts a0, b0, b1
    [0.1, 0.3, 0.2, 0.4, 0.45],  # predicts nothing
    [0.8, 0.1, 0.1, 0.9, 0.3],   # predicts a0, b1 (exact)
])


def test_hand_computed_sigmoid_metrics():
    m = compute_metrics(SCORES, TRUTH, small_schema())
    # per label (TPR, TNR): a0 (1, 1), a1 (0, 1), b0 (1, 1), b1 (1/2, 0), b2 (0 never positive, 1)
    np.testing.assert_allclose(m["label_tpr"], [1, 0, 1, 0.5, 0])
    np.testing.assert_allclose(m["label_tnr"], [1, 1, 1, 0, 1])
    assert m["mA"] == pytest.approx((1 + 0.5 + 1 + 0.25 + 0.5) / 5)
    # label-wise accuracy: 4/5, 3/5, 5/5 correct labels
    assert m["acc"] == pytest.approx(12 / 15)
    # per sample P = 2/3, 0 (no predicted positive), 1; R = 1, 0, 1; Jaccard 2/3, 0, 1; F1 0.8, 0, 1
    assert m["precision"] == pytest.approx(5 / 9)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["par_accuracy"] == pytest.approx(5 / 9)
    # the paper's F1 averages the per-sample F1; the harmonic mean of mean P and mean R is 20/33
    assert m["f1"] == pytest.approx(1.8 / 3)
    assert m["f1_harmonic"] == pytest.approx(2 * (5 / 9) * (2 / 3) / (5 / 9 + 2 / 3))
    assert m["f1_harmonic"] == pytest.approx(20 / 33)
    np.testing.assert_array_equal(m["label_positives"], [2, 1, 1, 2, 0])
    # per attribute, argmax within the block: a all right; b right only on sample 2
    assert m["per_attribute"]["a"] == {"accuracy": 1.0, "balanced_accuracy": 1.0, "num_samples": 3}
    assert m["per_attribute"]["b"]["accuracy"] == pytest.approx(1 / 3)
    # classes present: b0 recall 0, b1 recall 1/2
    assert m["per_attribute"]["b"]["balanced_accuracy"] == pytest.approx(0.25)


def test_label_never_positive_scores_half_its_tnr():
    truth = np.array([[1, 0, 1, 0, 0], [0, 1, 1, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.9, 0.1, 0.9], [0.1, 0.9, 0.9, 0.1, 0.1]])
    m = compute_metrics(scores, truth, small_schema())
    assert m["label_tpr"][3] == 0 and m["label_tnr"][3] == 1 and m["label_mA"][3] == pytest.approx(0.5)
    assert m["label_tpr"][4] == 0 and m["label_tnr"][4] == pytest.approx(0.5)
    assert m["label_mA"][4] == pytest.approx(0.25)


def test_paper_metrics_on_the_ragar_schema_by_hand():
    # three sequences of 15 true classes among 45 labels:
    #   A: 12 attributes right, 3 wrong  -> TP 12, FP 3, TN 27: P = R = F1 = 0.8, Acc = 39/45
    #   B: all 15 right                  -> P = R = F1 = 1, Acc = 1
    #   C: 5 right, nothing else         -> TP 5, FP 0, TN 30: P = 1, R = 1/3, F1 = 0.5, Acc = 35/45
    schema = default_schema()
    truth_classes = np.zeros((3, 15), np.int64)
    truth = schema.to_one_hot(truth_classes)
    wrong = truth_classes.copy()
    wrong[0, :3] = 1
    scores = schema.to_one_hot(wrong).astype(np.float64)
    scores[2] = np.where(np.arange(45) < schema.offsets[5], scores[2], 0.0)
    m = compute_metrics(scores, truth, schema)
    assert m["precision"] == pytest.approx((0.8 + 1 + 1) / 3)
    assert m["recall"] == pytest.approx((0.8 + 1 + 1 / 3) / 3)
    assert m["f1"] == pytest.approx((0.8 + 1 + 0.5) / 3)
    precision, recall = 2.8 / 3, (1.8 + 1 / 3) / 3
    assert m["f1_harmonic"] == pytest.approx(2 * precision * recall / (precision + recall))
    assert m["acc"] == pytest.approx((39 + 45 + 35) / 135)
    assert m["par_accuracy"] == pytest.approx((12 / 18 + 1 + 5 / 15) / 3)
    assert headline(m)["F1"] == pytest.approx(100 * m["f1"])


def test_paper_f1_never_exceeds_the_harmonic_mean_f1():
    # the paper's printed F1 is below 2PR/(P+R) of its printed P and R in all 19 rows: the mean of a concave
    # function is at most the function of the means
    rng = np.random.default_rng(3)
    for _ in range(20):
        scores, truth = rng.random((30, 5)), (rng.random((30, 5)) > 0.6).astype(int)
        m = compute_metrics(scores, truth, small_schema())
        assert m["f1"] <= m["f1_harmonic"] + 1e-12


def test_never_positive_labels_are_named():
    m = compute_metrics(SCORES, TRUTH, small_schema())
    assert never_positive_labels(m) == [m["label_names"][4]]
    assert never_positive_labels(compute_metrics(TRUTH, np.vstack([TRUTH[:2], [[0, 1, 0, 0, 1]]]),
                                                 small_schema())) == []


def test_sample_without_predicted_positive_counts_zero_precision():
    m = compute_metrics(np.zeros((1, 5)), TRUTH[:1], small_schema())
    assert m["precision"] == 0 and m["recall"] == 0 and m["par_accuracy"] == 0 and m["f1"] == 0
    # the three negatives are still right label-wise
    assert m["acc"] == pytest.approx(3 / 5)


def test_threshold_is_strict():
    scores = np.where(TRUTH == 1, 0.5, 0.0)
    assert not predicted_labels(scores, small_schema()).any()
    assert compute_metrics(scores, TRUTH, small_schema(), threshold=0.49)["f1"] == pytest.approx(1.0)


def test_argmax_mode_predicts_one_class_per_attribute():
    m = compute_metrics(SCORES, TRUTH, small_schema(), mode="argmax")
    # predictions: [a0, b1], [a1, b2], [a0, b1]
    np.testing.assert_array_equal(predicted_labels(SCORES, small_schema(), mode="argmax"),
                                  [[1, 0, 0, 1, 0], [0, 1, 0, 0, 1], [1, 0, 0, 1, 0]])
    assert m["acc"] == pytest.approx(11 / 15)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["threshold"] is None


def test_perfect_and_majority_predictors_on_the_ragar_schema():
    schema = default_schema()
    rng = np.random.default_rng(0)
    classes = np.stack([rng.integers(0, n, size=40) for n in schema.num_classes], axis=1)
    one_hot = schema.to_one_hot(classes)
    perfect = compute_metrics(one_hot, one_hot)
    # a label never positive in these 40 samples scores TNR / 2 = 0.5 even when predicted perfectly
    assert perfect["mA"] == pytest.approx(np.where(one_hot.sum(0) > 0, 1.0, 0.5).mean())
    assert perfect["acc"] == 1.0 and perfect["f1"] == pytest.approx(1.0)
    floor = majority_class_scores(one_hot, 40)
    assert floor.shape == (40, 45) and (floor.reshape(40, -1).sum(1) == 15).all()
    m = compute_metrics(floor, one_hot)
    # one class predicted per attribute: every label is positive for all or no samples, so mA is 0.5 exactly
    assert m["mA"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(m["recall"])  # 15 predicted, 15 true per sample
    assert set(headline(m)) == {"F1", "Precision", "Recall", "Acc", "mA"}


def test_metrics_by_covariate_subset():
    keys = ["001-c0-nm-01-000", "001-c1-bg-01-036", "002-c0-nm-02-036"]
    groups = covariate_groups(keys)
    assert groups["condition"].tolist() == ["nm", "bg", "nm"]
    assert groups["combination"].tolist() == ["real", "simulated", "real"]
    by = metrics_by_subset(SCORES, TRUTH, groups, small_schema())
    assert set(by["view"]) == {0, 36} and by["condition"]["nm"]["num_samples"] == 2
    alone = compute_metrics(SCORES[[0, 2]], TRUTH[[0, 2]], small_schema())
    assert by["condition"]["nm"]["f1"] == pytest.approx(alone["f1"])
    assert by["view"][36]["precision"] == pytest.approx((0 + 1) / 2)
    import json

    json.dumps(to_jsonable(by))  # arrays and int keys serialise


@pytest.mark.parametrize("scores, truth, message", [
    (np.zeros((2, 4)), np.zeros((2, 4)), "expected shape"),
    (np.zeros((2, 5)), np.zeros((3, 5)), "one_hot"),
    (np.zeros((2, 5)), np.full((2, 5), 2), "only 0 and 1"),
    (np.full((2, 5), np.nan), np.zeros((2, 5)), "NaN"),
    (np.zeros((0, 5)), np.zeros((0, 5)), "no samples"),
])
def test_bad_inputs_are_refused(scores, truth, message):
    with pytest.raises(ValueError, match=message):
        compute_metrics(scores, truth, small_schema())
