"""A real Prometheus for integration tests, scraping a small exporter whose values the test sets.

    async with running_prometheus(tmp_dir) as stack:
        stack.exporter.set("cutover_auth_success_ratio", 0.999)
        await stack.prometheus.wait_for_value("cutover_auth_success_ratio", 0.999)
        telemetry = PrometheusTelemetry(stack.url, timeout=2.0)

Prometheus scrapes every second and starts in well under a second on a fresh TSDB, but that is
still too slow to pay per test: a test module holds one stack in a module-scoped fixture:

    pytestmark = [pytest.mark.prometheus, pytest.mark.asyncio(loop_scope="module")]

    @pytest_asyncio.fixture(scope="module", loop_scope="module")
    async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PrometheusStack]:
        async with running_prometheus(tmp_path_factory.mktemp("prometheus")) as running:
            yield running

Tests sharing the stack should each use their own metric names (or set every value they rely on
and wait for it). A removed series is marked stale by
Prometheus at the next scrape, so an instant query stops returning it about a second later.

When the binary is missing the tests skip, unless REQUIRE_INTEGRATION=1 (CI), where a skip would
hide a broken install, so they fail instead.

Also here, because the telemetry and actuator tests both need them: `SilentServer`, which accepts
connections and never answers (timeouts), and `free_port()` (connection refused).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.integration import unavailable

EXPORTER_JOB = "cutover-exporter"
START_TIMEOUT = 30.0
WAIT_TIMEOUT = 15.0


def prometheus_binary() -> str:
    """The Prometheus binary to run, or a skip (a failure under REQUIRE_INTEGRATION=1)."""
    binary = os.environ.get("PROMETHEUS_BIN") or shutil.which("prometheus")
    if binary and os.access(binary, os.X_OK):
        return binary
    reason = "prometheus binary not found (set PROMETHEUS_BIN or put prometheus on PATH)"
    unavailable(reason)


def free_port() -> int:
    """A local port nobody listens on (right now): connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Exporter:
    """A metrics endpoint in Prometheus text format; the test sets and removes series."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._runner: web.AppRunner | None = None
        self.port = 0

    def set(self, name: str, value: float, /, **labels: str) -> None:
        self._series[(name, tuple(sorted(labels.items())))] = value

    def remove(self, name: str, /, **labels: str) -> None:
        """Stop exposing a series; with no labels, every series of that metric."""
        for key in list(self._series):
            if key[0] == name and (not labels or key[1] == tuple(sorted(labels.items()))):
                del self._series[key]

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def exposition(self) -> str:
        lines: list[str] = []
        typed: set[str] = set()
        for (name, labels), value in sorted(self._series.items()):
            if name not in typed:
                lines.append(f"# TYPE {name} gauge")
                typed.add(name)
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            lines.append(
                f"{name}{{{label_text}}} {_number(value)}" if label_text else f"{name} {_number(value)}"
            )
        return "\n".join(lines) + "\n"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = _bound_port(self._runner)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(text=self.exposition(), content_type="text/plain", charset="utf-8")


class PrometheusServer:
    """One Prometheus process on 127.0.0.1 with a throwaway TSDB, scraping `targets` every second."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        *,
        targets: list[str],
        rules: str | None = None,
        alertmanager: str | None = None,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.targets = targets
        # Alerting rules (a rule file's YAML) evaluated every second, and the Alertmanager
        # (host:port) their alerts go to (tests/alertmanager_harness.py).
        self.rules = rules
        self.alertmanager = alertmanager
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "prometheus.log"

    async def start(self) -> None:
        config = self.workdir / "prometheus.yml"
        rule_file = None
        if self.rules is not None:
            rule_file = self.workdir / "rules.yml"
            rule_file.write_text(self.rules, encoding="utf-8")
        config.write_text(_config(self.targets, rule_file, self.alertmanager), encoding="utf-8")
        self._session = aiohttp.ClientSession()
        # The free port may be taken between choosing it and Prometheus binding it: try again.
        for _attempt in range(3):
            self.port = free_port()
            self._spawn(config)
            if await self._wait_ready():
                break
            self._reap()
        else:
            raise RuntimeError(f"prometheus did not start; log:\n{self.log_tail()}")
        await self.wait_until(
            f'up{{job="{EXPORTER_JOB}"}}',
            lambda r: _values(r) == [1.0],
            what="the first scrape",
            timeout=START_TIMEOUT,
        )

    async def stop(self) -> None:
        self._reap()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def query(self, promql: str) -> dict[str, Any]:
        """The raw `/api/v1/query` answer, for harness waits and test assertions."""
        assert self._session is not None, "start() first"
        async with self._session.get(f"{self.url}/api/v1/query", params={"query": promql}) as response:
            body: dict[str, Any] = await response.json()
            return body

    async def wait_for_value(self, promql: str, expected: float, *, timeout: float = WAIT_TIMEOUT) -> None:
        """Until `promql` returns exactly one value, close to `expected` (the exporter was scraped)."""
        await self.wait_until(
            promql,
            lambda r: len(v := _values(r)) == 1 and math.isclose(v[0], expected, rel_tol=1e-9),
            what=f"{promql} == {expected}",
            timeout=timeout,
        )

    async def wait_for_series(self, promql: str, count: int, *, timeout: float = WAIT_TIMEOUT) -> None:
        """Until `promql` returns `count` series (0: the series went stale after a removal)."""
        await self.wait_until(
            promql, lambda r: len(_values(r)) == count, what=f"{count} series of {promql}", timeout=timeout
        )

    async def wait_until(self, promql: str, done: Any, *, what: str, timeout: float = WAIT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                last = await self.query(promql)
                if last.get("status") == "success" and done(last):
                    return
            await asyncio.sleep(0.1)
        raise AssertionError(f"prometheus never showed {what} within {timeout}s; last answer {last}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _spawn(self, config: Path) -> None:
        data = self.workdir / f"data-{self.port}"
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    async def _wait_ready(self) -> bool:
        assert self._session is not None and self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            with contextlib.suppress(aiohttp.ClientError):
                async with self._session.get(f"{self.url}/-/ready") as response:
                    if response.status == 200:
                        return True
            await asyncio.sleep(0.05)
        return False

    def _reap(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()  # SIGTERM: Prometheus closes its TSDB and exits cleanly
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@dataclass
class PrometheusStack:
    exporter: Exporter
    prometheus: PrometheusServer

    @property
    def url(self) -> str:
        return self.prometheus.url


@contextlib.asynccontextmanager
async def running_prometheus(workdir: Path) -> AsyncIterator[PrometheusStack]:
    """An exporter plus a Prometheus scraping it, both stopped on exit."""
    binary = prometheus_binary()
    exporter = Exporter()
    await exporter.start()
    prometheus = PrometheusServer(binary, workdir, targets=[exporter.target])
    try:
        await prometheus.start()
        yield PrometheusStack(exporter, prometheus)
    finally:
        await prometheus.stop()
        await exporter.stop()


class SilentServer:
    """Accepts TCP connections, reads whatever comes, never answers: every request times out."""

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.connections = 0
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _hold(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        with contextlib.suppress(ConnectionError):
            while await reader.read(4096):
                pass


def _config(targets: list[str], rule_file: Path | None = None, alertmanager: str | None = None) -> str:
    quoted = ", ".join(f"'{t}'" for t in targets)
    alerting = ""
    if rule_file is not None:
        alerting += f"rule_files: ['{rule_file}']\n"
    if alertmanager is not None:
        alerting += f"alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['{alertmanager}']}}]\n"
    return (
        "global:\n"
        "  scrape_interval: 1s\n"
        "  evaluation_interval: 1s\n" + alerting + "scrape_configs:\n"
        f"  - job_name: {EXPORTER_JOB}\n"
        "    scrape_interval: 1s\n"
        "    scrape_timeout: 1s\n"
        f"    static_configs: [{{targets: [{quoted}]}}]\n"
    )


def _values(answer: dict[str, Any]) -> list[float]:
    data = answer.get("data") or {}
    if data.get("resultType") == "scalar":
        return [float(data["result"][1])]
    return [float(series["value"][1]) for series in data.get("result") or []]


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _bound_port(runner: web.AppRunner) -> int:
    port: int = runner.addresses[0][1]
    return port
