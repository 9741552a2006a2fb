from __future__ import annotations

from datetime import UTC, datetime

import pytest

from packets.authority import Refused, ReleaseRule, Roster, is_released, release_role
from packets.engine.progress import HoldRecord
from packets.packet import HoldSource
from packets.plan import Authority, Role

ROLES = {
    "release-authority": Role(primary="U0REL1", delegates=["U0REL2"]),
    "release-eng": Role(primary="U0ENG1", delegates=["U0ENG2"]),
    "payments-risk": Role(primary="U0RISK1"),
    "security": Role(primary="U0SEC1", delegates=["U0SEC2"]),
}
CHANGE_ROLES = ["release-authority"]


def roster(**acting: str) -> Roster:
    return Roster(ROLES, {role.replace("_", "-"): user for role, user in acting.items()})


def refusal(excinfo: pytest.ExceptionInfo[Refused]) -> str:
    return excinfo.value.reason


# Roster


def test_a_role_without_an_acting_entry_is_acted_for_by_its_primary() -> None:
    assert roster().acting_user("release-eng") == "U0ENG1"


def test_only_the_acting_user_may_act_for_a_role() -> None:
    handed_over = roster(release_eng="U0ENG2")
    assert handed_over.may_act("U0ENG2", "release-eng")
    assert not handed_over.may_act("U0ENG1", "release-eng")
    assert not roster().may_act("U0ENG2", "release-eng")


def test_nobody_may_act_for_a_role_the_plan_does_not_have() -> None:
    assert not roster().may_act("U0ENG1", "dba")


def test_roles_of_lists_the_roles_a_user_acts_for_in_plan_order() -> None:
    both = Roster(
        {"security": Role(primary="U0X"), "release-eng": Role(primary="U0Y", delegates=["U0X"])},
        {"release-eng": "U0X"},
    )
    assert both.roles_of("U0X") == ("security", "release-eng")
    assert both.roles_of("U0Y") == ()


def test_the_acting_map_names_every_role_with_primaries_filled_in() -> None:
    assert roster(security="U0SEC2").acting_map() == {
        "release-authority": "U0REL1",
        "release-eng": "U0ENG1",
        "payments-risk": "U0RISK1",
        "security": "U0SEC2",
    }


def test_a_recorded_acting_user_outside_the_approved_mapping_is_rejected_on_load() -> None:
    with pytest.raises(ValueError, match="U0STRANGER"):
        Roster(ROLES, {"release-eng": "U0STRANGER"})


def test_an_acting_entry_for_an_unknown_role_is_rejected_on_load() -> None:
    with pytest.raises(ValueError, match="dba"):
        Roster(ROLES, {"dba": "U0DBA1"})


def test_a_roster_keeps_its_own_copy_of_the_acting_map() -> None:
    acting = {"release-eng": "U0ENG2"}
    value = Roster(ROLES, acting)
    acting["release-eng"] = "U0ENG1"
    assert value.acting_user("release-eng") == "U0ENG2"


def test_naming_the_primary_as_acting_is_the_same_roster_as_naming_nobody() -> None:
    assert Roster(ROLES, {"release-eng": "U0ENG1"}) == Roster(ROLES, {})


# Switching delegates


def test_the_release_authority_can_switch_a_role_to_an_approved_delegate() -> None:
    before = roster()
    after = before.switch(by_user="U0REL1", role="release-eng", to_user="U0ENG2", change_roles=CHANGE_ROLES)
    assert after.acting_user("release-eng") == "U0ENG2"
    assert before.acting_user("release-eng") == "U0ENG1"


def test_a_switch_back_to_the_primary_is_allowed() -> None:
    handed_over = roster(release_eng="U0ENG2")
    back = handed_over.switch(
        by_user="U0REL1", role="release-eng", to_user="U0ENG1", change_roles=CHANGE_ROLES
    )
    assert back == roster()


def test_a_switch_to_someone_outside_the_approved_delegates_is_refused() -> None:
    with pytest.raises(Refused) as excinfo:
        roster().switch(by_user="U0REL1", role="release-eng", to_user="U0EVE", change_roles=CHANGE_ROLES)
    assert refusal(excinfo) == "U0EVE is not an approved delegate for release-eng (approved: U0ENG1, U0ENG2)"


def test_a_switch_by_someone_not_acting_for_a_change_role_is_refused_with_who_is_acting() -> None:
    with pytest.raises(Refused) as excinfo:
        roster(release_authority="U0REL2").switch(
            by_user="U0ENG1", role="release-eng", to_user="U0ENG2", change_roles=CHANGE_ROLES
        )
    assert refusal(excinfo) == "U0ENG1 does not act for release-authority (acting: U0REL2)"


