"""The commands that write the server's store directly (keys, device registration), and the
data directory rule: ``nas serve`` and those commands find the same store from any current
directory (``NAS_DATA_DIR``, else ``$XDG_DATA_HOME/nas``, else ``~/.local/share/nas``)."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import httpx

from tests.cli.conftest import NAS, Nas, clean_env, start_server


def authorised(url: str, key: str) -> int:
    return httpx.get(f"{url}/api/v1/jobs", headers={"Authorization": f"Bearer {key}"}).status_code


def test_keys_create_list_and_revoke(nas: Nas) -> None:
    name = f"ops-{uuid.uuid4().hex[:6]}"
    done = nas.ok("keys", "create", name)
    key = done.stdout.strip()
    assert key.startswith("nas_")
    assert done.stderr.splitlines() == [
        f"created key '{name}' in {nas.env['NAS_DATABASE_URL']}; it is shown only once",
        f"export NAS_API_KEY={key}",
    ]
    assert authorised(nas.url, key) == 200
    again = nas.run("keys", "create", "--name", name)  # the older spelling still works
    assert (again.returncode, again.stderr.strip()) == (
        1,
        f"error: a key named '{name}' exists already",
    )
    made = nas.json("keys", "create", f"{name}-2")
    assert set(made) == {"name", "prefix", "key"} and made["key"].startswith(made["prefix"])

    listed = {k["name"]: k for k in nas.json("keys", "list")}
    assert listed[name]["prefix"] == key[:10] and listed[name]["active"] is True
    assert key not in json.dumps(listed)
    table = nas.ok("keys", "list").stdout.splitlines()
    assert table[0].split() == ["NAME", "PREFIX", "CREATED", "REVOKED"]
    assert any(row.split()[:2] == [name, key[:10]] for row in table[1:])

    done = nas.ok("keys", "revoke", name)
    assert done.stderr.strip() == f"revoked key '{name}'"
    assert authorised(nas.url, key) == 401
    assert {k["name"]: k for k in nas.json("keys", "list")}[name]["active"] is False
    again = nas.run("keys", "revoke", name)
    assert (again.returncode, again.stderr.strip()) == (1, f"error: no active key named '{name}'")
    assert nas.run("keys", "revoke").returncode == 2  # no NAME


def test_devices_list_add_and_remove(nas: Nas) -> None:
    name = f"edge-{uuid.uuid4().hex[:6]}"
    names = [d["name"] for d in nas.json("devices")]
    assert {"cpu", "cpu-stable"} <= set(names)
    done = nas.ok("devices", "add", name, "--threads", "2", "--runtime", "torchscript")
    assert done.stderr.strip() == f"device '{name}' registered"
    listed = {d["name"]: d for d in nas.json("devices", "list")}
    assert (listed[name]["threads"], listed[name]["runtime"]) == (2, "torchscript")
    table = nas.ok("devices").stdout.splitlines()
    assert table[0].split()[:3] == ["NAME", "TORCH", "BATCH"]
    assert any(r.split()[:3] == [name, "cpu", "x2"] for r in table[1:])

    bad = nas.run("devices", "add", name, "--clock", "cpu", "--threads", "4")
    assert bad.returncode == 1
    (line,) = bad.stderr.splitlines()
    assert line.startswith("error: device: clock 'cpu' times the calling thread")
    assert nas.ok("devices", "remove", name).stderr.strip() == f"removed device '{name}'"
    again = nas.run("devices", "remove", name)
    assert (again.returncode, again.stderr.strip()) == (1, f"error: device '{name}' not found")
    assert name not in [d["name"] for d in nas.json("devices")]


def test_the_store_follows_the_data_dir_never_the_current_directory(tmp_path: Path) -> None:
    xdg, here, there, home = (tmp_path / d for d in ("xdg", "here", "there", "home"))
    for d in (xdg, here, there, home):
        d.mkdir()
    env = clean_env(HOME=str(home), XDG_DATA_HOME=str(xdg))  # no NAS_DATA_DIR: the default
    served = start_server(env, here, tmp_path / "serve.log")
    try:

        def nas(*argv: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(NAS), *argv], env={**env, **extra}, cwd=cwd, capture_output=True, text=True
            )

        # A key made from another folder is the server's: same store, $XDG_DATA_HOME/nas.
        made = nas("keys", "create", "from-there", cwd=there)
        assert made.returncode == 0, made.stderr
        store = xdg / "nas" / "nas.sqlite"
        assert f"in sqlite:///{store};" in made.stderr
        assert authorised(served.url, made.stdout.strip()) == 200
        assert list(there.iterdir()) == []  # nothing written where the command ran
        # A relative NAS_DATA_DIR is made absolute once: from xdg/, "nas" is the same folder.
        rel = nas("keys", "create", "relative", cwd=xdg, NAS_DATA_DIR="nas")
        assert rel.returncode == 0, rel.stderr
        assert authorised(served.url, rel.stdout.strip()) == 200
        listed = nas("keys", "list", "--json", cwd=home)
        assert {k["name"] for k in json.loads(listed.stdout)} == {"from-there", "relative"}
    finally:
        served.stop()
    assert list(here.iterdir()) == []

    # Without XDG_DATA_HOME the default is ~/.local/share/nas.
    no_xdg = {k: v for k, v in env.items() if k != "XDG_DATA_HOME"}
    done = subprocess.run(
        [str(NAS), "keys", "list"], env=no_xdg, cwd=there, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (home / ".local" / "share" / "nas" / "nas.sqlite").is_file()
    assert list(there.iterdir()) == []
