"""Configuration from the environment (pydantic-settings). Secrets never reach logs or Slack."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

SLACK_API_DEFAULT = "https://slack.com/api/"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr = SecretStr("")
    slack_signing_secret: SecretStr = SecretStr("")
    slack_app_token: SecretStr = SecretStr("")
    slack_api_url: str = SLACK_API_DEFAULT
    database_url: str = "sqlite+aiosqlite:///cutover.db"
    cutover_plans_dir: str = "plans"
    port: int = Field(default=3000, ge=1, le=65535)
    # Send the outbox at most this many messages at once; Slack's tier limits do the rest.
    dispatch_concurrency: int = Field(default=8, ge=1, le=64)
    # chat.postMessage calls per second this workspace allows the bot, all replicas together (a
    # cap on the shared pace, bot.pace; 0: unknown, learned from the first 429 of any replica).
    # Set it a little under the allowance and a large fan-out never meets a 429.
    slack_post_rate: float = Field(default=0, ge=0, le=1000)

    # This replica's identity for the claims it takes (inbox and outbox rows). Stable across
    # restarts (a StatefulSet pod name, a compose service name) lets a restarted replica take its
    # own claimed rows back at once; empty: host name and pid (stable for a container's pid 1).
    cutover_replica_id: str = ""
    # Seconds a stopping replica gives the requests it is processing before releasing them.
    cutover_shutdown_grace: float = Field(default=8.0, ge=0, le=120)

    # Seconds Slack waits at most for the 200 while a request is processed (Slack allows 3), when
    # its listener has not acked before (bot/intake.py); past it Slack hears an empty 200 and the
    # processing goes on. 0: an empty 200 as soon as it is written down.
    cutover_ack_deadline: float = Field(default=2.0, ge=0, le=2.5)
    # Seconds an inbox claim lasts unless renewed: how long a dead replica's requests wait.
    cutover_inbox_lease: float = Field(default=15.0, ge=1, le=300)

    # The bearer token Alertmanager sends on `POST /alertmanager` (its webhook's
    # `http_config.authorization.credentials`); empty: the route refuses every request.
    cutover_alertmanager_token: SecretStr = SecretStr("")

    def missing_for_http(self) -> list[str]:
        """Names of required variables that are missing or empty for `serve` over HTTP."""
        missing = []
        if not self.slack_signing_secret.get_secret_value().strip():
            missing.append("SLACK_SIGNING_SECRET")
        if not self.slack_bot_token.get_secret_value().strip():
            missing.append("SLACK_BOT_TOKEN")
        return missing

    def missing_for_socket_mode(self) -> list[str]:
        missing = [] if self.slack_bot_token.get_secret_value().strip() else ["SLACK_BOT_TOKEN"]
        if not self.slack_app_token.get_secret_value().strip():
            missing.append("SLACK_APP_TOKEN")
        return missing

    def rates(self) -> dict[str, float]:
        """The dispatcher's known per-method rates (calls per second)."""
        return {"chat.postMessage": self.slack_post_rate} if self.slack_post_rate > 0 else {}

    @property
    def api_url(self) -> str:
        return self.slack_api_url if self.slack_api_url.endswith("/") else self.slack_api_url + "/"