def test_a_primary_who_handed_over_can_no_longer_switch_delegates() -> None:
    with pytest.raises(Refused, match="U0REL1 does not act for release-authority"):
        roster(release_authority="U0REL2").switch(
            by_user="U0REL1", role="security", to_user="U0SEC2", change_roles=CHANGE_ROLES
        )


def test_a_switch_of_an_unknown_role_is_refused() -> None:
    with pytest.raises(Refused, match="no role named dba"):
        roster().switch(by_user="U0REL1", role="dba", to_user="U0DBA1", change_roles=CHANGE_ROLES)


def test_a_switch_to_the_user_already_acting_is_refused_as_a_no_op() -> None:
    with pytest.raises(Refused) as excinfo:
        roster().switch(by_user="U0REL1", role="release-eng", to_user="U0ENG1", change_roles=CHANGE_ROLES)
    assert refusal(excinfo) == "U0ENG1 is already acting for release-eng; nothing to change"


def test_a_plan_without_change_roles_lets_nobody_switch() -> None:
    with pytest.raises(Refused, match="names no role"):
        roster().switch(by_user="U0REL1", role="release-eng", to_user="U0ENG2", change_roles=[])


def test_any_of_several_change_roles_may_switch() -> None:
    after = roster().switch(
        by_user="U0SEC1", role="release-eng", to_user="U0ENG2", change_roles=["release-authority", "security"]
    )
    assert after.acting_user("release-eng") == "U0ENG2"


def test_a_refusal_over_several_change_roles_names_each_with_its_acting_user() -> None:
    with pytest.raises(Refused) as excinfo:
        roster().switch(
            by_user="U0ENG1",
            role="release-eng",
            to_user="U0ENG2",
            change_roles=["release-authority", "security"],
        )
    assert refusal(excinfo) == (
        "U0ENG1 does not act for release-authority (acting: U0REL1) or security (acting: U0SEC1)"
    )


# Hold releases: the rule the engine runs (packets.engine holds), with the wording people see

ANY = ReleaseRule(hold="go/plan/1", release_by=("release-authority",), mode="any")
ALL = ReleaseRule(hold="retire/plan/2", release_by=("release-authority", "payments-risk"), mode="all")


def test_the_acting_user_of_a_release_role_releases_as_that_role() -> None:
    assert release_role(ANY, roster(), user="U0REL1", already=[]) == "release-authority"


def test_a_delegate_who_is_not_acting_cannot_release() -> None:
    with pytest.raises(Refused) as excinfo:
        release_role(ANY, roster(), user="U0REL2", already=[])
    assert (
        refusal(excinfo)
        == "U0REL2 may not release hold go/plan/1: it takes release-authority (acting: U0REL1)"
    )


def test_a_refusal_in_mode_all_names_every_role_and_asks_for_a_different_person_each() -> None:
    with pytest.raises(Refused) as excinfo:
        release_role(ALL, roster(), user="U0ENG1", already=[])
    assert refusal(excinfo) == (
        "U0ENG1 may not release hold retire/plan/2: it takes release-authority (acting: U0REL1) "
        "and payments-risk (acting: U0RISK1), a different person for each"
    )


def test_an_acting_delegate_releases_and_the_primary_no_longer_can() -> None:
    handed_over = roster(release_authority="U0REL2")
    assert release_role(ANY, handed_over, user="U0REL2", already=[]) == "release-authority"
    with pytest.raises(Refused):
        release_role(ANY, handed_over, user="U0REL1", already=[])


def test_a_hold_in_mode_any_is_released_by_one_release_and_cannot_be_released_twice() -> None:
    once = [("U0REL1", "release-authority")]
    assert is_released(ANY, once)
    with pytest.raises(Refused) as excinfo:
        release_role(ANY, roster(), user="U0REL1", already=once)
    assert "U0REL1 already released hold go/plan/1 as release-authority" in refusal(excinfo)


def test_a_hold_in_mode_all_needs_every_release_role() -> None:
    first = release_role(ALL, roster(), user="U0REL1", already=[])
    releases = [("U0REL1", first)]
    assert not is_released(ALL, releases)
    second = release_role(ALL, roster(), user="U0RISK1", already=releases)
    releases.append(("U0RISK1", second))
    assert (first, second) == ("release-authority", "payments-risk")
    assert is_released(ALL, releases)


def test_a_role_already_released_in_mode_all_is_refused_for_its_next_acting_user() -> None:
    releases = [("U0REL1", "release-authority")]
    with pytest.raises(Refused) as excinfo:
        release_role(ALL, roster(release_authority="U0REL2"), user="U0REL2", already=releases)
    assert refusal(excinfo) == "hold retire/plan/2 is already released for release-authority by U0REL1"


