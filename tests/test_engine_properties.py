"""The engine's invariants over random plans and random event sequences.

Each example builds a plan (plain, traffic, gated and hold checkpoints, some protected, random
gate actions and gate policy, and in about half of them a hyper-care period), then plays a random
sequence of moves against it: sign-offs, starts, ticks, gate results (hyper-care's included),
done, holds and releases by the right and the wrong people, packet adoptions (some with conflict
holds), pauses, freezes, rollbacks, control-plane answers, delegate switches. Moves that the
engine refuses are fine; what must never happen is checked after every step that went through.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packets.authority import Refused, Roster
from packets.engine.effects import CloseHold, Ledger, LedgerKind, ShiftTraffic
from packets.engine.events import (
    Abort,
    ActuationFailed,
    ActuationSucceeded,
    CheckpointDone,
    Event,
    Freeze,
    GateResults,
    HoldOpened,
    HoldReleased,
    PacketAdopted,
    Pause,
    Resume,
    RollbackRequested,
    RollbackScope,
    SignoffGiven,
    Start,
    Tick,
    Unfreeze,
)
from packets.engine.progress import TERMINAL, CheckpointState, HoldState, RunProgress, RunState
from packets.engine.table import Transition, new_run, row_for, step
from packets.engine.watch import WATCH, watched
from packets.gates import GateResult, Outcome, Verdict, last_failed, remember, streak_passes, verdict
from packets.packet import HoldSource, Packet
from packets.plan import ACTIONS, HYPERCARE_CHECKPOINT, Plan
from packets.redact import redact
from tests.engine_fixtures import GATES, ROLES, T0, make_packet, make_plan

SECRETS = [
    "token=abc123def",
    "Bearer abcdefghijklmnop",
    "xoxb-1234-5678-abcdefgh",
    "card 4242 4242 4242 4242",
    "AKIAABCDEFGHIJKLMNOP",
    "password: hunter2",
    "api_key='k-9'",
]
TEXT = st.one_of(st.sampled_from(["looks odd", "", "db lag", "control plane 503"]), st.sampled_from(SECRETS))
MEMBERS: list[str] = sorted(
    {u for role in ROLES.values() for u in (role["primary"], *role.get("delegates", []))}
)
USERS = [*MEMBERS, "U0NOBODY"]


@st.composite
def plans(draw: st.DrawFn, hypercare: bool | None = None) -> Plan:
    """A random plan; with hyper-care when `hypercare` is True, without when False, else either."""
    count = draw(st.integers(1, 5))
    cohorts = ["merchant-a", "merchant-token"]
    reached = dict.fromkeys(cohorts, 0)
    checkpoints: list[dict[str, Any]] = []
    for i in range(count):
        # Ids and cohorts that name secrets by accident ("-token") test redaction of ids as well.
        cid = f"c{i}{draw(st.sampled_from(['', '-token', '-api-key']))}"
        kind = draw(st.sampled_from(["plain", "traffic", "traffic", "gated", "hold", "hold-all"]))
        cp: dict[str, Any] = {"id": cid, "title": f"Step {i}", "owner": draw(st.sampled_from(sorted(ROLES)))}
        if checkpoints:
            earlier = [c["id"] for c in checkpoints]
            extra = draw(st.lists(st.sampled_from(earlier), max_size=2, unique=True))
            cp["after"] = list(dict.fromkeys([earlier[-1], *extra])) if draw(st.booleans()) else extra
        cp["protected"] = draw(st.booleans()) and draw(st.booleans())
        gates = draw(st.lists(st.sampled_from(sorted(GATES)), max_size=3, unique=True))
        if kind == "traffic":
            cohort = draw(st.sampled_from(cohorts))
            reached[cohort] = min(100, reached[cohort] + draw(st.sampled_from([1, 5, 25, 50])))
            cp["traffic"] = {"cohort": cohort, "percent": reached[cohort]}
            cp["soak"] = draw(st.sampled_from(["0m", "5m", "20m"]))
            cp["gates"] = gates
        elif kind == "gated":
            cp["gates"] = gates or ["latency"]
        elif kind.startswith("hold"):
            roles = draw(st.lists(st.sampled_from(sorted(ROLES)), min_size=1, max_size=2, unique=True))
            cp["hold"] = {
                "release_by": roles,
                "mode": "all" if kind == "hold-all" else "any",
                "reason": draw(TEXT) or None,
            }
        checkpoints.append(cp)
    matrix = {name: {**spec, "on_fail": draw(st.sampled_from(ACTIONS))} for name, spec in GATES.items()}
    policy = {
        "consecutive_passes": draw(st.integers(1, 3)),
        "no_data": draw(st.sampled_from(["fail", "pass", "ignore"])),
    }
    care = None
    if hypercare if hypercare is not None else draw(st.booleans()):
        # A widening cadence over the next hour or two; its gates, or (empty) every gate.
        cadence = draw(
            st.sampled_from(
                [
                    [{"every": "5m", "until": "30m"}],
                    [{"every": "5m", "until": "30m"}, {"every": "15m", "until": "1h"}],
                    [
                        {"every": "1m", "until": "10m"},
                        {"every": "10m", "until": "1h"},
                        {"every": "1h", "until": "2h"},
                    ],
                ]
            )
        )
        care = {
            "gates": draw(st.lists(st.sampled_from(sorted(GATES)), max_size=3, unique=True)),
            "cadence": cadence,
        }
    return make_plan(checkpoints, gates=matrix, policy=policy, hypercare=care)


# Each move is an event kind (bar `switch`, a delegate hand-over) and how often it is tried when
# the run's state has a row for it. One move in eight ignores the table, to exercise refusals.
MOVES: dict[str, tuple[type[Any] | None, int]] = {
    "signoff": (SignoffGiven, 3),
    "start": (Start, 3),
    "tick": (Tick, 2),
    "gates": (GateResults, 6),
    "done": (CheckpointDone, 3),
    "hold": (HoldOpened, 1),
    "release": (HoldReleased, 5),
    "adopt": (PacketAdopted, 2),
    "pause": (Pause, 1),
    "resume": (Resume, 2),
    "freeze": (Freeze, 1),
    "unfreeze": (Unfreeze, 2),
    "rollback": (RollbackRequested, 2),
    "ok": (ActuationSucceeded, 5),
    "refused": (ActuationFailed, 2),
    "abort": (Abort, 1),
    "switch": (None, 1),
}


def choose(progress: RunProgress, pick: int) -> str:
    names = list(MOVES)
    if pick % 8 == 0:
        return names[(pick >> 3) % len(names)]
    pointless = set()
    if not progress.open_holds():
        pointless.add("release")
    if not progress.outstanding():
        pointless |= {"ok", "refused"}
    weighted = [
        name
        for name, (kind, weight) in MOVES.items()
        if name not in pointless and (kind is None or row_for(progress.state, kind) is not None)
        for _ in range(weight)
    ]
    return weighted[(pick >> 3) % len(weighted)]


@dataclass
class Game:
    plan: Plan
    packet: Packet
    roster: Roster
    progress: RunProgress
    now: datetime = T0
    rolled_back: bool = False
    # The conflicts of the packet the next PacketAdopted adopts.
    conflicts: dict[str, str] = field(default_factory=dict)

    def acting(self, roles: list[str] | tuple[str, ...], seed: int) -> str:
        """Mostly someone entitled; sometimes anyone at all."""
        if roles and seed % 4:
            return self.roster.acting_user(roles[seed % len(roles)])
        return USERS[seed % len(USERS)]

    def in_flight(self) -> str | None:
        return self.progress.in_flight(c.id for c in self.packet.timeline)


def event_for(game: Game, move: str, seed: int, text: str) -> Event | None:
    plan, progress, authority = game.plan, game.progress, game.plan.authority
    if move == "tick":
        # Longer strides in hyper-care, which lasts hours: some runs see it end.
        game.now += timedelta(minutes=seed % (60 if progress.in_hypercare else 25))
    at = game.now
    flight = game.in_flight()
    if move == "signoff":
        role = authority.signoff[seed % len(authority.signoff)]
        revision = plan.revision if seed % 5 else "f" * 64
        return SignoffGiven(at=at, user=game.acting([role], seed), role=role, revision=revision)
    if move == "start":
        return Start(at=at, user=game.acting(authority.start_and_rollback, seed))
    if move == "tick":
        return Tick(at=at)
    if move == "gates":
        outcomes = [*[Outcome.PASS] * 10, Outcome.FAIL, Outcome.NO_DATA]
        if flight is None and (progress.in_hypercare or seed % 7 == 0) and plan.hypercare is not None:
            # Hyper-care's checks (now and then sent during the stages too, where they count for nothing).
            checkpoint, gates = HYPERCARE_CHECKPOINT, list(plan.hypercare_gates())
        else:
            checkpoint = flight or plan.checkpoints[seed % len(plan.checkpoints)].id
            gates = plan.checkpoint(checkpoint).gates or ["latency"]
        results = tuple(
            GateResult(gate=g, outcome=outcomes[(seed >> (4 * i)) % len(outcomes)], value=0.5, reason=text)
            for i, g in enumerate(gates)
        )
        return GateResults(at=at, checkpoint=checkpoint, results=results)
    if move == "done":
        checkpoint = flight or plan.checkpoints[0].id
        return CheckpointDone(
            at=at, checkpoint=checkpoint, user=game.acting([plan.checkpoint(checkpoint).owner], seed)
        )
    if move == "hold":
        return HoldOpened(at=at, user=game.acting(sorted(plan.roles), seed), reason=text)
    if move == "release":
        holds = progress.open_holds()
        if not holds:
            return None
        hold = holds[seed % len(holds)]
        return HoldReleased(at=at, hold_id=hold.id, user=game.acting(hold.release_by, seed))
    if move == "adopt":
        # Half the time the conflict lands on the checkpoint in flight, the subtle case.
        undone = [c for c, p in progress.checkpoints.items() if p.state is not CheckpointState.DONE]
        target = (
            flight if flight is not None and seed % 2 else (undone[seed % len(undone)] if undone else None)
        )
        # A packet is built from facts whose text was redacted on the way in (bot.intents.dispatch);
        # events reach the engine raw, and the engine redacts them.
        fitted = f"no longer fits its window {redact(text)}"
        conflicts = {target: fitted} if target is not None and seed % 3 else {}
        game.conflicts = conflicts
        version = progress.packet_version + 1
        return PacketAdopted(at=at, version=version, user=game.acting(authority.adopt_packets, seed))
    if move in ("pause", "resume", "freeze", "unfreeze"):
        user = game.acting(authority.pausers, seed)
        stops: dict[str, Event] = {
            "pause": Pause(at=at, user=user, reason=text),
            "resume": Resume(at=at, user=user),
            "freeze": Freeze(at=at, user=user, reason=text),
            "unfreeze": Unfreeze(at=at, user=user),
        }
        return stops[move]
    if move == "rollback":
        scope: RollbackScope = "all" if seed % 3 == 0 else "cohort"
        return RollbackRequested(
            at=at, user=game.acting(authority.start_and_rollback, seed), scope=scope, reason=text
        )
    if move in ("ok", "refused"):
        waiting = sorted(progress.outstanding().items())
        if not waiting:
            return None
        cohort, change = waiting[seed % len(waiting)]
        if move == "ok":
            return ActuationSucceeded(
                at=at, checkpoint=change.checkpoint, cohort=cohort, percent=change.percent
            )
        return ActuationFailed(
            at=at, checkpoint=change.checkpoint, cohort=cohort, percent=change.percent, detail=text
        )
    if move == "abort":
        if seed % 8:
            return None  # rare: an abort ends the example
        return Abort(at=at, user=game.acting(authority.start_and_rollback, seed), reason=text)
    if move == "switch":
        role = sorted(plan.roles)[seed % len(plan.roles)]
        members = plan.roles[role].members
        with contextlib.suppress(Refused):
            game.roster = game.roster.switch(
                by_user=game.roster.acting_user("release-authority"),
                role=role,
                to_user=members[seed % len(members)],
                change_roles=authority.switchers_for(role),
            )
        return None
    raise AssertionError(move)


def packet_for(game: Game, event: Event) -> Packet:
    if isinstance(event, PacketAdopted):
        return make_packet(game.plan, version=event.version, conflicts=game.conflicts)
    return game.packet


# -- what must hold after every step ------------------------------------------------------------


def strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from strings(getattr(value, f.name))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from strings(item)


def names_who_or_which_results(cause: dict[str, Any]) -> bool:
    if cause.get("user") in MEMBERS:
        return True
    if any({"gate", "value", "outcome", "at"} <= set(g) for g in cause.get("gates", [])):
        return True
    if any(r in MEMBERS for r in cause.get("released_by", [])):
        return True
    return any(dep["gates"] or any(u in MEMBERS for u in dep["done_by"]) for dep in cause.get("after", []))


def percent_of(plan: Plan, checkpoint: str) -> tuple[str, float] | None:
    traffic = plan.checkpoint(checkpoint).traffic
    return (traffic.cohort, traffic.percent) if traffic is not None else None


def check(game: Game, before: RunProgress, event: Event, t: Transition, packet: Packet) -> None:
    after, plan = t.progress, game.plan
    order = [c.id for c in game.packet.timeline]
    policy = plan.gate_policy
    shifts = t.of(ShiftTraffic)
    ledger = t.of(Ledger)

    # No effect carries an event's free text unredacted: the engine redacts events on the way in.
    # (Plan text is the author's; it is redacted on the way out, with the ledger and Slack.)
    authored = plan.canonical_json() + json.dumps(packet.as_json())
    typed = [secret for secret in SECRETS if secret in " ".join(strings(event))]
    for effect in t.effects:
        for text in strings(effect):
            leaked = [secret for secret in typed if secret in text and secret not in authored]
            assert not leaked, (effect, text)

    for shift in shifts:
        # Every traffic change has a ledger entry naming who or which gate results caused it.
        entries = [
            e
            for e in ledger
            if e.payload.get("key") == shift.key
            and e.kind in (LedgerKind.TRAFFIC_SHIFTED, LedgerKind.ROLLBACK_RETRIED)
        ]
        assert entries, shift
        assert names_who_or_which_results(entries[0].payload["cause"]), entries[0].payload
        if shift.percent <= shift.previous_percent:
            continue
        # Traffic never rises during hyper-care: every checkpoint is done, nothing is left to advance.
        assert not before.in_hypercare and not after.in_hypercare, shift
        # Traffic never rises while a hold is open, while paused or frozen ...
        assert after.state is RunState.RUNNING and not after.open_holds()
        assert after.paused is None and after.frozen is None
        # ... or while a gate of the current checkpoint last failed.
        assert shift.checkpoint is not None
        evidence = dict(before.checkpoints[shift.checkpoint].evidence)
        if isinstance(event, GateResults) and event.checkpoint == shift.checkpoint:
            for r in event.results:
                evidence[r.gate] = remember(
                    evidence.get(r.gate, ()), r, keep=policy.consecutive_passes, no_data=policy.no_data
                )
        assert not any(last_failed(w, no_data=policy.no_data) for w in evidence.values())
        # ... and never without a fresh passing reading of each of its gates (check before moving).
        for gate in plan.checkpoint(shift.checkpoint).gates:
            # Each window's newest reading is its last (several can share a time on a still clock).
            windows = (evidence.get(gate, ()), before.watch_evidence.get(gate, ()))
            readings = [w[-1] for w in windows if w]
            fresh = [r for r in readings if event.at - (r.at or event.at) <= policy.interval]
            latest = max(fresh, key=lambda r: r.at or event.at, default=None)
            assert latest is not None, (gate, readings)
            assert verdict(latest.outcome, policy.no_data) is not Verdict.FAIL, (gate, readings)
        # ... and only once its dependencies and every earlier traffic checkpoint of its cohort
        # completed on passing gates (branches beside it run side by side).
        spec = plan.checkpoint(shift.checkpoint)
        for earlier in order[: order.index(shift.checkpoint)]:
            found = percent_of(plan, earlier)
            if earlier not in spec.after and (found is None or found[0] != shift.cohort):
                continue
            progress = after.checkpoints[earlier]
            assert progress.state is CheckpointState.DONE
            for gate in plan.checkpoint(earlier).gates:
                assert streak_passes(
                    progress.evidence.get(gate, ()), needed=policy.consecutive_passes, no_data=policy.no_data
                )

    # Traffic never exceeds the percent of the furthest checkpoint done or now proving itself.
    for cohort, percent in after.traffic.items():
        reached = [
            p
            for c, progress in after.checkpoints.items()
            if progress.state in (CheckpointState.DONE, CheckpointState.SOAKING)
            and (found := percent_of(plan, c)) is not None
            and found[0] == cohort
            for p in [found[1]]
        ]
        assert percent <= max([0.0, *reached]), (cohort, percent, reached)
        # A change of the commanded percent without a ShiftTraffic is a refused shift, on record.
        if percent != before.traffic.get(cohort) and not any(s.cohort == cohort for s in shifts):
            assert any(
                e.kind == LedgerKind.ACTUATION_FAILED and e.payload["cohort"] == cohort for e in ledger
            )

    # Every hold release is on record with who released it, as which role.
    for close in t.of(CloseHold):
        hold = after.holds[close.hold_id]
        if close.withdrawn:
            assert hold.state is HoldState.WITHDRAWN
            continue
        released = [
            e for e in ledger if e.kind == LedgerKind.HOLD_RELEASED and e.payload["hold"] == close.hold_id
        ]
        assert released and released[0].actor in MEMBERS
        for entry in released[0].payload["releases"]:
            assert entry["user"] in MEMBERS and entry["role"] in hold.release_by and "acting_for" in entry

    # A checkpoint with a conflict hold in the packet never runs before a person released one.
    running = (CheckpointState.ACTIVE, CheckpointState.SOAKING, CheckpointState.DONE)
    for checkpoint, progress in after.checkpoints.items():
        started = progress.state in running and before.checkpoints[checkpoint].state not in running
        if started and any(
            h.checkpoint == checkpoint and h.source is HoldSource.CONFLICT for h in packet.holds
        ):
            assert any(
                h.checkpoint == checkpoint
                and h.source is HoldSource.CONFLICT
                and h.state is HoldState.RELEASED
                for h in after.holds.values()
            ), checkpoint

    # After a global rollback traffic is 0 everywhere and nothing raises it again.
    if after.state in (RunState.ROLLING_BACK, RunState.ROLLED_BACK):
        game.rolled_back = True
    if game.rolled_back:
        assert all(p == 0 for p in after.traffic.values()), after.traffic
        assert all(s.percent == 0 for s in shifts)

    # Hyper-care begins only once every checkpoint is done, and only for a plan that declares it.
    if after.in_hypercare:
        assert plan.hypercare is not None
        assert all(p.state is CheckpointState.DONE for p in after.checkpoints.values())
        if not before.in_hypercare:
            assert after.hypercare_since == event.at and after.state is RunState.HYPERCARE
    # With hyper-care, the run completes only when a tick comes after its last cadence step.
    if after.state is RunState.COMPLETED and before.state is not RunState.COMPLETED:
        if plan.hypercare is None:
            assert after.hypercare_since is None
        else:
            assert before.state is RunState.HYPERCARE and isinstance(event, Tick)
            assert after.hypercare_since is not None
            assert event.at >= after.hypercare_since + plan.hypercare.length
    # A failing hyper-care gate never leaves the run quietly in hyper-care: it takes its action.
    if (
        before.state is RunState.HYPERCARE
        and isinstance(event, GateResults)
        and event.checkpoint == HYPERCARE_CHECKPOINT
        and any(
            r.gate in plan.hypercare_gates() and verdict(r.outcome, policy.no_data) is Verdict.FAIL
            for r in event.results
        )
    ):
        assert after.state is not RunState.HYPERCARE, after.state
        assert any(e.kind == LedgerKind.GATE_FAILED for e in ledger)

    # The store's JSON column gives back exactly this progress.
    assert RunProgress.from_json(json.loads(json.dumps(after.as_json()))) == after


def play(game: Game, moves: list[tuple[int, int, str]]) -> None:
    """Random moves against the run; every step that goes through is checked."""
    plan = game.plan
    after_the_end = 0
    for pick, seed, text in moves:
        after_the_end += game.progress.state in TERMINAL
        if after_the_end > 3:
            break  # an ended run only takes ticks; a few of them were enough
        event = event_for(game, choose(game.progress, pick), seed, text)
        if event is None:
            continue
        packet = packet_for(game, event)
        before = game.progress
        try:
            transition = step(before, event, plan=plan, packet=packet, roster=game.roster)
        except Refused:
            continue  # refused or illegal: nothing to save, nothing changed
        check(game, before, event, transition, packet)
        game.progress = transition.progress
        game.packet = packet


def signed(plan: Plan, packet: Packet, roster: Roster) -> RunProgress:
    progress = new_run(run_id="run-1", plan=plan, packet=packet, at=T0)
    for role in plan.authority.signoff:
        progress = step(
            progress,
            SignoffGiven(at=T0, user=roster.acting_user(role), role=role, revision=plan.revision),
            plan=plan,
            packet=packet,
            roster=roster,
        ).progress
    return progress


def cooperate(
    plan: Plan, packet: Packet, roster: Roster, progress: RunProgress, *, until: RunState
) -> tuple[RunProgress, datetime]:
    """Right people, passing gates, a working control plane, seven minutes a move, until `until`."""
    now = T0
    progress = step(progress, Start(at=now, user="U0REL1"), plan=plan, packet=packet, roster=roster).progress
    # Hyper-care lasts up to two hours here: twenty moves more.
    for _ in range(20 * len(plan.checkpoints) + 10 + 20):
        if progress.state is until or progress.state in TERMINAL:
            break
        now += timedelta(minutes=7)
        event = cooperative_move(plan, packet, roster, progress, now)
        progress = step(progress, event, plan=plan, packet=packet, roster=roster).progress
    return progress, now


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=plans(),
    prelude=st.sampled_from([True, True, True, True, False]),
    moves=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 2**20), TEXT), min_size=10, max_size=80),
)
def test_random_runs_keep_every_invariant(
    plan: Plan, prelude: bool, moves: list[tuple[int, int, str]]
) -> None:
    packet = make_packet(plan)
    roster = Roster(plan.roles)
    # Most of what matters happens after the start; get there in most examples.
    progress = (
        signed(plan, packet, roster) if prelude else new_run(run_id="run-1", plan=plan, packet=packet, at=T0)
    )
    play(Game(plan=plan, packet=packet, roster=roster, progress=progress), moves)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    plan=plans(hypercare=True),
    moves=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 2**20), TEXT), min_size=10, max_size=60),
)
def test_random_moves_during_hyper_care_keep_every_invariant(
    plan: Plan, moves: list[tuple[int, int, str]]
) -> None:
    """A cooperative war room brings the run to hyper-care; then anything may happen."""
    packet = make_packet(plan)
    roster = Roster(plan.roles)
    progress, now = cooperate(plan, packet, roster, signed(plan, packet, roster), until=RunState.HYPERCARE)
    assert progress.state is RunState.HYPERCARE
    play(Game(plan=plan, packet=packet, roster=roster, progress=progress, now=now), moves)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plan=plans())
def test_a_cooperative_war_room_always_ends_completed_or_rolled_back(plan: Plan) -> None:
    """Right people, passing gates, a working control plane: every run reaches its end,
    through hyper-care when the plan declares it."""
    packet = make_packet(plan)
    roster = Roster(plan.roles)
    progress, _ = cooperate(plan, packet, roster, signed(plan, packet, roster), until=RunState.COMPLETED)
    assert progress.state is RunState.COMPLETED
    assert all(p.state is CheckpointState.DONE for p in progress.checkpoints.values())
    assert not progress.open_holds()
    assert (progress.hypercare_since is not None) is (plan.hypercare is not None)


def cooperative_move(
    plan: Plan, packet: Packet, roster: Roster, progress: RunProgress, now: datetime
) -> Event:
    waiting = sorted(progress.outstanding().items())
    if waiting:
        cohort, change = waiting[0]
        return ActuationSucceeded(at=now, checkpoint=change.checkpoint, cohort=cohort, percent=change.percent)
    holds = progress.open_holds()
    if holds:
        hold = holds[0]
        done = {r.role for r in hold.releases}
        role = next(r for r in hold.release_by if r not in done)
        # Every role has a different primary here, so the two-person rule never stands in the way.
        return HoldReleased(at=now, hold_id=hold.id, user=roster.acting_user(role))
    if progress.state is RunState.HYPERCARE and (now.minute // 7) % 2:
        # Hyper-care: passing checks now and then, ticks otherwise (the last one completes the run).
        gates = plan.hypercare_gates()
        passing = tuple(GateResult(gate=g, outcome=Outcome.PASS, value=1.0) for g in gates)
        return GateResults(at=now, checkpoint=HYPERCARE_CHECKPOINT, results=passing)
    flight = progress.in_flight(c.id for c in packet.timeline)
    if flight is not None and progress.checkpoints[flight].state in (
        CheckpointState.READY,
        CheckpointState.ACTIVE,
        CheckpointState.SOAKING,
    ):
        spec = plan.checkpoint(flight)
        watching = watched(plan, progress)
        if spec.gates:
            # Its own gates and the watched ones, as the scheduler measures them.
            gates = dict.fromkeys((*spec.gates, *watching))
            results = tuple(GateResult(gate=g, outcome=Outcome.PASS, value=1.0) for g in gates)
            return GateResults(at=now, checkpoint=flight, results=results)
        if watching and progress.checkpoints[flight].state is CheckpointState.READY:
            results = tuple(GateResult(gate=g, outcome=Outcome.PASS, value=1.0) for g in watching)
            return GateResults(at=now, checkpoint=WATCH, results=results)
        soak_until = progress.checkpoints[flight].soak_until
        if soak_until is None or now >= soak_until:
            return CheckpointDone(
                at=now, checkpoint=flight, user=roster.acting_user(packet.checkpoint(flight).owner_role)
            )
    return Tick(at=now)
