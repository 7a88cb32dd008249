"""The README's curl examples, run as written against a live ``aigc serve`` with a real key."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

from tests.servers import REPO, free_port, server_env, start_process, stop_process, wait_http

SNIPPET = re.compile(r"<!-- snippet:api-curl[^>]*-->\s*```bash\n(.*?)```", re.S)


def readme_commands() -> list[str]:
    """The README snippet's commands, backslash continuations joined."""
    block = SNIPPET.search((REPO / "README.md").read_text()).group(1)
    return [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def aigc(args: list[str], env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "core.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
        check=True,
    )


@pytest.fixture(scope="module")
def live_server(suite_data_dir, tmp_path_factory):
    """``aigc serve`` (local engine) over the three apps on a free port, with its environment."""
    tmp = tmp_path_factory.mktemp("serve")
    env = server_env(tmp, AIGC_DATA_DIR=str(suite_data_dir), AIGC_DB_URL=f"sqlite:///{tmp / 'aigc.db'}")
    port = free_port()
    log = tmp / "serve.log"
    proc = start_process([sys.executable, "-m", "core.cli", "serve", "--port", str(port)], log, env)
    try:
        wait_http(proc, f"http://127.0.0.1:{port}/readyz", log, timeout_s=300)
        yield port, env
    finally:
        stop_process(proc)


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_readme_curl_examples_against_a_live_server(live_server) -> None:
    port, env = live_server
    commands = readme_commands()
    assert commands[0].startswith("aigc serve --port 8000")
    assert any(c.startswith("aigc users add lead --role admin") for c in commands)
    password = "correct horse battery\n"
    aigc(["users", "add", "lead", "--role", "admin", "--password-stdin"], env, stdin=password)
    key = aigc(["users", "api-key", "lead"], env).stdout.strip().splitlines()[-1]
    curls = [c.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for c in commands if c.startswith("curl ")]
    assert len(curls) == 3
    replies = []
    for command in curls:
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, env={**env, "KEY": key}, timeout=120
        )
        assert done.returncode == 0, done.stderr
        replies.append(json.loads(done.stdout))
    ask, classify, recommend = replies
    assert ask["route"] == "faq" and ask["sources"][0]["id"] == "order-01" and "tracking" in ask["answer"]
    assert classify["results"][0]["sentiment"] in ("negative", "neutral", "positive")
    assert recommend["user_id"] == "U0001" and recommend["known"] and len(recommend["items"]) == 5
    # The same curl without the key is refused with the JSON error body.
    bare = subprocess.run(
        ["bash", "-c", curls[2].replace('-H "Authorization: Bearer $KEY"', "")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert json.loads(bare.stdout)["field"] == "header.authorization"
