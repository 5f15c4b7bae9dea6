"""MotionBERT 3D lifter: the DSTformer network (written here from the paper and the official configuration; it
is not on PyPI) and the backend that feeds it as upstream `infer_wild.py` does.

Parameter names equal those of Walter0807/MotionBERT `lib/model/DSTformer.py`, so an official checkpoint
(`["model_pos"]`, keys prefixed `module.` by DataParallel; read with `torch.load(weights_only=True)` admitting the
numpy scalars upstream leaves beside it, e.g. `min_loss`) loads with
`strict=True` after stripping only that prefix:
    joints_embed, pos_embed (1, J, C), temp_embed (1, maxlen, 1, C),
    blocks_st.{i} / blocks_ts.{i}: norm1_s, norm1_t, attn_s.{qkv, proj}, attn_t.{qkv, proj}, norm2_s, norm2_t,
                                   mlp_s.{fc1, fc2}, mlp_t.{fc1, fc2}
    ts_attn.{i} (Linear(2C, 2), the attention fusion of the two streams), norm, pre_logits.fc, head.

Input and output conventions (the `lift` contract):
- confidences are clipped to [0, 1] first: MotionBERT was trained on detector confidences in [0, 1], while
  RTMPose's SimCC scores are raw maxima that can be negative or above 1 (OpenGait's pose heatmaps clip to
  [0, 1] too). A score <= 0 becomes 0, so `crop_scale` leaves that joint out of the normalisation square,
  as upstream does for zero confidence; a score above 1 becomes 1 (upstream's `crop_scale` clipped it to 1
  anyway, after the square was computed).
- input: COCO-17 pixels -> H36M-17 with `coco2h36m`; normalised per sequence with `crop_scale` (the square
  around all keypoints with non-zero confidence, mapped to [-1, 1]; upstream's default) or, with
  `normalization="pixel"`, centred on the image and divided by min(width, height) / 2 (upstream `--pixel`).
- clips: consecutive 243-frame chunks, the last one shorter as is (upstream `WildDetDataset`); flip
  test-time augmentation as the configs (`flip: true`).
- output: (T, 17, 3) H36M-17 in the same normalised units as the input (x right, y down, z depth, all scaled by
  the same factor). `rootrel: true` (MB_ft_h36m) zeroes the root joint in every frame; `rootrel: false` (the
  lite "global" model) zeroes only the root depth of the first frame of each chunk, as infer_wild.py.
  `denormalize()` maps x, y (and z by the same scale) back to pixels.
"""
from __future__ import annotations

from collections import OrderedDict
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ragar_data import weights as registry
from ragar_data.errors import ConfigError, InputError, ModelUnavailable
from ragar_data.pipelines.backends import keypoints as kp
from ragar_data.pipelines.backends.runtime import torch_device, torch_dtype
from ragar_data.safe_load import load_torch_checkpoint


# ------------------------------------------------------------------------------------------------ network
# Upstream builds every LayerNorm as `partial(nn.LayerNorm, eps=1e-6)`; torch's default 1e-5 drifts ~1e-3.
LayerNorm = partial(nn.LayerNorm, eps=1e-6)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention over joints (`spatial`) or over frames per joint (`temporal`)."""

    def __init__(self, dim: int, num_heads: int, mode: str):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.mode = mode
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, frames: int):
        batch_frames, joints, channels = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(batch_frames, joints, 3, heads, channels // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (BF, heads, J, c)
        if self.mode == "temporal":
            # (B, F, heads, J, c) -> (B, heads, J, F, c): attend across frames for each joint.
            q, k, v = (t.reshape(-1, frames, heads, joints, channels // heads).permute(0, 2, 3, 1, 4)
                       for t in (q, k, v))
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        out = attention @ v
        if self.mode == "temporal":
            out = out.permute(0, 3, 2, 1, 4).reshape(batch_frames, joints, channels)
        else:
            out = out.transpose(1, 2).reshape(batch_frames, joints, channels)
        return self.proj(out)


class Block(nn.Module):
    """One DSTformer block: spatial then temporal (`st`) or temporal then spatial (`ts`), each attention and MLP
    pre-normalised with a residual connection."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, order: str):
        super().__init__()
        self.order = order
        self.norm1_s = LayerNorm(dim)
        self.norm1_t = LayerNorm(dim)
        self.attn_s = Attention(dim, num_heads, "spatial")
        self.attn_t = Attention(dim, num_heads, "temporal")
        self.norm2_s = LayerNorm(dim)
        self.norm2_t = LayerNorm(dim)
        self.mlp_s = MLP(dim, int(dim * mlp_ratio))
        self.mlp_t = MLP(dim, int(dim * mlp_ratio))

    def _spatial(self, x, frames):
        x = x + self.attn_s(self.norm1_s(x), frames)
        return x + self.mlp_s(self.norm2_s(x))

    def _temporal(self, x, frames):
        x = x + self.attn_t(self.norm1_t(x), frames)
        return x + self.mlp_t(self.norm2_t(x))

    def forward(self, x, frames: int):
        if self.order == "st":
            return self._temporal(self._spatial(x, frames), frames)
        return self._spatial(self._temporal(x, frames), frames)


