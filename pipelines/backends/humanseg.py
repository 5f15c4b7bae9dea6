"""PP-HumanSeg (v2) person segmentation backends: the ONNX export through onnxruntime (default install) and the
official Paddle inference model through Paddle Inference (optional extra `paddle`).

Both follow PaddleSeg's deploy pipeline on a crop around the subject's box: RGB, bilinear resize to the model
input (192x192 general; 256x144 portrait), /255, (x - 0.5) / 0.5, NCHW float32 into input `x`. The output is
either softmax scores [N, 2, H, W] (channel 1 = person) or an argmax label map int [N, H, W] (the
"inference model" without softmax); both are handled. The person mask is resized back to the crop and pasted
into a full-frame mask; outside the crop is background.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ragar_data import weights as registry
from ragar_data.errors import ConfigError, ModelUnavailable
from ragar_data.pipelines.backends.runtime import batches, check_boxes, check_frames, onnx_session, run_onnx
from ragar_data.subject_masks import full_masks

INPUT_NAME = "x"
PADDLE_INSTALL = "pip install 'ragar-data[paddle]'  (or: pip install 'paddlepaddle>=3.0,<4')"


def crop_windows(boxes: np.ndarray, frame_size: tuple[int, int], padding: float) -> np.ndarray:
    """Integer crop windows (N, 4) x1, y1, x2, y2: each box grown by `padding` around its centre (context for
    the segmenter; the limbs often leave a detector box), clipped to the frame, at least 2x2 pixels."""
    width, height = frame_size
    centers = (boxes[:, :2] + boxes[:, 2:]) * 0.5
    half = (boxes[:, 2:] - boxes[:, :2]) * 0.5 * padding
    windows = np.concatenate([np.floor(centers - half), np.ceil(centers + half)], axis=1)
    windows[:, [0, 2]] = windows[:, [0, 2]].clip(0, width)
    windows[:, [1, 3]] = windows[:, [1, 3]].clip(0, height)
    windows[:, 2] = np.maximum(windows[:, 2], np.minimum(windows[:, 0] + 2, width))
    windows[:, 3] = np.maximum(windows[:, 3], np.minimum(windows[:, 1] + 2, height))
    windows[:, 0] = np.minimum(windows[:, 0], windows[:, 2] - 2)
    windows[:, 1] = np.minimum(windows[:, 1], windows[:, 3] - 2)
    return windows.astype(np.int64)


def person_probability(output: np.ndarray) -> np.ndarray:
    """(N, H, W) float person score from either PP-HumanSeg output form: softmax [N, 2, H, W] -> channel 1;
    argmax [N, H, W] (or [N, 1, H, W]) int -> 0/1."""
    output = np.asarray(output)
    if output.ndim == 4 and output.shape[1] == 2 and np.issubdtype(output.dtype, np.floating):
        return output[:, 1]
    if output.ndim == 4 and output.shape[1] == 1:
        output = output[:, 0]
    if output.ndim == 3:
        return (output == 1).astype(np.float32)
    raise ModelUnavailable(f"unexpected PP-HumanSeg output shape {output.shape} dtype {output.dtype}: expected "
                           "softmax [N, 2, H, W] or argmax [N, H, W]")


class _HumanSegBase:
    """Crop / normalise / paste shared by the ONNX and Paddle runners; subclasses provide `_run(tensor)`."""

    input_size: tuple[int, int]  # (width, height)

    def __init__(self, batch_size: int, padding: float, threshold: float):
        self.batch_size = batch_size
        self.padding = padding
        self.threshold = threshold

    def preprocess(self, frames: np.ndarray, windows: np.ndarray) -> np.ndarray:
        width, height = self.input_size
        crops = np.stack([cv2.resize(frame[y1:y2, x1:x2], (width, height), interpolation=cv2.INTER_LINEAR)
                          for frame, (x1, y1, x2, y2) in zip(frames, windows)])
        tensor = (crops.astype(np.float32) / 255.0 - 0.5) / 0.5
        return np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))

    def segment(self, frames: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        frames = check_frames(frames)
        return full_masks(self.segment_windows(frames, boxes), (frames.shape[2], frames.shape[1]))

    def segment_windows(self, frames: np.ndarray, boxes: np.ndarray) -> list[tuple[int, int, np.ndarray]]:
        """Per frame (x0, y0, mask of its crop window): `segment` without the full-frame masks."""
        frames = check_frames(frames)
        boxes = check_boxes(boxes, len(frames))
        windows = crop_windows(boxes, (frames.shape[2], frames.shape[1]), self.padding)
        out = []
        for part in batches(len(frames), self.batch_size):
            probability = person_probability(self._run(self.preprocess(frames[part], windows[part])))
            for score, (x1, y1, x2, y2) in zip(probability, windows[part]):
                crop_probability = cv2.resize(score.astype(np.float32), (int(x2 - x1), int(y2 - y1)),
                                              interpolation=cv2.INTER_LINEAR)
                out.append((int(x1), int(y1), crop_probability > self.threshold))
        return out


class HumanSegOnnx(_HumanSegBase):
    """Segmenter backend on a PP-HumanSeg ONNX export: `segment(frames (B, H, W, 3) RGB, boxes (B, 4))
    -> (B, H, W) bool`. The input must be named `x`; the first output is read whatever its name (paddle2onnx
    names it after the Paddle variable)."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, batch_size: int = 32, padding: float = 1.2, threshold: float = 0.5,
                 threads: int | None = None, input_size: tuple[int, int] | None = None, **options):
        """`input_size` (width, height) is only needed for an export with dynamic height/width that is not a
        registry model, e.g. [256, 144] for the v2 portrait model."""
        if options:
            raise ConfigError(f"HumanSegOnnx: unknown options {sorted(options)}")
        super().__init__(batch_size, padding, threshold)
        spec, path = registry.require(models_dir=models_dir, model=model, weights=weights,
                                      default=None if weights else "pp-humanseg-v2", task="segmenter")
        self.name = spec.name if spec else path.name
        self.path = path
        self.session = onnx_session(path, device, threads)
        inputs = {i.name: i.shape for i in self.session.get_inputs()}
        shape = inputs.get(INPUT_NAME)
        if shape is None or len(shape) != 4:
            raise ModelUnavailable(f"{path}: expected an input `x` (N, 3, H, W) (PP-HumanSeg export), found "
                                   f"{inputs}")
        if all(isinstance(s, int) and s > 0 for s in shape[2:]):
            self.input_size = (int(shape[3]), int(shape[2]))
        elif input_size is not None:
            self.input_size = (int(input_size[0]), int(input_size[1]))
        elif spec is not None and spec.input_size:
            self.input_size = tuple(spec.input_size)  # dynamic H, W in the export: use the registry's size
        else:
            raise ModelUnavailable(f"{path}: input `x` has dynamic height/width {shape}; give `input_size: [W, H]`")
        self.output_name = self.session.get_outputs()[0].name

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        return run_onnx(self.session, [self.output_name], INPUT_NAME, tensor)[0]


