"""Message actions on the wire: reply, reaction, edit and delete bodies (docs/protocol.md 11).

The same four kinds exist for direct messages and for room posts, with the same numbers and
bodies. Every body starts with the id of the message it acts on, as 32 lower-case hex
characters (the DM layer requires UTF-8 bodies, and hex keeps every body printable):

- 16 reply:    TARGET || text            (the text is 1 to 65536 bytes, as a text message)
- 17 reaction: TARGET || "+" or "-" || emoji (1 to 32 bytes: add or remove one emoji)
- 18 edit:     TARGET || text            (the author's new text, 1 to 65536 bytes)
- 19 delete:   TARGET                    (a tombstone: the author deletes it for everyone)

Peers announce that they understand these kinds with the feature ``FEATURE_ACTIONS`` in the
profile exchange (docs/protocol.md 7); this module is pure and knows nothing of the network.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

KIND_REPLY = 16
KIND_REACTION = 17
KIND_EDIT = 18
KIND_DELETE = 19
ACTION_KINDS = frozenset({KIND_REPLY, KIND_REACTION, KIND_EDIT, KIND_DELETE})
KIND_READ = 20                 # direct messages only: TARGET, the newest message read
DM_ACTION_KINDS = ACTION_KINDS | {KIND_READ}

FEATURE_ACTIONS = "actions/1"  # kinds 16-19 in direct messages and rooms
FEATURE_RECEIPTS = "receipts/1"  # kind 20 in direct messages

TARGET_HEX = 32                # a message or post id (16 bytes) as lower-case hex
MAX_TEXT_BYTES = 65536         # a reply's or an edit's text, as a text message
MAX_EMOJI_BYTES = 32           # one emoji (a ZWJ family or a flag with tags fits)
MAX_ACTION_BODY = TARGET_HEX + MAX_TEXT_BYTES
MAX_REACTIONS_PER_PERSON = 20  # distinct emoji one person keeps on one message
MAX_REACTION_ROWS_PER_PERSON = 64  # and emoji remembered per person and message, taken back too
QUOTE_CHARS = 60               # the quote a reply carries to a peer without FEATURE_ACTIONS

_HEX = frozenset("0123456789abcdef")
# Emoji sequences need the zero-width joiner and the tag characters of subdivision flags.
_ALLOWED_FORMAT = frozenset({"\u200d"} | {chr(c) for c in range(0xE0020, 0xE0080)})


MAX_FEATURES = 32             # features kept from one profile or announce
MAX_FEATURE_CHARS = 32


def clean_features(value: object) -> frozenset[str]:
    """Announced features (a profile's or a room announce's ``features``): an optional list
    of short names; anything else in it (a future form, or junk) is ignored rather than
    costing the profile or the announce."""
    if not isinstance(value, list):
        return frozenset()
    return frozenset(
        f for f in value[:MAX_FEATURES]
        if isinstance(f, str) and 0 < len(f) <= MAX_FEATURE_CHARS and f.isprintable()
    )


class ActionError(ValueError):
    """A body of an action kind that breaks its rules; the message says which."""


@dataclass(frozen=True)
class Action:
    """A decoded action body: ``target`` is the id hex acted on; ``text`` the reply's or the
    edit's text, or the emoji of a reaction (``remove`` set to take it back)."""

    kind: int
    target: str
    text: str = ""
    remove: bool = False


def check_target(target: str) -> str:
    """A message id as 32 lower-case hex characters (raises ``ActionError``)."""
    if not isinstance(target, str) or len(target) != TARGET_HEX or not set(target) <= _HEX:
        raise ActionError("a message id is 32 lower-case hex characters")
    return target


def check_emoji(emoji: str) -> str:
    """One emoji: 1 to 32 bytes of UTF-8, nothing invisible or blank but what emoji use."""
    if not isinstance(emoji, str) or not emoji:
        raise ActionError("a reaction needs an emoji")
    try:
        size = len(emoji.encode("utf-8"))
    except UnicodeEncodeError:
        raise ActionError("the emoji is not valid Unicode") from None
    if size > MAX_EMOJI_BYTES:
        raise ActionError(f"a reaction is at most {MAX_EMOJI_BYTES} bytes")
    for char in emoji:
        category = unicodedata.category(char)
        if category[0] == "Z" or (category[0] == "C" and char not in _ALLOWED_FORMAT):
            raise ActionError("a reaction holds no blank or control characters")
    return emoji


def _check_text(text: str) -> str:
    size = len(text.encode("utf-8"))
    if not 1 <= size <= MAX_TEXT_BYTES:
        raise ActionError(f"the text must be 1 to {MAX_TEXT_BYTES} bytes")
    return text


def encode_action(action: Action) -> str:
    """The body of ``action`` as text (the DM layer encodes it as UTF-8)."""
    target = check_target(action.target)
    if action.kind in (KIND_REPLY, KIND_EDIT):
        return target + _check_text(action.text)
    if action.kind == KIND_REACTION:
        return target + ("-" if action.remove else "+") + check_emoji(action.text)
    if action.kind in (KIND_DELETE, KIND_READ):
        return target
    raise ActionError(f"kind {action.kind} is not a message action")


def decode_action(kind: int, body: str) -> Action:
    """Parse the body of an action ``kind`` (raises ``ActionError``)."""
    target = check_target(body[:TARGET_HEX])
    rest = body[TARGET_HEX:]
    if kind in (KIND_REPLY, KIND_EDIT):
        return Action(kind, target, _check_text(rest))
    if kind == KIND_REACTION:
        if not rest or rest[0] not in "+-":
            raise ActionError("a reaction is + or - then an emoji")
        return Action(kind, target, check_emoji(rest[1:]), remove=rest[0] == "-")
    if kind in (KIND_DELETE, KIND_READ):
        if rest:
            raise ActionError("this kind holds only the message id")
        return Action(kind, target)
    raise ActionError(f"kind {kind} is not a message action")


def fallback_text(text: str, quoted: str | None) -> str:
    """A reply as plain text for a peer without ``FEATURE_ACTIONS``: a quote line, then the
    text (the quote is the start of the original's first line, when it is known)."""
    if not quoted:
        return text
    line = quoted.split("\n", 1)[0]
    if len(line) > QUOTE_CHARS:
        line = line[: QUOTE_CHARS - 1] + "…"
    quoted_text = f"> {line}\n{text}"
    return quoted_text if len(quoted_text.encode("utf-8")) <= MAX_TEXT_BYTES else text
