"""The training loop shared by every stage: Adam, checkpoints with exact resume, logs, AMP, DDP.

- Resume only what was started: ``last.pt`` is resumed when the config (apart from `RUNTIME_KEYS`), the
  attribute labels and the stage's starting point (``origin``) are those it was trained with; otherwise the run
  is refused naming the differing keys, and ``resume=False`` (``--restart``) starts the stage over.
- Exact resume: a checkpoint holds model, optimiser, scheduler, the RNG states of python, numpy, torch (and
  CUDA), the iteration and the sampler position (epoch, batch in epoch). Items are sampled from
  (seed, epoch, index) by the loaders and batches from (seed, epoch) by `EpochBatches`, so a resumed run
  computes the same next loss as an uninterrupted one. Writes are atomic (`ragar_data.atomic`).
- Logs: TensorBoard scalars (loss, lr, 1/τ where there is one) under ``<stage_dir>/tensorboard``; a progress bar
  (`ragar_data.progress`) with loss and it/s. Rank 0 alone logs and writes checkpoints.
- GPU: bf16 autocast (``train.amp=bf16``) and channels-last weights (``train.channels_last``) on CUDA; CPU
  runs fp32.
- DDP: under ``torchrun`` (WORLD_SIZE > 1) each process takes its slice of every global batch (batch_size
  per process) and the model is wrapped in DistributedDataParallel (NCCL on CUDA, gloo on CPU).
"""
from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
from torch import nn

from ragar_data.atomic import atomic_torch_save
from ragar_data.errors import RagarDataError
from ragar_data.training.build import CHECKPOINT_FORMAT, load_model_state, read_checkpoint
from ragar_data.training.config import Config
from ragar_data.training.data import EpochBatches, batch_loader


# Settings that change where, how fast or how verbosely a run goes, not what it computes: a resumed run may change
# them. (The text features are in the model state, so the text weights file is not read again on resume.)
RUNTIME_KEYS = frozenset({
    "data.num_workers", "data.eval_batch_size", "data.max_eval_frames", "data.row_cache", "data.row_cache_dir",
    "text.weights", "text.cache_dir", "train.device", "train.log_every", "train.checkpoint_every",
    "train.output_dir",
})
STAGE_ITERATIONS = {"align": "train.align_iterations", "fusion": "train.fusion_iterations",
                    "classification": "train.classification_iterations"}


