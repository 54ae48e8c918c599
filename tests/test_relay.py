"""The WebSocket relay with real clients over loopback (trio-websocket's client)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from contextlib import asynccontextmanager

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from streamkit.config import RelayLimits
from streamkit.pipeline.relay import Relay
from streamkit.providers.llama.files import embedded_model_path
from streamkit.providers.llama.model import LocalModel
from streamkit.providers.llama.producer import THREAD_NAME, LlamaLocalProducer
from streamkit.providers.openai_http import OpenAIHTTPProducer
from streamkit.providers.transports import build_transport

from fault_server import serve as serve_faults


@asynccontextmanager
async def running_relay(scenario: str | None = "ok", *, backend=None, **options):
    """A relay on a free port in front of the scripted server (or ``backend``)."""
    async with trio.open_nursery() as nursery:
        client = None
        if backend is None:
            fault_port = await nursery.start(serve_faults)
            client = build_transport(
                f"http://127.0.0.1:{fault_port}/{scenario}/k/v1",
                None,
                connect_timeout=5,
                idle_timeout=30,
            )
            backend = OpenAIHTTPProducer(client)
        limits = options.pop("limits", RelayLimits())
        relay = Relay(backend, limits=limits, **options)
        port = await nursery.start(relay.serve, "127.0.0.1", 0)
        yield f"ws://127.0.0.1:{port}/", relay
        nursery.cancel_scope.cancel()
    if client is not None:
        await client.aclose()


async def frames_until_end(ws, ids: set) -> list[dict]:
    """Receive frames until every id in ``ids`` has had its finish or error."""
    frames, open_ids = [], set(ids)
    while open_ids:
        frame = json.loads(await ws.get_message())
        frames.append(frame)
        if frame["type"] in ("finish", "error"):
            open_ids.discard(frame["id"])
    return frames


def chat(frame_id, text="hi", **options) -> str:
    return json.dumps(
        {"type": "chat", "id": frame_id, "messages": [{"role": "user", "content": text}], **options}
    )


async def test_stream_and_concurrent_requests_on_one_connection():
    async with running_relay("ok") as (url, _), open_websocket_url(url) as ws:
        await ws.send_message(chat("a"))
        await ws.send_message(
            json.dumps({"type": "complete", "id": 2, "prompt": "x", "stop": "\n", "max_tokens": 5})
        )
        frames = await frames_until_end(ws, {"a", 2})
    for frame_id in ("a", 2):
        mine = [f for f in frames if f["id"] == frame_id]
        assert "".join(f["text"] for f in mine if f["type"] == "delta") == "Hello, world"
        assert mine[-1] == {"type": "finish", "id": frame_id, "finish_reason": "stop"}
        assert [f["type"] for f in mine].count("finish") == 1


async def test_cancel_by_id_ends_with_a_cancelled_finish():
    async with running_relay("slow") as (url, relay), open_websocket_url(url) as ws:
        await ws.send_message(chat("r1"))
        first = json.loads(await ws.get_message())
        assert first["type"] == "delta"
        await ws.send_message(json.dumps({"type": "cancel", "id": "r1"}))
        frames = await frames_until_end(ws, {"r1"})
        assert frames[-1] == {"type": "finish", "id": "r1", "finish_reason": "cancelled"}
        await ws.send_message(json.dumps({"type": "cancel", "id": "r1"}))
        again = json.loads(await ws.get_message())
        assert again["type"] == "error" and again["error"]["type"] == "unknown_id"
        assert relay.connections


async def test_bad_frames_get_error_frames_and_the_connection_stays():
    async with running_relay("ok") as (url, _), open_websocket_url(url) as ws:
        answers = []
        for raw in [
            "not json",
            "[1, 2]",
            json.dumps({"type": "chat"}),
            json.dumps({"type": "chat", "id": "x", "messages": "hi"}),
            json.dumps({"type": "complete", "id": "y"}),
            json.dumps({"type": "dance", "id": "z"}),
        ]:
            await ws.send_message(raw)
            answers.append(json.loads(await ws.get_message()))
        assert [a["id"] for a in answers] == [None, None, None, "x", "y", "z"]
        assert all(a["type"] == "error" and a["error"]["type"] == "bad_frame" for a in answers)
        await ws.send_message(chat("ok"))  # still usable
        frames = await frames_until_end(ws, {"ok"})
        assert frames[-1]["type"] == "finish"


async def test_request_limit_per_connection():
    limits = RelayLimits(max_requests_per_connection=2)
    async with running_relay("slow", limits=limits) as (url, _), open_websocket_url(url) as ws:
        for frame_id in ("a", "b", "c"):
            await ws.send_message(chat(frame_id))
        while True:
            frame = json.loads(await ws.get_message())
            if frame["type"] == "error":
                break
        assert frame["id"] == "c" and frame["error"]["type"] == "too_many_requests"


async def test_token_and_origin_are_checked_before_the_websocket_opens():
    async with running_relay("ok", token="s3cret", allowed_origins=("https://ok.example",)) as (
        url,
        _,
    ):
        for headers, path, status in [
            ([], "", 401),
            ([(b"Authorization", b"Bearer wrong")], "", 401),
            ([(b"Authorization", b"Bearer s3cret"), (b"Origin", b"https://evil.example")], "", 403),
        ]:
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(url + path, extra_headers=headers):
                    pass
            assert rejected.value.status_code == status
        async with open_websocket_url(url + "?token=s3cret") as ws:
            await ws.send_message(chat("a"))
            assert (await frames_until_end(ws, {"a"}))[-1]["type"] == "finish"


async def test_without_allowed_origins_only_the_relays_own_origin_and_non_browsers_connect():
    async with running_relay("ok") as (url, _):
        port = url.rsplit(":", 1)[1].strip("/")
        for origin in (b"https://evil.example", b"http://localhost:1", b"null"):
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(url, extra_headers=[(b"Origin", origin)]):
                    pass
            assert rejected.value.status_code == 403, origin
        for headers in (
            [],
            [(b"Origin", f"http://127.0.0.1:{port}".encode())],
            [(b"Origin", f"http://localhost:{port}".encode())],
        ):
            async with open_websocket_url(url, extra_headers=headers) as ws:
                await ws.send_message(chat("a"))
                assert (await frames_until_end(ws, {"a"}))[-1]["type"] == "finish"
    async with (
        running_relay("ok", allowed_origins=("*",)) as (url, _),
        open_websocket_url(url, extra_headers=[(b"Origin", b"https://any.example")]) as ws,
    ):
        await ws.send_message(chat("b"))
        assert (await frames_until_end(ws, {"b"}))[-1]["type"] == "finish"


async def test_connections_arriving_together_are_counted_before_their_handshakes():
    limits = RelayLimits(max_connections=10)
    async with running_relay("ok", limits=limits) as (url, _):
        opened, refused = [], []
        everyone_answered = trio.Event()

        async def client() -> None:
            try:
                async with open_websocket_url(url):
                    opened.append(1)
                    if len(opened) + len(refused) == 50:
                        everyone_answered.set()
                    await everyone_answered.wait()  # hold the connection until all are in
            except ConnectionRejected as exc:
                refused.append(exc.status_code)
                if len(opened) + len(refused) == 50:
                    everyone_answered.set()

        async with trio.open_nursery() as nursery:
            for _ in range(50):
                nursery.start_soon(client)
    assert (len(opened), refused) == (10, [503] * 40)


async def test_slow_client_is_dropped_while_another_completes():
    limits = RelayLimits(slow_client_timeout=0.5, send_queue=64)
    async with (
        running_relay("many-300000", limits=limits) as (url, relay),
        open_websocket_url(url) as stalled,
        open_websocket_url(url) as healthy,
    ):
        await stalled.send_message(chat("big"))  # ... and never reads again
        await healthy.send_message(chat("mine"))
        frames = await frames_until_end(healthy, {"mine"})
        text = "".join(f["text"] for f in frames if f["type"] == "delta")
        assert text == "tok " * 300000
        assert frames[-1]["type"] == "finish"
        with trio.fail_after(10):
            while len(relay.connections) > 1:  # noqa: ASYNC110 - the stalled one is dropped
                await trio.sleep(0.05)
        with pytest.raises(ConnectionClosed):
            while True:
                await stalled.get_message()


async def test_clients_closing_mid_send_do_not_take_the_relay_down():
    async with running_relay("many-200000") as (url, relay):
        for frames_read in range(1, 21):
            async with open_websocket_url(url) as ws:
                await ws.send_message(chat("big"))
                for _ in range(frames_read):
                    await ws.get_message()
            # leaving the block closes the WebSocket while the relay is sending
        async with open_websocket_url(url) as ws:  # the relay still serves
            await ws.send_message(
                json.dumps({"type": "complete", "id": 1, "prompt": "x", "max_tokens": 1})
            )
            assert json.loads(await ws.get_message())["type"] in ("delta", "finish")
        with trio.fail_after(10):
            while relay.connections:  # noqa: ASYNC110 - every closed client is let go
                await trio.sleep(0.02)


@pytest.fixture(scope="module")
def local_backend():
    return LlamaLocalProducer(LocalModel(embedded_model_path(), "smollm2"))


async def test_disconnect_stops_local_generation(local_backend):
    async with running_relay(backend=local_backend) as (url, relay):
        async with open_websocket_url(url) as ws:
            await ws.send_message(
                json.dumps(
                    {"type": "complete", "id": 1, "max_tokens": 3000, "prompt": "A long story:"}
                )
            )
            assert json.loads(await ws.get_message())["type"] == "delta"
            assert any(t.name == THREAD_NAME for t in threading.enumerate())
        with trio.fail_after(5):
            while relay.connections or any(  # noqa: ASYNC110 - polling a thread's end
                t.name == THREAD_NAME for t in threading.enumerate()
            ):
                await trio.sleep(0.02)


async def test_local_requests_wait_their_turn_with_queued_frames(local_backend):
    async with running_relay(backend=local_backend) as (url, _), open_websocket_url(url) as ws:
        for frame_id in (1, 2, 3):
            await ws.send_message(
                json.dumps({"type": "complete", "id": frame_id, "prompt": "Hello", "max_tokens": 4})
            )
        frames = await frames_until_end(ws, {1, 2, 3})
    queued = {f["id"]: f["position"] for f in frames if f["type"] == "queued"}
    assert queued == {2: 1, 3: 2}
    for frame_id in (1, 2, 3):
        mine = [f["type"] for f in frames if f["id"] == frame_id]
        assert mine[-1] == "finish" and "delta" in mine


async def test_relay_log_keeps_each_request(tmp_path):
    from streamkit.store.async_store import AsyncStore
    from streamkit.store.database import Store

    store = Store(tmp_path / "log.db")
    async with (
        running_relay("ok", store=AsyncStore(store)) as (url, _),
        open_websocket_url(url) as ws,
    ):
        await ws.send_message(chat("a", "remember me"))
        await frames_until_end(ws, {"a"})
    [conversation] = store.conversations()
    assert [m.content for m in store.messages(conversation.id)] == ["remember me", "Hello, world"]


def test_cli_relay_refuses_public_bind_without_token(run_cli):
    result = run_cli("relay", "--host", "0.0.0.0", "--base-url", "http://127.0.0.1:9/v1")
    assert result.code == 2
    assert "without --token" in result.stderr


def test_cli_relay_refuses_an_empty_token(run_cli):
    result = run_cli(
        "relay", "--host", "0.0.0.0", "--token", "", "--base-url", "http://127.0.0.1:9/v1"
    )
    assert result.code == 2
    assert result.stderr.splitlines() == [
        "streamkit: --token is empty: an empty token is no token "
        '(give a secret, e.g. --token "$(openssl rand -hex 16)")'
    ]


def test_cli_relay_graceful_shutdown_on_sigint(fault_url, cli_env):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "relay",
            "--port",
            "0",
            "--base-url",
            fault_url("slow"),
        ],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    line = proc.stderr.readline().decode()
    assert line.startswith("listening on ws://127.0.0.1:")
    url = line.split()[-1]

    async def client() -> list[dict]:
        async with open_websocket_url(url) as ws:
            await ws.send_message(chat("r"))
            frames = [json.loads(await ws.get_message())]
            proc.send_signal(signal.SIGINT)
            try:
                while True:
                    frames.append(json.loads(await ws.get_message()))
            except ConnectionClosed as closed:
                assert closed.reason.code == 1001
            return frames

    frames = trio.run(client)
    assert proc.wait(timeout=10) == 130
    assert frames[-1] == {
        "type": "error",
        "id": "r",
        "error": {"type": "shutting_down", "message": "the relay is shutting down"},
    }
    assert b"Traceback" not in proc.stderr.read()


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-port=0",
]


async def test_the_html_page_streams_a_reply_in_chromium(tmp_path):
    """examples/relay-chat.html in headless Chromium, driven over the DevTools protocol."""
    import shutil
    from pathlib import Path

    chromium = shutil.which("chromium")
    assert chromium, "chromium is not installed (.ci/install --dev installs it)"
    page = Path(__file__).parent.parent / "examples" / "relay-chat.html"
    async with running_relay("ok", allowed_origins=("null",)) as (url, _):  # a file:// page
        browser = await trio.lowlevel.open_process(
            [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path}", "about:blank"],
            stderr=subprocess.PIPE,
        )
        try:
            devtools = await _devtools_url(browser.stderr)
            async with open_websocket_url(devtools, max_message_size=1 << 24) as cdp:
                calls = _Devtools(cdp)
                target = await calls.send(
                    "Target.createTarget", url=f"{page.as_uri()}?url={url}&prompt=hi&send=1"
                )
                session = (
                    await calls.send(
                        "Target.attachToTarget", flatten=True, targetId=target["targetId"]
                    )
                )["sessionId"]
                with trio.fail_after(20):
                    while await calls.evaluate(session, "document.title") not in (  # noqa: ASYNC110
                        "done",
                        "error",
                    ):
                        await trio.sleep(0.1)
                log = await calls.evaluate(session, "document.getElementById('log').innerText")
        finally:
            browser.kill()
            await browser.wait()
    assert log.splitlines() == ["> hi", "Hello, world"]


async def _devtools_url(stderr) -> str:
    buffer = b""
    with trio.fail_after(30):
        while b"DevTools listening on " not in buffer or not buffer.endswith(b"\n"):
            buffer += await stderr.receive_some(4096)
    return buffer.split(b"DevTools listening on ", 1)[1].split()[0].decode()


class _Devtools:
    """Just enough of the Chrome DevTools Protocol: numbered calls, their results."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    async def send(self, method: str, session: str | None = None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        await self.ws.send_message(json.dumps(message))
        while True:
            answer = json.loads(await self.ws.get_message())
            if answer.get("id") == self.next_id:
                assert "error" not in answer, answer
                return answer["result"]

    async def evaluate(self, session: str, expression: str):
        result = await self.send(
            "Runtime.evaluate", session, expression=expression, returnByValue=True
        )
        return result["result"].get("value")


