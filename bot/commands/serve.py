"""`cutover-bot serve [--port P] [--socket-mode]`: run the bot until SIGTERM or SIGINT.

HTTP (the default): `POST /slack/events`, `GET /healthz` and `GET /metrics` on 0.0.0.0:PORT
(`--port`, else $PORT, else 3000). Needs SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN.

Socket Mode (`--socket-mode`): Slack's events arrive over a WebSocket the bot opens
(slack_bolt's aiohttp-based `AsyncSocketModeHandler`: no extra dependency), so no public URL is
needed. Needs SLACK_APP_TOKEN (`xapp-...`) and SLACK_BOT_TOKEN. `/healthz` and `/metrics` are
still served on PORT; `/slack/events` is not (it answers 401: there is no signing secret to check).

A missing or empty variable is refused in one line on stderr, naming the variables and never
their values, with exit status 2, before anything is opened. Configuration: bot/settings.py.

Stopping (SIGTERM or SIGINT), within a bounded time: the listening socket closes at once (a
request arriving now is refused and Slack retries it elsewhere); requests being answered get up to
3 s; requests in the inbox being processed get CUTOVER_SHUTDOWN_GRACE (8 s), then are cancelled
(their transactions roll back) and released to the other replicas; the outbox finishes only the
Slack calls in flight (at most the Web API timeout, 15 s, usually milliseconds) and hands the rest
of its claimed rows back; answers still on their way to Slack get 2 s. Typically under 10 s;
at most about 3 + 8 + 15 + 2 s. The Dockerfile's
STOPSIGNAL is SIGTERM; give the container a stop grace of 30 s (`docker stop -t 30`, compose
`stop_grace_period: 30s`, Kubernetes `terminationGracePeriodSeconds: 30`).

SQLite is one process: a second `serve` on the same SQLite file refuses to start (exit 2), naming
PostgreSQL for replicas (an flock on `<db>.serve-lock`, released when the process ends).

Exit status: 0 after a clean shutdown, 2 when the configuration is incomplete or another serve
holds the SQLite database.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import logging
import signal
import sys
from pathlib import Path
from typing import IO

from pydantic import ValidationError

from bot import log_format
from bot.settings import Settings

EXIT_OK = 0
EXIT_USAGE = 2
HTTP_SHUTDOWN_S = 3.0

log = logging.getLogger("cutover_bot.serve")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the Slack bot",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--port", type=int, default=None, metavar="P", help="port for HTTP (default: $PORT, else 3000)"
    )
    serve.add_argument(
        "--socket-mode", action="store_true", help="receive events over Socket Mode instead of HTTP"
    )
    serve.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in error["loc"]).upper() for error in exc.errors()})
        print(f"cutover-bot serve: invalid configuration in {', '.join(fields)}", file=sys.stderr)
        return EXIT_USAGE
    missing = settings.missing_for_socket_mode() if args.socket_mode else settings.missing_for_http()
    if missing:
        mode = "Socket Mode" if args.socket_mode else "HTTP"
        print(
            f"cutover-bot serve: {', '.join(missing)} must be set and not empty to serve over {mode}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    port = settings.port if args.port is None else args.port
    if not 0 <= port <= 65535:
        print(f"cutover-bot serve: --port {port} is not a port number", file=sys.stderr)
        return EXIT_USAGE
    try:
        lock = sqlite_serve_lock(settings.database_url)
    except AlreadyServing as exc:
        print(f"cutover-bot serve: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging()
    try:
        asyncio.run(serve(settings, port=port, socket_mode=args.socket_mode))
    finally:
        if lock is not None:
            lock.close()
    return EXIT_OK


class AlreadyServing(Exception):
    """Another `serve` holds this SQLite database."""


def sqlite_serve_lock(database_url: str) -> IO[bytes] | None:
    """Hold `<db>.serve-lock` for this process's life (None: not an SQLite file).

    SQLite is one process: its write lock keeps two processes from corrupting the file, but two
    `serve`s would both tick gates and send the outbox with in-process locks the other cannot see.
    The lock is an flock, so a killed process lets go of it with its last breath."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    database = url.database or ""
    if not url.get_backend_name().startswith("sqlite") or database in ("", ":memory:"):
        return None
    if database.startswith("file:") or url.query.get("mode") == "memory":
        return None
    path = Path(database).expanduser().resolve()
    handle = (path.parent / f"{path.name}.serve-lock").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.close()
        raise AlreadyServing(
            f"another serve is already using the SQLite database {path}; SQLite is one process. "
            "To run replicas, point DATABASE_URL at PostgreSQL (postgresql+asyncpg://...)"
        ) from None
    return handle


def configure_logging(level: int = logging.INFO) -> None:
    """One INFO line per consequential action (handlers.flow); scheduler chatter stays at DEBUG.

    APScheduler logs two INFO lines per job run ("Running job", "executed successfully"): with a
    gate tick per run per interval that was most of the log, so its loggers show warnings only."""
    log_format.configure(level)  # every line redacted, tracebacks included
    logging.getLogger("apscheduler").setLevel(max(level, logging.WARNING))


async def serve(settings: Settings, *, port: int, socket_mode: bool, host: str = "0.0.0.0") -> None:
    """Build, start and serve the bot until SIGTERM or SIGINT; then stop it cleanly."""
    from aiohttp import web

    from bot.wiring import build

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    bot = await build(settings)
    # Requests being answered when SIGTERM comes get this long (each is bounded by the ack
    # deadline anyway); then the intake's grace, then the outbox's in-flight requests.
    runner = web.AppRunner(bot.web_app, access_log=None, shutdown_timeout=HTTP_SHUTDOWN_S)
    socket_handler = None
    try:
        await bot.start()
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        if socket_mode:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            socket_handler = AsyncSocketModeHandler(
                bot.bolt, settings.slack_app_token.get_secret_value(), web_client=bot.client
            )
            await socket_handler.connect_async()  # type: ignore[no-untyped-call]
            log.info("serving over Socket Mode; health and metrics on %s:%s", host, port)
        else:
            log.info("serving Slack events on http://%s:%s/slack/events", host, port)
        await stop.wait()
        log.info("shutting down")
    finally:
        if socket_handler is not None:
            with contextlib.suppress(Exception):
                await socket_handler.close_async()  # type: ignore[no-untyped-call]
        await runner.cleanup()
        await bot.stop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
