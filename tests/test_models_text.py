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


def test_missing_weights_name_the_expected_path(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere" / "RN50.pt"
    with pytest.raises(ModelUnavailable, match=str(missing)):
        cached_text_features("clip", SENTENCES, missing, tmp_path)
    default = tmp_path / "models" / "RN50.pt"
    monkeypatch.setattr(text_encoders, "DEFAULT_CLIP_WEIGHTS", default)
    with pytest.raises(ModelUnavailable, match=str(default)):
        cached_text_features("clip", SENTENCES, None, tmp_path)


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


def test_torchscript_archives_are_recognised(tmp_path):
    # OpenAI's RN50.pt is a TorchScript archive: it must be opened with weights_only=False.
    scripted = tmp_path / "scripted.pt"
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(scripted))
    plain = tmp_path / "plain.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), plain)
    assert text_encoders._is_torchscript(scripted)
    assert not text_encoders._is_torchscript(plain)


def test_clip_weights_through_the_registry(random_rn50, tmp_path):
    from ragar_data.pipelines.backends.loading import check_models

    model, path = random_rn50
    assert dict((n, s) for n, s, _ in check_models(tmp_path, names=["clip-rn50"]))["clip-rn50"] == "missing"
    (tmp_path / "clip-rn50").mkdir()
    (tmp_path / "clip-rn50" / "RN50.pt").write_bytes(path.read_bytes())
    [(name, status, detail)] = list(check_models(tmp_path, names=["clip-rn50"]))
    assert status == "ok" and "(45, 1024)" in detail
