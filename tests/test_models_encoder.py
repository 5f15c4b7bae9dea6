"""The visual encoder V (DeepGaitV2-3D-like) and the align head θ: shapes and the parameter count."""
import pytest
import torch

from ragar_data.models.clipgar import AlignHead
from ragar_data.models.deepgaitv2 import (
    DeepGaitV2Encoder, horizontal_pooling, parameter_count, upstream_backbone_parameter_count,
)

TINY = dict(layers=(1, 1, 1, 1), channels=(4, 8, 8, 16))


def test_default_encoder_matches_opengait_backbone_count():
    encoder = DeepGaitV2Encoder()  # paper default: [1, 2, 2, 1], [64, 128, 256, 512], 8 parts
    assert parameter_count(encoder) == upstream_backbone_parameter_count() == 18_611_904


@pytest.mark.parametrize("layers", [(1, 1, 1, 1), (1, 2, 2, 1), (2, 3, 1, 2)])
def test_count_arithmetic_follows_the_module_for_other_depths(layers):
    channels = (4, 8, 16, 16)
    assert parameter_count(DeepGaitV2Encoder(layers, channels)) == upstream_backbone_parameter_count(layers, channels)


@pytest.mark.parametrize("parts", [1, 4, 8, 16])
def test_shapes_through_encoder(parts):
    torch.manual_seed(0)
    encoder = DeepGaitV2Encoder(parts=parts, **TINY).eval()
    silhouettes = torch.rand(2, 6, 64, 44)
    maps = encoder.feature_maps(silhouettes)
    assert maps.shape == (2, 16, 6, 16, 11)  # frames kept, height/width quartered by stages 2 and 3
    assert encoder(silhouettes).shape == (2, 16, parts)


def test_padded_frames_do_not_enter_temporal_max():
    torch.manual_seed(0)
    encoder = DeepGaitV2Encoder(parts=4, **TINY).eval()
    silhouettes = torch.rand(1, 5, 64, 44)
    with torch.no_grad():
        maps = encoder.feature_maps(silhouettes)
        expected = horizontal_pooling(maps[:, :, :3].amax(2), 4)
        masked = encoder(silhouettes, lengths=torch.tensor([3]))
        unmasked = encoder(silhouettes)
    torch.testing.assert_close(masked, expected)
    assert not torch.allclose(masked, unmasked)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="parts"):
        DeepGaitV2Encoder(parts=3)
    with pytest.raises(ValueError, match="batch, frames, height, width"):
        DeepGaitV2Encoder(**TINY)(torch.rand(2, 1, 6, 64, 44))


def test_theta_maps_parts_to_text_space_and_mean_of_part_cosines():
    torch.manual_seed(0)
    head = AlignHead(visual_channels=16, text_dim=12)
    parts = torch.randn(3, 16, 4)
    text = torch.randn(45, 12)
    similarity = head(parts, text)
    assert similarity.shape == (3, 45)
    projected = head.theta(parts)  # (3, 12, 4)
    cosines = torch.nn.functional.cosine_similarity(projected.permute(0, 2, 1)[:, :, None, :],
                                                    text[None, None, :, :], dim=-1)  # (3, 4, 45)
    torch.testing.assert_close(similarity, cosines.mean(1))
    pooled = AlignHead(16, 12, part_similarity="pooled")
    pooled.load_state_dict(head.state_dict())
    expected = torch.nn.functional.cosine_similarity(projected.mean(-1)[:, None, :], text[None], dim=-1)
    torch.testing.assert_close(pooled(parts, text), expected)
    assert float(head.scale()) == pytest.approx(1 / 0.07, rel=1e-5)
