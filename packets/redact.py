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
- API keys shaped like payment-provider keys (`sk_live_`, `tok_live_`, `rk_test_`, `whsec_` ...)
  -> `[redacted api key]`; JSON web tokens (`eyJ...eyJ...sig`) -> `[redacted jwt]`
- customer e-mail addresses -> `[redacted email]`
- IBANs (country, check digits, 11 to 30 letters or digits, run together or in groups of four;
  the mod-97 check must pass, so a code that only looks like one stays) -> `[redacted iban]`
- US social security numbers (`078-05-1120`, or nine digits after `SSN`) -> `[redacted ssn]`
- a card's security code after `cvv`/`cvc`/`csc`/`cid`, an expiry after `exp`/`expiry`/`expires`,
  and a bare `MM/YY` written just before or after a security code -> `[redacted]`
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
_API_KEY = re.compile(
    r"(?<![A-Za-z0-9_])(?:(?:sk|pk|rk|tok)_(?:live|test)_|whsec_)[A-Za-z0-9]{8,}(?![A-Za-z0-9])"
)
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
    r"(?![A-Za-z0-9-])"
)
# Run together, or in groups of four: the callback tries shorter candidates when mod-97 fails.
_IBAN = re.compile(
    r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}"
    r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)(?![A-Za-z0-9])"
)
_SSN = re.compile(r"(?<![\w-])(?!000|666|9)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w-])")
_SSN_WORD = re.compile(r"(?i)\b(ssn|social security(?: number)?)(\W{0,3})(?<!\d)\d{9}(?!\d)")
_EXPIRY_SHAPE = r"(?:0[1-9]|1[0-2])\s?/\s?(?:20\d{2}|\d{2})(?![\d/])"
_CVV_WORD = r"\b(?:cvv2?|cvc2?|csc|cid)\b"
_CVV = re.compile(rf"(?i)({_CVV_WORD})(\W{{0,3}})\d{{3,4}}(?!\d)")
_EXPIRY = re.compile(rf"(?i)\b(exp(?:iry|ires|iration)?(?:\s+date)?)\b(\W{{0,3}})(?<!\d){_EXPIRY_SHAPE}")
# A bare MM/YY is only an expiry when a security code sits right next to it.
_EXPIRY_BEFORE_CVV = re.compile(rf"(?i)(?<![\d/]){_EXPIRY_SHAPE}(?=[^\n]{{0,30}}?{_CVV_WORD})")
_EXPIRY_AFTER_CVV = re.compile(rf"(?i)({_CVV_WORD}[^\n]{{0,30}}?)(?<![\d/]){_EXPIRY_SHAPE}")
_PHONE_INTL = re.compile(r"(?<![\w+])\+\d(?:[ .()-]{0,2}\d){6,14}(?![\w])")
_PHONE_NANP = re.compile(r"(?<![\w.+-])(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}(?![\w]|[.-]\d)")
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
        (_API_KEY, lambda m: "[redacted api key]"),
        (_JWT, lambda m: "[redacted jwt]"),
        (_EMAIL, lambda m: "[redacted email]"),
        (_IBAN, _iban),
        (_SSN, lambda m: "[redacted ssn]"),
        (_SSN_WORD, lambda m: f"{m.group(1)}{m.group(2)}[redacted ssn]"),
        (_EXPIRY_BEFORE_CVV, lambda m: REDACTED),
        (_EXPIRY_AFTER_CVV, lambda m: f"{m.group(1)}{REDACTED}"),
        (_EXPIRY, lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}"),
        (_CVV, lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}"),
        (_CHAIN, _cards_in_chain),
        (_PHONE_INTL, _phone),
        (_PHONE_NANP, lambda m: "[redacted phone]"),
    )
    for pattern, replace in steps:
        text = pattern.sub(replace, text)
    return text


def iban_ok(iban: str) -> bool:
    """The ISO 13616 mod-97 check over an IBAN written without spaces."""
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _iban(match: re.Match[str]) -> str:
    """Mask the longest prefix of the candidate that is an IBAN; groups after it stay."""
    # A digest cannot match: it runs past 34 characters without a space and the pattern stops there.
    written = match.group(0)
    cut = len(written)
    while cut > 0:
        if iban_ok(written[:cut].replace(" ", "")):
            return "[redacted iban]" + written[cut:]
        cut = written.rfind(" ", 0, cut)
    return written


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return "[redacted phone]" if 8 <= digits <= 15 else match.group(0)


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
    # A chain's first or last group may be the digit tail or head of a digest next to it
    # (`...a15197 11227 114`): such a group is part of the digest, never of a card.
    base = match.start()
    if groups and _inside_digest(match.string, base + groups[0][0], base + groups[0][1]):
        groups = groups[1:]
    if groups and _inside_digest(match.string, base + groups[-1][0], base + groups[-1][1]):
        groups = groups[:-1]
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
