"""Execution plumbing the backends share: onnxruntime sessions on the best available provider, torch device and
half-precision choice, and the checks on the frame and box arrays every backend receives."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ragar_data.errors import ConfigError, InputError, ModelUnavailable

PRECISIONS = ("fp32", "fp16", "bf16")


def onnx_session(path: Path, device: str = "cpu", threads: int | None = None):
    """An onnxruntime session on CUDAExecutionProvider when `device` is CUDA and the provider is installed
    (onnxruntime-gpu), else on CPU. Asking for CUDA without the provider falls back to CPU with one line saying
    so, because the CPU result is the same and only slower."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    available = onnxruntime.get_available_providers()
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" in available:
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        else:
            print(f"onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu); running {path.name} on CPU")
    try:
        return onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped errors for unreadable models
        raise ModelUnavailable(f"{path}: onnxruntime cannot load it ({error})") from error


def run_onnx(session, output_names: list[str], input_name: str, tensor: np.ndarray) -> list[np.ndarray]:
    """session.run over a batch; an export with a fixed batch dimension (e.g. 1) is fed that many at a time."""
    fixed = next(i.shape[0] for i in session.get_inputs() if i.name == input_name)
    if not isinstance(fixed, int) or fixed <= 0 or fixed == len(tensor):
        return session.run(output_names, {input_name: tensor})
    if len(tensor) % fixed:
        raise InputError(f"the ONNX model takes batches of exactly {fixed}; got {len(tensor)} inputs")
    parts = [session.run(output_names, {input_name: tensor[i:i + fixed]}) for i in range(0, len(tensor), fixed)]
    return [np.concatenate(outputs) for outputs in zip(*parts)]


def torch_device(device: str):
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelUnavailable(f"device {device!r} requested but torch sees no CUDA device")
    return torch.device(device)


def torch_dtype(precision: str, device: str):
    """fp16/bf16 only on CUDA (CPU half matmuls are slow or missing); fp32 otherwise."""
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "fp32" or not device.startswith("cuda"):
        return torch.float32
    return torch.float16 if precision == "fp16" else torch.bfloat16


def check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"frames must be (B, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}")
    return frames


def check_boxes(boxes: np.ndarray, count: int) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.shape != (count, 4):
        raise InputError(f"boxes must be ({count}, 4) x1, y1, x2, y2 (one per frame), got {boxes.shape}")
    return boxes


def batches(count: int, batch_size: int):
    """Slices covering range(count) in steps of batch_size."""
    for start in range(0, count, max(1, batch_size)):
        yield slice(start, min(count, start + batch_size))
