from __future__ import annotations
from datetime import timedelta
from tests.bot_harness import BRIDGE, BotHarness, bot_factory, bot_harness, slack  # noqa: F401

async def test_explore(bot_harness: BotHarness) -> None:
    h = bot_harness
    async def c(text, user="U0ENG1", channel=BRIDGE):
        r = await h.command(text, user=user, channel=channel, wait=True)
        print(f"[{h.clock.now():%H:%M}] {user} {text!r}: {r.status} ack={r.ack!r} -> {r.text[:300]!r}")
        return r
    await c("help")
    await c("status")
    await c("open bridge")
    await c("status")
    await c("packet")
    await c("signoff", user="U0REL1")
    await h.drain()
    print("signoff buttons", h.buttons(BRIDGE, "sign_off"))
    v = h.buttons(BRIDGE, "sign_off")
    r = await h.click("sign_off", v[-1], user="U0RISK1"); print("click", r.text)
    h.clock.advance(timedelta(minutes=5))
    await c("start")
    await c("late drain-queue +25m pumps slow")
    await c("reject", user="U0REL1")
    await c("late drain-queue +30m pumps slower")
    await c("adopt", user="U0REL1")
    await c("ack", user="U0SEC1")
    await c("window schema-check 21:30-22:00", user="U0DBA1")
    await c("done drain-queue")
    await c("done schema-check", user="U0DBA1")
    await c("hold waiting for DBA", user="U0DBA1")
    await c("release go-decision", user="U0REL1")
    await c("delegate release-authority @U0REL2", user="U0REL1")
    await c("pause need a breather", user="U0ENG1")
    await c("resume", user="U0ENG1")
    await c("freeze vendor incident", user="U0ENG1")
    await c("unfreeze", user="U0ENG1")
    await c("rollback all error budget", user="U0ENG1")
    await c("evidence")
    await c("ledger 5")
    await c("late", user="U0ENG1", )
    rep = await h.drain(); print(rep)
    for call in h.slack.calls(): print(call.method, call.body.get("channel"), call.ok, call.body.get("text","")[:100])
    assert 0
