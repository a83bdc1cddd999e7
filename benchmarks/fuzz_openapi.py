"""Property-based fuzz run over the whole OpenAPI schema, with a summary.

Every operation of the API gets generated requests (schemathesis, in-process over ASGI, with a
valid key), valid ones and deliberately invalid ones; each answer must be no 5xx and conform to
the documented status codes, content types, headers and schemas. Runs against a scratch
PostgreSQL database and writes ``benchmarks/results/fuzz_openapi.json``: operations, cases,
status codes seen, failures. The test suite runs the same check with fewer cases.

    python -m benchmarks.fuzz_openapi [--positive 100] [--negative 50]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis import checks as st_checks

RESULTS = Path(__file__).parent / "results" / "fuzz_openapi.json"
DEFAULT_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/nas_fuzz"
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


def fuzz_operation(
    operation: Any, key: str, mode: GenerationMode, examples: int, codes: Counter[str]
) -> tuple[int, str | None]:
    """Run ``examples`` generated cases against one operation: (cases run, first failure)."""
    ran = 0

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    def run(case: Any) -> None:
        nonlocal ran
        ran += 1
        response = case.call(headers={"Authorization": f"Bearer {key}"})
        codes[str(response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        return ran, None  # nothing to vary (no parameters, so no invalid request to build)
    except (Exception, BaseExceptionGroup) as e:  # schemathesis' FailureGroup is a Base one
        return ran, f"{operation.label} [{mode.value}]: {type(e).__name__}: {_describe(e)[:1500]}"
    return ran, None


def _describe(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(_describe(x) for x in e.exceptions)
    return str(e)


def fuzz_app(app: Any, key: str, positive: int, negative: int) -> dict[str, Any]:
    """Fuzz every operation of ``app``'s schema; the summary (failures empty when clean)."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    operations = []
    for result in schema.get_all_operations():
        if not hasattr(result, "ok"):  # the schema itself is broken: say where
            raise RuntimeError(f"the OpenAPI schema is invalid: {result.err()}")
        operations.append(result.ok())
    codes: Counter[str] = Counter()
    failures: list[str] = []
    cases = 0
    for op in operations:
        for mode, examples in (
            (GenerationMode.POSITIVE, positive),
            (GenerationMode.NEGATIVE, negative),
        ):
            ran, failure = fuzz_operation(op, key, mode, examples, codes)
            cases += ran
            if failure:
                failures.append(failure)
    return {
        "operations": [op.label for op in operations],
        "cases": cases,
        "status_codes": dict(sorted(codes.items())),
        "server_errors": sum(n for c, n in codes.items() if c.startswith("5")),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--positive", type=int, default=100, help="valid cases per operation")
    p.add_argument("--negative", type=int, default=50, help="invalid cases per operation")
    p.add_argument("--database-url", default=os.environ.get("NAS_FUZZ_DATABASE_URL", DEFAULT_DB))
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    from benchmarks.api_load import fresh_database
    from nas_service.cli import create_api_key
    from nas_service.cli_serve import build_app, migrate_store
    from nas_service.settings import Settings

    fresh_database(args.database_url)
    settings = Settings(
        database_url=args.database_url,
        data_dir=Path(tempfile.mkdtemp(prefix="nas-fuzz-")),
        max_upload_bytes=256 * 1024,
    )
    migrate_store(settings)
    key = create_api_key("fuzz", settings)
    t0 = time.monotonic()
    summary = fuzz_app(build_app(settings), key, args.positive, args.negative)
    report = {
        "benchmark": "fuzz_openapi",
        "command": "python -m benchmarks.fuzz_openapi " + " ".join(argv or sys.argv[1:]),
        "per_operation": {"positive": args.positive, "negative": args.negative},
        "checks": [c.__name__ for c in CHECKS],
        "seconds": round(time.monotonic() - t0, 1),
        **summary,
        "clean": not summary["failures"] and summary["server_errors"] == 0,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "operations"}, indent=2))
    return report


if __name__ == "__main__":
    main()
