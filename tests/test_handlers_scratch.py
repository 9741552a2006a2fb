from tests.handler_fixtures import *  # noqa
from tests.handler_fixtures import world, sqlite_uow  # noqa
from handlers import commands as c
from handlers.holds import release_hold
from handlers.runs import start, sign_off
from handlers.resequence import report_late, change_window
from handlers.delegates import change_delegate
from packets.packet import Packet

async def test_scratch(world):
    await world.open()
    print(await start(c.Start(run=world.run, user=ENG1), world.deps))
    print(await sign_off(c.SignOff(run=world.run, user=STRANGER, revision=world.revision), world.deps))
    print(await sign_off(c.SignOff(run=world.run, user=REL1, revision="b"*64), world.deps))
    print(await sign_off(c.SignOff(run=world.run, user=REL1, revision=world.revision), world.deps))
    print(await sign_off(c.SignOff(run=world.run, user=REL1, revision=world.revision), world.deps))
    print(await start(c.Start(run=world.run, user=ENG1), world.deps))
    print(await sign_off(c.SignOff(run=world.run, user=RISK1, revision=world.revision), world.deps))
    world.advance(1)
    print(await start(c.Start(run=world.run, user=ENG1), world.deps))
    print(await world.propose_late("canary", "21:40"))
    for r in await world.packet_rows(): print(r.version, r.state, r.supersedes)
    print(await world.outbox("packet_proposed_line"))
    print(await world.adopt())
    for r in await world.outbox(): print(r.kind, r.recipient, r.payload if r.kind=="delta_dm" else "")
    print(await change_window(c.ChangeWindow(run=world.run, user=ENG1, checkpoint="preflight", not_before=at("21:00"), not_after=at("21:10")), world.deps))
    rows = await world.packet_rows()
    pk = Packet.from_json(rows[-1].body)
    print(pk.holds)
    print(pk.checkpoint("preflight"))
    print(await change_delegate(c.ChangeDelegate(run=world.run, user=REL1, role="release-authority", to_user=REL2), world.deps))
    print(await release_hold(c.ReleaseHold(run=world.run, user=REL1, hold="preflight"), world.deps))
    print(await release_hold(c.ReleaseHold(run=world.run, user=REL2, hold="preflight"), world.deps))
    print(await release_hold(c.ReleaseHold(run=world.run, user=REL2, hold="preflight"), world.deps))
    for e in await world.entries(): print(e.seq, e.actor, e.kind, e.payload if e.kind=="refused" else "")
    assert 0
