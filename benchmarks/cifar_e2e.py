"""A CIFAR-sized dataset through the service, end to end, on this machine.

Writes CIFAR-10-format python batches (``data_batch_1`` .. ``data_batch_5`` and ``test_batch``,
50,000 + 10,000 images of 32x32x3, uint8; ten seeded class patterns plus noise, so there is
something to learn), starts ``nas serve`` with its dispatcher on the embedded store with the
folder under ``NAS_DATASET_ROOTS``, registers the folder by path, submits a job with the
``small`` preset, waits for it and downloads a subnet. Records the registration time, the job's
wall time and outcome, the front, and the peak RSS of the server's process tree, in
``benchmarks/results/cifar_e2e.json``.

    python -m benchmarks.cifar_e2e [--space mlp] [--preset small] [--budget 40]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
NAS = ROOT / ".venv" / "bin" / "nas"
OUT = ROOT / "benchmarks" / "results" / "cifar_e2e.json"
FRONT_FIELDS = ("id", "arch_short", "accuracy", "test_accuracy", "objectives")


def write_batches(folder: Path, seed: int = 0) -> None:
    """CIFAR-10's python batch format with ten learnable classes."""
    rng = np.random.default_rng(seed)
    # Class patterns close to one common image, under strong per-pixel noise: learnable, not
    # trivially (a linear probe is well below 100%).
    protos = (128 + rng.normal(0, 3, size=(10, 3, 8, 8))).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int) -> dict[bytes, Any]:
        labels = rng.integers(0, 10, size=n)
        base = np.repeat(np.repeat(protos[labels], 4, axis=2), 4, axis=3)
        x = base + rng.normal(0, 70, size=(n, 3, 32, 32))
        data = np.clip(x, 0, 255).astype(np.uint8).reshape(n, 3072)
        return {b"data": data, b"labels": labels.tolist(), b"batch_label": b"synthetic"}

    for i in range(1, 6):
        with (folder / f"data_batch_{i}").open("wb") as f:
            pickle.dump(batch(10_000), f, protocol=2)
    with (folder / "test_batch").open("wb") as f:
        pickle.dump(batch(10_000), f, protocol=2)


def tree_rss_mb(pid: int) -> float:
    """RSS of a process and its descendants (from /proc), in MB."""
    total = 0
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    todo = [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="mlp")
    ap.add_argument("--preset", default="small")
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--timeout", type=float, default=3000)
    ap.add_argument("--workdir", default=None, help="keep the data and logs here (default: temp)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(args.workdir) if args.workdir else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        data_root = base / "datasets"
        t0 = time.perf_counter()
        write_batches(data_root / "cifar-like")
        written_s = time.perf_counter() - t0
        env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_")}
        env.update(
            NAS_DATA_DIR=str(base / "data"),
            NAS_DATASET_ROOTS=json.dumps([str(data_root)]),
            PYTHONUNBUFFERED="1",
        )
        key = subprocess.run([str(NAS), "keys", "create", "bench"], env=env, check=True,
                             capture_output=True, text=True).stdout.strip()  # fmt: skip
        port = 8600 + os.getpid() % 300
        url = f"http://127.0.0.1:{port}"
        log = base / "serve.log"
        with log.open("wb") as out:
            server = subprocess.Popen(
                [str(NAS), "serve", "--no-access-log", "--port", str(port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        peak = [0.0]
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], tree_rss_mb(server.pid))
                time.sleep(1.0)

        threading.Thread(target=watch, daemon=True).start()
        auth = {"Authorization": f"Bearer {key}"}
        try:
            client = httpx.Client(base_url=url, headers=auth, timeout=600)
            for _ in range(240):
                try:
                    if client.get("/api/v1/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            t1 = time.perf_counter()
            where = {"path": str(data_root / "cifar-like"), "name": "cifar-like", "format": "cifar"}
            r = client.post("/api/v1/datasets/register", json=where)
            register_s = time.perf_counter() - t1
            if r.status_code != 201:
                print(r.status_code, r.text, file=sys.stderr)
                return 1
            ds = r.json()
            spec = {
                "name": "cifar-sized",
                "space": {"id": args.space, "options": {}},
                "dataset": {"id": ds["id"]},
                "training": {"preset": args.preset},
                "search": {
                    "algorithm": "evolution",
                    "budget": args.budget,
                    "objectives": [{"name": "accuracy"}, {"name": "params"}],
                },
            }
            t2 = time.perf_counter()
            job = client.post("/api/v1/jobs", json=spec).json()
            jid = job["id"]
            status = "queued"
            while time.perf_counter() - t2 < args.timeout:
                job = client.get(f"/api/v1/jobs/{jid}").json()
                status = job["status"]
                if status in ("succeeded", "failed", "cancelled"):
                    break
                time.sleep(3)
            job_s = time.perf_counter() - t2
            front = client.get(f"/api/v1/jobs/{jid}/pareto").json()
            download = None
            points = [{k: c.get(k) for k in FRONT_FIELDS} for c in front.get("front", [])]
            if status == "succeeded" and points:
                d = client.get(
                    f"/api/v1/candidates/{points[0]['id']}/subnet", params={"format": "onnx"}
                )
                download = {"status": d.status_code, "bytes": len(d.content)}
        except Exception:
            print(log.read_text()[-6000:], file=sys.stderr)
            raise
        finally:
            stop.set()
            server.terminate()
            server.wait(timeout=120)
        result = {
            "benchmark": "cifar_e2e",
            "command": "python -m benchmarks.cifar_e2e " + " ".join(argv or sys.argv[1:]),
            "images": {"train_and_val": 50_000, "test": 10_000, "shape": [3, 32, 32]},
            "batches_written_s": round(written_s, 1),
            "register_s": round(register_s, 1),
            "dataset_info": {
                k: ds["info"].get(k)
                for k in ("num_samples", "layout", "input_shape", "num_classes")
            },
            "space": args.space,
            "preset": args.preset,
            "budget": args.budget,
            "status": status,
            "outcome": job.get("outcome"),
            "job_wall_s": round(job_s, 1),
            "front": points,
            "download_onnx": download,
            "peak_rss_mb_server_tree": round(peak[0], 1),
        }
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(json.dumps({k: v for k, v in result.items() if k != "front"}, indent=2, default=str))
        if status != "succeeded":
            print(log.read_text()[-4000:], file=sys.stderr)
        return 0 if status == "succeeded" else 1


if __name__ == "__main__":
    raise SystemExit(main())
