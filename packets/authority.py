"""Who may act for which role right now, and who may release a hold.

Every role has a primary user and a list of approved delegates (the plan's `roles:`); exactly one
of them is *acting* at a time. The `Roster` is that state as a value: the plan's roles plus the
acting map the run has recorded (a role missing from the map is acted for by its primary). Only
the acting user may act for a role, so a delegate who is not acting has no more rights than a
stranger, and a primary who handed over has none until switched back.

A hold is released by the acting users of its `release_by` roles: any one of them (`mode: any`)
or each of them, a different person for each role (`mode: all`, the two-person rule). The engine
asks `release_role` and `is_released`; nothing else decides who may release.

Refusals are ordinary outcomes, not bugs. `Refused` is the project's one refusal type: this
module, the stage engine and the use cases raise it, and `handlers.flow` turns it into a
`refused` ledger entry. `Refused.reason` is written for the person who clicked, and names the
user, the role and who is acting instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from packets.plan import Role

ReleaseMode = Literal["any", "all"]


class Refused(Exception):
    """The action is refused and nothing changes; `reason` says why, for a person."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Roster:
    """The plan's roles and who is acting for each; a value, so a switch returns a new roster."""

    roles: Mapping[str, Role]
    acting: Mapping[str, str] = field(default_factory=dict)
    # Resolved once: every role to its acting user, in plan order.
    _acting_by_role: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        resolved: dict[str, str] = {}
        for name, role in self.roles.items():
            user = self.acting.get(name, role.primary)
            if user not in role.members:
                # Only switch() writes the acting map and it checks membership, so this is stored
                # state that no longer matches the plan: fail loudly rather than let a stranger act.
                raise ValueError(f"{user} is recorded as acting for {name} but is not an approved member")
            resolved[name] = user
        unknown = sorted(set(self.acting) - set(self.roles))
        if unknown:
            raise ValueError(f"acting map names roles the plan does not have: {', '.join(unknown)}")
        # Copies, so a caller mutating its own dicts later cannot change this value; the acting map
        # keeps only hand-overs, so "primary acting" has one spelling and equal rosters compare equal.
        object.__setattr__(self, "roles", dict(self.roles))
        handed_over = {r: u for r, u in resolved.items() if u != self.roles[r].primary}
        object.__setattr__(self, "acting", handed_over)
        object.__setattr__(self, "_acting_by_role", resolved)

    def acting_user(self, role: str) -> str:
        """The user acting for `role`; `Refused` if the plan has no such role."""
        try:
            return self._acting_by_role[role]
        except KeyError:
            raise Refused(f"there is no role named {role} in this plan") from None

    def may_act(self, user: str, role: str) -> bool:
        return self._acting_by_role.get(role) == user

    def roles_of(self, user: str) -> tuple[str, ...]:
        """Roles `user` acts for right now, in plan order."""
        return tuple(role for role, acting in self._acting_by_role.items() if acting == user)

    def acting_map(self) -> dict[str, str]:
        """Every role to its acting user (primaries included), in plan order."""
        return dict(self._acting_by_role)

    def switch(self, *, by_user: str, role: str, to_user: str, change_roles: Sequence[str]) -> Roster:
        """A new roster with `to_user` acting for `role`, or `Refused`.

        `change_roles` is `plan.authority.switchers_for(role)`: `by_user` must act for one of
        them. The target must be the role's primary or one of its approved delegates; nobody
        outside the approved mapping can be made to act, whoever asks.
        """
        if role not in self.roles:
            raise Refused(f"there is no role named {role} in this plan")
        if not change_roles:
            raise Refused("this plan names no role that may change delegates")
        if not any(self.may_act(by_user, r) for r in change_roles):
            raise Refused(f"{by_user} does not act for {who_acts(self, change_roles)}")
        members = self.roles[role].members
        if to_user not in members:
            approved = ", ".join(members)
            raise Refused(f"{to_user} is not an approved delegate for {role} (approved: {approved})")
        if self.acting_user(role) == to_user:
            raise Refused(f"{to_user} is already acting for {role}; nothing to change")
        return Roster(self.roles, {**self.acting, role: to_user})


