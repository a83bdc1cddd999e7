"""A latency target as an operator registers it: where and how its latency is measured.

The settings mirror the workers' measurement profile (``workers.latency.DeviceProfile``):

- ``torch_device``, ``threads``, ``batch_size``: what runs, on what, how wide;
- ``warmup``, ``repeats``: untimed runs first, then timed runs (the trimmed mean is reported);
- ``clock``: ``wall`` (elapsed time) or ``cpu`` (the calling thread's CPU time: on a shared
  machine it leaves out the time the scheduler gives to other processes; CPU, one thread only);
- ``runtime``: ``eager`` (the PyTorch module) or ``torchscript`` (the exported network, frozen for
  inference);
- ``paired``: pair every timed run with a run of a fixed reference network of the space and scale
  by the ratio, so that the machine's speed drift cancels (speed-normalised latency);
- ``ray_resource``: the custom Ray resource of the nodes that are (or drive) the device; latency
  for it is measured only there.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from nas_service.catalog import devices
from nas_service.domain.errors import ValidationFailed, field_errors

DEVICE_NAME = r"^[a-z0-9][a-z0-9._-]{0,63}$"


def _runtimes(schema: dict[str, Any]) -> None:
    schema["enum"] = devices.names()


class DeviceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=DEVICE_NAME)
    torch_device: str = Field(default="cpu", pattern=r"^(cpu|cuda(:[0-9]+)?)$")
    threads: int = Field(default=1, ge=1, le=256)
    batch_size: int = Field(default=1, ge=1, le=4096)
    warmup: int = Field(default=10, ge=0, le=10_000)
    repeats: int = Field(default=50, ge=1, le=100_000)
    clock: Literal["wall", "cpu"] = "wall"
    runtime: str = Field(default="eager", json_schema_extra=_runtimes)
    paired: bool = False
    ray_resource: str | None = Field(default=None, min_length=1, max_length=64)
    description: str = Field(default="", max_length=2000)

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, v: str) -> str:
        if v not in devices.names():
            raise ValueError(f"unknown runtime {v!r}; allowed: {devices.names()}")
        return v

    @model_validator(mode="after")
    def _cpu_clock_needs_one_cpu_thread(self) -> DeviceSpec:
        if self.clock == "cpu" and (self.torch_device != "cpu" or self.threads != 1):
            raise ValueError(
                "clock 'cpu' times the calling thread: it needs torch_device 'cpu' and "
                f"threads 1, got {self.torch_device!r} and {self.threads}"
            )
        return self

    @classmethod
    def parse(cls, **values: object) -> DeviceSpec:
        """Validate, raising :class:`ValidationFailed` with one error per bad field."""
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ValidationFailed(field_errors(exc.errors(), whole="device")) from None
