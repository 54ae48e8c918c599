"""MCP servers no one here wrote: the reference servers from the npm registry.

``.ci/install --dev`` installs them, pinned, into ``.ci/npm/node_modules``:
``@modelcontextprotocol/server-filesystem`` (confined here to a temporary
directory) and ``@modelcontextprotocol/server-everything``. Each test starts
its server through streamkit, as a user's config would, and it is stopped
with the command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TESTS

BIN = TESTS.parent / ".ci" / "npm" / "node_modules" / ".bin"


def reference_server(name: str) -> str:
    path = BIN / f"mcp-server-{name}"
    assert path.exists(), f"{path} is missing: run `bash .ci/install --dev`"
    return str(path)


@pytest.fixture
def servers(cli_env, tmp_path):
    """A config with both servers, the filesystem one confined to ``tmp_path / "root"``."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "notes.txt").write_text("buy milk\n")
    Path(cli_env["STREAMKIT_CONFIG"]).write_text(
        f"[mcp.files]\ncommand = {json.dumps(reference_server('filesystem'))}\n"
        f"args = [{json.dumps(str(root))}]\n"
        f"[mcp.everything]\ncommand = {json.dumps(reference_server('everything'))}\n"
    )
    return root


def ask(*calls: dict) -> str:
    return json.dumps({"calls": list(calls)})


def test_the_filesystem_server_reads_inside_its_root_and_refuses_outside(
    run_cli, fault_url, servers, tmp_path
):
    secret = tmp_path / "outside.txt"
    secret.write_text("not for the model\n")
    result = run_cli(
        "chat",
        ask(
            {"name": "read_text_file", "arguments": {"path": str(servers / "notes.txt")}},
            {"name": "read_text_file", "arguments": {"path": str(secret)}},
            {"name": "list_directory", "arguments": {"path": str(servers)}},
        ),
        "--mcp",
        "files",
        "--base-url",
        fault_url("tools"),
        "--no-log",
    )
    assert result.code == 0, result.stderr
    answers = result.stdout.removeprefix("Let me check. \nResults: ").split(" | ")
    assert answers[0] == "buy milk\n"
    assert answers[1].startswith("Access denied") and "not for the model" not in result.stdout
    assert answers[2] == "[FILE] notes.txt\n"
    assert "read_text_file(" in result.stderr and "[error]" in result.stderr


def test_the_everything_server_sums_describes_an_image_and_sees_no_api_key(
    run_cli, fault_url, servers
):
    result = run_cli(
        "chat",
        ask(
            {"name": "get-sum", "arguments": {"a": 2, "b": 40}},
            {"name": "get-tiny-image", "arguments": {}},
            {"name": "get-env", "arguments": {}},
        ),
        "--mcp",
        "everything",
        "--base-url",
        fault_url("tools"),
        "--no-log",
        env={"OPENAI_API_KEY": "sk-must-not-reach-servers"},
    )
    assert result.code == 0, result.stderr
    answers = result.stdout.removeprefix("Let me check. \nResults: ").split(" | ")
    assert answers[0] == "The sum of 2 and 40 is 42."
    assert answers[1].startswith("Here's the image you requested:\n[image image/png, ")
    assert "PATH" in answers[2] and "sk-must-not-reach-servers" not in result.stdout


def test_mcp_call_and_list_on_the_reference_servers(run_cli, servers):
    listed = run_cli("mcp", "list")
    assert listed.code == 0, listed.stderr
    assert "files\trunning (" in listed.stdout and "everything\trunning (" in listed.stdout
    assert "\n  get-sum\tReturns the sum of two numbers\n" in listed.stdout
    called = run_cli("mcp", "call", "everything", "get-sum", '{"a": 1, "b": 2}')
    assert called.code == 0, called.stderr
    assert json.loads(called.stdout)["content"] == [
        {"type": "text", "text": "The sum of 1 and 2 is 3."}
    ]
    refused = run_cli("mcp", "call", "files", "read_text_file", '{"path": "/etc/hostname"}')
    assert refused.code == 1 and json.loads(refused.stdout)["isError"] is True
