"""How long resequencing takes after a late report, and how it grows with the plan.

Random plans of 2,000 and 4,000 checkpoints, each depending on two or three earlier ones, with a
few protected checkpoints under a `not_after` and a few plan holds, so the conflict path and the
`waits_on` bookkeeping run too. The first checkpoint is reported late until an hour into the
window, so nearly everything downstream moves.

Best of several runs, the two sizes alternating round by round so a busy moment on the machine
hits both alike: the floor is the cost of the code, the rest is noise. The ratio is taken from
the same run.
"""

from __future__ import annotations

import gc
import random
import time
from datetime import datetime, timedelta
from typing import Any

from packets.plan import Plan
from packets.timeline import Facts, build_packet

SIZES = (2000, 4000)
RUNS = 40
# A fixed number of held checkpoints, as in real plans (a handful of gates, not one in fifty).
# `waits_on` lists every held checkpoint upstream, so its size is N x holds by definition; holds
# growing with N would measure that output growing, not the resequencer.
PROTECTED = 24
HOLDS = 12
ACTING = {"release-eng": "U0ENG2"}  # a delegate acting, as in a real war room
WINDOW_START = datetime.fromisoformat("2026-11-24T21:00:00-05:00")


def random_plan(size: int, *, protected: int = PROTECTED, holds: int = HOLDS, seed: int = 20418) -> Plan:
    rng = random.Random(seed)
    roles = ["release-authority", "release-eng", "payments-risk", "security"]
    special = rng.sample(range(size), protected + holds)
    protected_at, holds_at = set(special[:protected]), set(special[protected:])
    checkpoints: list[dict[str, Any]] = []
    for i in range(size):
        after = sorted(rng.sample(range(i), min(i, rng.randint(2, 3))))
        checkpoint: dict[str, Any] = {
            "id": f"cp-{i}",
            "title": f"Checkpoint {i}",
            "owner": rng.choice(roles),
            "observers": rng.sample(roles, rng.randint(0, 2)),
            "duration": f"{rng.randint(1, 20)}m",
            "after": [f"cp-{j}" for j in after],
        }
        if i in protected_at:
            checkpoint["protected"] = True
            not_after = WINDOW_START + timedelta(minutes=rng.randint(30, 600))
            checkpoint["window"] = {"not_after": not_after.isoformat()}
        elif i in holds_at:
            checkpoint["hold"] = {"release_by": ["release-authority"]}
        checkpoints.append(checkpoint)
    return Plan.model_validate(
        {
            "plan": f"bench-{size}",
            "title": "Benchmark plan",
            "channel": "C0BENCH",
            "window": {
                "start": WINDOW_START.isoformat(),
                "end": (WINDOW_START + timedelta(days=3)).isoformat(),
            },
            "roles": {
                "release-authority": {"primary": "U0REL1", "delegates": ["U0REL2"]},
                "release-eng": {"primary": "U0ENG1", "delegates": ["U0ENG2"]},
                "payments-risk": {"primary": "U0RISK1"},
                "security": {"primary": "U0SEC1", "delegates": ["U0SEC2"]},
            },
            "authority": {
                "signoff": ["release-authority"],
                "adopt_packets": ["release-authority"],
                "change_delegates": ["release-authority"],
                "start_and_rollback": ["release-authority", "release-eng"],
            },
            "checkpoints": checkpoints,
        }
    )


def build_once(plan: Plan, facts: Facts, revision: str) -> float:
    """Seconds for one resequence, from a collected heap so no run pays for another's garbage."""
    gc.collect()
    began = time.perf_counter()
    build_packet(
        plan, facts, version=3, supersedes=2, reason="cp-0 late", acting=ACTING, plan_revision=revision
    )
    return time.perf_counter() - began


def run() -> None:
    plans = {size: random_plan(size) for size in SIZES}
    # A handler knows its run's plan revision; hashing the plan is not part of resequencing.
    revisions = {size: plan.revision for size, plan in plans.items()}
    facts = Facts(late={"cp-0": WINDOW_START + timedelta(minutes=60)})
    best = dict.fromkeys(SIZES, float("inf"))
    # Rounds alternate the sizes so a noisy moment on the machine hits both alike.
    for _ in range(RUNS):
        for size in SIZES:
            best[size] = min(best[size], build_once(plans[size], facts, revisions[size]))
    for size in SIZES:
        print(f"resequence_{size}_ms: {best[size] * 1000:.2f}")
    print(f"resequence_ratio_4000_2000: {best[4000] / best[2000]:.2f}")
