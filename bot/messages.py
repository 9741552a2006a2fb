"""Every user-facing text and log line of bot/'s rendering and dispatch, in one place.

Templates under bot/templates/ decide the shape of a message and take their words from here (the
module is the Jinja2 global `M`), so a reviewer reads all wording, and checks it is free of secrets,
in one file. Placeholders are `str.format` fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# -- shared pieces ---------------------------------------------------------------------------

ELLIPSIS: Final = "…"
NOBODY: Final = "nobody"
NO_TIME: Final = "—"
MORE: Final = "… {n} more {noun} — see /cutover packet"
CLIPPED_LINES: Final = "… {n} more lines — see /cutover packet"
CLIPPED_BUTTONS: Final = "… {n} more actions — see /cutover packet"
ROLE_SEPARATOR: Final = ", "
FLAG_SEPARATOR: Final = " · "
BULLET: Final = "• {line}"

NOUN_CHECKPOINTS: Final = "checkpoints"
NOUN_HOLDS: Final = "holds"
NOUN_CHANGES: Final = "changes"
NOUN_ROLES: Final = "roles"
NOUN_ITEMS: Final = "items"

STATE_LABEL: Final[dict[str, str]] = {
    "proposed": "proposed",
    "authoritative": "authoritative",
    "superseded": "superseded",
    "rejected": "rejected",
}

# -- answers to the person who acted, from the listeners ------------------------------------

NOT_OUR_WORKSPACE: Final = (
    ":no_entry: This cutover bot serves one workspace, and this request came from another; nothing was done."
)
UNKNOWN_BUTTON: Final = (
    "That button is not one this bot knows (it may be from an older message); use /cutover status."
)
CLICK_ELSEWHERE: Final = (
    "That button belongs to run {run}, which lives in <#{run_channel}>; it was clicked in <#{channel}>. "
    "Use it in <#{run_channel}>."
)

# -- buttons (plain text, at most 75 characters once formatted) ------------------------------

BUTTON_SIGN_OFF: Final = "Sign off as {role}"
BUTTON_ADOPT: Final = "Adopt v{v}"
BUTTON_REJECT: Final = "Reject v{v}"
BUTTON_ACKNOWLEDGE: Final = "Acknowledge v{v}"
BUTTON_RELEASE: Final = "Release {hold}"
BUTTON_CONFIRM_ROLLBACK: Final = "Confirm rollback"

CONFIRM_TITLE: Final = "Are you sure?"
CONFIRM_YES: Final = "Yes"
CONFIRM_NO: Final = "Cancel"
CONFIRM_ADOPT: Final = "Adopt v{v} as the authoritative timeline for this run?"
CONFIRM_RELEASE: Final = (
    "Release hold {hold} on {checkpoint}? The timeline moves on once every required role has released."
)

# -- plan summary ----------------------------------------------------------------------------

PLAN_TEXT: Final = "Plan {plan} opened, revision {rev}: sign-off needed from {roles}"
PLAN_HEADER: Final = "Plan {plan}"
PLAN_LIVE_TEXT: Final = "Plan {plan}: the run is {state}"
PLAN_LIVE: Final = ":satellite: *The run is {state}.* Everything else about it is in this thread."
PLAN_BODY: Final = "*{title}*\nRevision `{rev}` · {n} checkpoints · window {start} – {end}"
PLAN_CHANGE_RECORD: Final = "Change record {cr}"
PLAN_SIGNOFF_DONE: Final = ":white_check_mark: *{role}* signed off by {user}{at}"
PLAN_SIGNOFF_AT: Final = " at {at}"
PLAN_SIGNOFF_PENDING: Final = ":hourglass_flowing_sand: *{role}* awaiting sign-off (acting: {user})"
PLAN_SIGNOFF_RULE: Final = (
    "Each role signs this exact revision. A changed plan is a new revision and inherits no sign-off."
)

SIGNOFF_TEXT: Final = "{user} signed off revision {rev} as {role}"
SIGNOFF_LINE: Final = ":white_check_mark: {user} signed off revision `{rev}` as *{role}*"
SIGNOFF_REMAINING: Final = "Still needed: {roles}"
SIGNOFF_COMPLETE: Final = "Every sign-off role has approved revision {rev}: the run may start."

# -- packets ---------------------------------------------------------------------------------

PACKET_TEXT: Final = "Packet v{v} ({state}): {reason}"
PACKET_HEADER: Final = "Command packet v{v} · {state}"
PACKET_CONTEXT: Final = "Run {run} · plan revision `{rev}` · hash `{hash}`"
PACKET_SUPERSEDES: Final = " · supersedes v{v}"
PACKET_REASON: Final = "*Why:* {reason}"
PACKET_SUMMARY: Final = "*Change:* {summary}"
PACKET_TIMELINE: Final = "*Timeline*"
PACKET_HOLDS: Final = "*Hold register*"
PACKET_NO_HOLDS: Final = "No holds."
FORECAST_HEADER: Final = "*Planned · actual · forecast*"
FORECAST_LINE: Final = "*{title}*: planned `{planned}` · actual `{actual}` · forecast `{forecast}`{behind}"
FORECAST_NOT_STARTED: Final = "not started"
FORECAST_BEHIND: Final = " · *behind by {minutes} min*"
FORECAST_CRITICAL: Final = "Critical path: {path}"
FORECAST_END_INSIDE: Final = "Forecast end `{end}`, inside the window that ends `{window_end}`."
FORECAST_END_OVER: Final = "Forecast end `{end}`, *{minutes} min past* the window end `{window_end}`."
HOME_OWNED_FORECAST: Final = " · forecast `{start}–{end}`"
TIMELINE_LINE: Final = "`{start}–{end}` *{title}* · {owner} ({role}){flags}"
FLAG_PROTECTED: Final = ":lock: protected"
FLAG_HELD: Final = ":octagonal_sign: held"
FLAG_CONFLICT: Final = ":warning: conflict: {conflict}"
FLAG_DONE: Final = ":white_check_mark: done"
FLAG_LATE: Final = ":hourglass: late"
FLAG_ACTIVE: Final = ":arrow_forward: active"
STATUS_FLAG: Final[dict[str, str]] = {"done": FLAG_DONE, "late": FLAG_LATE, "active": FLAG_ACTIVE}
HOLD_LINE: Final = "{hold} on *{checkpoint}* · {source} · release by {roles} ({mode}){released}: {reason}"
HOLD_LINE_RELEASED: Final = " · :white_check_mark: released"
HOLD_NOT_OPEN: Final = "A hold not yet open"
HOLD_ON_RUN: Final = "the whole run"
HOLD_MODE: Final[dict[str, str]] = {"any": "any one of them", "all": "all of them"}

SUPERSEDED_TEXT: Final = "Packet v{v} superseded by v{by}"
SUPERSEDED_HEADER: Final = "Command packet v{v} · superseded"
SUPERSEDED_BODY: Final = (
    ":no_entry: ~Packet v{v}~ is superseded by *v{by}*. "
    "Follow v{by}; buttons on this message no longer apply."
)
SUPERSEDED_REASON: Final = "Why v{by}: {reason}"

PROPOSED_TEXT: Final = "v{v} proposed: {summary}"
PROPOSED_LINE: Final = ":memo: *v{v} proposed*: {summary}"
PROPOSED_BY: Final = "Reported by {user}: {reason}"
PROPOSED_DIFF: Final = "What v{v} changes against the packet in force (old → new):"
PROPOSED_FACTS: Final = (
    "*Carries:*\n{facts}\nReject one with `/cutover reject #N reason`; the others stay pending."
)
PROPOSED_ANSWERED_TEXT: Final = "v{v} {state} by {user}: {summary}"
PROPOSED_ANSWERED: Final = ":memo: *v{v} {state}* by {user} at {at}: {summary}"
PROPOSED_STATE: Final[dict[str, str]] = {"adopted": "adopted", "rejected": "rejected", "replaced": "replaced"}
PROPOSED_NOTHING: Final = "no material change"
PROPOSED_COUNTS: Final[tuple[tuple[str, str, str], ...]] = (
    # (payload key, singular, plural): the order they are listed in
    ("moved", "{n} checkpoint moved", "{n} checkpoints moved"),
    ("reordered", "{n} reordered", "{n} reordered"),
    ("owner_changed", "{n} owner changed", "{n} owners changed"),
    ("held", "{n} held", "{n} held"),
    ("released", "{n} hold released", "{n} holds released"),
    ("conflict", "{n} conflict", "{n} conflicts"),
)

# -- delta DM --------------------------------------------------------------------------------

DELTA_TEXT: Final = "Packet v{v} changes {n} of your checkpoints"
DELTA_HEADER: Final = "Your changes in packet v{v}"
DELTA_INTRO: Final = "Packet *v{v}* replaces v{old} in <#{channel}>. Only the changes that concern you:"
DELTA_REASON: Final = "Why: {reason}"
DELTA_LINE: Final[dict[str, str]] = {
    "moved": "*{title}* moved `{old}` → `{new}`{detail}",
    "end_moved": "*{title}* end moved `{old}` → `{new}`{detail}",
    "reordered": "*{title}* reordered{detail}",
    "owner_changed": "*{title}* owner {old} → {new}{detail}",
    "hold_added": "*{title}* is held{detail}",
    "hold_released": "*{title}* hold released{detail}",
    "conflict": "*{title}* conflict{detail}",
}
DELTA_LINE_OTHER: Final = "*{title}* {what}{detail}"
DELTA_DETAIL: Final = ": {detail}"
DELTA_ANSWERED: Final[dict[str, str]] = {
    "acknowledged": ":white_check_mark: Acknowledged v{v} at {at}.",
    "outdated": (
        ":information_source: v{v} was superseded by {detail} at {at}; "
        "see the war room for the current packet."
    ),
}
DELTA_ACK_PROMPT: Final = "Please acknowledge that you have read v{v}."

# -- holds -----------------------------------------------------------------------------------

HOLD_OPENED_TEXT: Final = "Hold {hold} on {checkpoint}: {reason}"
HOLD_OPENED_LINE: Final = ":octagonal_sign: *Hold `{hold}`* on *{checkpoint}*: {reason}"
HOLD_OPENED_DETAIL: Final = "Source: {source}{by} · release by {roles} ({mode})"
HOLD_OPENED_BY: Final = ", opened by {user}"
HOLD_RELEASED_TEXT: Final = "Hold {hold} released by {user} as {role}"
HOLD_RELEASED_LINE: Final = (
    ":white_check_mark: *Hold `{hold}`* on *{checkpoint}* released by {user} as *{role}*{behalf}"
)
HOLD_RELEASED_BEHALF: Final = " on behalf of {user}"
HOLD_RELEASED_REMAINING: Final = "Still needed before it lifts: {roles}"

# -- gates, traffic, run state, rollback, evidence -------------------------------------------

GATE_TEXT: Final = "Gate {gate} {outcome} on {checkpoint}: {action}"
GATE_HEADER: Final = ":rotating_light: Gate {gate} {outcome}"
GATE_BODY: Final = "*Checkpoint:* {checkpoint}\n*Value:* {value} · *pass:* `{threshold}`\n*Action:* {action}"
GATE_NO_DATA: Final = "no data"
# A failing reading without a number: an Alertmanager alert that fired (handlers/alerts.py).
GATE_ALERTED: Final = "an alert fired"
GATE_OUTCOME: Final[dict[str, str]] = {"fail": "failed", "no_data": "had no data", "pass": "passed"}
GATE_REASON: Final = "{reason}"
GATE_AT: Final = "Checked at {at}"
GATE_ACTION: Final[dict[str, str]] = {
    "pause": "pause the stage",
    "hold": "hold until a release",
    "rollback_cohort": "roll back the cohort",
    "global_rollback": "roll back everything",
    "freeze": "freeze the run",
}

SHIFT_TEXT: Final = "Traffic: {cohort} to {percent}% on {checkpoint}"
SHIFT_LINE: Final = ":vertical_traffic_light: *{cohort}* {before}→ *{percent}%* ({checkpoint})"
SHIFT_BEFORE: Final = "{percent}% "
SHIFT_REFUSED_TEXT: Final = "Traffic shift refused: {cohort} to {percent}% on {checkpoint}"
SHIFT_REFUSED_LINE: Final = (
    ":x: Traffic shift of *{cohort}* to *{percent}%* refused by the control plane ({checkpoint}): {detail}"
)

RUN_STATE_TEXT: Final = "Run {run}: {state}"
RUN_STATE_TEXT_DETAIL: Final = "Run {run}: {state}: {detail}"
RUN_STATE_LINE: Final = "{emoji} Run *{run}*: *{state}*{was}{by}"
RUN_STATE_WAS: Final = " (was {state})"
RUN_STATE_BY: Final = " · {user}"
RUN_STATE_REASON: Final = "{reason}"
RUN_STATE_EMOJI: Final[dict[str, str]] = {
    "started": ":rocket:",
    "running": ":arrow_forward:",
    "paused": ":double_vertical_bar:",
    "held": ":octagonal_sign:",
    "frozen": ":ice_cube:",
    "hypercare": ":stethoscope:",
    "rolling_back": ":rewind:",
    "rolled_back": ":leftwards_arrow_with_hook:",
    "completed": ":checkered_flag:",
    "aborted": ":x:",
}
RUN_STATE_EMOJI_OTHER: Final = ":information_source:"

ROLLBACK_QUESTION_TEXT: Final = "Roll back {what}? {moves}. Reason: {reason}"
ROLLBACK_QUESTION: Final = "{user} asks: roll back *{what}*?\n{moves}.\nReason: {reason}"
CONFIRM_ROLLBACK_TEXT: Final = "Roll back {what} now: {moves}?"
ROLLBACK_MOVE: Final = "{cohort} {before:g}% → {after:g}%"
ROLLBACK_MOVES_NOTHING: Final = "No cohort has traffic to move back right now"
ROLLBACK_ANSWERED_TEXT: Final = "Rollback of {what} {state} by {user} at {at}: {moves}"
ROLLBACK_ANSWERED: Final = "*Rollback of {what} {state}* by {user} at {at}.\n{moves}.\nReason: {reason}"
ROLLBACK_ANSWER_DETAIL: Final = "{detail}"
ROLLBACK_STATE: Final[dict[str, str]] = {
    "confirmed": "confirmed",
    "outdated": "outdated (nothing moved)",
    "refused": "refused (nothing moved)",
}
ROLLBACK_WHAT_ALL: Final = "ALL traffic back to legacy"
ROLLBACK_WHAT_COHORT: Final = "the current cohort back one step"

EVIDENCE_TEXT: Final = "Evidence packet for run {run} exported"
EVIDENCE_FILE_TEXT: Final = "{title}: the evidence packet of run {run}, as the bot exported it"
MANIFEST_FILE_TEXT: Final = (
    "{title}: manifest {hash} of run {run}, revision {revision} for queue {queue}. "
    "Check it with `cutover-bot manifest verify FILE --plan PLAN`"
)
EVIDENCE_LINE: Final = ":card_index_dividers: *Evidence packet* for run *{run}* ({state})"
EVIDENCE_COUNTS: Final = (
    "{packets} packets · {signoffs} sign-offs · {holds} holds · {gates} gate results · {rollbacks} rollbacks"
)
EVIDENCE_LEDGER_OK: Final = ":white_check_mark: Ledger verified, head `{head}`"
EVIDENCE_LEDGER_BAD: Final = ":x: Ledger check FAILED: {problem}"
EVIDENCE_WHERE: Final = "Written to `{location}`"
LEDGER_HEAD_TEXT: Final = "Ledger of run {run}: entry {seq}"
LEDGER_HEAD_LINE: Final = (
    ":lock: For the record: the ledger of run *{run}* has {seq} entries; the last one hashes to `{hash}`."
)
LEDGER_HEAD_WHY: Final = (
    "Kept here, outside the bot's database, so that a later rewrite of the ledger shows: "
    "`cutover-bot ledger witness {run}` then `cutover-bot ledger verify --witness FILE`."
)

# -- ephemeral replies -----------------------------------------------------------------------

REFUSAL_TEXT: Final = "Refused: {reason}"
REFUSAL_LINE: Final = ":no_entry_sign: {reason}"
REFUSAL_CURRENT: Final = "The current packet is *v{v}*."
REFUSAL_NO_CURRENT: Final = "There is no authoritative packet yet."

STATUS_TEXT: Final = "Run {run}: {state}, packet v{v}"
STATUS_LINE: Final = "*Run {run}* · {state} · packet *v{v}*"
STATUS_NEXT: Final = "Next: *{title}* at `{start}` · {owner}"
STATUS_NO_NEXT: Final = "Nothing left on the timeline."
STATUS_HOLDS: Final = "Open holds: {holds}"
STATUS_NO_HOLDS: Final = "No open holds."
STATUS_GATE: Final = "`{gate}` {outcome} ({value})"
STATUS_NO_RUN: Final = "No active run in this channel. Start one with /cutover open PLAN."

HELP_TEXT: Final = "cutover-bot commands"
HELP_INTRO: Final = "*/cutover* runs the cutover from this channel:"
HELP_LINE: Final = "• `{line}`"
USAGE_TEXT: Final = "{problem}"
USAGE_LINE: Final = ":grey_question: {problem}"

# -- App Home --------------------------------------------------------------------------------

HOME_HEADER: Final = "Cutover"
HOME_NO_RUNS: Final = "No active cutover involves you right now."
HOME_RUN: Final = "*{title}* · run `{run}` in <#{channel}> · packet v{v} ({state})"
HOME_OWNED: Final = "*Checkpoints you own*"
HOME_OWNED_LINE: Final = "`{start}–{end}` *{title}* · run `{run}`{flags}"
HOME_TO_ACK: Final = "*Packets awaiting your acknowledgement*"
HOME_TO_ACK_LINE: Final = "Packet *v{v}* of run `{run}`: {reason}"
HOME_TO_RELEASE: Final = "*Holds you may release*"
HOME_TO_RELEASE_LINE: Final = "`{hold}` on *{checkpoint}* (run `{run}`): {reason}"
HOME_NOTHING: Final = "Nothing for you here."

# -- dispatcher errors and logs (never a token, never a payload) -----------------------------

ERROR_RENDER: Final = "render_failed: {error}"
ERROR_UNKNOWN_KIND: Final = "unknown message kind {kind!r}"
ERROR_MISSING_TARGET: Final = "{kind} needs payload.target with channel and ts"
ERROR_MISSING_CHANNEL: Final = "{kind} needs payload.channel"
ERROR_WAITING_BEHIND: Final = "waiting behind outbox row {row} for the same recipient"
ERROR_STOPPING: Final = "handed back to the queue by a replica stopping"
ERROR_RATE_LIMITED: Final = "rate limited on {method} for {seconds:.1f}s"
ERROR_BREAKER: Final = "Slack's {method} kept failing this round; the row waits for the next"
ERROR_PACE_UNAVAILABLE: Final = "the shared pace toward Slack ({method}) could not be read or written"
ERROR_HTTP: Final = "HTTP {status} from {method}"
ERROR_NETWORK: Final = "network error on {method}: {error}"
ERROR_SLACK: Final = "{method}: {error}"
ERROR_RENDER_LIMITS: Final = "message does not fit Slack's limits even at its smallest: {problems}"


@dataclass(frozen=True, slots=True)
class _Logs:
    """Log lines (%-style, for `logging`), grouped so a caller writes `LOG.sent`."""

    # dispatcher
    sent: str = "outbox row %s (%s) sent to %s via %s"
    retry: str = "outbox row %s (%s) stays pending until %s: %s"
    failed: str = "outbox row %s (%s) failed for good: %s"
    rate_limited: str = "%s rate limited, Retry-After %.1fs"
    transient: str = "outbox row %s (%s) attempt %d failed: %s"
    compact_retry: str = "outbox row %s (%s) refused as %s, retrying with a compact rendering"
    handed_over: str = (
        "outbox row %s to %s was claimed by another sender after its lease passed; leaving it and"
        " the rows behind it to that sender"
    )
    drain_failed: str = "outbox drain failed; trying again shortly"
    rejoined: str = "the bot joined %s: %s messages Slack refused there are queued again"
    breaker_open: str = (
        "Slack's %s failed %s times in a row: not called again until the next drain's probe (its rows wait)"
    )
    # HTTP server (bot/server.py)
    malformed_request: str = "refused a malformed Slack request: %s"
    dispatch_failed: str = "a Slack request failed inside Bolt"
    unhandled_request: str = "acknowledged a Slack request no listener takes"
    # Alertmanager webhook (bot/alertmanager.py)
    alert_refused: str = "refused an Alertmanager request: %s"
    alert_no_token: str = "CUTOVER_ALERTMANAGER_TOKEN is not set: POST /alertmanager refuses every request"
    alert_counted: str = "alert %s on gate %s of plan %s: %s"
    alert_failed: str = "an Alertmanager alert could not be counted (the database?); answered 503 for a retry"
    # listeners (bot/listeners.py)
    foreign_request: str = (
        "refused a %s from team %s (enterprise %s); this installation is team %s (enterprise %s)"
    )
    click_elsewhere: str = "refused a %s click on run %s from %s; the run's channel is %s"


LOG: Final = _Logs()
