"""The local producer: SmolLM2 in a real worker thread (real clock: threads run)."""

from __future__ import annotations

import signal
import threading

import pytest
import trio

from streamkit.events import Finish, StreamError, TextDelta, Usage
from streamkit.pipeline.stream import run_stream
from streamkit.providers.llama.files import embedded_model_path
from streamkit.providers.llama.model import LocalModel
from streamkit.providers.llama.producer import THREAD_NAME, LlamaLocalProducer
from streamkit.request import GenerationOptions, GenerationRequest, Message

from test_signals_cli import start_streaming


@pytest.fixture(scope="module")
def model() -> LocalModel:
    return LocalModel(embedded_model_path(), "smollm2")


def completion(prompt: str, **options) -> GenerationRequest:
    return GenerationRequest("completion", None, GenerationOptions(**options), prompt=prompt)


def collector(events: list):
    async def consume(receive):
        async with receive:
            async for batch in receive:
                events.extend(batch)

    return consume


def generation_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


async def test_stream_same_seed_same_text_with_usage(model):
    producer = LlamaLocalProducer(model)
    request = completion("Once upon a time", max_tokens=16, seed=42, temperature=0.9)
    first_events: list = []
    first = await run_stream(lambda send: producer.stream(request, send), [collector(first_events)])
    second = await run_stream(lambda send: producer.stream(request, send), [])
    assert first.text == second.text
    assert first.finish_reason == "length"
    assert first.usage == Usage(first.usage.prompt_tokens, 16, first.usage.prompt_tokens + 16)
    assert first.usage.prompt_tokens >= 4
    assert isinstance(first_events[0], TextDelta)


async def test_chat_uses_the_gguf_template_and_stops_at_end_of_turn(model):
    producer = LlamaLocalProducer(model)
    request = GenerationRequest(
        "chat",
        None,
        GenerationOptions(max_tokens=200, seed=1, temperature=0),
        messages=(Message("user", "Say OK."),),
    )
    reply = await run_stream(lambda send: producer.stream(request, send), [])
    assert reply.error is None
    assert reply.text.strip()
    assert "<|im_end|>" not in reply.text and "<|im_start|>" not in reply.text
    assert reply.finish_reason in ("stop", "length")


async def test_stop_sequence(model):
    producer = LlamaLocalProducer(model)
    prompt = "Count: 1, 2, 3, 4, 5,"
    free = await run_stream(
        lambda send: producer.stream(completion(prompt, max_tokens=12, temperature=0), send), []
    )
    assert " 7" in free.text
    stopped = await run_stream(
        lambda send: producer.stream(
            completion(prompt, max_tokens=12, temperature=0, stop=(" 7",)), send
        ),
        [],
    )
    assert stopped.finish_reason == "stop"
    assert " 7" not in stopped.text
    assert free.text.startswith(stopped.text)


async def test_cancel_stops_within_a_token_and_leaves_no_thread(model):
    producer = LlamaLocalProducer(model)
    stop = trio.CancelScope()
    events: list = []
    seen_running: list[bool] = []

    async def consume(receive):
        async with receive:
            async for batch in receive:
                events.extend(batch)
                if sum(isinstance(e, TextDelta) for e in events) >= 5 and not stop.cancel_called:
                    seen_running.append(bool(generation_threads()))
                    stop.cancel()

    request = completion("A long story:", max_tokens=2000, temperature=1.0)
    reply = await run_stream(lambda send: producer.stream(request, send), [consume], stop=stop)
    assert seen_running == [True]  # the model was generating in its named thread ...
    assert generation_threads() == []  # ... which had returned when stream() did
    assert reply.finish_reason == "cancelled"
    assert isinstance(events[-1], Finish)
    deltas = [e for e in events if isinstance(e, TextDelta)]
    # Stopped soon after the cancel (bench/local_cancel.py measures how soon):
    # nowhere near the 2000 tokens asked for.
    assert 5 <= len(deltas) <= 40  # a loaded machine may let a few more through
    assert reply.text == "".join(d.text for d in deltas)

    # The same loaded model serves the next turn.
    after = await run_stream(
        lambda send: producer.stream(completion("Hello", max_tokens=4, seed=1), send), []
    )
    assert after.finish_reason in ("length", "stop")
    assert after.error is None


