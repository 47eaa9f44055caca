"""Where a run executes and what it records about itself: device choice, precision, seeds,
provenance."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import platform
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import torch
from torch import Tensor, nn

from odenet.data.loader import resolve_device
from odenet.errors import ConfigError
from odenet.training.config import TrainConfig

log = logging.getLogger("odenet.training")


@dataclass(frozen=True)
class Placement:
    """The resolved execution settings of a run."""

    device: torch.device  # where the model and batches live
    amp: bool  # bf16 autocast around forward passes
    channels_last: bool  # NHWC memory format for the model and batches


def resolve(config: TrainConfig) -> Placement:
    """Device "auto" -> cuda when available, else cpu; "cuda" without CUDA -> ConfigError.

    amp / channels_last default (None) to on for CUDA and off for CPU.
    """
    device = resolve_device(config.device)
    on_cuda = device.type == "cuda"
    amp = on_cuda if config.amp is None else bool(config.amp)
    channels_last = on_cuda if config.channels_last is None else bool(config.channels_last)
    return Placement(device, amp, channels_last)


def autocast(placement: Placement) -> AbstractContextManager:
    """bf16 autocast on the run's device when amp is on, otherwise a no-op context."""
    if not placement.amp:
        return nullcontext()
    return torch.autocast(placement.device.type, dtype=torch.bfloat16)


def data_seed(seed: int) -> int:
    """The seed of the data order / augmentation generator, derived from the run seed.

    It is the first 8 bytes (little-endian, top bit cleared) of sha256(b"odenet-data:<seed>"),
    so it never coincides with the model-init seed (``seed`` itself) of any nearby run.
    """
    digest = hashlib.sha256(f"odenet-data:{seed}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (timing on CUDA); a no-op on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def host_read(t: Tensor) -> list[float]:
    """The one device -> host read of the engine: ``t`` (1-d) as Python floats.

    The engine packs everything it needs at a read (losses, divergence flags, sums) into one
    float64 tensor and reads it here, every few steps and at an epoch's end, never per step.
    """
    return t.tolist()


def provenance(config: TrainConfig, placement: Placement) -> dict:
    """What produced a result: versions, device, seeds and the full config."""
    try:
        odenet_version = version("odenet")
    except PackageNotFoundError:
        odenet_version = "0.0.0+source"
    if placement.device.type == "cuda":
        device_name = torch.cuda.get_device_name(placement.device)
    else:
        device_name = platform.processor() or platform.machine() or "cpu"
    return {
        "odenet": odenet_version,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(placement.device),
        "device_name": device_name,
        "amp": placement.amp,
        "channels_last": placement.channels_last,
        "seed": config.seed,
        "data_seed": data_seed(config.seed),
        "config": dataclasses.asdict(config),
    }


CAPTURE_DEVICES = ("cuda",)  # device types whose training forward is captured
CAPTURE_COMPILE = {"mode": "reduce-overhead", "dynamic": False}  # torch.compile's arguments


class CapturedForward:
    """A training forward whose full batches run through ``torch.compile(mode="reduce-overhead")``.

    On CUDA that mode records the forward and backward as CUDA graphs and replays them, so a
    step costs a few launches instead of hundreds. Graphs need static shapes: a batch of any
    other size than ``batch_size`` (the last, partial batch of an epoch) runs eagerly through
    ``model`` rather than triggering a second compilation. Both share ``model``'s parameters.

    Each capture starts from a clean compiler state (``torch.compiler.reset()``): dynamo keeps
    at most 8 compiled versions of a function (ResNet.forward) and silently runs eagerly past
    that, which a study of more than 8 architectures in one process would reach. The price:
    every run compiles afresh (inductor's on-disk caches make a repeated architecture quicker),
    and other compiled functions of the process recompile when next called.

    A compilation or capture that raises is not a failed run: one warning line is logged, the
    run goes on eagerly, ``engine`` becomes "eager" and ``fallback`` holds the one-line reason.
    """

    def __init__(self, model: nn.Module, batch_size: int, engine: str = "cuda-graphs") -> None:
        self.model, self.batch_size = model, batch_size
        self.engine: str = engine  # "cuda-graphs" | "compiled" (capture on a non-CUDA device)
        self.fallback: str | None = None  # why the run went on eagerly
        try:
            torch.compiler.reset()
            self.compiled = torch.compile(model, **CAPTURE_COMPILE)
        except Exception as err:  # noqa: BLE001 - any compiler failure: train eagerly
            self._fall_back(err)

    def __call__(self, x: Tensor) -> Tensor:
        if self.fallback is not None or x.shape[0] != self.batch_size:
            return self.model(x)
        try:
            # A new training iteration: the previous step's graph outputs may be reused.
            torch.compiler.cudagraph_mark_step_begin()
            return self.compiled(x)
        except Exception as err:  # noqa: BLE001 - compilation happens at the first call
            self._fall_back(err)
            return self.model(x)

    def _fall_back(self, err: Exception) -> None:
        text = str(err).strip().splitlines()
        self.fallback = f"{type(err).__name__}: {text[0] if text else ''}".strip()
        self.engine = "eager"
        log.warning("torch.compile/CUDA-graph capture failed, training eagerly: %s", self.fallback)


def engine_of(forward: Callable[[Tensor], Tensor]) -> dict[str, str]:
    """Provenance of the path that trained a run: {"engine": ...} (+ "engine_fallback")."""
    if not isinstance(forward, CapturedForward):
        return {"engine": "eager"}
    if forward.fallback is None:
        return {"engine": forward.engine}
    return {"engine": "eager", "engine_fallback": forward.fallback}


def compiled_forward(
    model: nn.Module, placement: Placement, *, enabled: bool | None, batch_size: int
) -> Callable[[Tensor], Tensor]:
    """The training forward: ``model`` itself, or a ``CapturedForward`` of it.

    enabled None: captured on CUDA, eager elsewhere; False: eager; True on a device that is not
    CUDA: ConfigError. Keep using ``model`` for state dicts and evaluation.
    """
    captures = placement.device.type in CAPTURE_DEVICES
    if enabled and not captures:
        raise ConfigError("CUDA graphs need a CUDA device: turn them off or use --device cuda")
    if enabled is False or not captures:
        return model
    engine = "cuda-graphs" if placement.device.type == "cuda" else "compiled"
    return CapturedForward(model, batch_size, engine)
