"""A real Prometheus Alertmanager for integration tests, routing every alert to one webhook.

    async with running_alertmanager(tmp_dir, webhook=url, token=TOKEN) as alertmanager:
        prometheus = PrometheusServer(..., rules=RULES, alertmanager=alertmanager.target)

Alertmanager runs on 127.0.0.1 with clustering off (`--cluster.listen-address=`), a throwaway
storage directory, and a route whose `group_wait` is short so a new alert is posted within about a
second. The webhook carries `Authorization: Bearer <token>` (`http_config.authorization`).

The binary is `ALERTMANAGER_BIN`, else `prometheus-alertmanager` (Debian's name) or `alertmanager`
on PATH: missing, the tests skip, unless REQUIRE_INTEGRATION=1 (CI), where they fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp

from tests.integration import unavailable
from tests.prometheus_harness import START_TIMEOUT, free_port


def alertmanager_binary() -> str:
    binary = (
        os.environ.get("ALERTMANAGER_BIN")
        or shutil.which("prometheus-alertmanager")
        or shutil.which("alertmanager")
    )
    if binary and os.access(binary, os.X_OK):
        return binary
    unavailable(
        "alertmanager binary not found (set ALERTMANAGER_BIN or install Debian's prometheus-alertmanager)"
    )


def config(*, webhook: str, token_file: Path) -> str:
    return (
        "route:\n"
        "  receiver: cutover-bot\n"
        "  group_by: [cutover_plan, cutover_gate]\n"
        "  group_wait: 200ms\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: cutover-bot\n"
        "    webhook_configs:\n"
        f"      - url: '{webhook}'\n"
        "        send_resolved: true\n"
        "        http_config:\n"
        "          authorization:\n"
        "            type: Bearer\n"
        f"            credentials_file: '{token_file}'\n"
    )


class AlertmanagerServer:
    def __init__(self, binary: str, workdir: Path, *, webhook: str, token: str) -> None:
        self.binary = binary
        self.workdir = workdir
        self.webhook = webhook
        self.token = token
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "alertmanager.log"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def start(self) -> None:
        token_file = self.workdir / "cutover-bot.token"
        token_file.write_text(self.token, encoding="utf-8")
        config_file = self.workdir / "alertmanager.yml"
        config_file.write_text(config(webhook=self.webhook, token_file=token_file), encoding="utf-8")
        for _attempt in range(3):
            self.port = free_port()
            self._spawn(config_file)
            if await self._wait_ready():
                return
            self.stop()
        raise RuntimeError(f"alertmanager did not start; log:\n{self.log_tail()}")

    def _spawn(self, config_file: Path) -> None:
        log = self.log_path.open("ab")
        self._process = subprocess.Popen(
            [
                self.binary,
                f"--config.file={config_file}",
                f"--storage.path={self.workdir / f'data-{self.port}'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()

    async def _wait_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    return False
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"http://{self.target}/-/ready") as response:
                        if response.status == 200:
                            return True
                await asyncio.sleep(0.05)
        return False

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.asynccontextmanager
async def running_alertmanager(
    workdir: Path, *, webhook: str, token: str
) -> AsyncIterator[AlertmanagerServer]:
    server = AlertmanagerServer(alertmanager_binary(), workdir, webhook=webhook, token=token)
    try:
        await server.start()
        yield server
    finally:
        server.stop()
