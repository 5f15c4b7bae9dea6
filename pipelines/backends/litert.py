"""LiteRT (`ai-edge-litert`) plumbing for the .tflite backends: load a model with a clear error, and run it
over a batch, either in one call (the interpreter's input resized to the batch) or one item at a time for
models whose graph fixes the batch at 1 (BlazePose's detector reshapes to a constant batch of 1).

Does not own any model's pre- or post-processing (see `blazepose*.py`, `selfie.py`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ragar_data.errors import InputError, ModelUnavailable

LITERT_INSTALL = "pip install 'ai-edge-litert>=2.3,<3'"


class LiteRTModel:
    """One .tflite model: `run(tensor (B, ...)) -> [outputs (B, ...)]` in the model's output order.

    `batched=True` resizes the input to the batch size (checked equal to one-at-a-time on the BlazePose
    landmark and selfie models); `batched=False` calls the model once per item."""

    def __init__(self, path: Path, threads: int | None = None, batched: bool = True, batch_size: int = 8):
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as error:
            raise ModelUnavailable(f"{path.name} needs the LiteRT runtime: {LITERT_INSTALL}") from error
        try:
            self.interpreter = Interpreter(model_path=str(path), num_threads=threads or 2)
        except (ValueError, RuntimeError) as error:
            raise ModelUnavailable(f"{path}: LiteRT cannot load it ({error})") from error
        self.path = path
        self.batched = batched
        self.batch_size = max(1, batch_size) if batched else 1
        detail = self.interpreter.get_input_details()[0]
        self.input_index = int(detail["index"])
        self.input_shape = tuple(int(s) for s in detail["shape"][1:])
        self.output_indices = [int(d["index"]) for d in self.interpreter.get_output_details()]
        self._allocated_batch = 0

    def _allocate(self, batch: int) -> None:
        if batch != self._allocated_batch:
            self.interpreter.resize_tensor_input(self.input_index, [batch, *self.input_shape])
            self.interpreter.allocate_tensors()
            self._allocated_batch = batch

    def _invoke(self, tensor: np.ndarray) -> list[np.ndarray]:
        self._allocate(len(tensor))
        self.interpreter.set_tensor(self.input_index, np.ascontiguousarray(tensor, dtype=np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(index).copy() for index in self.output_indices]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        if tuple(tensor.shape[1:]) != self.input_shape:
            raise InputError(f"{self.path.name} takes (B, {', '.join(map(str, self.input_shape))}) input, got "
                             f"{tensor.shape}")
        if len(tensor) == 0:
            raise InputError(f"{self.path.name}: empty batch (callers skip empty input)")
        parts = [self._invoke(tensor[start:start + self.batch_size])
                 for start in range(0, len(tensor), self.batch_size)]
        return [np.concatenate(outputs) for outputs in zip(*parts)]