class DSTformer(nn.Module):
    """Dual-stream spatio-temporal transformer (MotionBERT, ICCV 2023). Input (B, F, J, 3) x, y, confidence;
    output (B, F, J, dim_out)."""

    def __init__(self, dim_in: int = 3, dim_out: int = 3, dim_feat: int = 512, dim_rep: int = 512, depth: int = 5,
                 num_heads: int = 8, mlp_ratio: float = 2, num_joints: int = 17, maxlen: int = 243,
                 att_fuse: bool = True):
        super().__init__()
        self.maxlen = maxlen
        self.joints_embed = nn.Linear(dim_in, dim_feat)
        self.blocks_st = nn.ModuleList([Block(dim_feat, num_heads, mlp_ratio, "st") for _ in range(depth)])
        self.blocks_ts = nn.ModuleList([Block(dim_feat, num_heads, mlp_ratio, "ts") for _ in range(depth)])
        self.norm = LayerNorm(dim_feat)
        self.pre_logits = nn.Sequential(OrderedDict([("fc", nn.Linear(dim_feat, dim_rep)), ("act", nn.Tanh())]))
        self.head = nn.Linear(dim_rep, dim_out)
        self.temp_embed = nn.Parameter(torch.zeros(1, maxlen, 1, dim_feat))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_joints, dim_feat))
        self.att_fuse = att_fuse
        if att_fuse:
            self.ts_attn = nn.ModuleList([nn.Linear(dim_feat * 2, 2) for _ in range(depth)])
        self._init_weights()

    def _init_weights(self):
        # Upstream initialisation (truncated normal 0.02, zero biases, fusion starting at equal weights); it
        # only matters for the random-init models the tests use.
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.temp_embed, std=0.02)
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        if self.att_fuse:
            for fuse in self.ts_attn:
                nn.init.zeros_(fuse.weight)
                nn.init.constant_(fuse.bias, 0.5)

    def forward(self, x):
        batch, frames, joints, _ = x.shape
        if frames > self.maxlen:
            raise InputError(f"DSTformer takes at most {self.maxlen} frames per clip, got {frames}")
        x = self.joints_embed(x.reshape(batch * frames, joints, -1)) + self.pos_embed
        x = (x.reshape(batch, frames, joints, -1) + self.temp_embed[:, :frames]).reshape(batch * frames, joints, -1)
        for index, (block_st, block_ts) in enumerate(zip(self.blocks_st, self.blocks_ts)):
            x_st = block_st(x, frames)
            x_ts = block_ts(x, frames)
            if self.att_fuse:
                alpha = self.ts_attn[index](torch.cat([x_st, x_ts], dim=-1)).softmax(dim=-1)
                x = x_st * alpha[..., 0:1] + x_ts * alpha[..., 1:2]
            else:
                x = (x_st + x_ts) * 0.5
        x = self.norm(x).reshape(batch, frames, joints, -1)
        return self.head(self.pre_logits(x))


# -------------------------------------------------------------------------------------------- normalisation
def crop_scale(motion: np.ndarray):
    """MotionBERT `crop_scale` with scale range [1, 1]: the square spanning all keypoints of the sequence whose
    confidence is non-zero, mapped to [-1, 1], then everything (confidence too) clipped to [-1, 1].
    Returns (normalised (T, J, 3), offset (2,), scale). Fewer than 4 valid keypoints or a zero extent gives
    zeros and scale 0, as upstream."""
    motion = np.asarray(motion, dtype=np.float64)
    valid = motion[motion[..., 2] != 0][:, :2]
    if len(valid) < 4:
        return np.zeros_like(motion), np.zeros(2), 0.0
    low, high = valid.min(axis=0), valid.max(axis=0)
    scale = float(max(high - low))
    if scale == 0:
        return np.zeros_like(motion), np.zeros(2), 0.0
    offset = (low + high - scale) / 2
    result = motion.copy()
    result[..., :2] = ((motion[..., :2] - offset) / scale - 0.5) * 2
    return np.clip(result, -1, 1), offset, scale


