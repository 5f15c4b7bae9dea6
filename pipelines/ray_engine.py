"""Ray engine: the same stages as the local engine, one Ray task per group of sequences.

Tasks return records and side data to the driver, which writes part files and shards exactly as the local
engine does (workers only need to read the videos: a cluster needs the video paths mounted on every node, not a
shared output folder). `address` joins an existing cluster ("auto", "ray://head:10001"); without it a local Ray
with `num_cpus` CPUs is started and shut down at the end.
"""
from __future__ import annotations

from typing import Iterator


def run_groups_on_ray(groups: list, config_json: str, stage_args: tuple, kwargs: dict, *, address: str | None,
                      num_cpus: int = 1, max_in_flight: int | None = None) -> Iterator[list]:
    try:
        import ray
    except ImportError as error:
        raise RuntimeError("--engine ray needs Ray: pip install 'ray[data]>=2.40,<3'") from error
    from ragar_data.pipelines.runner import process_in_worker

    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=max(1, num_cpus), include_dashboard=False, log_to_driver=False)
    try:
        task = ray.remote(num_cpus=1)(process_in_worker)
        limit = max_in_flight or 2 * max(1, int(ray.cluster_resources().get("CPU", num_cpus)))
        pending, queue = [], list(groups)
        labels, config_hash, keep_masks = kwargs["labels"], kwargs["config_hash"], kwargs["keep_masks"]
        labels_ref, plates_ref = ray.put(labels), ray.put(kwargs.get("plates") or {})
        while queue or pending:
            while queue and len(pending) < limit:  # bounded: each finished task returns masks and records
                pending.append(task.remote(config_json, stage_args, queue.pop(0), labels_ref, config_hash,
                                           keep_masks, plates_ref))
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()
