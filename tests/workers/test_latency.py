"""Latency measurement, lookup table, regressor and calibration report."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from search_spaces import get_space
from workers.latency import (
    DeviceProfile,
    LatencyMeter,
    LatencyRegressor,
    LatencyTable,
    calibration_report,
    get_device,
    measure_latency,
    profile_problems,
)
from workers.latency.profile import SpeedReference, measure_profile, prepare, trimmed
from workers.latency.units import covering_archs, units_of
from workers.predictors import PredictorError, load_predictor

FAST = DeviceProfile("cpu-test", warmup=1, repeats=5)


class Sleeper(nn.Module):
    """Takes a known time per call, so the statistics can be checked."""

    def __init__(self, ms: float):
        super().__init__()
        self.ms = ms

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.ms / 1000)
        return x


def test_measure_latency_statistics() -> None:
    s = measure_latency(Sleeper(2.0), (3,), warmup=1, repeats=12)
    assert s.repeats == 12 and len(s.raw_ms) == 12
    assert 2.0 <= s.p50_ms <= s.p90_ms
    assert 2.0 <= s.mean_ms < 6.0  # sleep overshoots a little, never undershoots
    assert s.std_ms >= 0
    assert torch.get_num_threads() == 1  # restored
    with pytest.raises(ValueError, match="repeats >= 1"):
        measure_latency(Sleeper(0.0), (3,), repeats=0)


def test_thread_clock_ignores_time_off_the_cpu() -> None:
    # Sleeping is time the scheduler gives to others: the wall clock sees it, the thread's CPU
    # clock does not. That is what the cpu-thread profile relies on.
    wall = measure_latency(Sleeper(3.0), (3,), warmup=0, repeats=5, clock="wall")
    cpu = measure_latency(Sleeper(3.0), (3,), warmup=0, repeats=5, clock="cpu")
    assert wall.mean_ms >= 3.0
    assert cpu.mean_ms < 1.0
    assert get_device("cpu-thread").clock == "cpu"
    with pytest.raises(ValueError, match="threads=1"):
        measure_latency(Sleeper(0.0), (3,), threads=2, clock="cpu")
    with pytest.raises(ValueError, match="clock 'gpu'"):
        measure_latency(Sleeper(0.0), (3,), clock="gpu")


class Machine:
    """A machine whose speed changes between pairs of runs: every call of the reference moves
    to the next speed factor, and both runs of a pair take their time times that factor."""

    def __init__(self, factors: list[float]):
        self.factors = factors
        self.calls = 0

    def factor(self) -> float:
        return self.factors[self.calls % len(self.factors)]


class Drifting(nn.Module):
    def __init__(self, machine: Machine, ms: float, advances: bool):
        super().__init__()
        self.machine, self.ms, self.advances = machine, ms, advances

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.advances:
            self.machine.calls += 1
        time.sleep(self.ms * self.machine.factor() / 1000)
        return x


def test_paired_measurement_cancels_speed_drift() -> None:
    machine = Machine([1.0, 3.0, 1.5, 2.5])
    ref = SpeedReference.calibrate(Drifting(machine, 5.0, advances=True), (3,), nominal_ms=5.0)
    # alone, the module's own runs see the drift (each run at the next speed) ...
    plain = measure_latency(Drifting(machine, 10.0, advances=True), (3,), warmup=0, repeats=12)
    # ... paired, the reference's run moves the speed and the module's run shares it
    module = Drifting(machine, 10.0, advances=False)
    paired = measure_latency(module, (3,), warmup=0, repeats=12, reference=ref)
    # unpaired, the drift is in the numbers (10 ms at speed 1, 30 ms at speed 3) ...
    assert max(plain.raw_ms) > 2.5 * min(plain.raw_ms)
    assert plain.std_ms > 0.2 * plain.mean_ms
    # ... paired, each run is divided by its reference run: 10 ms at the nominal speed, every
    # time (within what a busy scheduler adds to a sleep)
    assert paired.mean_ms == pytest.approx(10.0, rel=0.15)
    assert paired.std_ms < 0.1 * paired.mean_ms


def test_torchscript_runtime_times_the_frozen_network() -> None:
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU()).eval()
    x = torch.randn(1, 1, 8, 8)
    frozen = prepare(net, x, "torchscript")
    assert isinstance(frozen, torch.jit.ScriptModule)
    assert torch.allclose(frozen(x), net(x), atol=1e-5)
    assert prepare(frozen, x, "torchscript") is frozen  # prepared once, timed many times
    s = measure_latency(frozen, (1, 8, 8), warmup=1, repeats=3, runtime="torchscript")
    assert s.mean_ms > 0 and len(s.raw_ms) == 3
    with pytest.raises(ValueError, match="runtime 'onnx'"):
        measure_latency(net, (1, 8, 8), runtime="onnx")


def test_meter_pairs_a_stable_profile_and_stores_its_reference(tmp_path: Path) -> None:
    space = get_space("mlp", widths=(8, 16), depths=(1, 2))
    profile = DeviceProfile(
        "cpu-stable-test", clock="cpu", runtime="torchscript", paired=True, warmup=1, repeats=4
    )
    with pytest.raises(ValueError, match="LatencyMeter"):
        measure_profile(nn.Linear(4, 4), (4,), profile)
    meter = LatencyMeter(space, profile, cache_dir=tmp_path)
    stats = meter.time_arch(space.max_arch())
    assert stats.mean_ms > 0 and len(stats.raw_ms) == 4
    ref = meter.reference
    assert ref is not None and ref.nominal_ms > 0
    stored = list(tmp_path.glob("reference-cpu-stable-test-mlp-*.json"))
    assert len(stored) == 1
    # another process (here: another meter) reuses the stored scale instead of recalibrating
    again = LatencyMeter(space, profile, cache_dir=tmp_path).reference
    assert again is not None and again.nominal_ms == ref.nominal_ms
    table = LatencyTable.build(space, profile, cache_dir=tmp_path, meter=meter)
    assert table.sum_ms(space.max_arch()) > 0
    assert LatencyMeter(space, "cpu").reference is None  # unpaired profiles need none
    assert get_device("cpu-stable").paired and get_device("cpu-stable").runtime == "torchscript"


def test_trimmed_drops_both_tails() -> None:
    v = trimmed([100.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, -50.0])
    assert sorted(v.tolist()) == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]


def test_device_profiles() -> None:
    cpu = get_device("cpu")
    assert (cpu.torch_device, cpu.threads, cpu.batch_size) == ("cpu", 1, 1)
    with pytest.raises(ValueError, match="unknown device profile 'phone'"):
        get_device("phone")


def test_units_cover_every_block_configuration() -> None:
    space = get_space("mbv3", num_classes=10, in_channels=1, small_input=True, resolutions=(16,))
    keys = {u.key for a in covering_archs(space) for u in units_of(space, a)}
    rng = np.random.default_rng(0)
    for _ in range(30):
        assert {u.key for u in units_of(space, space.sample(rng))} <= keys
    a = space.sample(rng)
    units = units_of(space, a)
    assert len(units) == 2 + 1 + sum(a[f"s{i}.depth"] for i in range(1, 6))  # stem+first+tail
    assert units[0].key.startswith("stem|in=1x16x16")


def test_table_sums_rows_fits_constant_and_is_cached(tmp_path: Path) -> None:
    space = get_space("mlp", widths=(8, 16), depths=(1, 2))
    table = LatencyTable.build(space, FAST, cache_dir=tmp_path)
    assert set(table.rows) == {u.key for a in covering_archs(space) for u in units_of(space, a)}
    a = space.max_arch()
    # Every row is timed in 3 passes and loses one module call, timed per input shape.
    assert set(table.overhead_ms) == {"64", "8", "16"} and all(
        0 < v < 1 for v in table.overhead_ms.values()
    )
    for u in units_of(space, a):
        row = table.rows[u.key]
        assert row["count"] == 3 and row["var_ms2"] >= 0
    expected = sum(
        table.rows[u.key]["mean_ms"] - table.overhead_ms["x".join(map(str, u.input_shape))]
        for u in units_of(space, a)
    )
    assert table.sum_ms(a) == pytest.approx(expected)
    archs = [space.min_arch(), a]
    sums = [table.sum_ms(x) for x in archs]
    scale, const = table.fit_constant(archs, [2 * sums[0] + 0.5, 2 * sums[1] + 0.5])
    assert scale == pytest.approx(2.0) and const == pytest.approx(0.5)
    assert table.predict([a])[0] == pytest.approx(2 * sums[1] + 0.5)
    path = table.save(tmp_path / "t.json")
    # built once: a second build loads the cached rows instead of timing again
    again = LatencyTable.build(space, FAST, cache_dir=tmp_path)
    assert again.rows == table.rows and again.overhead_ms == table.overhead_ms
    loaded = LatencyTable.load(path)
    assert loaded.predict([a])[0] == pytest.approx(table.predict([a])[0])
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="cannot be read"):
        LatencyTable.load(tmp_path / "bad.json")


def test_regressor_learns_additive_latency(tmp_path: Path) -> None:
    space = get_space("mbv3", num_classes=10, in_channels=1, small_input=True, resolutions=(16, 24))
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(260)]

    # synthetic "device": per block cost by kernel and expand, scaled by resolution
    def fake(a: dict[str, int]) -> float:
        total = 0.3
        for i in range(1, 6):
            for j in range(1, a[f"s{i}.depth"] + 1):
                total += 0.01 * a[f"s{i}.b{j}.kernel"] * a[f"s{i}.b{j}.expand"]
        return total * (a["resolution"] / 16) ** 2

    y = np.asarray([fake(a) for a in archs])
    reg = LatencyRegressor(space).fit(archs[:220], y[:220])
    rep = calibration_report(np.asarray(reg.predict(archs[220:])), y[220:])
    assert rep["within_10pct"] >= 0.95 and rep["kendall_tau"] >= 0.9, rep
    assert not LatencyRegressor(space).fit(archs[:50], y[:50] / 100).logit  # ms, not accuracy
    loaded = load_predictor(reg.save(tmp_path / "lat.npz"))
    assert np.allclose(loaded.predict(archs[220:]), reg.predict(archs[220:]))


def test_a_table_backed_regressor_learns_what_the_table_misses_from_few_archs() -> None:
    space = get_space("mbv3", num_classes=10, in_channels=1, small_input=True, resolutions=(16, 24))
    keys = sorted({u.key for a in covering_archs(space) for u in units_of(space, a)})
    rng = np.random.default_rng(1)
    cost = {k: float(rng.uniform(0.05, 0.5)) for k in keys}  # the device's true unit costs
    table = LatencyTable(space, FAST)
    table.rows = {k: {"mean_ms": c * rng.uniform(0.97, 1.03)} for k, c in cost.items()}

    def device(a: dict[str, int]) -> float:  # in a network: 1.2x the units, 20 us per unit
        units = units_of(space, a)
        return 1.2 * sum(cost[u.key] for u in units) + 0.02 * len(units) + 0.3

    archs = [space.sample(rng) for _ in range(240)]
    y = np.asarray([device(a) for a in archs]) * rng.normal(1.0, 0.01, len(archs))
    train, held = slice(0, 40), slice(40, None)
    plain = LatencyRegressor(space).fit(archs[train], y[train])
    backed = LatencyRegressor(space, table=table).fit(archs[train], y[train])
    rep_plain = calibration_report(np.asarray(plain.predict(archs[held])), y[held])
    rep = calibration_report(np.asarray(backed.predict(archs[held])), y[held])
    assert backed.base[0] == pytest.approx(1.2, abs=0.15)
    assert rep["within_10pct"] == 1.0 and rep["kendall_tau"] >= 0.9, rep
    assert rep["kendall_tau"] > rep_plain["kendall_tau"] + 0.1, (rep, rep_plain)
    mean, std = backed.predict(archs[held], return_std=True)
    assert np.allclose(mean, backed.predict(archs[held])) and np.all(std == 0)
    with pytest.raises(PredictorError, match="save its table"):
        backed.save("never.npz")


def test_calibration_report_numbers() -> None:
    rep = calibration_report([1.0, 2.1, 2.5, 4.0], [1.0, 2.0, 3.0, 4.0])
    assert rep["within_10pct"] == pytest.approx(0.75)
    assert rep["kendall_tau"] == pytest.approx(1.0)
    assert rep["mape"] == pytest.approx(100 * (0 + 0.05 + 0.5 / 3 + 0) / 4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_measurement_is_synchronised() -> None:
    # A large matmul chain: without synchronisation the host would time only the launch.
    net = nn.Sequential(*[nn.Linear(4096, 4096) for _ in range(8)])
    s = measure_latency(net, (4096,), batch_size=256, warmup=3, repeats=10, device="cuda")
    assert s.mean_ms > 0.05 and s.p50_ms <= s.p90_ms
    assert get_device("cuda").torch_device == "cuda"


def test_a_device_profile_that_cannot_be_measured_with_is_refused() -> None:
    with pytest.raises(ValueError, match="clock 'cpu' times the calling thread"):
        DeviceProfile("wide", threads=4, clock="cpu")
    with pytest.raises(ValueError, match=r"runtime must be one of \['eager', 'torchscript'\]"):
        DeviceProfile("x", runtime="tflite")
    with pytest.raises(ValueError, match="warmup must be >= 0, got -1; repeats must be >= 1"):
        DeviceProfile("x", repeats=0, warmup=-1)
    ok = DeviceProfile("gpu1", torch_device="cuda:1", threads=2)
    assert profile_problems(ok) == []
