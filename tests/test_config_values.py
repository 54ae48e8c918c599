"""The config file's values are held to the same bounds as the flags that set them."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ("timeout = -5", "$.profiles[...].timeout"),
        ("idle_timeout = nan", "$.profiles[...].idle_timeout"),
        ("connect_timeout = 0", "$.profiles[...].connect_timeout"),
        ("max_retries = -1", "$.profiles[...].max_retries"),
        ("context_tokens = 0", "$.profiles[...].context_tokens"),
    ],
)
def test_a_bad_number_in_a_profile_is_one_usage_line(run_cli, cli_env, line, where):
    Path(cli_env["STREAMKIT_CONFIG"]).write_text(
        f'default_profile = "p"\n[profiles.p]\nbase_url = "http://127.0.0.1:9/v1"\n{line}\n'
    )
    result = run_cli("chat", "hi")
    assert result.code == 2
    [message] = result.stderr.splitlines()
    assert message.startswith("streamkit: config file ") and message.endswith(where + "`")


def test_a_bad_tool_timeout_is_one_usage_line(run_cli, cli_env):
    Path(cli_env["STREAMKIT_CONFIG"]).write_text('[tools.t]\ncommand = ["true"]\ntimeout = -1\n')
    result = run_cli("chat", "--base-url", "http://127.0.0.1:9/v1", "--tool", "t", "hi")
    assert result.code == 2
    [message] = result.stderr.splitlines()
    assert message.endswith("$.tools[...].timeout`")
