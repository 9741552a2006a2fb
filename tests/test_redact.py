"""Secrets and card numbers never leave the bot: what is masked, what stays, and idempotence."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packets.redact import card_mask, luhn_ok, redact, redact_data

# --- card numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4242424242424242 declined", "card [card ****4242] declined"),
        ("card 4242 4242 4242 4242 declined", "card [card ****4242] declined"),
        ("card 4242-4242-4242-4242 declined", "card [card ****4242] declined"),
        ("amex 3782 822463 10005", "amex [card ****0005]"),
        ("amex 378282246310005", "amex [card ****0005]"),
        ("visa13 4222222222222", "visa13 [card ****2222]"),
        ("19 digits 6011000990139424124 x", "19 digits [card ****4124] x"),
        ("pan=5555555555554444;", "pan=[card ****4444];"),
        ("two: 4111111111111111, 5500005555555559.", "two: [card ****1111], [card ****5559]."),
        ("ref 12 4242 4242 4242 4242", "ref 12 [card ****4242]"),
    ],
)
def test_a_card_number_keeps_only_its_last_four_digits(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "at 1700000000001 ms",  # a 13-digit timestamp that fails Luhn
        "4242424242424241",  # one digit off: fails Luhn
        "order 12345678901234567890",  # 20 digits: longer than any card
        "2026-11-24T21:00:00-05:00",
        "run 42, version 7, ts 1732500000.123456",
        "4242 4242 4242 4241",
        "424242424242",  # 12 digits: too short
    ],
)
def test_numbers_that_are_not_cards_stay(text: str) -> None:
    assert redact(text) == text


def test_a_card_inside_a_longer_run_of_digits_is_not_cut_out_of_it() -> None:
    # 4242424242424242 preceded by 9: a 17-digit number that fails Luhn, not a card.
    assert not luhn_ok("94242424242424242")
    assert redact("94242424242424242") == "94242424242424242"


def test_the_luhn_check() -> None:
    assert luhn_ok("79927398713")
    assert not luhn_ok("79927398710")
    assert luhn_ok("4242424242424242")


# --- secrets -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "token xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx ok",
            "token [redacted slack token] ok",
        ),
        ("user xoxp-1-2-3-abc and xoxa-2-x", "user [redacted slack token] and [redacted slack token]"),
        ("app xapp-1-A0123456789-1234567890123-abcdef", "app [redacted slack token]"),
        ("refresh xoxe.xoxp-1-Mi0yLTE", "refresh [redacted slack token]"),
        ("xoxr-abc xoxs-abc xoxo-abc xoxe-abc", " ".join(["[redacted slack token]"] * 4)),
        ("key AKIAIOSFODNN7EXAMPLE in logs", "key [redacted aws key] in logs"),
        ("sts ASIAY34FZKBOKMUTVV7A.", "sts [redacted aws key]."),
        (
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig",
            "Authorization: Bearer [redacted]",
        ),
        ("curl -H 'authorization: bearer abcdefgh1234'", "curl -H 'authorization: bearer [redacted]'"),
        ("password=hunter2 user=bob", "password=[redacted] user=bob"),
        ("db_password: s3cr3t!", "db_password: [redacted]"),
        ('{"client_secret": "a b c", "id": 7}', '{"client_secret": "[redacted]", "id": 7}'),
        (
            "api_key='k-123' api-key=zz X-API-KEY: qq",
            "api_key='[redacted]' api-key=[redacted] X-API-KEY: [redacted]",
        ),
        ("https://h/cb?token=abc123&state=ok", "https://h/cb?token=[redacted]&state=ok"),
        ("SECRET = topsecret", "SECRET = [redacted]"),
        ("aws_secret_access_key=wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key=[redacted]"),
        ("token: Bearer abcdefghijkl", "token: [redacted]"),
    ],
)
def test_secrets_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "tokens_used: 5",  # only keys that end in a sensitive word
        "the bearer of good news",
        "password rotation is due",
        "xoxb without a dash",
        "AKIA is a prefix",
        "release-authority released canary-a at 21:55",
    ],
)
def test_ordinary_war_room_text_stays(text: str) -> None:
    assert redact(text) == text


def test_a_pem_private_key_block_is_masked_whole() -> None:
    text = (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc/def+==\n"
        "-----END RSA PRIVATE KEY-----\nthanks"
    )
    assert redact(text) == "key:\n[redacted private key]\nthanks"


def test_a_pem_block_cut_off_before_its_end_is_masked_to_the_end() -> None:
    assert (
        redact("oops -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXkt") == "oops [redacted private key]"
    )


def test_a_public_certificate_is_not_a_secret() -> None:
    text = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redact(text) == text


# --- structures --------------------------------------------------------------------------------


def test_redact_data_walks_dicts_lists_and_tuples_keys_included() -> None:
    data = {
        "text": "card 4242 4242 4242 4242",
        "nested": [{"note": "password=x"}, ("xoxb-1-abc", 3)],
        "4111111111111111": "as a key",
        "count": 5,
        "ok": True,
        "nothing": None,
    }
    assert redact_data(data) == {
        "text": "card [card ****4242]",
        "nested": [{"note": "password=[redacted]"}, ("[redacted slack token]", 3)],
        "[card ****1111]": "as a key",
        "count": 5,
        "ok": True,
        "nothing": None,
    }


def test_a_value_under_a_sensitive_key_is_masked_whatever_it_looks_like() -> None:
    data = {"password": "hunter2", "api_key": 12345, "client_secret": {"a": 1}, "token": None}
    assert redact_data(data) == {
        "password": "[redacted]",
        "api_key": "[redacted]",
        "client_secret": "[redacted]",
        "token": None,
    }


def test_a_card_number_stored_as_an_int_is_masked() -> None:
    assert redact_data([4242424242424242, 1700000000001]) == ["[card ****4242]", 1700000000001]


def test_redact_data_leaves_the_input_alone() -> None:
    data = {"a": ["password=x"]}
    redact_data(data)
    assert data == {"a": ["password=x"]}


# --- properties --------------------------------------------------------------------------------


def _luhn_complete(body: str) -> str:
    """Append the check digit that makes `body` pass Luhn."""
    for digit in "0123456789":
        if luhn_ok(body + digit):
            return body + digit
    raise AssertionError("unreachable: one check digit always fits")


@st.composite
def card_numbers(draw: st.DrawFn) -> str:
    length = draw(st.integers(min_value=13, max_value=19))
    first = draw(st.sampled_from("23456"))
    body = first + draw(st.text(alphabet="0123456789", min_size=length - 2, max_size=length - 2))
    return _luhn_complete(body)


@st.composite
def written_cards(draw: st.DrawFn) -> tuple[str, str]:
    """(digits, as written): one run, or groups of four joined by spaces or dashes."""
    digits = draw(card_numbers())
    style = draw(st.sampled_from(["run", " ", "-"]))
    if style == "run":
        return digits, digits
    groups = [digits[i : i + 4] for i in range(0, len(digits), 4)]
    if len(groups[-1]) < 3:  # real cards never end on a group of one or two digits: 4-4-5, 4-4-4-6
        groups[-2:] = [groups[-2] + groups[-1]]
    return digits, style.join(groups)


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(list(" -=:'\"0123456789")),
    max_size=60,
)


@settings(max_examples=400, deadline=None)
@given(_TEXT, written_cards(), _TEXT, st.sampled_from([" ", "\n", ": ", "=", "(", ", "]))
def test_a_valid_card_number_embedded_in_random_text_never_survives(
    before: str, card: tuple[str, str], after: str, joint: str
) -> None:
    digits, written = card
    text = f"{before}{joint}{written}{' ' if joint != '(' else ')'}{after}"
    masked = redact(text)
    assert written not in masked
    assert digits not in masked


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        _TEXT,
        st.lists(
            st.one_of(
                _TEXT,
                written_cards().map(lambda c: c[1]),
                st.sampled_from(
                    [
                        "password=",
                        "token: ",
                        "Bearer ",
                        "xoxb-",
                        "AKIA",
                        "[card ****",
                        "-----BEGIN PRIVATE KEY-----",
                        "-----END PRIVATE KEY-----",
                        "[redacted]",
                        '"secret": "',
                        "4242",
                        " ",
                        "-",
                        "'",
                    ]
                ),
            ),
            max_size=12,
        ).map("".join),
    )
)
def test_redaction_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


def test_the_card_mask_is_bracketed_so_it_never_joins_a_neighbouring_number() -> None:
    assert card_mask("4242424242424242") == "[card ****4242]"
    text = "4242 4242 4242 4242 1234 5678 9012"
    once = redact(text)
    assert redact(once) == once


def test_a_sha256_digest_that_happens_to_hold_a_luhn_valid_digit_run_is_left_whole() -> None:
    digest = "ab" + "4111111111111111" + "c" * 46
    assert len(digest) == 64
    assert redact(digest) == digest
    assert redact(f"revision {digest} signed") == f"revision {digest} signed"


def test_a_card_number_next_to_a_short_hex_looking_word_is_still_masked() -> None:
    assert "4111111111111111" not in redact("card:4111111111111111 cafe")
