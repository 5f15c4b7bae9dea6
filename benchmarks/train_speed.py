"""Training speed at the paper's settings: iterations/s of CLIP-GAR's align and fusion stages and of every
registered attribute model (Table 3's baselines), one optimiser step each.

Random inputs already in memory (silhouettes batch x 30 x 64 x 44, or keypoints batch x 30 x 17 x 3), so the
figure is the model's, not the loader's. On CUDA it measures fp32 and bf16 autocast (with channels-last) side by
side; on CPU fp32 only, and says that the GPU figures were not measured.

    python benchmarks/train_speed.py [--batch-size 32] [--iterations 5] [--warmup 2] [--config clipgar]
        [--models all|none|gaitset,gaitgraph,...]
"""
from __future__ import annotations

import argparse
import time

import torch

from ragar_data.attributes import default_schema
from ragar_data.models.losses import align_kl_loss, masked_bce_loss
from ragar_data.models.text_encoders import TextFeatures
from ragar_data.training.build import build_clipgar
from ragar_data.training.config import load_config
from ragar_data.training.stages import AlignTask, FusionTask
from ragar_data.training.trainer import to_channels_last


def measure(stage: str, config, batch_size: int, iterations: int, warmup: int, device: torch.device,
            bf16: bool) -> float:
    schema = default_schema()
    # Random stand-in text features of the paper's size (d = 1024): speed does not depend on their values.
    text = TextFeatures(torch.randn(schema.total_classes, 1024), learned=False)
    model = build_clipgar(config, schema, text)
    task = AlignTask(model) if stage == "align" else FusionTask(model)
    task.prepare()
    model.to(device)
    if device.type == "cuda":
        to_channels_last(model)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4, eps=1e-6,
                                 weight_decay=2e-5)
    generator = torch.Generator().manual_seed(0)
    silhouettes = (torch.rand(batch_size, config.data.frames, 64, 44, generator=generator) > 0.5).float().to(device)
    labels = torch.stack([torch.randint(0, n, (batch_size,), generator=generator) for n in schema.num_classes], 1)
    one_hot = torch.from_numpy(schema.to_one_hot(labels.numpy())).to(device)
    labels = labels.to(device)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            if stage == "align":
                loss = align_kl_loss(model(silhouettes, stage="align"), model.align_head.scale(), labels, schema)
            else:
                loss = masked_bce_loss(model(silhouettes, stage="fusion"), one_hot, labels, schema)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _timed(step, iterations, warmup, device)


def measure_model(name: str, batch_size: int, frames: int, iterations: int, warmup: int, device: torch.device,
                  bf16: bool) -> float:
    """Iterations/s of one registered model with its attribute head and the masked BCE, on random input."""
    from ragar_data.models.registry import create_model

    schema = default_schema()
    model = create_model(name, schema=schema).to(device).train()
    generator = torch.Generator().manual_seed(0)
    if model.input_field == "keypoints_2d":
        inputs = torch.rand(batch_size, frames, 17, 3, generator=generator) * torch.tensor([200.0, 400.0, 1.0])
    else:
        inputs = (torch.rand(batch_size, frames, 64, 44, generator=generator) > 0.5).float()
    labels = torch.stack([torch.randint(0, n, (batch_size,), generator=generator) for n in schema.num_classes], 1)
    one_hot = torch.from_numpy(schema.to_one_hot(labels.numpy())).to(device)
    inputs, labels = inputs.to(device), labels.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, eps=1e-6, weight_decay=2e-5)

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = masked_bce_loss(model(inputs), one_hot, labels, schema)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return _timed(step, iterations, warmup, device)


def _timed(step, iterations: int, warmup: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(iterations):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return iterations / (time.perf_counter() - started)


def model_names(text: str) -> list[str]:
    from ragar_data.models.registry import list_models

    if text == "none":
        return []
    return list_models() if text == "all" else [name.strip() for name in text.split(",") if name.strip()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="clipgar")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--models", default="all", help="registered models to time: all, none or a comma list")
    arguments = parser.parse_args()
    if arguments.threads:
        torch.set_num_threads(arguments.threads)
    config = load_config(arguments.config)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precisions = [("fp32", False), ("bf16", True)] if device.type == "cuda" else [("fp32", False)]
    print(f"device {device} ({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} CPU threads'}); "
          f"batch {arguments.batch_size} x {config.data.frames} x 64 x 44; layers {config.model.layers}, "
          f"channels {config.model.channels}; {arguments.warmup} warm-up + {arguments.iterations} timed iterations")
    results = {}
    for stage in ("align", "fusion"):
        for name, bf16 in precisions:
            results[(stage, name)] = measure(stage, config, arguments.batch_size, arguments.iterations,
                                             arguments.warmup, device, bf16)
            print(f"{stage:6s} {name}: {results[(stage, name)]:.3f} it/s")
        if device.type == "cuda":
            print(f"{stage:6s} bf16 / fp32: {results[(stage, 'bf16')] / results[(stage, 'fp32')]:.2f}x")
    for name in model_names(arguments.models):
        for label, bf16 in precisions:
            results[(name, label)] = measure_model(name, arguments.batch_size, config.data.frames,
                                                   arguments.iterations, arguments.warmup, device, bf16)
            print(f"{name:15s} {label}: {results[(name, label)]:.3f} it/s")
        if device.type == "cuda":
            print(f"{name:15s} bf16 / fp32: {results[(name, 'bf16')] / results[(name, 'fp32')]:.2f}x")
    if device.type != "cuda":
        print("no CUDA device here: the GPU figures (fp32 vs bf16) were not measured")


if __name__ == "__main__":
    main()
