"""Text encoder T of CLIP-GAR: the 45 class sentences of the schema encoded once, frozen, cached on disk.

Backends (``TextConfig.backend``):
- ``clip``: the paper's choice, OpenAI CLIP RN50 through open_clip's ``RN50-quickgelu`` (plain ``RN50`` uses
  GELU and silently differs from OpenAI's weights), loaded from a local weights file (OpenAI's TorchScript
  ``RN50.pt`` or an open_clip state dict); d = 1024.
- ``open_clip:<model>``: any open_clip model name, again from a local weights file.
- ``learned``: no pretrained prior; 45 learnable embeddings (d = ``dim``), trained with V in the align stage
  and frozen afterwards. For ablation and for machines without CLIP weights.

TorchScript policy: OpenAI's `.pt` files are TorchScript archives, and loading TorchScript runs the code stored
in the archive (`torch.jit.load`). Such a file is accepted only when its sha256 is one OpenAI published (the
digest in the file's download URL, from the weights registry and open_clip's list of OpenAI weights); any
other TorchScript file is refused before it is opened. Other weights files load with
`torch.load(weights_only=True)` (open_clip's `weights_only`).

Features are L2-normalised (CLIP's convention; similarities are cosines either way). The cache file is keyed
by model name, the weights file's sha256 and the sentences' sha256, so a changed schema or weights file is
never served stale features. Nothing here downloads: a missing weights file raises `ModelUnavailable`
naming the path expected.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import torch
from torch import nn

from ragar_data import weights as registry
from ragar_data.atomic import atomic_torch_save
from ragar_data.errors import ConfigError, InputError, ModelUnavailable, RagarDataError

CLIP_MODEL = "RN50-quickgelu"


class UnsafeWeightsError(RagarDataError):
    """A weights file would run code when loaded and is not one of the official files."""

# The weights registry's `clip-rn50` entry (OpenAI's RN50.pt): <models_dir>/clip-rn50/RN50.pt, where the models
# directory is $RAGAR_MODELS_DIR or the user cache.
DEFAULT_CLIP_WEIGHTS = registry.get_spec("clip-rn50").path(registry.default_models_dir())
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "ragar-data" / "text_features"


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def sentences_sha256(sentences: list[str]) -> str:
    return hashlib.sha256("\n".join(sentences).encode()).hexdigest()


def parse_backend(backend: str) -> tuple[str, str | None]:
    """``"clip"`` -> ("open_clip", RN50-quickgelu); ``"open_clip:ViT-B-32"`` -> ("open_clip", "ViT-B-32");
    ``"learned"`` -> ("learned", None)."""
    if backend == "clip":
        return "open_clip", CLIP_MODEL
    if backend.startswith("open_clip:") and len(backend) > len("open_clip:"):
        return "open_clip", backend.split(":", 1)[1]
    if backend == "learned":
        return "learned", None
    raise ConfigError(f"unknown text backend {backend!r}; expected 'clip', 'open_clip:<model>' or 'learned'")


def _is_torchscript(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("constants.pkl") or "/code/" in name for name in archive.namelist())
    except zipfile.BadZipFile:
        return False


def official_torchscript_digests() -> set[str]:
    """sha256 of OpenAI's TorchScript CLIP files: the registry's pins and the digests in OpenAI's download URLs
    that open_clip lists (OpenAI's own clip.py checks the same digests)."""
    import open_clip.pretrained as pretrained

    digests = {f.sha256 for spec in registry.load_registry().values() if spec.format == "torchscript"
               for f in spec.files if f.sha256}
    for model, tag in pretrained.list_pretrained():
        url = pretrained.get_pretrained_cfg(model, tag).get("url") or ""
        if "openaipublic" in url:
            digests.add(url.rsplit("/", 2)[-2])
    return digests


def check_torchscript_trusted(weights: Path) -> None:
    """Refuse a TorchScript archive whose sha256 is not one of OpenAI's: loading it would run its code."""
    digest = file_sha256(weights)
    if digest not in official_torchscript_digests():
        raise UnsafeWeightsError(
            f"{weights}: a TorchScript archive with sha256 {digest}, not one of OpenAI's published CLIP files. "
            "Loading TorchScript runs the code stored in it, so ragar-data loads only the official files; "
            "use the official RN50.pt (`ragar-data models download clip-rn50`) or an open_clip state dict")


def encode_sentences_open_clip(model_name: str, weights: Path, sentences: list[str]) -> torch.Tensor:
    """Encode sentences with an open_clip model loaded from a local file; returns (N, d) float32, L2-normalised."""
    if not weights.is_file():
        raise ModelUnavailable(
            f"text encoder {model_name}: weights file not found at {weights}. Put OpenAI's RN50.pt (or the "
            f"open_clip checkpoint of {model_name}) there, or set text.weights=PATH, or use text.backend=learned"
        )
    import open_clip

    torchscript = _is_torchscript(weights)
    if torchscript:
        check_torchscript_trusted(weights)  # see the module docstring: TorchScript runs code when loaded
    model = open_clip.create_model(model_name, pretrained=str(weights), weights_only=not torchscript, device="cpu")
    return encode_with_model(model, open_clip.get_tokenizer(model_name), sentences)


class ClipTextEncoder:
    """CLIP-GAR's frozen text encoder as a weights-registry backend (`ragar-data models check clip-rn50`)."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, **options):
        if options:
            raise ConfigError(f"ClipTextEncoder: unknown options {sorted(options)}")
        spec, self.path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                           default=None if weights else "clip-rn50", task="text")
        self.name = spec.name if spec else self.path.name

    def encode(self, sentences: list[str]) -> torch.Tensor:
        return encode_sentences_open_clip(CLIP_MODEL, self.path, sentences)


@torch.no_grad()
def encode_with_model(model: nn.Module, tokenizer, sentences: list[str]) -> torch.Tensor:
    model.eval()
    tokens = tokenizer(sentences)
    features = model.encode_text(tokens).float()
    return nn.functional.normalize(features, dim=-1)


def require_text_weights(backend: str, weights: str | Path | None = None) -> Path | None:
    """The local weights file of a pretrained text backend (None for ``learned``), checked before any other work:
    a missing file raises `ModelUnavailable` saying how to train without it or where to put it."""
    kind, model_name = parse_backend(backend)
    if kind != "open_clip":
        return None
    path = Path(weights).expanduser() if weights else DEFAULT_CLIP_WEIGHTS
    if path.is_file():
        return path
    if weights is None and model_name == CLIP_MODEL:
        get = (f"`ragar-data models download clip-rn50` (writes {path}; $RAGAR_MODELS_DIR sets another models "
               "folder)")
    else:
        get = f"put OpenAI's RN50.pt or the open_clip checkpoint of {model_name} at {path}"
    raise ModelUnavailable(
        f"text encoder {model_name}: weights file not found at {path}. Either train without it: --config smoke "
        f"(a tiny CPU run) or --set text.backend=learned; or get it: {get}, or --set text.weights=PATH")


def cached_text_features(
    backend: str, sentences: list[str], weights: str | Path | None = None, cache_dir: str | Path | None = None
) -> torch.Tensor:
    """The frozen (45, d) text features of a pretrained backend, computed once and cached on disk."""
    kind, model_name = parse_backend(backend)
    if kind != "open_clip":
        raise InputError(f"backend {backend!r} has no pretrained features to cache")
    weights = require_text_weights(backend, weights)
    cache_dir = Path(cache_dir).expanduser() if cache_dir else DEFAULT_CACHE_DIR
    key = hashlib.sha256(
        f"{model_name}|{file_sha256(weights)}|{sentences_sha256(sentences)}".encode()
    ).hexdigest()[:24]
    cache_path = cache_dir / f"{model_name}-{key}.pt"
    if cache_path.is_file():
        cached = torch.load(cache_path, map_location="cpu", weights_only=True)
        if cached.get("sentences") == sentences:
            return cached["features"]
    features = encode_sentences_open_clip(model_name, weights, sentences)
    atomic_torch_save(cache_path, {"features": features, "sentences": sentences, "model": model_name})
    return features


class TextFeatures(nn.Module):
    """The 45 class text features f_t (45, d): a frozen buffer (pretrained backends) or learned embeddings."""

    def __init__(self, features: torch.Tensor, learned: bool):
        super().__init__()
        self.learned = learned
        if learned:
            self.embeddings = nn.Parameter(features.clone())
        else:
            self.register_buffer("embeddings", features.clone())

    @property
    def dim(self) -> int:
        return self.embeddings.shape[1]

    def forward(self) -> torch.Tensor:
        return nn.functional.normalize(self.embeddings, dim=-1)


def build_text_features(
    backend: str, sentences: list[str], weights: str | Path | None = None, cache_dir: str | Path | None = None,
    dim: int = 1024, seed: int = 0,
) -> TextFeatures:
    kind, _ = parse_backend(backend)
    if kind == "learned":
        generator = torch.Generator().manual_seed(seed)
        return TextFeatures(torch.randn(len(sentences), dim, generator=generator), learned=True)
    return TextFeatures(cached_text_features(backend, sentences, weights, cache_dir), learned=False)