async def test_consumer_that_goes_away_aborts_generation(model):
    producer = LlamaLocalProducer(model)
    send, receive = trio.open_memory_channel(0)
    request = completion("A long story:", max_tokens=2000, temperature=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(producer.stream, request, send)
        await receive.receive()
        await receive.aclose()
    assert generation_threads() == []


async def test_prompt_longer_than_the_context_is_a_model_error():
    small = LocalModel(embedded_model_path(), "smollm2", n_ctx=256)
    producer = LlamaLocalProducer(small)
    reply = await run_stream(
        lambda send: producer.stream(completion("word " * 300, max_tokens=4), send), []
    )
    assert isinstance(reply.error, StreamError)
    assert reply.error.kind == "model"
    assert "context window is 256" in reply.error.message
    assert reply.exception().exit_code == 8


def test_cli_missing_and_corrupt_model_files(run_cli, tmp_path):
    missing = run_cli("complete", "hi", "-m", str(tmp_path / "nope.gguf"))
    assert missing.code == 8
    assert missing.stderr.strip() == f"streamkit: model file not found: {tmp_path / 'nope.gguf'}"
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + b"\0garbage" * 100)
    result = run_cli("complete", "hi", "-m", str(corrupt))
    assert result.code == 8
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"streamkit: cannot load model {corrupt}")
    assert "Traceback" not in result.stderr
    unknown = run_cli("chat", "hi", "-m", "no-such-model")
    assert unknown.code == 8
    assert "unknown local model 'no-such-model'" in unknown.stderr


def test_cli_local_chat_and_models(run_cli):
    result = run_cli("chat", "Say hello.", "-n", "8", "--seed", "3")
    assert result.code == 0, result.stderr
    assert result.stdout.strip()
    listed = run_cli("models")
    assert listed.code == 0
    assert listed.stdout.splitlines()[0].split("\t")[:2] == ["smollm2", "local"]


def test_cli_sigint_during_local_generation(cli_env):
    proc, received = start_streaming(
        ["complete", "A long story: once upon a time", "-n", "3000", "--temperature", "1"],
        cli_env,
    )
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 130
    assert (received + rest).endswith(b"\n")
    assert b"Traceback" not in stderr


async def test_long_history_is_trimmed_to_the_context_window(capsys):
    from streamkit.pipeline.session import fitted_request
    from streamkit.protocol.history import fit_history

    small = LocalModel(embedded_model_path(), "smollm2", n_ctx=256)
    producer = LlamaLocalProducer(small)
    history = [Message("system", "Be brief.")]
    for i in range(12):
        history += [
            Message("user", f"Tell me fact number {i} about the sea. " * 3),
            Message("assistant", f"Fact {i}: the sea is large and salty. " * 3),
        ]
    history.append(Message("user", "Thanks!"))
    options = GenerationOptions(max_tokens=16)
    request = await fitted_request(producer, None, options, history)
    sent = request.messages
    assert sent[0] == Message("system", "Be brief.") and sent[-1] == Message("user", "Thanks!")
    assert len(sent) < len(history)
    assert sent[1:] == tuple(history[len(history) - len(sent) + 1 :])  # newest kept, in order
    assert len(small.prompt_tokens(request)) <= 256 - 16
    assert "without its" in capsys.readouterr().err
    reply = await run_stream(lambda send: producer.stream(request, send), [])
    assert reply.error is None

    # The pure rule: nothing dropped when it fits; system and last always kept.
    def by_count(messages):
        return len(messages)

    assert fit_history(history, 100, by_count) == (history, 0)
    kept, dropped = fit_history(history, 1, by_count)
    assert kept == [history[0], history[-1]] and dropped == len(history) - 2


async def test_local_logprobs_greedy_tokens_are_the_best_and_match_the_server(model, llama_server):
    from streamkit.providers.openai_http import OpenAIHTTPProducer
    from streamkit.providers.transports import build_transport

    request = GenerationRequest(
        # 3 tokens: past them the server's default repeat penalty (1.1) makes
        # its greedy text differ from an unpenalised local run.
        "completion",
        "smollm2",
        GenerationOptions(max_tokens=3, temperature=0, logprobs=3),
        prompt="The capital of France is",
    )
    events: list = []
    reply = await run_stream(
        lambda send: LlamaLocalProducer(model).stream(request, send), [collector(events)]
    )
    local = [lp for e in events if isinstance(e, TextDelta) for lp in e.logprobs]
    assert "".join(lp.token for lp in local) == reply.text
    for lp in local:
        assert lp.logprob <= 0
        assert max(lp.top, key=lp.top.get) == lp.token  # greedy: the best token
        assert lp.top[lp.token] == lp.logprob
    remote_events: list = []
    async with build_transport(llama_server, None, connect_timeout=5, idle_timeout=60) as client:
        producer = OpenAIHTTPProducer(client)
        remote_reply = await run_stream(
            lambda send: producer.stream(request, send), [collector(remote_events)]
        )
    remote = [lp for e in remote_events if isinstance(e, TextDelta) for lp in e.logprobs]
    assert remote_reply.text == reply.text
    assert [round(lp.logprob, 3) for lp in remote] == [round(lp.logprob, 3) for lp in local]
