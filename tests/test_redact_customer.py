"""Customer data and API-key-shaped tokens never leave the bot; digests, times and ids stay whole."""

from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packets.redact import redact

# --- what is masked ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mail jane.doe+vip@example.co.uk now", "mail [redacted email] now"),
        ("<mailto:ops@bank.example|ops@bank.example>", "<mailto:[redacted email]|[redacted email]>"),
        ("call +1 415-555-0132", "call [redacted phone]"),
        ("call +44 20 7946 0958.", "call [redacted phone]."),
        ("call (415) 555-0132 or 415.555.0199", "call [redacted phone] or [redacted phone]"),
        ("iban GB82 WEST 1234 5698 7654 32 ok", "iban [redacted iban] ok"),
        ("iban DE89370400440532013000,", "iban [redacted iban],"),
        ("ssn 078-05-1120 on file", "ssn [redacted ssn] on file"),
        ("SSN: 078051120", "SSN: [redacted ssn]"),
        ("exp 12/27 cvv 123", "exp [redacted] cvv [redacted]"),
        ("card expires 09/2028, CVC: 4412", "card expires [redacted], CVC: [redacted]"),
        ("cvv2=987 exp: 01/29", "cvv2=[redacted] exp: [redacted]"),
        ("12/27 cvv 123", "[redacted] cvv [redacted]"),
        ("charged with tok_live_4eC39HqLyjWDarjtT1zdp7dc", "charged with [redacted api key]"),
        ("key sk_live_51H8abcDEF0123456789xyz!", "key [redacted api key]!"),
        ("rk_test_abcdEFGH1234 and whsec_abcdEFGH12345678", "[redacted api key] and [redacted api key]"),
        (
            "bot xoxb-1-2-abc user xoxp-9-8 app xoxa-2-zz",
            "bot [redacted slack token] user [redacted slack token] app [redacted slack token]",
        ),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws [redacted aws key]"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c done",
            "jwt [redacted jwt] done",
        ),
    ],
)
def test_customer_data_and_api_keys_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


# --- what stays --------------------------------------------------------------------------------

_DIGEST64 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
_DIGEST40 = "2763440a1b2c3d4e5f60718293a4b5c6d7e8f901"
_KEPT = [
    f"ledger head {_DIGEST64} seq 41",
    f"revision {_DIGEST64.upper()}",
    f"commit {_DIGEST40}",
    "started 2026-11-24T21:00:00-05:00, ended 2026-11-25T02:10:05.123+00:00",
    "held 27m 30s, frozen 1h32m, soak PT25M",
    "error rate 0.5% (+12.5%) over 99.95%",
    "<@U0REL1> in <#C0WARROOM> on U012AB3CD and C0123456789",
    "plan payments-tokenization-cutover change CHG-20418 run 42",
    "ts 1732500000.123456 and at 1700000000001 ms",
    "version 7 of 12/40 checkpoints, 3/5 passes",
    "window 21:00-23:30 -05:00",
]


@pytest.mark.parametrize("text", _KEPT)
def test_digests_timestamps_durations_percentages_and_ids_stay_whole(text: str) -> None:
    assert redact(text) == text


def test_an_invalid_iban_shaped_code_stays() -> None:
    # The mod-97 check fails: a code that only looks like an IBAN is left.
    assert redact("ref GB00WEST12345698765432") == "ref GB00WEST12345698765432"


# --- properties --------------------------------------------------------------------------------


def _iban(country: str, bban: str) -> str:
    """`country` + check digits + `bban`, with check digits that pass mod-97."""
    rearranged = bban + country + "00"
    number = int("".join(str(int(c, 36)) for c in rearranged))
    return f"{country}{98 - number % 97:02d}{bban}"


_alnum_upper = string.ascii_uppercase + string.digits


@st.composite
def ibans(draw: st.DrawFn) -> str:
    country = draw(st.text(alphabet=string.ascii_uppercase, min_size=2, max_size=2))
    bban = draw(st.text(alphabet=_alnum_upper, min_size=11, max_size=30))
    iban = _iban(country, bban)
    if draw(st.booleans()):
        return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))
    return iban


