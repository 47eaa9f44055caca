"""The Ray executor (``executor.py``: the driver side, one module), its workers (``worker.py``),
the messages between them (``messages.py``) and where it runs (``cluster.py``)."""

from odenet.studies.executors.ray.cluster import RayConfig
from odenet.studies.executors.ray.executor import RayExecutor, make_ray_executor

__all__ = ["RayConfig", "RayExecutor", "make_ray_executor"]