class Acting(Protocol):
    """Who acts for which role right now: what the rules below ask; a `Roster` is one."""

    def acting_user(self, role: str) -> str: ...

    def may_act(self, user: str, role: str) -> bool: ...


def who_acts(roster: Acting, roles: Iterable[str], *, joiner: str = " or ") -> str:
    """Each role with its acting user, for a refusal: who the person should ask instead."""
    # "release-authority (acting: U0REL2) or security (acting: U0SEC1)"
    return joiner.join(f"{role} (acting: {roster.acting_user(role)})" for role in roles)


def acting_role(roster: Acting, user: str, roles: Iterable[str], doing: str) -> str:
    """The first of `roles` that `user` acts for now, or a `Refused` naming who does.

    The one check of "may this person do this as one of these roles": the engine asks it for
    every event a person causes, the use cases only for what has no event (rejecting a proposal).
    """
    role_list = list(roles)
    for role in role_list:
        if roster.may_act(user, role):
            return role
    raise Refused(f"{user} may not {doing}: that takes {who_acts(roster, role_list)}")


class ReleasableHold(Protocol):
    """What the release rule needs of a hold, whichever record carries it."""

    @property
    def id(self) -> str: ...
    @property
    def release_by(self) -> Sequence[str]: ...
    @property
    def mode(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ReleaseRule:
    """Who releases hold `hold`: the acting users of `release_by`, any one of them or all of them."""

    hold: str
    release_by: tuple[str, ...]
    mode: ReleaseMode = "any"

    @classmethod
    def of(cls, hold: ReleasableHold) -> ReleaseRule:
        mode: ReleaseMode = "all" if hold.mode == "all" else "any"
        return cls(hold=hold.id, release_by=tuple(hold.release_by), mode=mode)


# One release already recorded against a hold: (user, role they released as).
Given = tuple[str, str]


def release_role(rule: ReleaseRule, roster: Acting, *, user: str, already: Sequence[Given]) -> str:
    """The role `user` releases the open hold as, or `Refused`.

    The user must be acting, right now, for one of the release roles that has not released yet.
    Releases already recorded stay valid even if their user has since handed the role over: they
    were made by the acting user at the time.

    Two-person integrity in mode `all`: each release role needs a *different person*. One person
    acting for two of the release roles still counts once, so they may release as one of them and
    the hold then waits for someone else to act for the other role (a delegate switch). Without
    this, one person holding two hats could satisfy a two-person rule alone.
    """
    mine = [role for role in rule.release_by if roster.may_act(user, role)]
    if not mine:
        if rule.mode == "all":
            needed = who_acts(roster, rule.release_by, joiner=" and ") + ", a different person for each"
        else:
            needed = who_acts(roster, rule.release_by)
        raise Refused(f"{user} may not release hold {rule.hold}: it takes {needed}")
    earlier = next((role for who, role in already if who == user), None)
    if earlier is not None:
        raise Refused(
            f"{user} already released hold {rule.hold} as {earlier}; "
            f"it needs a different person for each of {', '.join(rule.release_by)}"
        )
    done = {role: who for who, role in already}
    open_roles = [role for role in mine if role not in done]
    if not open_roles:
        released = ", ".join(f"{role} by {done[role]}" for role in mine)
        raise Refused(f"hold {rule.hold} is already released for {released}")
    return open_roles[0]


def is_released(rule: ReleaseRule, releases: Sequence[Given]) -> bool:
    """Whether the recorded releases release the hold (distinct people per role in mode `all`)."""
    if not rule.release_by:
        return False
    by_role: dict[str, str] = {}
    for who, role in releases:
        if role in rule.release_by:
            by_role.setdefault(role, who)
    if rule.mode == "any":
        return bool(by_role)
    return set(by_role) == set(rule.release_by) and len(set(by_role.values())) == len(by_role)
