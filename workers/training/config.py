"""Training configuration: an explicit progressive-shrinking schedule and its defaults.

A phase says which dimension kinds are unlocked (``unlock``: kind -> allowed values, an empty
list meaning all choices); every other dimension is fixed to its largest choice. So the first
phase, with nothing unlocked, trains the full network only; later phases add elastic kernel,
depth, expand (or width) and resolution, in that order.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nas_service.catalog.datasets.augment import AugmentOptions
from search_spaces import SearchSpace
from workers.bn import BN_BATCH, BN_IMAGES
from workers.data import DatasetSplits
from workers.training.samplers import SamplerConfig

# Kinds whose shrinking slices channels: channels are importance-sorted once before the first
# phase that unlocks one of them.
WIDTH_KINDS = ("expand", "width")
PHASE_ORDER = ("kernel", "depth", "expand", "width", "resolution")


class PhaseConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    epochs: int = Field(ge=0)
    lr: float = Field(gt=0.0)
    unlock: dict[str, list[int]] = Field(default_factory=dict)
    random_subnets: int = Field(default=0, ge=0, description="sampled subnets per step (n)")
    sandwich: bool = True  # also train the largest and the smallest subnet every step


class HealthConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_rollbacks: int = Field(default=3, ge=0)
    lr_factor: float = Field(default=0.5, gt=0.0, lt=1.0, description="lr multiplier per rollback")
    # Collapse: the largest subnet had reached chance + min_margin and falls back to within
    # collapse_fraction of the way from chance to its best.
    min_margin: float = Field(default=0.2, ge=0.0, le=1.0)
    collapse_fraction: float = Field(default=0.25, ge=0.0, le=1.0)


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    phases: list[PhaseConfig]
    batch_size: int = Field(default=64, ge=1)
    momentum: float = Field(default=0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    weight_decay: float = Field(default=3e-5, ge=0.0)
    warmup_fraction: float = Field(
        default=0.05, ge=0.0, lt=1.0, description="of each phase's steps"
    )
    min_lr_ratio: float = Field(default=0.0, ge=0.0, le=1.0)
    grad_clip: float = Field(default=1.0, gt=0.0)
    grad_clip_mode: Literal["value", "norm"] = "value"  # the sandwich papers clip by value
    label_smoothing: float = Field(default=0.1, ge=0.0, lt=1.0, description="largest subnet only")
    distill: bool = True  # in-place distillation from the largest (detached soft targets)
    sampler: SamplerConfig = Field(default_factory=SamplerConfig)
    # Image augmentation of training batches (``DatasetSplits.batches(augment=...)``); None:
    # the batches as stored.
    augment: AugmentOptions | None = None
    # The shared rule of workers.bn (also SubnetEvaluator's and the export's defaults), so that
    # the per-epoch scores equal the search's for the same seed.
    bn_images: int = Field(default=BN_IMAGES, ge=1, description="train images for BN recalibration")
    bn_batch: int = Field(default=BN_BATCH, ge=1)
    eval_max_images: int | None = Field(
        default=None, ge=1, description="cap on val images per eval"
    )
    health: HealthConfig = Field(default_factory=HealthConfig)
    seed: int = 0
    keep_checkpoints: int = Field(default=0, ge=0, description="epoch checkpoints kept (0: all)")

    @model_validator(mode="after")
    def _check_phases(self) -> TrainConfig:
        if not self.phases:
            raise ValueError("phases: at least one phase is needed")
        names = [p.name for p in self.phases]
        if len(set(names)) != len(names):
            raise ValueError(f"phases: names must be unique, got {names}")
        return self

    def total_epochs(self) -> int:
        return sum(p.epochs for p in self.phases)

    def scaled(self, factor: float) -> TrainConfig:
        """The same schedule with every phase's epochs scaled (at least one epoch each)."""
        phases = [
            p.model_copy(update={"epochs": max(1, round(p.epochs * factor))}) for p in self.phases
        ]
        return self.model_copy(update={"phases": phases})


def space_kinds(space: SearchSpace) -> list[str]:
    """Kinds present in the space with more than one choice, in shrinking order."""
    multi = {d.kind for d in space.dims if len(d.choices) > 1}
    return [k for k in PHASE_ORDER if k in multi]


def restrict_for_phase(space: SearchSpace, phase: PhaseConfig) -> SearchSpace:
    """The view of ``space`` a phase trains: unlocked kinds as given, the rest at their max."""
    kinds = {d.kind for d in space.dims}
    unknown = sorted(set(phase.unlock) - kinds)
    if unknown:
        raise ValueError(
            f"phase '{phase.name}': unlock names kind(s) {unknown} that space '{space.id}' "
            f"does not have; kinds: {sorted(kinds)}"
        )
    fixed = {d.name: (max(d.choices),) for d in space.dims if d.kind not in phase.unlock}
    view = space.restrict(**fixed) if fixed else space
    partial = {k: v for k, v in phase.unlock.items() if v}
    return view.restrict(**partial) if partial else view


def default_config(
    space: SearchSpace, data: DatasetSplits, *, sampler: str = "complexity-aware"
) -> TrainConfig:
    """Small CPU defaults: a full-network phase, then one phase per elastic kind (each
    cumulative); the last phase, where everything is elastic, gets twice the epochs.

    MLP on up to 2,000 training samples: 4 + 4 per kind + 8 epochs (digits: 16). MobileNetV3 is
    far costlier per image on a CPU: 3 + 1 per kind + 2 epochs and one sampled subnet per step
    besides the sandwich ends (the GPU-scale figure is two). Fewer epochs as data grows.
    """
    n_train = data.sizes()["train"]
    if space.id == "mlp":
        base = 4 if n_train <= 2000 else 2 if n_train <= 20000 else 1
        full_epochs, lr, n_random = base, 0.1, 2
    else:
        base = 1
        full_epochs, lr, n_random = 3 if n_train <= 2000 else 1, 0.1, 1
    phases = [PhaseConfig(name="full", epochs=full_epochs, lr=lr, random_subnets=0, sandwich=False)]
    kinds = space_kinds(space)
    unlocked: dict[str, list[int]] = {}
    for i, kind in enumerate(kinds):
        unlocked = {**unlocked, kind: []}
        phases.append(
            PhaseConfig(
                name=f"elastic-{kind}",
                epochs=2 * base if i == len(kinds) - 1 else base,
                lr=lr * 0.5,
                unlock=dict(unlocked),
                random_subnets=n_random,
            )
        )
    batch = 64 if n_train <= 20000 else 128
    policy: Literal["uniform", "complexity-aware"] = (
        "uniform" if sampler == "uniform" else "complexity-aware"
    )
    return TrainConfig(
        phases=phases,
        batch_size=batch,
        # Adaptive: about three probe rounds per epoch, one probe arch per bin. The CPU
        # phases last one or two epochs, so the GPU-scale spacing (every 10 steps, 2 archs per
        # bin) would leave a phase nearly over before the first decrease is scored; one arch
        # per bin keeps the probes near a tenth of the training compute.
        sampler=SamplerConfig(
            name=policy, probe_every=max(1, n_train // batch // 3), probes_per_bin=1
        ),
        # BN recalibration keeps the shared default (workers.bn.BN_IMAGES, capped at the train
        # split) so that training-time and search-time scores agree; the validation cap only
        # bounds the per-epoch cost on large validation splits.
        eval_max_images=1000,
    )
