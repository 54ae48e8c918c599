"""Structured output on the local model: what the grammar costs, and what it buys.

The same extraction prompts (the schema spelled out in the system message
both times) run through ``streamkit chat --jsonl`` on SmolLM2 twice in one
run: once free (no ``--schema``), once with ``--schema`` (generation under
the grammar). For each: decode speed (completion tokens over the time after
the first token, summed over the batch) and the share of replies that parse
and validate against the schema. Expected: far below 100 % valid without the
grammar, 100 % with it, for some loss of speed.

    python bench/schema_local.py [--prompts N] [--max-tokens M]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

from streamkit.protocol.schema_syntax import parse_short_schema
from streamkit.protocol.structured import check_reply

from support import PYTHON, child_env

SCHEMAS = {
    "flat": "name, age int, city",
    "nested": "title, authors list[{name, born int}], tags list[str]",
    "enum": "sentiment positive|negative|neutral, confident bool, score float",
}
SUBJECTS = [
    "Alice Smith, 31, lives in Paris",
    "Bob Jones, 45, from Berlin",
    "Chen Wei, 28, Shanghai",
    "Dana White, 52, Toronto",
    "Emeka Obi, 39, Lagos",
    "Fatima Zahra, 24, Rabat",
    "Gustav Berg, 61, Oslo",
    "Hana Sato, 33, Osaka",
    "Ivan Petrov, 47, Sofia",
    "Julia Costa, 29, Lisbon",
    "Karl Meier, 55, Zurich",
    "Lena Novak, 22, Prague",
]


def run_batch(
    tmp: Path, schema: dict, prompts: list[str], constrained: bool, max_tokens: int
) -> list[dict]:
    system = "Reply with only a JSON object valid against this JSON Schema: " + json.dumps(schema)
    records = "".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(prompts))
    args = [
        PYTHON,
        "-m",
        "streamkit",
        "chat",
        "--jsonl",
        "-s",
        system,
        "--seed",
        "11",
        "-n",
        str(max_tokens),
        "--no-log",
    ]
    if constrained:
        args += ["--schema", json.dumps(schema)]
    done = subprocess.run(
        args, input=records, capture_output=True, text=True, env=child_env(tmp), check=False
    )
    return [json.loads(line) for line in done.stdout.splitlines()]


def summarize(results: list[dict], schema: dict) -> tuple[float, float]:
    """(decode tokens/s over the batch, share of replies valid against ``schema``)."""
    tokens = seconds = 0.0
    valid = 0
    for record in results:
        text = json.dumps(record["json"]) if "json" in record else record.get("text", "")
        valid += check_reply(text, schema)[1] is None
        usage, latency = record.get("usage") or {}, record["latency"]
        if usage.get("completion_tokens", 0) > 1 and latency["ttft_s"] is not None:
            tokens += usage["completion_tokens"] - 1
            seconds += latency["total_s"] - latency["ttft_s"]
    return tokens / seconds if seconds else 0.0, valid / len(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=12)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    prompts = [f"Extract as JSON: {s}." for s in (SUBJECTS * 4)[: args.prompts]]
    print(
        f"{'schema':8} {'free tok/s':>11} {'grammar tok/s':>14} {'ratio':>6} "
        f"{'valid free':>11} {'valid grammar':>14}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for name, short in SCHEMAS.items():
            schema = parse_short_schema(short)
            free = summarize(run_batch(Path(tmp), schema, prompts, False, args.max_tokens), schema)
            held = summarize(run_batch(Path(tmp), schema, prompts, True, args.max_tokens), schema)
            print(
                f"{name:8} {free[0]:11.1f} {held[0]:14.1f} {held[0] / free[0]:6.2f} "
                f"{free[1]:11.0%} {held[1]:14.0%}"
            )


if __name__ == "__main__":
    main()