class TrainingTask(Protocol):
    """One stage: which model, which parameters train, and the loss of a batch."""

    kind: str  # "clipgar" | "classification"
    stage: str  # "align" | "fusion" | "classification"
    model: nn.Module

    def prepare(self) -> None:
        """Set requires_grad and train/eval modes for this stage."""

    def loss(self, model: nn.Module, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        ...


@dataclass
class Runtime:
    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


@dataclass
class StageResult:
    checkpoint: Path
    losses: dict[int, float] = field(default_factory=dict)  # iteration -> loss, for this process's run
    iterations_per_second: float = 0.0


def runtime_for(config: Config) -> Runtime:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    wanted = config.train.device
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    if world_size > 1:
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if wanted == "cuda" else "gloo")
        device = torch.device(f"cuda:{local_rank}") if wanted == "cuda" else torch.device("cpu")
        if wanted == "cuda":
            torch.cuda.set_device(device)
        return Runtime(device, dist.get_rank(), world_size, local_rank)
    return Runtime(torch.device(wanted))


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def rng_state() -> dict:
    # numpy's state as plain values and a tensor, so checkpoints load with torch.load(weights_only=True)
    name, keys, position, has_gauss, cached = np.random.get_state()
    numpy_state = [name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached)]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def lr_lambda(config: Config, iterations: int) -> Callable[[int], float]:
    warmup, kind = config.optim.warmup_iterations, config.optim.scheduler
    if kind not in ("constant", "cosine"):
        raise RagarDataError(f"optim.scheduler: expected 'constant' or 'cosine', got {kind!r}")

    def factor(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "cosine":
            progress = min(1.0, (step - warmup) / max(1, iterations - warmup))
            return 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return factor


def to_channels_last(module: nn.Module) -> None:
    for parameter in module.parameters():
        if parameter.dim() == 4:
            parameter.data = parameter.data.contiguous(memory_format=torch.channels_last)
        elif parameter.dim() == 5:
            parameter.data = parameter.data.contiguous(memory_format=torch.channels_last_3d)


def _unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def _flatten(values: dict, prefix: str = "") -> dict:
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def config_changes(saved: dict, current: dict, stage: str) -> list[str]:
    """``"key: old -> new"`` for every setting of `stage` that differs between two configs (as dicts)."""
    saved, current = _flatten(saved), _flatten(current)
    other_stages = {key for name, key in STAGE_ITERATIONS.items() if name != stage}
    names = sorted((set(saved) | set(current)) - RUNTIME_KEYS - other_stages)
    absent = "(absent)"
    return [f"{name}: {saved.get(name, absent)!r} -> {current.get(name, absent)!r}"
            for name in names if saved.get(name, absent) != current.get(name, absent)]


def check_resumable(state: dict, task: TrainingTask, config: Config, label_names: list[str], path: Path,
                    origin: str | None = None) -> None:
    """Refuse to resume a checkpoint of another stage, config, attribute schema or starting point (`origin`),
    saying what differs."""
    if state.get("stage") != task.stage:
        raise RagarDataError(f"{path}: a {state.get('stage')} checkpoint, this stage is {task.stage}")
    changes = config_changes(state.get("config", {}), config.to_dict(), task.stage)
    if state.get("label_names") != label_names:
        changes.append("attribute labels (schemas/attributes.yaml) differ")
    if origin is not None and state.get("origin") not in (None, origin):  # None: written without one
        changes.append(f"the stage started from {state['origin']}, now from {origin}")
    if changes:
        listing = "\n  ".join(changes)
        raise RagarDataError(
            f"{path}: this run directory holds a {task.stage} checkpoint at iteration {state.get('iteration')} "
            f"trained with another config or starting point:\n  {listing}\nresume with the same config, train "
            f"into a new directory (--out), or start the stage over with --restart (replaces its checkpoints)")


def checkpoint_payload(task: TrainingTask, config: Config, iteration: int, optimizer, scheduler,
                       epoch: int, batch_in_epoch: int, label_names: list[str], rng_per_rank: list[dict],
                       origin: str | None = None) -> dict:
    return {
        "format": CHECKPOINT_FORMAT, "kind": task.kind, "stage": task.stage, "iteration": iteration,
        "config": config.to_dict(), "label_names": label_names, "origin": origin,
        "model": _unwrap(task.model).state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
        "rng": rng_per_rank[0], "rng_per_rank": rng_per_rank,
        "sampler": {"epoch": epoch, "batch_in_epoch": batch_in_epoch},
    }


def gather_rng_states(runtime: Runtime) -> list[dict]:
    """Every process's RNG state (a collective under DDP: all ranks must call it together)."""
    if runtime.world_size == 1:
        return [rng_state()]
    import torch.distributed as dist

    states = [None] * runtime.world_size
    dist.all_gather_object(states, rng_state())
    return states


def train_stage(task: TrainingTask, dataset, config: Config, stage_dir: str | Path, iterations: int,
                label_names: list[str], resume: bool = True, stop_after: int | None = None,
                collate_fn=None, runtime: Runtime | None = None, progress: bool = True,
                origin: str | None = None) -> StageResult:
    """Train ``task.model`` for ``iterations`` steps; returns the final checkpoint (``<stage_dir>/final.pt``).

    Resumes from ``<stage_dir>/last.pt`` when it exists and ``resume`` is set. ``stop_after`` ends this run
    early after that many iterations in total, as an interruption would (the last checkpoint stays). ``origin``
    names what the stage starts from (the fusion stage: the align checkpoint's digest); it is stored in the
    checkpoints and a resume from another origin is refused.
    """
    from ragar_data.loaders import collate

    stage_dir = Path(stage_dir)
    runtime = runtime or runtime_for(config)
    seed_everything(config.train.seed + runtime.rank, config.train.deterministic)
    task.prepare()
    model = task.model.to(runtime.device)
    on_cuda = runtime.device.type == "cuda"
    if on_cuda and config.train.channels_last:
        to_channels_last(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise RagarDataError(f"stage {task.stage}: no trainable parameters")
    optimizer = torch.optim.Adam(trainable, lr=config.optim.lr, betas=tuple(config.optim.betas),
                                 eps=config.optim.eps, weight_decay=config.optim.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, iterations))

    iteration, epoch, batch_in_epoch = 0, 0, 0
    last_path, final_path = stage_dir / "last.pt", stage_dir / "final.pt"
    if resume and last_path.is_file():
        state = read_checkpoint(last_path)
        check_resumable(state, task, config, label_names, last_path, origin)
        load_model_state(_unwrap(model), state["model"], str(last_path))
        try:
            optimizer.load_state_dict(state["optimizer"])
        except (ValueError, KeyError) as error:
            raise RagarDataError(f"{last_path}: the optimiser state does not fit this stage's parameters: "
                                 f"{error}; --restart starts the stage over") from error
        scheduler.load_state_dict(state["scheduler"])
        per_rank = state.get("rng_per_rank") or [state["rng"]]
        # each process resumes its own RNG stream when the process count is unchanged
        set_rng_state(per_rank[runtime.rank] if len(per_rank) == runtime.world_size else per_rank[0])
        iteration = state["iteration"]
        epoch, batch_in_epoch = state["sampler"]["epoch"], state["sampler"]["batch_in_epoch"]

    if runtime.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel

        if on_cuda:  # as OpenGait's sync_BN: batch statistics over all processes (the state dict is unchanged)
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
            task.model = model
        model = DistributedDataParallel(model, device_ids=[runtime.device.index] if on_cuda else None)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_cuda and config.train.amp == "bf16" else None

    writer = None
    if runtime.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(stage_dir / "tensorboard"))
    bar = None
    if runtime.is_main and progress:
        from ragar_data.progress import Progress

        bar = Progress(task.stage, iterations, unit="it", initial=iteration)

    def save(path: Path) -> None:
        rng_per_rank = gather_rng_states(runtime)  # on every rank: a collective under DDP
        if runtime.is_main:
            atomic_torch_save(path, checkpoint_payload(task, config, iteration, optimizer, scheduler, epoch,
                                                       batch_in_epoch, label_names, rng_per_rank, origin))

    result = StageResult(final_path)
    end = iterations if stop_after is None else min(iterations, stop_after)
    started, first_iteration = time.perf_counter(), iteration
    while iteration < end:
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        batches = EpochBatches(len(dataset), config.train.batch_size, config.train.seed, epoch, batch_in_epoch,
                               runtime.rank, runtime.world_size)
        # Its own generator: creating a loader must not draw from the global RNG, or a resumed run (which
        # creates one more loader) would see other dropout masks than an uninterrupted one.
        loader = batch_loader(dataset, batches, config.data.num_workers, collate_fn or collate, pin_memory=on_cuda,
                              generator=torch.Generator().manual_seed(config.train.seed * 1_000_003 + epoch))
        for batch in loader:
            if autocast is not None:
                with autocast:
                    loss, scalars = task.loss(model, _to_device(batch, runtime.device))
            else:
                loss, scalars = task.loss(model, _to_device(batch, runtime.device))
            if not torch.isfinite(loss):
                raise RagarDataError(f"stage {task.stage}: loss is {loss.item()} at iteration {iteration + 1}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            iteration += 1
            batch_in_epoch += 1
            value = float(loss.detach())
            result.losses[iteration] = value
            if bar is not None:
                bar.note(f"loss={value:.4f}")
                bar.advance()
            if writer is not None and (iteration % config.train.log_every == 0 or iteration == end):
                writer.add_scalar(f"{task.stage}/loss", value, iteration)
                writer.add_scalar(f"{task.stage}/lr", scheduler.get_last_lr()[0], iteration)
                for name, scalar in scalars.items():
                    writer.add_scalar(f"{task.stage}/{name}", scalar, iteration)
            if batch_in_epoch == batches.batches_per_epoch:
                epoch, batch_in_epoch = epoch + 1, 0
            if iteration % config.train.checkpoint_every == 0:
                save(last_path)
            if iteration >= end:
                break
    elapsed = time.perf_counter() - started
    result.iterations_per_second = (iteration - first_iteration) / elapsed if elapsed > 0 else 0.0
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    if iteration >= iterations:
        save(last_path)
        save(final_path)
    if runtime.world_size > 1:
        import torch.distributed as dist

        dist.barrier()
    return result


def _to_device(batch: dict, device: torch.device) -> dict:
    from ragar_data.loaders import silhouettes_to_unit_range

    # the training loader sends uint8 silhouettes (a quarter of the bytes): converted here, on the device
    return silhouettes_to_unit_range(
        {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()})
