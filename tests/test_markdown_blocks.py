"""The incremental Markdown splitter (sans-IO): where a streamed reply is cut into blocks."""

from __future__ import annotations

from streamkit.protocol.markdown_blocks import CODE_SEGMENT, Block, BlockSplitter, code_blocks

REPLY = """# Primes

A prime has **two** divisors.

- 2
- 3

  still the list

```python
def is_prime(n):
    return n > 1
```
| n | prime |
|---|-------|
| 4 | no    |

~~~
plain
~~~
"""


def split(chunks: list[str]) -> list[Block]:
    splitter = BlockSplitter()
    blocks: list[Block] = []
    for chunk in chunks:
        blocks += splitter.feed(chunk)
    return blocks + splitter.close()


def test_blocks_are_cut_at_blank_lines_and_fences():
    blocks = split([REPLY])
    assert [(b.kind, b.text, b.gap_before) for b in blocks] == [
        ("markdown", "# Primes", False),
        ("markdown", "A prime has **two** divisors.", True),
        ("markdown", "- 2\n- 3\n\n  still the list", True),  # indented: the same list
        ("code", "def is_prime(n):\n    return n > 1", True),
        ("markdown", "| n | prime |\n|---|-------|\n| 4 | no    |", False),
        ("code", "plain", True),
    ]
    assert blocks[3].language == "python" and blocks[5].language == ""


def test_the_cuts_do_not_depend_on_how_the_text_was_split():
    whole = split([REPLY])
    for cut in range(len(REPLY) + 1):
        assert split([REPLY[:cut], REPLY[cut:]]) == whole, cut
    assert split(list(REPLY)) == whole  # one character at a time


def test_a_block_settles_as_soon_as_the_next_one_starts():
    splitter = BlockSplitter()
    assert splitter.feed("one\n\n") == []  # the next line may be indented: still open
    assert splitter.open == Block("markdown", "one")
    assert splitter.feed("t") == [Block("markdown", "one")]
    assert splitter.open == Block("markdown", "t", gap_before=True)
    assert splitter.feed("wo") == []
    assert splitter.close() == [Block("markdown", "two", gap_before=True)]


def test_a_fence_interrupts_a_paragraph_and_its_code_is_open_until_it_closes():
    splitter = BlockSplitter()
    assert splitter.feed("Run:\n```sh\nls -") == [Block("markdown", "Run:")]
    assert splitter.open == Block("code", "ls -", "sh", last=False)
    assert splitter.feed("l\n```\n") == [Block("code", "ls -l", "sh")]
    assert splitter.open is None


def test_a_long_fenced_block_is_drawn_in_segments():
    lines = [f"line {i}" for i in range(CODE_SEGMENT * 2 + 3)]
    blocks = split(["```\n" + "\n".join(lines) + "\n```\n"])
    assert [(b.first, b.last) for b in blocks] == [(True, False), (False, False), (False, True)]
    assert "\n".join(b.text for b in blocks) == "\n".join(lines)
    assert code_blocks("```\n" + "\n".join(lines) + "\n```") == ["\n".join(lines)]


def test_code_blocks_are_the_fences_contents():
    assert code_blocks(REPLY) == ["def is_prime(n):\n    return n > 1", "plain"]
    assert code_blocks("no code here, only `inline`") == []
    assert code_blocks("```bash\necho hi\n") == ["echo hi"]  # never closed
    assert code_blocks("````md\n```\ninner\n```\n````") == ["```\ninner\n```"]
    assert code_blocks("    ```\n    not a fence\n") == []  # indented four: code, not fence