class HumanSegPaddle(_HumanSegBase):
    """The same segmenter on the official Paddle inference model folder (`model.pdmodel` or `model.json`,
    `model.pdiparams`, `deploy.yaml`) through Paddle Inference. Needs the optional `paddle` extra."""

    def __init__(self, *, models_dir: Path | None = None, device: str = "cpu", model: str | None = None,
                 weights: str | None = None, batch_size: int = 32, padding: float = 1.2, threshold: float = 0.5,
                 threads: int | None = None, **options):
        if options:
            raise ConfigError(f"HumanSegPaddle: unknown options {sorted(options)}")
        super().__init__(batch_size, padding, threshold)
        spec, folder = registry.require(models_dir=models_dir, model=model, weights=weights,
                                        default=None if weights else "pp-humanseg-v2-paddle", task="segmenter")
        try:
            from paddle import inference as paddle_inference
        except ImportError as error:
            raise ModelUnavailable(f"the Paddle Inference backend needs paddlepaddle: {PADDLE_INSTALL}") from error
        self.name = spec.name if spec else folder.name
        program = folder / "model.pdmodel" if (folder / "model.pdmodel").exists() else folder / "model.json"
        parameters = folder / "model.pdiparams"
        if not program.exists() or not parameters.exists():
            raise ModelUnavailable(f"{folder}: expected model.pdmodel (or model.json) and model.pdiparams")
        config = paddle_inference.Config(str(program), str(parameters))
        if device.startswith("cuda"):
            config.enable_use_gpu(256, int(device.split(":", 1)[1]) if ":" in device else 0)
        else:
            config.disable_gpu()
            config.set_cpu_math_library_num_threads(threads or 1)
            # The new JSON program format fails in oneDNN kernels on CPU (see the Paddle notes in the README).
            config.disable_mkldnn()
        self.predictor = paddle_inference.create_predictor(config)
        size = (spec.input_size if spec and spec.input_size else None) or _deploy_size(folder) or (192, 192)
        self.input_size = tuple(int(s) for s in size)

    def _run(self, tensor: np.ndarray) -> np.ndarray:
        handle = self.predictor.get_input_handle(self.predictor.get_input_names()[0])
        handle.reshape(tensor.shape)
        handle.copy_from_cpu(tensor)
        self.predictor.run()
        return self.predictor.get_output_handle(self.predictor.get_output_names()[0]).copy_to_cpu()


def _deploy_size(folder: Path) -> tuple[int, int] | None:
    """Target size from PaddleSeg's deploy.yaml (`Deploy.transforms[*].target_size`), if present."""
    import yaml

    deploy = folder / "deploy.yaml"
    if not deploy.exists():
        return None
    document = yaml.safe_load(deploy.read_text()) or {}
    for transform in (document.get("Deploy") or {}).get("transforms") or []:
        if "target_size" in transform:
            return tuple(transform["target_size"])
    return None
