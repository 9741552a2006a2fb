from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.uow import UnitOfWork

T0 = datetime(2026, 11, 25, 2, 0, tzinfo=UTC)
REV1, REV2 = "1" * 64, "2" * 64


async def test_a_stored_plan_revision_reads_back_with_its_text_and_source(uow: UnitOfWork) -> None:
    async with uow.transaction() as tx:
        assert await tx.plans.add(
            revision=REV1, plan_id="payments", content="plan: payments\n", at=T0, source="p.yaml"
        )
    async with uow.transaction() as tx:
        plan = await tx.plans.get(REV1)
    assert plan is not None
    assert (plan.revision, plan.plan_id, plan.content, plan.source, plan.created_at) == (
        REV1,
        "payments",
        "plan: payments\n",
        "p.yaml",
        T0,
    )


async def test_storing_a_revision_again_keeps_the_first_text(uow: UnitOfWork) -> None:
    async with uow.transaction() as tx:
        assert await tx.plans.add(revision=REV1, plan_id="payments", content="first", at=T0)
        assert not await tx.plans.add(revision=REV1, plan_id="payments", content="second", at=T0)
        plan = await tx.plans.get(REV1)
    assert plan is not None and plan.content == "first"


async def test_the_latest_revision_of_a_plan_is_the_one_stored_last(uow: UnitOfWork) -> None:
    async with uow.transaction() as tx:
        await tx.plans.add(revision=REV2, plan_id="payments", content="v1", at=T0)
        await tx.plans.add(revision=REV1, plan_id="payments", content="v2", at=T0 + timedelta(days=1))
        await tx.plans.add(revision="3" * 64, plan_id="other", content="x", at=T0 + timedelta(days=2))
        latest = await tx.plans.latest("payments")
        assert latest is not None and latest.content == "v2"
        assert [p.content for p in await tx.plans.for_plan("payments")] == ["v1", "v2"]
        assert await tx.plans.latest("unknown") is None
        assert await tx.plans.get("9" * 64) is None


class _Abandoned(Exception):
    pass


async def test_a_revision_read_inside_the_transaction_that_added_it_is_forgotten_when_it_rolls_back(
    uow: UnitOfWork,
) -> None:
    try:
        async with uow.transaction() as tx:
            await tx.plans.add(revision=REV1, plan_id="payments", content="plan: payments\n", at=T0)
            assert await tx.plans.get(REV1) is not None
            raise _Abandoned
    except _Abandoned:
        pass
    async with uow.transaction(read_only=True) as tx:
        assert await tx.plans.get(REV1) is None, "the unit of work keeps only committed revisions"