async def test_a_schema_is_checked_before_the_finish_frame(local_backend):
    async with running_relay("ok") as (url, _), open_websocket_url(url) as ws:
        await ws.send_message(chat("s", schema="name, age int"))  # the server says prose
        *_, last = await frames_until_end(ws, {"s"})
    assert last["type"] == "error" and last["error"]["type"] == "schema"
    assert last["error"]["message"].startswith("the reply is not JSON")
    async with running_relay(backend=local_backend) as (url, _), open_websocket_url(url) as ws:
        await ws.send_message(
            chat("j", "Extract: Bob, 40 years old", schema="name, age int", max_tokens=40, seed=1)
        )
        frames = await frames_until_end(ws, {"j"})
    text = "".join(f["text"] for f in frames if f["type"] == "delta")
    assert frames[-1]["type"] == "finish" and frames[-1]["json"] == json.loads(text)
    assert set(frames[-1]["json"]) == {"name", "age"}


async def test_reasoning_comes_in_frames_of_its_own():
    async with running_relay("thinks") as (url, _), open_websocket_url(url) as ws:
        await ws.send_message(chat("r"))
        frames = await frames_until_end(ws, {"r"})
    kinds = [(f["type"], f.get("text")) for f in frames]
    assert ("delta", "4") in kinds
    thought = "".join(text for kind, text in kinds if kind == "reasoning")
    assert thought == "Two and two."
    assert kinds.index(("delta", "4")) > max(
        i for i, (k, _) in enumerate(kinds) if k == "reasoning"
    )