def pixel_normalize(motion: np.ndarray, image_size: tuple[int, int]):
    """Upstream `--pixel` input: centre on the image, divide by min(width, height) / 2 (confidence kept)."""
    width, height = image_size
    scale = min(width, height) / 2.0
    result = np.asarray(motion, dtype=np.float64).copy()
    result[..., :2] = (result[..., :2] - np.array([width, height]) / 2.0) / scale
    return result, np.array([width, height]) / 2.0 - scale, 2 * scale


def denormalize(pose_3d: np.ndarray, offset: np.ndarray, scale: float) -> np.ndarray:
    """Inverse of `crop_scale` / `pixel_normalize` for lifted poses: x, y back to pixels; z multiplied by the
    same pixel scale (scale / 2 per normalised unit), so the result is in pixel-sized units, depth relative."""
    result = np.asarray(pose_3d, dtype=np.float64).copy()
    result[..., :2] = (result[..., :2] / 2 + 0.5) * scale + offset
    result[..., 2] = result[..., 2] * scale / 2
    return result


def flip_h36m(data: torch.Tensor) -> torch.Tensor:
    """MotionBERT `flip_data`: mirror x and swap left/right joints."""
    flipped = data.clone()
    flipped[..., 0] *= -1
    order = list(range(data.shape[-2]))
    for left, right in zip(kp.H36M_LEFT, kp.H36M_RIGHT):
        order[left], order[right] = right, left
    return flipped[..., order, :]


