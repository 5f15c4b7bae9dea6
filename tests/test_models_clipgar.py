"""CLIP-GAR heads and losses: the align loss on a hand-checked case, the fusion token layout, the head order."""
import math

import numpy as np
import pytest
import torch

from ragar_data.attributes import default_schema
from ragar_data.models.clipgar import CLIPGAR, FusionHead
from ragar_data.models.deepgaitv2 import DeepGaitV2Encoder
from ragar_data.models.losses import (align_kl_loss, attribute_cross_entropy, masked_bce_loss,
                                      positive_ratio_weights)
from ragar_data.models.scores import argmax_one_hot, block_softmax, known_label_mask
from ragar_data.models.text_encoders import build_text_features

SCHEMA = default_schema()


def _entropy_gap(n):
    """Σ t log t + log n for t = softmax(10 · one-hot) over n entries: KL(t || uniform)."""
    t_true = math.exp(10) / (math.exp(10) + n - 1)
    t_other = 1 / (math.exp(10) + n - 1)
    return t_true * math.log(t_true) + (n - 1) * t_other * math.log(t_other) + math.log(n)


def test_align_loss_hand_checked():
    # Zero similarity: both softmaxes are uniform. Item 0 has class 0 and item 1 class 1 for every attribute.
    # v2t: each row's KL is gap(N_m). t2v: the rows of classes 0 and 1 hold one item each (KL gap(2)); the rows
    # of absent classes get ActionCLIP's uniform target (KL 0). L_m = ½[gap(N_m) + 2·gap(2)/N_m], L_a = mean.
    labels = torch.tensor([[0] * 15, [1] * 15])
    loss = align_kl_loss(torch.zeros(2, 45), torch.tensor(20.0), labels, SCHEMA)
    expected = np.mean([0.5 * (_entropy_gap(n) + 2 * _entropy_gap(2) / n) for n in SCHEMA.num_classes])
    assert float(loss) == pytest.approx(expected, rel=1e-5)


def test_align_loss_rewards_the_right_classes_and_skips_unknown_labels():
    labels = torch.tensor([[0] * 15, [1] * 15])
    right = torch.from_numpy(SCHEMA.to_one_hot(labels.numpy()))
    assert align_kl_loss(right, torch.tensor(20.0), labels, SCHEMA) < align_kl_loss(1 - right, torch.tensor(20.0), labels, SCHEMA)
    unknown_first = labels.clone()
    unknown_first[:, 0] = -1
    without_first = np.mean([0.5 * (_entropy_gap(n) + 2 * _entropy_gap(2) / n) for n in SCHEMA.num_classes[1:]])
    assert float(align_kl_loss(torch.zeros(2, 45), torch.tensor(20.0), unknown_first, SCHEMA)) == pytest.approx(without_first, rel=1e-5)


def test_fusion_token_layout():
    torch.manual_seed(0)
    head = FusionHead(visual_channels=16, text_dim=12, num_classes=45, parts=4, heads=4)
    parts, text = torch.randn(3, 16, 4), torch.randn(45, 12)
    tokens = head.tokens(parts, text)
    assert tokens.shape == (3, 45 + 4, 16)
    text_tokens = (text @ head.phi.weight[:, :, 0].T + head.phi.bias) + head.e_text[0]
    for b in range(3):
        torch.testing.assert_close(tokens[b, :45], text_tokens)
        torch.testing.assert_close(tokens[b, 45:], parts[b].T + head.e_vis[0] + head.e_pos[0])


def test_head_k_reads_token_k_of_sentence_k():
    torch.manual_seed(0)
    head = FusionHead(visual_channels=16, text_dim=12, num_classes=45, parts=4, heads=4).eval()
    parts, text = torch.randn(2, 16, 4), torch.randn(45, 12)
    with torch.no_grad():
        base = head(parts, text)
        for k in (0, 7, 44):
            changed_text = text.clone()
            changed_text[k] += 5.0
            # only through attention can other logits move; with the encoder bypassed exactly logit k moves
            encoder, head.encoder = head.encoder, torch.nn.Identity()
            before, after = head(parts, text), head(parts, changed_text)
            head.encoder = encoder
            moved = (before - after).abs().amax(0) > 1e-6
            assert moved.nonzero().flatten().tolist() == [k]
    assert base.shape == (2, 45)


def test_bce_label_order_is_the_schema_one_hot_order():
    labels = torch.tensor([[a.num_classes - 1 for a in SCHEMA.attributes], [0] * 15])
    one_hot = torch.from_numpy(SCHEMA.to_one_hot(labels.numpy()))
    names = SCHEMA.label_names()
    assert names[int(one_hot[0].nonzero()[0])] == f"{SCHEMA.attributes[0].name}={SCHEMA.attributes[0].classes[-1]}"
    confident = one_hot * 40 - 20  # logit +20 on the schema's positive labels, -20 elsewhere
    assert float(masked_bce_loss(confident, one_hot, labels, SCHEMA)) < 1e-6
    shuffled = confident[:, torch.randperm(45, generator=torch.Generator().manual_seed(1))]
    assert float(masked_bce_loss(shuffled, one_hot, labels, SCHEMA)) > 1.0


