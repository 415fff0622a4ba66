"""Test-vector blocks in docs/protocol.md: how they are written and read back."""

from __future__ import annotations

import json
import re
from typing import Any


def render_doc_block(vectors: dict[str, Any]) -> str:
    """The fenced block for docs/protocol.md: hex wrapped at 64 digits, strings quoted."""
    lines = ["```text"]
    width = max(map(len, vectors)) + 2
    for name, value in vectors.items():
        if isinstance(value, str) and re.fullmatch(r"(?:[0-9a-f]{2})+", value) and len(value) > 64:
            chunks = [value[i : i + 64] for i in range(0, len(value), 64)]
            lines.append(name.ljust(width) + chunks[0])
            lines.extend(" " * width + c for c in chunks[1:])
        elif isinstance(value, str) and not re.fullmatch(r"[0-9A-Za-z:-]+", value):
            lines.append(name.ljust(width) + json.dumps(value, ensure_ascii=False))
        else:
            lines.append(name.ljust(width) + str(value))
    lines.append("```")
    return "\n".join(lines)


def parse_doc_vectors(markdown: str, begin: str, end: str) -> dict[str, str]:
    """Entries between the markers: ``name value``; indented lines continue a value."""
    first, last = markdown.index(begin), markdown.index(end)
    entries: dict[str, str] = {}
    current = None
    for line in markdown[first + len(begin) : last].splitlines():
        if not line.strip() or line.startswith(("```", "#")):
            continue
        if line[0].isspace():
            assert current is not None, f"continuation without a name: {line!r}"
            entries[current] += line.strip()
            continue
        name, _, value = line.partition(" ")
        assert name not in entries, f"{name} appears twice in the document"
        value = value.strip()
        entries[name] = json.loads(value) if value.startswith('"') else value
        current = name
    return entries