def test_one_person_acting_for_two_release_roles_counts_once_in_mode_all() -> None:
    two_hats = Roster(
        {
            "release-authority": Role(primary="U0REL1"),
            "payments-risk": Role(primary="U0RISK1", delegates=["U0REL1"]),
        },
        {"payments-risk": "U0REL1"},
    )
    first = release_role(ALL, two_hats, user="U0REL1", already=[])
    with pytest.raises(Refused) as excinfo:
        release_role(ALL, two_hats, user="U0REL1", already=[("U0REL1", first)])
    assert refusal(excinfo) == (
        "U0REL1 already released hold retire/plan/2 as release-authority; "
        "it needs a different person for each of release-authority, payments-risk"
    )
    assert "different person" in refusal(excinfo)


def test_two_person_integrity_is_not_satisfied_by_one_person_in_the_record() -> None:
    one_person = [("U0REL1", "release-authority"), ("U0REL1", "payments-risk")]
    assert not is_released(ALL, one_person)


def test_a_release_stays_valid_after_its_user_hands_the_role_over() -> None:
    releases = [("U0REL1", "release-authority")]
    handed_over = roster(release_authority="U0REL2")
    assert release_role(ALL, handed_over, user="U0RISK1", already=releases) == "payments-risk"


def test_releases_as_other_roles_do_not_satisfy_a_hold() -> None:
    assert not is_released(ANY, [("U0ENG1", "release-eng")])
    assert is_released(ANY, [("U0ENG1", "release-eng"), ("U0REL1", "release-authority")])


def test_a_hold_with_no_release_roles_can_never_be_released() -> None:
    nobody = ReleaseRule(hold="run/manual/3", release_by=(), mode="all")
    assert not is_released(nobody, [])
    with pytest.raises(Refused, match="U0REL1 may not release hold run/manual/3"):
        release_role(nobody, roster(), user="U0REL1", already=[])


def test_a_release_rule_is_read_from_an_opened_hold() -> None:
    hold = HoldRecord(
        id="retire-legacy/plan/4",
        checkpoint="retire-legacy",
        reason="planned hold",
        source=HoldSource.PLAN,
        release_by=("release-authority", "payments-risk"),
        mode="all",
        opened_at=datetime(2026, 11, 24, 21, 0, tzinfo=UTC),
        opened_by="engine",
    )
    assert ReleaseRule.of(hold) == ReleaseRule(
        hold="retire-legacy/plan/4", release_by=("release-authority", "payments-risk"), mode="all"
    )


# Per-role change_delegates: authority.change_delegates as a mapping role -> roles that may switch it


def test_per_role_change_delegates_let_the_named_roles_switch_that_role() -> None:
    authority = Authority(
        signoff=["release-authority"],
        adopt_packets=["release-authority"],
        start_and_rollback=["release-authority"],
        change_delegates={"security": ["security", "release-authority"]},
    )
    after = roster().switch(
        by_user="U0SEC1", role="security", to_user="U0SEC2", change_roles=authority.switchers_for("security")
    )
    assert after.acting_user("security") == "U0SEC2"


def test_per_role_change_delegates_let_nobody_switch_a_role_the_mapping_does_not_name() -> None:
    authority = Authority(
        signoff=["release-authority"],
        adopt_packets=["release-authority"],
        start_and_rollback=["release-authority"],
        change_delegates={"security": ["security", "release-authority"]},
    )
    with pytest.raises(Refused) as excinfo:
        roster().switch(
            by_user="U0SEC1",
            role="release-eng",
            to_user="U0ENG2",
            change_roles=authority.switchers_for("release-eng"),
        )
    assert refusal(excinfo) == "this plan names no role that may change delegates"


def test_per_role_change_delegates_refuse_a_role_named_for_another_role_only() -> None:
    authority = Authority(
        signoff=["release-authority"],
        adopt_packets=["release-authority"],
        start_and_rollback=["release-authority"],
        change_delegates={"security": ["security"], "release-eng": ["release-authority"]},
    )
    with pytest.raises(Refused) as excinfo:
        roster().switch(
            by_user="U0SEC1",
            role="release-eng",
            to_user="U0ENG2",
            change_roles=authority.switchers_for("release-eng"),
        )
    assert refusal(excinfo) == "U0SEC1 does not act for release-authority (acting: U0REL1)"


def test_the_list_form_of_change_delegates_lets_its_roles_switch_every_role() -> None:
    authority = Authority(
        signoff=["release-authority"],
        adopt_packets=["release-authority"],
        start_and_rollback=["release-authority"],
        change_delegates=["release-authority"],
    )
    assert authority.switchers_for("security") == ["release-authority"]
    assert authority.switchers_for("release-eng") == ["release-authority"]
