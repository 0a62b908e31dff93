"""Settings read from the environment; one frozen object, no global state."""

from __future__ import annotations

import os
import socket
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_PATH = PROJECT_ROOT / "data" / "cartwatch.db"
SAMPLE_DIR = PROJECT_ROOT / "data" / "sample"


DEFAULT_IDLE_MINUTES = 30.0


DEFAULT_LOCKOUT_ATTEMPTS = 5
DEFAULT_LOCKOUT_MINUTES = 15.0
DEFAULT_MONITOR_SECONDS = 300.0


def _number(name: str, text: str | None, default: float, what: str) -> float:
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 60 * 24 * 30 or (what == "a whole number" and not value.is_integer()):
        raise ValueError(f"{name} must be {what} above 0, not {text!r}")
    return value


def default_database_url() -> str:
    return f"sqlite:///{DEFAULT_DB_PATH}"


@dataclass(frozen=True)
class Settings:
    """Everything the core needs from its surroundings.

    database_url: SQLAlchemy URL (``CARTWATCH_DATABASE_URL``), SQLite file by default.
    ward_tz: IANA zone that decides what "day N" and a date-only time mean
        (``CARTWATCH_WARD_TZ``).
    site_config: TOML file with per-site rule threshold overrides and schedules
        (``CARTWATCH_SITE_CONFIG``); absent means the defaults in code.
    idle_minutes: a dashboard session idle for longer is signed out
        (``CARTWATCH_IDLE_MINUTES``, default 30).
    cookie_key: secret that signs the dashboard's sign-in cookie (``CARTWATCH_COOKIE_KEY``);
        absent means a random key generated once and kept in the database.
    display_token: the secret in the huddle TV's URL (``CARTWATCH_DISPLAY_TOKEN``); absent
        means the display path is off.
    lockout_attempts, lockout_minutes: after this many failed sign-ins of one user name
        within this many minutes, that name is refused for this many minutes
        (``CARTWATCH_LOCKOUT_ATTEMPTS``, default 5; ``CARTWATCH_LOCKOUT_MINUTES``, default 15).
    monitor_seconds: the monitor's cycle interval (``CARTWATCH_MONITOR_INTERVAL``, seconds,
        default 300); the huddle says the monitor is not running after two intervals.
    public_url: the app's address as people reach it (``CARTWATCH_PUBLIC_URL``), for the
        patient links in notifications; default http://localhost:8501.
    """

    database_url: str = field(default_factory=default_database_url)
    ward_tz: str = "UTC"
    site_config: Path | None = None
    sample_dir: Path = SAMPLE_DIR
    idle_minutes: float = DEFAULT_IDLE_MINUTES
    cookie_key: str | None = field(default=None, repr=False)
    display_token: str | None = field(default=None, repr=False)
    lockout_attempts: int = DEFAULT_LOCKOUT_ATTEMPTS
    lockout_minutes: float = DEFAULT_LOCKOUT_MINUTES
    monitor_seconds: float = DEFAULT_MONITOR_SECONDS
    public_url: str = "http://localhost:8501"

    @property
    def monitor_interval(self) -> timedelta:
        return timedelta(seconds=self.monitor_seconds)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.ward_tz)

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        env = os.environ
        site = env.get("CARTWATCH_SITE_CONFIG")
        values: dict[str, Any] = {  # one value per field, each of its field's type
            "database_url": env.get("CARTWATCH_DATABASE_URL") or default_database_url(),
            "ward_tz": env.get("CARTWATCH_WARD_TZ") or "UTC",
            "site_config": Path(site) if site else None,
            "idle_minutes": _number("CARTWATCH_IDLE_MINUTES", env.get("CARTWATCH_IDLE_MINUTES"),
                                    DEFAULT_IDLE_MINUTES, "a number of minutes"),
            "lockout_attempts": int(_number(
                "CARTWATCH_LOCKOUT_ATTEMPTS", env.get("CARTWATCH_LOCKOUT_ATTEMPTS"),
                DEFAULT_LOCKOUT_ATTEMPTS, "a whole number")),
            "lockout_minutes": _number(
                "CARTWATCH_LOCKOUT_MINUTES", env.get("CARTWATCH_LOCKOUT_MINUTES"),
                DEFAULT_LOCKOUT_MINUTES, "a number of minutes"),
            "monitor_seconds": _number(
                "CARTWATCH_MONITOR_INTERVAL", env.get("CARTWATCH_MONITOR_INTERVAL"),
                DEFAULT_MONITOR_SECONDS, "a number of seconds"),
            "public_url": (env.get("CARTWATCH_PUBLIC_URL") or "http://localhost:8501").rstrip("/"),
            "cookie_key": env.get("CARTWATCH_COOKIE_KEY") or None,
            "display_token": env.get("CARTWATCH_DISPLAY_TOKEN") or None,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def worker_name() -> str:
    """host:pid, naming this process in MonitorCycle and DeliveryAttempt rows."""
    return f"{socket.gethostname()}:{os.getpid()}"[:120]


def site_section(data: Mapping[str, Any] | str, name: str, keys: Collection[str], *,
                 source: str, error: type[ValueError]) -> dict[str, Any] | None:
    """The [name] table of a site TOML (the whole document, as text or parsed), or None when
    the document has none. Raises `error` naming the file when the text is not TOML, [name]
    is not a table, or it has a key outside `keys` (the sections' own parsers: notify,
    oidc, fhir)."""
    if isinstance(data, str):
        try:
            data = tomllib.loads(data)
        except tomllib.TOMLDecodeError as exc:
            raise error(f"{source}: not valid TOML: {exc}") from None
    table = data.get(name)
    if table is None:
        return None
    if not isinstance(table, dict):
        raise error(f"{source}: [{name}] must be a table")
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise error(f"{source}: [{name}] has unknown key(s) {unknown}; it takes "
                    f"{', '.join(sorted(keys))}")
    return table
