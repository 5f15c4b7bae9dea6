"""Randomly initialised stand-ins for the paper's models, written in the official file formats and under the
registry's file names, so that every backend (and `ragar-data extract --preset paper`) runs end to end where
the real weights cannot be downloaded. Outputs are meaningless; formats, I/O names and shapes are the
official ones.

What is reduced, per model (to keep the files small and CPU runs quick):
- YOLO (`yolo11m`, `yolo11n`): the yolo11n architecture built from ultralytics' yaml, saved by ultralytics as a
  `.pt` that `YOLO(path)` loads (for `yolo11m` too: the file carries its own architecture); conv weights
  doubled and the person logit raised so that it emits boxes for the tracker (see `_write_yolo`).
- PP-HumanSeg ONNX: a small conv net with the export's contract (input `x` (N, 3, 192, 192), softmax output
  (N, 2, 192, 192)); not the PP-HumanSeg architecture.
- RTMPose ONNX: a small conv net with the mmdeploy contract (`input` (N, 3, 256, 192) -> `simcc_x` (N, 17, 384),
  `simcc_y` (N, 17, 512)); not the RTMPose architecture.
- ViTPose: transformers VitPose with 2 layers of width 128 (the real ViT-B has 12 of 768), the classic
  deconvolution decoder, 256x192 input, 17 heatmaps; `vitpose-b-upstream` is the same network saved in the original checkpoint key layout.
- MotionBERT: the DSTformer with dim_feat 64 / dim_rep 64 / depth 2 (parameter names, 17 joints and maxlen 243
  as official) in an official-layout checkpoint: upstream `train.py`'s dict (`epoch`, `lr`, `optimizer`,
  `model_pos` with `module.` prefixes, `min_loss` a numpy float64), its numpy scalar named
  `numpy.core.multiarray.scalar` as numpy 1.x wrote it, so the restricted loader is tested on both names.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ragar_data import weights as registry
from ragar_data.atomic import atomic_path, atomic_torch_save, atomic_write_bytes
from ragar_data.errors import InputError

DEFAULT_NAMES = ("yolo11m", "yolo11n", "pp-humanseg-v2", "rtmpose-m", "rtmpose-l", "vitpose-b", "vitpose-b-upstream",
                 "motionbert-ft-h36m", "motionbert-lite")


class _TinySegmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Tanh(), nn.Conv2d(8, 2, 3, padding=1))
        # Zero biases and larger weights: the person/background decision then follows the image, not a bias.
        with torch.no_grad():
            for layer in (self.features[0], self.features[2]):
                layer.weight.mul_(4.0)
                layer.bias.zero_()

    def forward(self, x):
        return self.features(x).softmax(dim=1)


class _TinySimCC(nn.Module):
    def __init__(self, width: int, height: int, joints: int = 17, split_ratio: float = 2.0):
        super().__init__()
        self.joints = joints
        self.bins = (int(width * split_ratio), int(height * split_ratio))
        self.features = nn.Sequential(nn.Conv2d(3, 4, 5, stride=4, padding=2), nn.ReLU(), nn.AdaptiveAvgPool2d((4, 3)))
        self.to_x = nn.Linear(48, joints * self.bins[0])
        self.to_y = nn.Linear(48, joints * self.bins[1])

    def forward(self, x):
        features = self.features(x).flatten(1)
        return (self.to_x(features).view(-1, self.joints, self.bins[0]),
                self.to_y(features).view(-1, self.joints, self.bins[1]))


def _export_onnx(module: nn.Module, example: torch.Tensor, path: Path, input_name: str, output_names: list[str],
                 dynamic_batch: bool = True):
    dynamic = {name: {0: "batch"} for name in [input_name, *output_names]} if dynamic_batch else None
    with warnings.catch_warnings(), atomic_path(path) as temporary:
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(module.eval(), (example,), str(temporary), input_names=[input_name],
                          output_names=output_names, dynamic_axes=dynamic, opset_version=17, dynamo=False)


def _write_yolo(path: Path) -> None:
    from ragar_data.pipelines.track import prepare_ultralytics_offline

    prepare_ultralytics_offline()
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")  # built from the packaged yaml: no download
    # A fresh yolo11n shrinks its input's signal layer by layer (its head outputs vary by ~1e-5 with the image)
    # and scores every class at sigmoid(-11): the stand-in would find nothing and the paper preset would have
    # nothing to track. Doubling the conv weights keeps the output input-dependent, and a person logit bias on
    # the stride-32 branch makes it emit a few dozen (meaningless) boxes per frame.
    with torch.no_grad():
        for module_name, module in model.model.named_modules():
            if isinstance(module, nn.Conv2d) and "dfl" not in module_name:
                module.weight.mul_(2.0)
        model.model.model[-1].cv3[-1][-1].bias[0] = 2.0
    with atomic_path(path) as temporary:
        model.save(str(temporary))


def _small_vitpose():
    from transformers import VitPoseForPoseEstimation

    from ragar_data.pipelines.backends.vitpose import vitpose_base_config

    config = vitpose_base_config(False, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                                 intermediate_size=256)
    return VitPoseForPoseEstimation(config).eval()


def _write_vitpose(folder: Path) -> None:
    network = _small_vitpose()
    with atomic_path(folder) as temporary:
        network.save_pretrained(temporary)


def upstream_layout(state_dict: dict, hidden_size: int) -> dict:
    """transformers VitPose keys -> original ViTPose checkpoint keys (the inverse of the backend's conversion,
    merging query/key/value back into `qkv`); used to write the `vitpose-b-upstream` stand-in."""
    renames = [("embeddings.patch_embeddings.projection", "patch_embed.proj"),
               ("embeddings.position_embeddings", "pos_embed"), ("encoder.layer.", "blocks."),
               ("attention.output.dense", "attn.proj"), ("layernorm_before", "norm1"),
               ("layernorm_after", "norm2"), ("backbone.layernorm", "backbone.last_norm")]
    head_names = {"deconv1": "deconv_layers.0", "batchnorm1": "deconv_layers.1", "deconv2": "deconv_layers.3",
                  "batchnorm2": "deconv_layers.4", "conv": "final_layer"}
    result = {}
    for key, value in state_dict.items():
        if ".attention.attention." in key:
            layer = key.split(".")[3]
            kind = key.rsplit(".", 1)[1]
            prefix = f"backbone.encoder.layer.{layer}.attention.attention."
            result[f"backbone.blocks.{layer}.attn.qkv.{kind}"] = torch.cat(
                [state_dict[prefix + part + "." + kind] for part in ("query", "key", "value")])
            continue
        if key.startswith("head."):
            part, rest = key[len("head."):].split(".", 1)
            result[f"keypoint_head.{head_names[part]}.{rest}"] = value
            continue
        for new, old in renames:
            key = key.replace(new, old)
        result[key] = value
    return result


def _write_vitpose_upstream(path: Path) -> None:
    network = _small_vitpose()
    state = upstream_layout(network.state_dict(), network.config.backbone_config.hidden_size)
    atomic_torch_save(path, {"meta": {"note": "random-init stand-in"}, "state_dict": state})


def _write_motionbert(path: Path, seed: int) -> None:
    from ragar_data.pipelines.backends.motionbert import DSTformer

    torch.manual_seed(seed)
    network = DSTformer(dim_feat=64, dim_rep=64, depth=2, num_heads=8, mlp_ratio=2)
    # Random-init fusion weights are zero (equal mixing): perturb them so that both streams matter in tests.
    for fuse in network.ts_attn:
        nn.init.normal_(fuse.weight, std=0.05)
    state = {"module." + key: value for key, value in network.state_dict().items()}
    optimizer = torch.optim.AdamW(network.parameters(), lr=0.0005, weight_decay=0.01)
    atomic_torch_save(path, {"epoch": 60, "lr": 0.0005 * 0.99 ** 60, "optimizer": optimizer.state_dict(),
                             "model_pos": state, "min_loss": np.float64(37.2)})
    _rename_numpy_core(path)


def _rename_numpy_core(path: Path) -> None:
    """Rewrite a torch checkpoint's pickle with numpy 1.x module names (`numpy.core.*`), as official checkpoints
    written before numpy 2 hold them; the archive is otherwise copied entry by entry."""
    import io
    import zipfile

    with zipfile.ZipFile(path) as source:
        rewritten = io.BytesIO()
        with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_STORED) as target:
            for info in source.infolist():
                data = source.read(info.filename)
                if info.filename.endswith("/data.pkl"):
                    data = data.replace(b"numpy._core.", b"numpy.core.")
                target.writestr(info.filename, data)
    atomic_write_bytes(path, rewritten.getvalue())


def write_random_models(models_dir: str | os.PathLike, names=None, seed: int = 0) -> dict[str, Path]:
    """Write random-init stand-ins for `names` (default: every model of the paper stack that has a default-install
    backend) into `models_dir`, at the paths the registry expects. Returns name -> path the backend loads."""
    models_dir = Path(models_dir)
    specs = registry.load_registry()
    written = {}
    for name in names or DEFAULT_NAMES:
        spec = registry.get_spec(name, specs)
        target = spec.path(models_dir)
        torch.manual_seed(seed)
        if spec.backend == "yolo":
            _write_yolo(target)
        elif spec.backend == "humanseg":
            width, height = spec.input_size
            _export_onnx(_TinySegmenter(), torch.zeros(1, 3, height, width), target, "x", ["output"])
        elif spec.backend == "rtmpose":
            width, height = spec.input_size
            _export_onnx(_TinySimCC(width, height), torch.zeros(1, 3, height, width), target, "input",
                         ["simcc_x", "simcc_y"])
        elif spec.backend == "vitpose" and spec.format == "transformers":
            _write_vitpose(target)
        elif spec.backend == "vitpose":
            _write_vitpose_upstream(target)
        elif spec.backend == "motionbert":
            _write_motionbert(target, seed)
        else:
            raise InputError(f"no random stand-in for {name} (backend {spec.backend}, format {spec.format}); "
                             "the Paddle model needs paddlepaddle to write")
        written[name] = target
    return written


def random_frames(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth random RGB frames (blurred noise) for backend checks when no rendered clip is at hand."""
    import cv2

    generator = np.random.default_rng(seed)
    noise = generator.integers(0, 256, size=(count, height, width, 3), dtype=np.uint8)
    return np.stack([cv2.GaussianBlur(frame, (7, 7), 0) for frame in noise])
