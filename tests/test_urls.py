"""Base URLs: paths joined before the query, credentials never shown or stored."""

from __future__ import annotations

import sqlite3
import uuid

import pytest
import trio

from streamkit.loadtest.client import Measurement
from streamkit.loadtest.rawhttp import RawHTTPTarget
from streamkit.loadtest.workload import random_workload
from streamkit.protocol.urls import join_url, public_url, split_query, url_secrets

import fault_server
from conftest import free_port

PASSWORD = "pw-s3cret-9"


@pytest.mark.parametrize(
    ("base", "path", "joined"),
    [
        ("http://h/v1", "chat/completions", "http://h/v1/chat/completions"),
        ("http://h/v1/", "models", "http://h/v1/models"),
        (
            "http://h/v1?api-version=2",
            "chat/completions",
            "http://h/v1/chat/completions?api-version=2",
        ),
        ("http://h/v1/?a=1&b=2", "/models", "http://h/v1/models?a=1&b=2"),
        ("http://h", "models", "http://h/models"),
    ],
)
def test_a_path_goes_before_the_query(base, path, joined):
    assert join_url(base, path) == joined


def test_split_query():
    assert split_query("http://u:p@h/v1?api-version=2") == ("http://u:p@h/v1", "api-version=2")
    assert split_query("http://h/v1") == ("http://h/v1", "")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://user:{PASSWORD}@h:8000/v1", "http://h:8000/v1"),
        ("https://TOKEN123@h/v1", "https://h/v1"),
        (f"http://h/v1?api-version=2&api_key={PASSWORD}", "http://h/v1?api-version=2&api_key=***"),
        ("http://h/v1", "http://h/v1"),
        (f"http://u:{PASSWORD}@[::1/v1", "http://[::1/v1"),  # unsplittable: userinfo dropped still
    ],
)
def test_public_url_has_no_credentials(url, shown):
    assert public_url(url) == shown


def test_url_secrets_are_what_redaction_needs():
    assert url_secrets(f"http://user:{PASSWORD}@h/v1") == [f"user:{PASSWORD}", PASSWORD]
    assert url_secrets("http://TOKEN123@h/v1?key=k-9876") == ["TOKEN123", "k-9876"]
    assert url_secrets("http://user:p%40ss@h/v1") == ["user:p%40ss", "user:p@ss", "p%40ss", "p@ss"]
    assert url_secrets("http://h/v1?api-version=2") == []


# -- through the CLI -------------------------------------------------------------------


def test_a_base_url_query_stays_after_the_api_path(run_cli, fault_url):
    base = fault_url("echo-target")
    result = run_cli("chat", "hi", "--base-url", f"{base}?api-version=2", "--no-log")
    assert result.code == 0, result.stderr
    path = base.split("127.0.0.1:")[1].split("/", 1)[1]
    assert result.stdout == f"/{path}/chat/completions?api-version=2 auth=none\n"


def test_credentials_in_the_base_url_are_sent_never_shown(run_cli, fault_url, tmp_path):
    base = fault_url("echo-target").replace("http://", f"http://user:{PASSWORD}@")
    db = str(tmp_path / "log.db")
    result = run_cli("chat", "hi", "--base-url", base, "--debug", "--db", db)
    assert result.code == 0, result.stderr
    assert result.stdout.endswith(" auth=Basic\n")  # sent, as httpx sends URL credentials
    assert "/chat/completions -> 200 OK" in result.stderr  # the --debug line
    failed = run_cli(
        "chat",
        "hi",
        "--base-url",
        base.replace("echo-target", "always-500"),
        "--max-retries",
        "0",
        "--debug",
        "--db",
        db,
    )
    assert failed.code == 4
    listed = run_cli("logs", "list", "--failed", "--db", db)
    assert "127.0.0.1" in listed.stdout and "/always-500/" in listed.stdout
    as_json = run_cli("logs", "list", "--failed", "--json", "--db", db)
    with sqlite3.connect(db) as connection:
        stored = "\n".join(connection.iterdump())
    assert "/always-500/" in stored
    for text in (result.stderr, failed.stderr, listed.stdout, as_json.stdout, stored):
        assert PASSWORD not in text and "user:" not in text, text


def test_a_refused_connection_names_the_server_without_its_password(run_cli):
    base = f"http://user:{PASSWORD}@127.0.0.1:{free_port()}/v1"
    result = run_cli("chat", "hi", "--base-url", base, "--max-retries", "0")
    assert result.code == 3
    assert "cannot connect to http://127.0.0.1:" in result.stderr
    assert PASSWORD not in result.stderr


def test_models_lists_the_server_without_its_password(run_cli, fault_url):
    base = fault_url("ok").replace("http://", f"http://user:{PASSWORD}@")
    result = run_cli("models", "--base-url", base)
    assert result.code == 0, result.stderr
    assert result.stdout.splitlines()[0] == f"scripted\tremote\t{public_url(base)}"
    assert PASSWORD not in result.stdout


async def test_bench_lean_client_keeps_the_query_and_hides_the_password(nursery):
    port = await nursery.start(fault_server.serve)
    path = f"/echo-target/{uuid.uuid4().hex}/v1"
    item = random_workload(1, kind="chat", model="m", prompt_tokens=4, output_tokens=2)[0]
    target = RawHTTPTarget(
        f"http://user:{PASSWORD}@127.0.0.1:{port}{path}?api-version=2",
        None,
        connect_timeout=5,
        idle_timeout=5,
    )
    try:
        assert PASSWORD not in target.url
        measurement = Measurement(trio.current_time())
        await target.send(item, measurement)
    finally:
        await target.aclose()
    assert measurement.error is None, measurement.message
    assert "".join(measurement.text).startswith(f"{path}/chat/completions?api-version=2 ")
