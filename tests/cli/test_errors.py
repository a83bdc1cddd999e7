"""What a user sees when something is wrong: one ``error:`` line (and a ``hint:`` line when
there is something to try), never a traceback; exit 1 for API and connection errors, 2 for
usage errors; a closed pipe ends quietly."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from tests.cli.conftest import NAS, Nas, free_port

REFUSED_HINT = "hint: is the server running (nas serve)? check the host and port in --url / NAS_URL"


def lines(text: str) -> list[str]:
    return text.splitlines()


def test_a_server_that_is_not_running_is_one_line_and_exit_1(nas: Nas) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there: a stopped server
    for argv in (["--url", url, "jobs"], ["jobs", "list", "--url", url]):
        done = nas.run(*argv)
        assert done.returncode == 1
        assert done.stdout == ""
        assert lines(done.stderr) == [
            f"error: cannot connect to {url}: connection refused",
            REFUSED_HINT,
        ]
    done = nas.run("jobs", env={"NAS_URL": url})  # the same from the environment
    assert (done.returncode, lines(done.stderr)[0]) == (
        1,
        f"error: cannot connect to {url}: connection refused",
    )


def test_a_port_that_does_not_speak_http_is_named(nas: Nas) -> None:
    # A wrong port where something else listens: a raw TCP server that closes at once.
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()
    port = srv.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            conn.recv(1024)
            conn.sendall(b"SSH-2.0-not-http\r\n")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{port}"
        done = nas.run("--url", url, "spaces")
    finally:
        srv.close()
    assert done.returncode == 1
    first, hint = lines(done.stderr)
    assert first.startswith(f"error: {url} did not answer with HTTP (")
    assert hint == "hint: is that the address of a NAS server? check --url / NAS_URL"


def test_an_unknown_host_is_named(nas: Nas) -> None:
    done = nas.run("jobs", "--url", "http://no-such-host.invalid:8000")
    assert done.returncode == 1
    assert lines(done.stderr) == [
        "error: cannot connect to http://no-such-host.invalid:8000: unknown host "
        "'no-such-host.invalid'",
        "hint: check the host name in --url / NAS_URL",
    ]


def test_a_url_without_a_scheme_is_a_usage_error_with_the_fix(nas: Nas) -> None:
    done = nas.run("--url", "127.0.0.1:8000", "jobs")
    assert done.returncode == 2
    assert lines(done.stderr) == [
        "error: --url / NAS_URL: '127.0.0.1:8000' is not an http(s) URL; "
        "did you mean 'http://127.0.0.1:8000'?"
    ]
    done = nas.run("spaces", env={"NAS_URL": "localhost:8000"})
    assert done.returncode == 2
    assert "did you mean 'http://localhost:8000'?" in done.stderr


def test_keys_missing_or_refused(nas: Nas) -> None:
    done = nas.run("jobs", env={"NAS_API_KEY": None})
    assert done.returncode == 2
    assert lines(done.stderr) == [
        "error: no API key",
        "hint: pass --key or set NAS_API_KEY (create one on the server host: nas keys create NAME)",
    ]
    done = nas.run("jobs", "--key", "nas_not-a-key")
    assert done.returncode == 1
    assert lines(done.stderr) == [
        "error: unknown or revoked API key (HTTP 401)",
        "hint: check --key / NAS_API_KEY; create a key on the server host: nas keys create NAME",
    ]


def test_usage_errors_exit_2_in_one_line(nas: Nas) -> None:
    done = nas.run("jobs", "show")
    assert done.returncode == 2
    assert lines(done.stderr) == [
        "error: the following arguments are required: JOB",
        "hint: see 'nas jobs show --help'",
    ]
    done = nas.run("frobnicate")
    assert done.returncode == 2
    assert lines(done.stderr)[0].startswith("error: argument COMMAND: invalid choice: 'frobnicate'")
    done = nas.run("jobs", "candidates", str(uuid.uuid4()), "--sort", "colour")
    assert done.returncode == 2
    assert "invalid choice: 'colour'" in done.stderr
    assert nas.run("jobs", "--limit", "-1").returncode == 2


def test_not_found_is_the_api_message_and_exit_1(nas: Nas) -> None:
    job = str(uuid.uuid4())
    done = nas.run("jobs", "show", job)
    assert (done.returncode, done.stdout, lines(done.stderr)) == (
        1,
        "",
        [f"error: no job {job} (HTTP 404)"],
    )


def test_a_refused_spec_names_each_field_once(nas: Nas, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "space: {id: mlp}\ndataset: {name: digits}\n"
        "search: {budget: 0, objectives: [{name: accuracy}, {name: flops, bound: -1}]}\n"
    )
    done = nas.run("submit", str(bad))
    assert done.returncode == 1
    assert done.stdout == ""
    (line,) = lines(done.stderr)  # one line, each field once (the detail repeated them)
    assert line.startswith("error: invalid input (HTTP 422): ")
    assert line.count("search.budget:") == 1
    assert line.count("search.objectives[1].bound:") == 1


def test_a_bad_job_file_names_the_file_and_the_place(nas: Nas, tmp_path: Path) -> None:
    bad = tmp_path / "job.yaml"
    bad.write_text("name: x\nsearch: {budget: 3\n")
    done = nas.run("submit", str(bad))
    assert done.returncode == 1
    (line,) = lines(done.stderr)
    assert line.startswith(f"error: {bad}:3:1: not valid YAML or JSON: ")
    assert "<unicode string>" not in done.stderr
    missing = tmp_path / "nope.yaml"
    done = nas.run("submit", str(missing))
    assert (done.returncode, lines(done.stderr)) == (
        1,
        [f"error: cannot read {missing}: No such file or directory"],
    )


def test_a_closed_pipe_ends_quietly(nas: Nas, tmp_path: Path) -> None:
    # More output than a pipe holds (64 KiB): `head` exits while nas still writes.
    job = nas.submit(tmp_path, "pipe")
    from tests.cli.test_jobs import seed_candidates

    seed_candidates(nas, job, n=300, pareto=True)
    script = f'"{NAS}" pareto {job} --json | head -n 1; echo "rc=${{PIPESTATUS[0]}}"'
    done = subprocess.run(
        ["bash", "-c", script], env=nas.env, capture_output=True, text=True, timeout=60
    )
    assert done.stderr == ""  # no BrokenPipeError traceback, nothing at all
    assert done.stdout.splitlines() == ["{", "rc=141"]


def test_version_and_help_name_the_environment(nas: Nas) -> None:
    done = nas.ok("--version")
    assert done.stdout.strip().startswith("nas ")
    assert done.stdout.split()[1][0].isdigit()
    help_text = nas.ok("--help").stdout
    for name in ("NAS_URL", "NAS_API_KEY", "NAS_DATA_DIR"):
        assert name in help_text
    assert "--json" in nas.ok("jobs", "candidates", "--help").stdout
