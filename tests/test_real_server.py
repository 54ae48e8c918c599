"""Against a real OpenAI-compatible server: llama_cpp.server running SmolLM2-135M."""

from __future__ import annotations

import json
import signal

import pytest

from streamkit.events import TextDelta
from streamkit.pipeline.stream import run_stream
from streamkit.providers.openai_http import OpenAIHTTPProducer
from streamkit.providers.transports import build_transport
from streamkit.request import GenerationOptions, GenerationRequest, Message

from test_signals_cli import start_streaming

pytestmark = pytest.mark.server


async def stream(base: str, request: GenerationRequest):
    events = []

    async def consume(receive):
        async with receive:
            async for batch in receive:
                events.extend(batch)

    async with build_transport(base, None, connect_timeout=5, idle_timeout=60) as client:
        producer = OpenAIHTTPProducer(client)
        reply = await run_stream(lambda send: producer.stream(request, send), [consume])
    return reply, events


def completion(prompt: str, **options) -> GenerationRequest:
    return GenerationRequest("completion", "smollm2", GenerationOptions(**options), prompt=prompt)


def chat(text: str, **options) -> GenerationRequest:
    return GenerationRequest(
        "chat", "smollm2", GenerationOptions(**options), messages=(Message("user", text),)
    )


async def test_completions_stream_max_tokens(llama_server):
    reply, events = await stream(
        llama_server, completion("The capital of France is", max_tokens=5, logprobs=0, seed=1)
    )
    assert reply.error is None
    assert reply.finish_reason == "length"
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert sum(len(d.logprobs) for d in deltas) == 5  # one logprob per generated token
    assert reply.text
    # llama_cpp.server 0.3.x never streams a usage chunk: it must not be invented.
    assert reply.usage is None


async def test_completions_stop_sequence(llama_server):
    prompt = "Count: 1, 2, 3, 4, 5,"
    free, _ = await stream(llama_server, completion(prompt, max_tokens=12, temperature=0))
    assert " 7" in free.text  # the model does keep counting ...
    stopped, _ = await stream(
        llama_server, completion(prompt, max_tokens=12, temperature=0, stop=(" 7",))
    )
    assert stopped.finish_reason == "stop"  # ... until the stop sequence
    assert " 7" not in stopped.text
    assert free.text.startswith(stopped.text)


async def test_chat_stream_same_seed_same_text(llama_server):
    first, _ = await stream(llama_server, chat("Tell me about cats.", max_tokens=24, seed=7))
    second, _ = await stream(llama_server, chat("Tell me about cats.", max_tokens=24, seed=7))
    assert first.error is None
    assert first.finish_reason in ("stop", "length")
    assert len(first.text) > 10
    assert first.text == second.text


def test_cli_chat_and_complete(run_cli, llama_server):
    result = run_cli(
        "chat", "Say hello.", "--base-url", llama_server, "-m", "smollm2", "-n", "16", "--seed", "1"
    )
    assert result.code == 0, result.stderr
    assert result.stdout.strip()
    assert result.stdout.endswith("\n")
    result = run_cli(
        "complete", "-", "--base-url", llama_server, "-n", "8", "--events", input="Once upon a time"
    )
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[-1] == {"type": "finish", "reason": "length", "choice": 0}
    assert {r["type"] for r in records[:-1]} == {"delta"}


def test_cli_models_and_preflight(run_cli, llama_server):
    result = run_cli("models", "--base-url", llama_server)
    assert result.code == 0
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["smollm2", "remote", llama_server]
    assert rows[1][:2] == ["smollm2", "local"]
    assert run_cli("models", "--base-url", llama_server, "-m", "smollm2").code == 0
    missing = run_cli("models", "--base-url", llama_server, "-m", "gpt-9")
    assert missing.code == 8
    assert "model 'gpt-9' is not offered" in missing.stderr


def test_cli_sigint_mid_generation(llama_server, cli_env):
    proc, received = start_streaming(
        [
            "complete",
            "A long story: once upon a time",
            "--base-url",
            llama_server,
            "-n",
            "1500",
            "--temperature",
            "1",
        ],
        cli_env,
    )
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert (received + rest).decode().startswith(received.decode())
    assert (received + rest).endswith(b"\n")
    assert b"Traceback" not in stderr