# ---------------------------------------------------------------------------------------------- backend
def load_checkpoint_state(path: Path) -> dict:
    """The official checkpoint's `model_pos` with DataParallel's `module.` prefix removed (nothing else)."""
    checkpoint = load_torch_checkpoint(path)
    if not isinstance(checkpoint, dict) or "model_pos" not in checkpoint:
        found = list(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ModelUnavailable(f"{path}: expected a MotionBERT checkpoint with top-level `model_pos`, found {found}")
    return {(k[len("module."):] if k.startswith("module.") else k): v for k, v in checkpoint["model_pos"].items()}


def architecture_from_state(state: dict, num_heads: int = 8) -> dict:
    """DSTformer constructor arguments read off the checkpoint's tensor shapes (the official checkpoints carry
    no config); the head count leaves no trace in the shapes and comes from the registry (8 upstream)."""
    try:
        dim_feat, dim_in = state["joints_embed.weight"].shape
        return dict(
            dim_in=int(dim_in), dim_out=int(state["head.weight"].shape[0]), dim_feat=int(dim_feat),
            dim_rep=int(state["pre_logits.fc.weight"].shape[0]),
            depth=len({k.split(".")[1] for k in state if k.startswith("blocks_st.")}), num_heads=num_heads,
            mlp_ratio=state["blocks_st.0.mlp_s.fc1.weight"].shape[0] / dim_feat,
            num_joints=int(state["pos_embed"].shape[1]), maxlen=int(state["temp_embed"].shape[1]),
            att_fuse="ts_attn.0.weight" in state)
    except KeyError as error:
        raise ModelUnavailable(f"not a DSTformer state dict: missing {error}") from error


def variant_from_architecture(config: dict, path: Path) -> registry.ModelSpec:
    """The registry's MotionBERT entry whose dim_feat and mlp_ratio match a checkpoint given only as `weights:`
    (ft-h36m 512 / 2, root-relative; lite 256 / 4, global root), so that its inference settings apply. A
    checkpoint that matches none is refused: guessing `rootrel` would silently drop or keep the global root."""
    candidates = [spec for spec in registry.load_registry().values() if spec.backend == "motionbert"]
    for spec in candidates:
        if (spec.architecture.get("dim_feat") == config["dim_feat"]
                and float(spec.architecture.get("mlp_ratio", 0)) == float(config["mlp_ratio"])):
            return spec
    known = ", ".join(f"{s.name} {s.architecture.get('dim_feat')}/{s.architecture.get('mlp_ratio')}"
                      for s in candidates)
    raise ModelUnavailable(f"{path}: a DSTformer with dim_feat {config['dim_feat']} / mlp_ratio "
                           f"{config['mlp_ratio']:g} matches no known MotionBERT variant ({known}); give `model:` "
                           "(a registry name) or `rootrel:` (true for root-relative output) with `weights:`")


class MotionBertLifter:
    """Lifter backend: `lift(keypoints_2d (T, 17, 3) COCO pixels + score, image_size (width, height))
    -> (T, 17, 3) float32` H36M-17 in MotionBERT's normalised units (see the module docstring).
    `batch_size` counts 243-frame clips per forward pass."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, batch_size: int = 8, clip_len: int = 243, flip: bool | None = None,
                 rootrel: bool | None = None, normalization: str = "crop_scale", precision: str = "fp32",
                 **options):
        architecture = {k: options.pop(k) for k in list(options)
                        if k in ("dim_feat", "mlp_ratio", "dim_rep", "depth", "num_heads", "maxlen", "att_fuse")}
        if options:
            raise ConfigError(f"MotionBertLifter: unknown options {sorted(options)}")
        if normalization not in ("crop_scale", "pixel"):
            raise ConfigError(f"normalization must be crop_scale or pixel, got {normalization!r}")
        spec, path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                      default=None if weights else "motionbert-ft-h36m", task="lifter")
        state = load_checkpoint_state(path)
        heads = int((spec.architecture if spec else {}).get("num_heads", 8))
        config = architecture_from_state(state, num_heads=heads)
        config.update(architecture)
        if spec is None and rootrel is None:
            spec = variant_from_architecture(config, path)
        self.name = spec.name if spec else path.name
        self.path = path
        self.batch_size = batch_size
        self.normalization = normalization
        inference = spec.inference if spec else {}
        self.flip = inference.get("flip", True) if flip is None else flip
        self.rootrel = inference.get("rootrel", True) if rootrel is None else rootrel
        self.architecture = config
        self.clip_len = min(clip_len, int(config["maxlen"]))
        self.device = torch_device(device)
        self.dtype = torch_dtype(precision, device)
        self.network = DSTformer(**config)
        try:
            self.network.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelUnavailable(f"{path}: checkpoint does not fit DSTformer{config}: {error}") from error
        self.network.to(self.device).eval()

    def normalize(self, keypoints_2d: np.ndarray, image_size: tuple[int, int]):
        """COCO pixels -> H36M-17 normalised network input, with the offset and scale to undo it."""
        keypoints_2d = np.asarray(keypoints_2d, dtype=np.float64)
        if keypoints_2d.ndim != 3 or keypoints_2d.shape[1:] != (17, 3):
            raise InputError(f"keypoints_2d must be (T, 17, 3) COCO x, y, score; got {keypoints_2d.shape}")
        keypoints_2d = keypoints_2d.copy()
        keypoints_2d[..., 2] = np.clip(keypoints_2d[..., 2], 0.0, 1.0)  # see the module docstring
        h36m = kp.coco_to_h36m(keypoints_2d)
        if self.normalization == "pixel":
            return pixel_normalize(h36m, image_size)
        return crop_scale(h36m)

    def run_clips(self, motion: np.ndarray) -> np.ndarray:
        """(T, 17, 3) normalised input -> (T, 17, 3) output, in consecutive clip_len chunks (last one shorter)."""
        chunks = [motion[start:start + self.clip_len] for start in range(0, len(motion), self.clip_len)]
        results: list[np.ndarray | None] = [None] * len(chunks)
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        with torch.inference_mode(), autocast:
            # Chunks of equal length share a forward pass; only the last one may be shorter.
            for length in sorted({len(c) for c in chunks}, reverse=True):
                same = [i for i, c in enumerate(chunks) if len(c) == length]
                for start in range(0, len(same), self.batch_size):
                    indices = same[start:start + self.batch_size]
                    clips = torch.as_tensor(np.stack([chunks[i] for i in indices]), dtype=torch.float32,
                                            device=self.device)
                    predicted = self.network(clips).float()
                    if self.flip:
                        predicted = (predicted + flip_h36m(self.network(flip_h36m(clips)).float())) / 2
                    if self.rootrel:
                        predicted[:, :, 0, :] = 0
                    else:
                        predicted[:, 0, 0, 2] = 0
                    for position, index in enumerate(indices):
                        results[index] = predicted[position].cpu().numpy()
        return np.concatenate(results, axis=0).astype(np.float32)

    def lift(self, keypoints_2d: np.ndarray, image_size: tuple[int, int]) -> np.ndarray:
        motion, _, _ = self.normalize(keypoints_2d, image_size)
        if len(motion) == 0:
            return np.zeros((0, 17, 3), dtype=np.float32)
        return self.run_clips(motion.astype(np.float32))
