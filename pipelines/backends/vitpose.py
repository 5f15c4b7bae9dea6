"""ViTPose 2D pose backend on Hugging Face transformers' `VitPoseForPoseEstimation`.

Weights come either as a `save_pretrained` folder (config.json + model.safetensors, e.g.
usyd-community/vitpose-base-simple) or as the original ViTPose checkpoint (ViTAE-Transformer/ViTPose `.pth`,
`state_dict` in the mmpose 0.x key layout), converted on load with the mapping below (the one transformers'
`convert_vitpose_to_hf.py` applies):

    backbone.patch_embed.proj.*          -> backbone.embeddings.patch_embeddings.projection.*
    backbone.pos_embed                   -> backbone.embeddings.position_embeddings
    backbone.blocks.{i}.norm1/norm2.*    -> backbone.encoder.layer.{i}.layernorm_before/layernorm_after.*
    backbone.blocks.{i}.attn.qkv.*       -> ...layer.{i}.attention.attention.{query,key,value}.* (split in 3)
    backbone.blocks.{i}.attn.proj.*      -> ...layer.{i}.attention.output.dense.*
    backbone.blocks.{i}.mlp.fc1/fc2.*    -> ...layer.{i}.mlp.fc1/fc2.*
    backbone.last_norm.*                 -> backbone.layernorm.*
    keypoint_head.deconv_layers.0/1/3/4  -> head.deconv1 / batchnorm1 / deconv2 / batchnorm2 (classic decoder)
    keypoint_head.final_layer.*          -> head.conv.*

Processing as the upstream test config: box -> centre/scale with 1.25 padding and 192:256 aspect, UDP affine
crop, ImageNet RGB normalisation, flip test (heatmaps of the mirrored crop flipped back, left/right swapped,
averaged), UDP + DARK decoding (Gaussian kernel 11), heatmap maxima as scores.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ragar_data import weights as registry
from ragar_data.errors import ConfigError, ModelUnavailable
from ragar_data.pipelines.backends import keypoints as kp
from ragar_data.pipelines.backends.runtime import batches, check_boxes, check_frames, torch_device, torch_dtype
from ragar_data.safe_load import load_torch_checkpoint

MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)

_RENAMES = (
    ("patch_embed.proj", "embeddings.patch_embeddings.projection"),
    ("pos_embed", "embeddings.position_embeddings"),
    ("blocks.", "encoder.layer."),
    ("attn.proj", "attention.output.dense"),
    ("norm1", "layernorm_before"),
    ("norm2", "layernorm_after"),
    ("last_norm", "layernorm"),
)
_CLASSIC_HEAD = {"deconv_layers.0": "deconv1", "deconv_layers.1": "batchnorm1", "deconv_layers.3": "deconv2",
                 "deconv_layers.4": "batchnorm2", "final_layer": "conv"}


def convert_upstream_state_dict(state_dict: dict, hidden_size: int) -> dict:
    """Original ViTPose (mmpose 0.x) keys -> transformers VitPose keys; see the module docstring."""
    converted = {}
    for key, value in state_dict.items():
        qkv = re.fullmatch(r"backbone\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)", key)
        if qkv:
            layer, kind = qkv.groups()
            for index, part in enumerate(("query", "key", "value")):
                converted[f"backbone.encoder.layer.{layer}.attention.attention.{part}.{kind}"] = \
                    value[index * hidden_size:(index + 1) * hidden_size]
            continue
        if key.startswith("keypoint_head."):
            rest = key[len("keypoint_head."):]
            for old, new in _CLASSIC_HEAD.items():
                if rest.startswith(old + "."):
                    rest = new + rest[len(old):]
                    break
            converted["head." + rest] = value
            continue
        for old, new in _RENAMES:
            key = key.replace(old, new)
        converted[key] = value
    return converted


def vitpose_base_config(use_simple_decoder: bool, **backbone_overrides):
    """transformers config of ViTPose-B; num_labels=17 and out_indices=[last layer] set explicitly because the
    library defaults (2 labels, out_indices [4]) load without error and give wrong heatmaps."""
    from transformers import VitPoseBackboneConfig, VitPoseConfig

    backbone = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                    image_size=[256, 192], patch_size=[16, 16])
    backbone.update(backbone_overrides)
    backbone_config = VitPoseBackboneConfig(out_indices=[backbone["num_hidden_layers"]], **backbone)
    return VitPoseConfig(backbone_config=backbone_config, num_labels=17, use_simple_decoder=use_simple_decoder)


class ViTPoseEstimator:
    """Pose2D backend: `estimate(frames (B, H, W, 3) RGB, boxes (B, 4)) -> (B, 17, 3)` COCO-17 x, y in source
    pixels and the heatmap maximum as score."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, batch_size: int = 32, padding: float = 1.25, flip_test: bool = True,
                 blur_kernel: int = 11, precision: str = "fp32", **options):
        if options:
            raise ConfigError(f"ViTPoseEstimator: unknown options {sorted(options)}")
        import torch

        spec, path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                      default=None if weights else "vitpose-b", task="pose2d")
        self.name = spec.name if spec else path.name
        self.path = path
        self.batch_size = batch_size
        self.padding = padding
        self.flip_test = flip_test
        self.blur_kernel = blur_kernel
        self.device = torch_device(device)
        self.dtype = torch_dtype(precision, device)
        self.network = self._load(path).to(self.device).eval()
        backbone = self.network.config.backbone_config
        height, width = backbone.image_size
        self.input_size = (int(width), int(height))
        self.flip_permutation = torch.as_tensor(kp.flip_permutation(kp.COCO_FLIP_PAIRS, 17), device=self.device)

    @staticmethod
    def _load(path: Path):
        from transformers import VitPoseForPoseEstimation

        if path.is_dir():
            from transformers import VitPoseConfig

            try:
                config = VitPoseConfig.from_pretrained(str(path), local_files_only=True)
            except (OSError, ValueError) as error:
                raise ModelUnavailable(f"{path}: no readable transformers VitPose config.json ({error})") from error
            last = config.backbone_config.num_hidden_layers
            if config.num_labels != 17 or list(config.backbone_config.out_indices) != [last]:
                raise ModelUnavailable(
                    f"{path}/config.json: num_labels={config.num_labels}, out_indices="
                    f"{list(config.backbone_config.out_indices)}; a COCO ViTPose needs num_labels=17 and "
                    f"out_indices=[{last}] (the transformers defaults 2 and [4] are wrong for it)")
            try:
                return VitPoseForPoseEstimation.from_pretrained(str(path), local_files_only=True)
            except (OSError, RuntimeError) as error:
                raise ModelUnavailable(f"{path}: cannot load the VitPose weights ({error})") from error
        checkpoint = load_torch_checkpoint(path)
        state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
        if not isinstance(state_dict, dict) or "backbone.pos_embed" not in state_dict:
            raise ModelUnavailable(f"{path}: not an original ViTPose checkpoint (no `state_dict` with "
                                   "`backbone.pos_embed`)")
        hidden = state_dict["backbone.pos_embed"].shape[-1]
        layers = 1 + max(int(k.split(".")[2]) for k in state_dict if k.startswith("backbone.blocks."))
        heads = {768: 12, 384: 12, 1024: 16, 1280: 16}.get(hidden, max(1, hidden // 64))
        intermediate = state_dict["backbone.blocks.0.mlp.fc1.weight"].shape[0]
        patch = state_dict["backbone.patch_embed.proj.weight"].shape[-1]
        tokens = state_dict["backbone.pos_embed"].shape[1] - 1
        image_size = [256, 192] if tokens == (256 // patch) * (192 // patch) else [256, 256]
        simple = not any(k.startswith("keypoint_head.deconv_layers") for k in state_dict)
        config = vitpose_base_config(simple, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                                     intermediate_size=intermediate, image_size=image_size, patch_size=[patch, patch])
        network = VitPoseForPoseEstimation(config)
        converted = convert_upstream_state_dict(state_dict, hidden)
        converted.pop("backbone.cls_token", None)
        missing, unexpected = network.load_state_dict(converted, strict=False)
        if missing or unexpected:
            raise ModelUnavailable(f"{path}: checkpoint does not match ViTPose after key conversion; missing "
                                   f"{missing[:5]}, unexpected {unexpected[:5]}")
        return network

    def preprocess(self, frames: np.ndarray, boxes: np.ndarray):
        centers, scales = kp.boxes_to_center_scale(boxes, self.input_size, self.padding)
        matrices = kp.warp_matrices(centers, scales, self.input_size, udp=True)
        crops = kp.crop_boxes(frames, matrices, self.input_size)
        tensor = ((crops.astype(np.float32) - MEAN) / STD).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(tensor), centers, scales

    def heatmaps(self, tensor: np.ndarray) -> np.ndarray:
        """(N, 17, H/4, W/4) heatmaps; with flip test the mirrored crop's heatmaps are flipped back (UDP: no
        one-pixel shift) and averaged, as upstream `flip_test=True`."""
        import torch

        pixels = torch.from_numpy(tensor).to(self.device)
        autocast = torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32)
        with torch.inference_mode(), autocast:
            heatmaps = self.network(pixel_values=pixels).heatmaps.float()
            if self.flip_test:
                mirrored = self.network(pixel_values=pixels.flip(-1)).heatmaps.float()
                heatmaps = (heatmaps + mirrored.flip(-1)[:, self.flip_permutation]) * 0.5
        return heatmaps.cpu().numpy()

    def estimate(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        boxes = check_boxes(boxes, len(frames))
        result = np.zeros((len(frames), 17, 3), dtype=np.float32)
        for part in batches(len(frames), self.batch_size):
            tensor, centers, scales = self.preprocess(frames[part], boxes[part])
            locations, scores = kp.decode_heatmaps_udp(self.heatmaps(tensor), self.input_size, self.blur_kernel)
            # As mmpose: the decoded location as it is, also when DARK moves it past the crop's left or top edge
            # (a valid joint at x = -2 input pixels) or when the heatmap maximum is <= 0 (location -1).
            points = kp.input_to_image(locations, centers, scales, self.input_size)
            result[part, :, :2] = points
            result[part, :, 2] = scores
        return result
