"""What to watch on `/metrics` (see docs/operations.md)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "cutover_slack_requests_total", "Requests on /slack/events by outcome", ["outcome"], registry=REGISTRY
)
ACK_SECONDS = Histogram(
    "cutover_slack_ack_seconds",
    "Time from request to acknowledgement (Slack allows 3 s)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3),
    registry=REGISTRY,
)
OUTBOX_SENT = Counter(
    "cutover_outbox_sent_total", "Outbox messages delivered to Slack", ["kind"], registry=REGISTRY
)
OUTBOX_RETRIES = Counter(
    "cutover_outbox_retries_total",
    "Slack calls retried, by reason (429, 5xx, network)",
    ["reason"],
    registry=REGISTRY,
)
OUTBOX_BREAKER_OPENED = Counter(
    "cutover_outbox_breaker_opened_total",
    "Times a Slack Web API method failed so often in a row that it was not called for a while",
    registry=REGISTRY,
)
SLACK_PACE_RATE = Gauge(
    "cutover_slack_pace_rate",
    "Calls a second all replicas together may start, per Slack Web API method, learned from 429s"
    " (the slack_pace table, as this replica last heard it; 0: none learned)",
    ["method"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge("cutover_outbox_pending", "Outbox rows not yet delivered", registry=REGISTRY)
GATE_CHECKS = Counter(
    "cutover_gate_checks_total", "Gate evaluations by outcome", ["outcome"], registry=REGISTRY
)
GATE_TICK_ERRORS = Counter(
    "cutover_gate_tick_errors_total",
    "Scheduled gate ticks that failed (the run is retried next tick)",
    registry=REGISTRY,
)
ACTIVE_RUNS = Gauge(
    "cutover_active_runs", "Runs not yet completed, rolled back or aborted", registry=REGISTRY
)
INBOX_REPEATS = Counter(
    "cutover_inbox_repeats_total",
    "Requests already in the inbox that came again (Slack retries, replays): answered, not processed",
    registry=REGISTRY,
)
INBOX_TO_COMMIT = Histogram(
    "cutover_request_to_commit_seconds",
    "Time from a request's arrival to its processing committed (use case and inbox row together)",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60, 300),
    registry=REGISTRY,
)
OUTBOX_OLDEST_PENDING = Gauge(
    "cutover_outbox_oldest_pending_seconds",
    "Age of the oldest outbox row not yet delivered (0 when none waits); read from the database at scrape",
    registry=REGISTRY,
)
INBOX_DEPTH = Gauge(
    "cutover_inbox_depth", "Slack requests written down and not yet processed", registry=REGISTRY
)
INBOX_OLDEST = Gauge(
    "cutover_inbox_oldest_seconds",
    "Age of the oldest Slack request not yet processed (0 when none waits)",
    registry=REGISTRY,
)
ALERTS = Counter(
    "cutover_alerts_total",
    "Alerts pushed by Alertmanager on /alertmanager, by outcome (counted, not_counted, ignored"
    " (resolved or unlabelled), unauthorized, malformed, error)",
    ["outcome"],
    registry=REGISTRY,
)
