"""Secrets and card numbers out of anything the bot posts, stores in the ledger or exports.

`redact(text)` masks, in this order:

- PEM private key blocks (a block cut off before its END line is masked to the end of the text)
  -> `[redacted private key]`
- `password=`, `secret:`, `"token": "..."`, `api_key='...'` style pairs (the key may carry a
  prefix: `client_secret`, `db_password`, `x-api-key`): the value -> `[redacted]`, the key, the
  separator and any quotes stay so the text still reads
- `Bearer <token>` (8 or more token characters) -> `Bearer [redacted]`
- Slack tokens (`xoxb-`, `xoxp-`, `xoxa-`, `xoxr-`, `xoxe-`, `xoxo-`, `xoxs-`, `xapp-`, and
  `xoxe.xoxp-` refresh tokens) -> `[redacted slack token]`
- AWS access key ids (`AKIA`/`ASIA` + 16 upper-case letters or digits) -> `[redacted aws key]`
- card numbers -> `[card ****4242]`: the last four digits only, which is what people in the war
  room need to tell two cards apart.

Card numbers: 13 to 19 digits passing the Luhn check, written as one run of digits or as groups
of 3 to 6 digits joined by single spaces or dashes (`4242 4242 4242 4242`, `3782-822463-10005`).
A run of digits is never split: a 20-digit id, or a 13-digit timestamp failing Luhn, stays as it
is. Within a longer chain of groups (`ref 12 4242 4242 4242 4242`) every group-aligned window is
tried, so a card next to other numbers is still found. A Luhn-valid 13-digit millisecond epoch
(one in ten) would be masked: masking a number that was not a card costs little, printing a
card costs a PCI incident.

Every mask is bracketed, so no pattern matches its own output or joins it to a neighbouring
number, and `redact` repeats until nothing changes: `redact(redact(x)) == redact(x)` always.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

REDACTED = "[redacted]"
_MAX_PASSES = 8  # one pass is the norm; a second confirms nothing is left

_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----.*?(?:-----END \1PRIVATE KEY-----|\Z)",
    re.DOTALL,
)
# The key ends with a sensitive word; a name that merely contains one (`tokens_used`) is left.
_SENSITIVE_KEY = (
    r"[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key|private[_-]?key|secret[_-]?key)"
)
_PAIR = re.compile(
    rf"""(?ix)
    (?<![A-Za-z0-9_.-])
    (?P<key>{_SENSITIVE_KEY})
    (?P<sep>["']?\s*[:=]\s*)
    (?:
        (?P<quote>["'])(?P<quoted>(?:(?!(?P=quote)).)*)(?P=quote)   # a quoted value, spaces allowed
      | (?P<bare>["']?(?:bearer\s+)?[^\s"',;&}}()]+)             # up to a space or delimiter
    )
    """
)
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9\-._~+/]{8,}=*")
_SLACK = re.compile(r"(?<![A-Za-z0-9])(?:xoxe\.)?(?:xox[abpreos]|xapp)-[A-Za-z0-9-]+")
_AWS = re.compile(r"(?<![A-Za-z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
# A chain of digit groups joined by single spaces or dashes; cards are windows of it.
_CHAIN = re.compile(r"(?<!\d)\d+(?:[ -]\d+)*(?!\d)")
_GROUP = re.compile(r"\d+")


def luhn_ok(digits: str) -> bool:
    """The Luhn mod-10 check over a string of digits."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_card_number(digits: str) -> bool:
    return digits.isascii() and digits.isdigit() and 13 <= len(digits) <= 19 and luhn_ok(digits)


def card_mask(digits: str) -> str:
    return f"[card ****{digits[-4:]}]"


def redact(text: str) -> str:
    """Mask secrets and card numbers in `text`; see the module docstring for what and how."""
    for _ in range(_MAX_PASSES):
        masked = _once(text)
        if masked == text:
            break
        text = masked
    return text


def redact_data(value: Any) -> Any:
    """Redact every string in dicts, lists and tuples, keys included; other values pass through.

    Two additions for data, where a secret is not always in `key=value` text: a value under a
    sensitive key (`{"password": "hunter2"}`) becomes `[redacted]` whatever its type (None stays
    None: it says there is no secret), and an int that is a card number becomes its mask.
    """
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return card_mask(str(value)) if is_card_number(str(value)) else value
    if isinstance(value, dict):
        return {
            redact_data(k): (_sensitive_value(v) if _is_sensitive_key(k) else redact_data(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(redact_data(v) for v in value)
    return value


_KEY_ONLY = re.compile(rf"(?i)^{_SENSITIVE_KEY}$")


def _is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and _KEY_ONLY.match(key) is not None


def _sensitive_value(value: Any) -> Any:
    return None if value is None else REDACTED


def _once(text: str) -> str:
    steps: tuple[tuple[re.Pattern[str], Callable[[re.Match[str]], str]], ...] = (
        (_PEM, lambda m: "[redacted private key]"),
        (_PAIR, _pair),
        (_BEARER, lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}"),
        (_SLACK, lambda m: "[redacted slack token]"),
        (_AWS, lambda m: "[redacted aws key]"),
        (_CHAIN, _cards_in_chain),
    )
    for pattern, replace in steps:
        text = pattern.sub(replace, text)
    return text


def _pair(match: re.Match[str]) -> str:
    quote = match.group("quote") or ""
    return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"


_HEX = frozenset("0123456789abcdefABCDEF")
# Plan revisions, packet hashes and ledger hashes are 64 hex digits; about 1 in 100 holds a run of
# 13+ decimal digits that passes Luhn. A digest is never a card: leave it whole.
_DIGEST_MIN = 32


def _inside_digest(text: str, start: int, end: int) -> bool:
    while start > 0 and text[start - 1] in _HEX:
        start -= 1
    while end < len(text) and text[end] in _HEX:
        end += 1
    token = text[start:end]
    return len(token) >= _DIGEST_MIN and not token.isdigit()


def _cards_in_chain(match: re.Match[str]) -> str:
    """Mask every card in a chain of digit groups; leave the rest, separators included."""
    chain = match.group(0)
    if chain.isdigit() and _inside_digest(match.string, match.start(), match.end()):
        return chain
    groups = [(g.start(), g.end()) for g in _GROUP.finditer(chain)]
    pieces: list[str] = []
    cursor = 0  # position in `chain` copied so far
    i = 0
    while i < len(groups):
        window = _card_window(chain, groups, i)
        if window is None:
            i += 1
            continue
        start, end = groups[i][0], groups[window][1]
        digits = "".join(chain[a:b] for a, b in groups[i : window + 1])
        pieces.append(chain[cursor:start])
        pieces.append(card_mask(digits))
        cursor = end
        i = window + 1
    pieces.append(chain[cursor:])
    return "".join(pieces)


def _card_window(chain: str, groups: list[tuple[int, int]], first: int) -> int | None:
    """The last group of the longest card starting at group `first`, or None."""
    best: int | None = None
    digits = ""
    for last in range(first, len(groups)):
        a, b = groups[last]
        group = chain[a:b]
        # A lone run is a card on its own; joined groups must look like card groups (3-6 digits).
        if (last > first or len(group) < 13) and not 3 <= len(group) <= 6:
            break
        digits += group
        if len(digits) > 19:
            break
        if is_card_number(digits):
            best = last
    return best