_local = st.text(alphabet=string.ascii_letters + string.digits + "._+-", min_size=1, max_size=20).filter(
    lambda s: s[0].isalnum()
)
_domain_label = st.text(alphabet=string.ascii_lowercase + string.digits, min_size=1, max_size=12)
emails = st.builds(
    lambda local, labels, tld: f"{local}@{'.'.join(labels)}.{tld}",
    _local,
    st.lists(_domain_label, min_size=1, max_size=3),
    st.text(alphabet=string.ascii_lowercase, min_size=2, max_size=6),
)
_d = st.integers(min_value=0, max_value=9).map(str)
phones = st.one_of(
    st.builds(
        lambda cc, a, b, c, sep: f"+{cc}{sep}{a}{sep}{b}{sep}{c}",
        st.integers(min_value=1, max_value=99),
        st.integers(min_value=200, max_value=999),
        st.integers(min_value=200, max_value=999),
        st.integers(min_value=1000, max_value=9999),
        st.sampled_from([" ", "-", "."]),
    ),
    st.builds(
        lambda a, b, c, style: style.format(a, b, c),
        st.integers(min_value=200, max_value=999),
        st.integers(min_value=200, max_value=999),
        st.integers(min_value=1000, max_value=9999),
        st.sampled_from(["({}) {}-{}", "{}-{}-{}", "{}.{}.{}"]),
    ),
)
ssns = st.builds(
    lambda a, g, s: f"{a:03d}-{g:02d}-{s:04d}",
    st.integers(min_value=1, max_value=665),
    st.integers(min_value=1, max_value=99),
    st.integers(min_value=1, max_value=9999),
)
_token_body = st.text(alphabet=string.ascii_letters + string.digits, min_size=12, max_size=40)
api_keys = st.one_of(
    st.builds(
        lambda p, b: p + b, st.sampled_from(["tok_live_", "sk_live_", "sk_test_", "rk_live_"]), _token_body
    ),
    st.builds(lambda p, b: p + b, st.sampled_from(["xoxb-", "xoxp-", "xoxa-"]), _token_body),
    st.builds(lambda b: "AKIA" + b, st.text(alphabet=_alnum_upper, min_size=16, max_size=16)),
    st.builds(
        lambda h, p, s: f"eyJ{h}.eyJ{p}.{s}",
        _token_body,
        _token_body,
        st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=10, max_size=43),
    ),
)


@st.composite
def cvv_pairs(draw: st.DrawFn) -> tuple[str, str, str]:
    """(as written, expiry, cvv): a card's expiry and security code written near each other."""
    month = draw(st.integers(min_value=1, max_value=12))
    expiry = f"{month:02d}/{draw(st.sampled_from(['27', '28', '2029', '31']))}"
    cvv = draw(st.text(alphabet=string.digits, min_size=3, max_size=4))
    shape = draw(
        st.sampled_from(
            ["exp {exp} cvv {cvv}", "{exp} CVV: {cvv}", "cvc {cvv} expiry {exp}", "expires {exp}, cvv2={cvv}"]
        )
    )
    return shape.format(exp=expiry, cvv=cvv), expiry, cvv


_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(list(" -=:'\"0123456789.@+/")),
    max_size=40,
)
_JOINT = st.sampled_from([" ", "\n", ": ", " (", ", ", " <", " *"])
_CLOSE = {" (": ")", " <": ">", " *": "*"}


def _embed(before: str, joint: str, secret: str, after: str) -> str:
    return f"{before}{joint}{secret}{_CLOSE.get(joint, ' ')}{after}"


@settings(max_examples=300, deadline=None)
@given(_TEXT, _JOINT, st.one_of(emails, phones, ibans(), ssns, api_keys), _TEXT)
def test_customer_data_or_an_api_key_inside_random_text_never_survives(
    before: str, joint: str, secret: str, after: str
) -> None:
    masked = redact(_embed(before, joint, secret, after))
    assert secret not in masked


@settings(max_examples=200, deadline=None)
@given(_TEXT, _JOINT, cvv_pairs(), _TEXT)
def test_a_cvv_and_expiry_pair_inside_random_text_never_survives(
    before: str, joint: str, pair: tuple[str, str, str], after: str
) -> None:
    written, expiry, cvv = pair
    text = _embed(before, joint, written, after)
    masked = redact(text)
    assert written not in masked
    # The random text around it may hold the same digits; the pair's own copies are gone.
    assert masked.count(expiry) < text.count(expiry)
    assert masked.count(cvv) < text.count(cvv)


_hex = st.sampled_from([64, 40]).flatmap(
    lambda n: st.text(alphabet="0123456789abcdef", min_size=n, max_size=n)
) | st.text(alphabet="0123456789ABCDEF", min_size=64, max_size=64)
# War-room words around a digest: random, but no `key=` pair that would rightly mask what follows.
_WORDS = st.lists(
    st.one_of(
        st.sampled_from([*_KEPT, "seq", "head", "revision", "->", "|", "(", ")", "12/27", "42", "+1"]),
        st.text(alphabet=string.digits + " .,-:%", max_size=12),
        emails,
        phones,
        api_keys,
    ),
    max_size=6,
).map(" ".join)


@settings(max_examples=300, deadline=None)
@given(_WORDS, _hex, _WORDS)
def test_a_hex_digest_inside_war_room_text_survives_whole(before: str, digest: str, after: str) -> None:
    masked = redact(f"{before} {digest} {after}")
    assert f" {digest} " in masked


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            _TEXT,
            emails,
            phones,
            ibans(),
            ssns,
            api_keys,
            cvv_pairs().map(lambda p: p[0]),
            _hex,
            st.sampled_from(_KEPT),
        ),
        max_size=8,
    ).map(" ".join)
)
def test_redaction_of_customer_data_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once