def test_bce_and_ce_ignore_unknown_attributes():
    labels = torch.tensor([[0] * 15])
    labels[0, 3] = -1
    mask = known_label_mask(labels, SCHEMA)
    assert mask.sum() == 45 - SCHEMA.num_classes[3]
    one_hot = torch.from_numpy(SCHEMA.to_one_hot(labels.numpy()))
    logits = one_hot * 40 - 20
    offset = SCHEMA.offsets[3]
    logits[0, offset: offset + SCHEMA.num_classes[3]] = 50.0  # garbage on the unknown block
    assert float(masked_bce_loss(logits, one_hot, labels, SCHEMA)) < 1e-6
    assert float(attribute_cross_entropy(logits, labels, SCHEMA)) < 1e-6


def test_positive_ratio_weights_and_weighted_bce_by_hand():
    # Four items: attribute 0 is class 0 for three of them and class 1 for one; attribute 1 unknown on item 3.
    labels = torch.zeros(4, 15, dtype=torch.long)
    labels[3, 0] = 1
    labels[3, 1] = -1
    one_hot = SCHEMA.to_one_hot(labels.numpy())
    positive, negative = positive_ratio_weights(one_hot, labels.numpy(), SCHEMA)
    r = torch.zeros(45)
    r[SCHEMA.offsets[0]], r[SCHEMA.offsets[0] + 1] = 0.75, 0.25
    r[SCHEMA.offsets[1]] = 1.0  # the three items whose attribute 1 is known all have class 0
    for m in range(2, 15):
        r[SCHEMA.offsets[m]] = 1.0
    assert torch.allclose(positive, torch.exp(1 - r)) and torch.allclose(negative, torch.exp(r))
    # zero logits: every term is log 2, weighted by its side's weight, averaged over the known terms
    logits = torch.zeros(4, 45)
    target = torch.from_numpy(one_hot)
    mask = known_label_mask(labels, SCHEMA)
    expected = (math.log(2) * (target * positive + (1 - target) * negative) * mask).sum() / mask.sum()
    weighted = masked_bce_loss(logits, target, labels, SCHEMA, (positive, negative))
    assert float(weighted) == pytest.approx(float(expected), rel=1e-6)
    assert float(masked_bce_loss(logits, target, labels, SCHEMA)) == pytest.approx(math.log(2), rel=1e-6)
    with pytest.raises(ValueError, match="no training item"):
        positive_ratio_weights(one_hot[:, :], np.full((4, 15), -1), SCHEMA)


def test_cross_entropy_matches_torch_per_block():
    torch.manual_seed(0)
    logits = torch.randn(3, 45) * 3
    labels = torch.tensor([[0] * 15, [1] * 15, [a.num_classes - 1 for a in SCHEMA.attributes]])
    expected = np.mean([
        float(torch.nn.functional.cross_entropy(logits[b, o:o + n][None], labels[b, m][None]))
        for b in range(3) for m, (o, n) in enumerate(zip(SCHEMA.offsets, SCHEMA.num_classes))
    ])
    assert float(attribute_cross_entropy(logits, labels, SCHEMA)) == pytest.approx(expected, rel=1e-5)


def test_block_softmax_and_argmax():
    torch.manual_seed(0)
    logits = torch.randn(4, 45)
    probabilities = block_softmax(logits, SCHEMA)
    offsets, counts = SCHEMA.offsets, SCHEMA.num_classes
    for o, n in zip(offsets, counts):
        torch.testing.assert_close(probabilities[:, o:o + n], logits[:, o:o + n].softmax(-1))
    decisions = argmax_one_hot(logits, SCHEMA)
    np.testing.assert_array_equal(SCHEMA.from_scores(decisions.numpy()), SCHEMA.from_scores(logits.numpy()))
    assert decisions.sum(1).tolist() == [15.0] * 4
    assert argmax_one_hot(torch.zeros(1, 45), SCHEMA).sum() == 15  # ties keep one class per attribute


def test_clipgar_stages_and_frozen_visual_in_fusion():
    torch.manual_seed(0)
    text = build_text_features("learned", SCHEMA.sentences(), dim=12)
    model = CLIPGAR(DeepGaitV2Encoder((1, 1, 1, 1), (4, 8, 8, 16), parts=4), text, SCHEMA, fusion_heads=4)
    silhouettes = torch.rand(2, 4, 64, 44)
    assert model(silhouettes, stage="align").shape == (2, 45)
    for parameter in model.visual.parameters():
        parameter.requires_grad_(False)
    logits = model(silhouettes, stage="fusion")
    logits.sum().backward()
    assert logits.shape == (2, 45)
    assert model.fusion_head.head_weight.grad is not None
    assert all(p.grad is None for p in model.visual.parameters())
    with pytest.raises(ValueError, match="stage"):
        model(silhouettes, stage="other")
