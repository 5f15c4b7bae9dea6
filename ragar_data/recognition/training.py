"""Identity training and evaluation on a protocol: train one model, extract features, score both columns.

Owns: the CPU-sized schedule (`IdentityTrainConfig`), the training loop (triplet + cross-entropy with the P x K
sampler), the checkpoint file, feature extraction of the gallery and probes, and the Table 7 report of one
model (Rank-1 and mAP without and with attributes, per probe condition and view). Does not own the protocol
draw (`protocol`), the losses (`losses`) or the metrics (`retrieval`).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ragar_data.atomic import atomic_torch_save
from ragar_data.errors import InputError
from ragar_data.identity import SequenceKey
from ragar_data.recognition import retrieval
from ragar_data.recognition.heads import build_identity_model, identity_setup
from ragar_data.recognition.losses import TRIPLET_MARGIN, part_cross_entropy, triplet_loss
from ragar_data.recognition.protocol import IdentityProtocol, canonical_json
from ragar_data.recognition.sampler import TripletBatches

CHECKPOINT_FORMAT = "ragar-identity-checkpoint/1"
ATTRIBUTE_SCALING = ("the 45-dim one-hot label vector is multiplied by s = median per-part L2 norm of the "
                     "gallery features / sqrt(15) (15 ones per vector), so it has the norm of a typical part "
                     "feature and weighs about as much as the gait feature in each part's distance")


@dataclass
class IdentityTrainConfig:
    """The schedule. Upstream: 60,000-80,000 iterations, P x K = 8 x 16 (GaitSet, GaitPart), 8 x 8 (GaitGL),
    8 x 16 / 32 x 4 (GaitBase, DeepGaitV2), 30 frames; the defaults here are a CPU-sized cut of that."""

    model: str = "gaitbase"
    iterations: int = 300
    identities: int = 8  # P
    per_identity: int = 4  # K
    frames: int = 30
    lr: float | None = None  # None: the model's upstream learning rate
    channel_divisor: int = 1  # > 1 narrows the 512-channel models (GaitBase, DeepGaitV2-P3D) for a CPU
    seed: int = 0
    device: str = "cpu"
    log_every: int = 50


def protocol_digest(protocol: IdentityProtocol) -> str:
    return hashlib.sha256(canonical_json(protocol).encode()).hexdigest()


def _optimizer(model: torch.nn.Module, config: IdentityTrainConfig):
    setup = identity_setup(config.model)
    lr = config.lr if config.lr is not None else setup.lr
    if setup.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=setup.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=setup.weight_decay)


def _loss(model, batch: dict, labels: torch.Tensor, ce_weight: float, ce_scale: float):
    embeddings, logits = model(batch["silhouettes"], batch["lengths"])
    loss = triplet_loss(embeddings, labels, TRIPLET_MARGIN)
    if logits is not None and ce_weight:
        loss = loss + ce_weight * part_cross_entropy(logits, labels, ce_scale)
    return loss


def train_identity(dataset_dir: str | Path, protocol: IdentityProtocol, config: IdentityTrainConfig,
                   checkpoint: str | Path, log=print) -> dict:
    """Train ``config.model`` on the protocol's training subjects (their drawn sequences) and write the
    checkpoint; returns its summary (losses, seconds)."""
    from torch.utils.data import DataLoader

    from ragar_data.loaders import SilhouetteDataset, collate

    torch.manual_seed(config.seed)
    subjects = list(protocol.train_subjects)
    model = build_identity_model(config.model, len(subjects), config.channel_divisor).to(config.device)
    data = SilhouetteDataset(dataset_dir, keys=protocol.train_keys(), sampling="fixed_ordered",
                             frames=config.frames, seed=config.seed, progress=False)
    index_of = {subject: i for i, subject in enumerate(subjects)}
    item_labels = [index_of[record["subject"]] for record in data.records]
    batches = TripletBatches(item_labels, config.identities, config.per_identity, config.iterations, config.seed)
    loader = DataLoader(data, batch_sampler=batches, collate_fn=collate, num_workers=0)
    optimizer = _optimizer(model, config)
    setup = identity_setup(config.model)
    model.train()
    losses, started = {}, time.perf_counter()
    for iteration, batch in enumerate(loader, start=1):
        labels = torch.tensor([index_of[s] for s in batch["subject"]], device=config.device)
        batch = {k: v.to(config.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        loss = _loss(model, batch, labels, setup.ce_weight, setup.ce_scale)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if iteration % config.log_every == 0 or iteration == config.iterations:
            losses[iteration] = float(loss.detach())
            log(f"{config.model}: iteration {iteration}/{config.iterations} loss {losses[iteration]:.4f}")
    seconds = time.perf_counter() - started
    atomic_torch_save(checkpoint, {"format": CHECKPOINT_FORMAT, "config": asdict(config),
                                   "train_subjects": subjects, "protocol_sha256": protocol_digest(protocol),
                                   "losses": {str(k): v for k, v in losses.items()}, "seconds": seconds,
                                   "state_dict": model.state_dict()})
    return {"losses": losses, "seconds": seconds}


def load_identity_model(checkpoint: str | Path):
    """(model in eval mode, stored checkpoint fields) from a file `train_identity` wrote; weights only."""
    from ragar_data.safe_load import load_torch_checkpoint

    stored = load_torch_checkpoint(checkpoint)
    if not isinstance(stored, dict) or stored.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{checkpoint}: not an identity checkpoint (expected format {CHECKPOINT_FORMAT!r}); "
                         "train one with `ragar-data train identity`")
    config = IdentityTrainConfig(**stored["config"])
    model = build_identity_model(config.model, len(stored["train_subjects"]), config.channel_divisor)
    model.load_state_dict(stored["state_dict"])
    return model.eval(), stored


@torch.no_grad()
def extract_features(model, dataset_dir: str | Path, keys: list[str], max_frames: int = 720,
                     batch_size: int = 16) -> np.ndarray:
    """(len(keys), e, p) embeddings with all frames of each sequence in order (upstream's test sampling
    ``all_ordered``, capped at ``max_frames``). Sequences of equal length share a batch, so no model sees padding."""
    from ragar_data.loaders import SilhouetteDataset
    from ragar_data.training.data import length_batches, sequence_lengths

    data = SilhouetteDataset(dataset_dir, keys=keys, sampling="all_ordered", max_frames=max_frames, progress=False)
    if data.keys() != list(keys):
        raise InputError(f"{dataset_dir}: {len(keys) - len(data)} protocol sequences have no silhouettes")
    lengths = sequence_lengths(data)
    features: list = [None] * len(data)
    for chunk in length_batches(lengths, batch_size):
        silhouettes = torch.stack([data[i]["silhouettes"] for i in chunk])
        embeddings, _ = model(silhouettes, torch.full((len(chunk),), int(lengths[chunk[0]])))
        for i, embedding in zip(chunk, embeddings.numpy()):
            features[i] = embedding
    return np.stack(features)


def one_hot_labels(dataset_dir: str | Path, keys: list[str]) -> np.ndarray:
    """(len(keys), 45) annotated one-hot labels, in key order; a sequence without annotation is an error."""
    from ragar_data.attributes import default_schema
    from ragar_data.shards import ShardDataset

    table = ShardDataset(dataset_dir).table(["key", "labels"]).to_pydict()
    labels = dict(zip(table["key"], table["labels"]))
    rows = np.array([labels[key] for key in keys], dtype=np.int64)
    unannotated = [key for key, row in zip(keys, rows) if (row < 0).any()]
    if unannotated:
        raise InputError(f"{dataset_dir}: 'with attribute' needs annotated labels; {len(unannotated)} protocol "
                         f"sequences have none, e.g. {unannotated[:3]}")
    return default_schema().to_one_hot(rows)


def _scores(probe, gallery, probe_keys, gallery_keys) -> dict:
    distances = retrieval.part_distance(probe, gallery)
    probe_subjects = [SequenceKey.parse(k).subject for k in probe_keys]
    gallery_subjects = [SequenceKey.parse(k).subject for k in gallery_keys]
    parsed = [SequenceKey.parse(k) for k in probe_keys]
    groups = {"condition": [p.condition_group for p in parsed], "view": [p.view for p in parsed]}
    return {"overall": retrieval.rank1_and_map(distances, probe_subjects, gallery_subjects),
            "breakdown": retrieval.breakdown(distances, probe_subjects, gallery_subjects, groups)}


def evaluate_identity(model, dataset_dir: str | Path, protocol: IdentityProtocol, max_frames: int = 720) -> dict:
    """Rank-1 and mAP of the protocol's probes against its gallery, without and with attributes; each test
    sequence contributes its first ``max_frames`` frames (upstream: all, capped at 720)."""
    gallery_keys, probe_keys = protocol.gallery_keys(), protocol.probe_keys()
    gallery = extract_features(model, dataset_dir, gallery_keys, max_frames)
    probe = extract_features(model, dataset_dir, probe_keys, max_frames)
    gallery_labels, probe_labels = one_hot_labels(dataset_dir, gallery_keys), one_hot_labels(dataset_dir, probe_keys)
    scale = retrieval.attribute_scale(gallery, float(np.sqrt(gallery_labels[0].sum())))
    without = _scores(probe, gallery, probe_keys, gallery_keys)
    with_attribute = _scores(retrieval.with_attributes(probe, probe_labels, scale),
                             retrieval.with_attributes(gallery, gallery_labels, scale), probe_keys, gallery_keys)
    return {"without_attribute": without, "with_attribute": with_attribute, "attribute_scale": scale,
            "attribute_scaling": ATTRIBUTE_SCALING, "gallery": len(gallery_keys), "probes": len(probe_keys),
            "max_frames": max_frames}


def trained_checkpoint(dataset_dir: str | Path, protocol: IdentityProtocol, config: IdentityTrainConfig,
                       checkpoint: str | Path, restart: bool = False, log=print) -> Path:
    """``checkpoint`` trained now, or reused when an earlier run trained it with this config and protocol.

    A checkpoint of another config or protocol is refused (``restart=True`` replaces it)."""
    checkpoint = Path(checkpoint)
    if checkpoint.is_file() and not restart:
        _, stored = load_identity_model(checkpoint)
        if stored["config"] != asdict(config) or stored["protocol_sha256"] != protocol_digest(protocol):
            differing = sorted(k for k, v in asdict(config).items() if stored["config"].get(k) != v)
            what = f"config ({', '.join(differing)})" if differing else "protocol"
            raise InputError(f"{checkpoint}: trained with another {what} than asked now; use another output "
                             "folder, or restart to replace it")
        log(f"{config.model}: trained earlier ({checkpoint}), reused")
        return checkpoint
    train_identity(dataset_dir, protocol, config, checkpoint, log)
    return checkpoint


def check_protocol_matches(stored: dict, protocol: IdentityProtocol, checkpoint, protocol_path) -> None:
    """Evaluating on another protocol than the training one could test on training subjects: refused."""
    if stored["protocol_sha256"] != protocol_digest(protocol):
        raise InputError(f"{checkpoint} was trained on another protocol than {protocol_path}; evaluate with the "
                         "protocol file of its training run")
