"""Contact points and delivery policy, read from the site TOML's `[notify]` table.

    [notify]
    quiet_hours = "22:00-07:00"    # ward time; defers info and warning, never severe
    max_attempts = 5               # then the notification is failed (shown to admins)
    backoff_seconds = 60           # wait after the first failed attempt, doubled each time...
    backoff_max_seconds = 3600     # ...up to this
    lease_seconds = 300            # a 'sending' row older than this is taken up again
    include_identifiers = false    # true: payloads carry the study ID and the alert's values

    [[notify.contact]]
    name = "car-t on-call"
    url = "json://127.0.0.1:8080/page"   # any Apprise URL: mailto://, jsons://, workflows://
    min_severity = "severe"              # info | warning | severe
    rules = []                           # empty = every rule
    tier = 1                             # 1 = when the alert fires; 2 = when it escalates
    secret_env = "CARTWATCH_PAGER_SECRET"  # json/jsons: env var holding the "whsec_..." secret

A typo must never leave a default silently in force, so unknown keys, unknown rules and URLs
Apprise cannot use are errors naming the contact and the field. Secrets never live in the
file: a webhook's signing secret is read from the environment when it is sent, so a process
that only enqueues (the dashboard) does not need it.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.config import Settings, site_section

SEVERITIES = ("info", "warning", "severe")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
WEBHOOK_SCHEMES = frozenset({"json", "jsons"})
"""Schemes whose body is our JSON document, signed per Standard Webhooks."""

_NOTIFY_KEYS = frozenset({"quiet_hours", "max_attempts", "backoff_seconds",
                          "backoff_max_seconds", "lease_seconds", "include_identifiers",
                          "contact"})
_CONTACT_KEYS = frozenset({"name", "url", "min_severity", "rules", "tier", "secret_env"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")
RETIRED_SCHEMES = {
    "msteams": "Apprise 2.2 no longer has msteams:// (Microsoft retired Office 365 connectors; "
               "caronc/apprise#1565): create a Teams workflow ('Post to a channel when a "
               "webhook request is received') and write its URL as "
               "workflows://HOST:PORT/WORKFLOW/SIGNATURE",
}


class NotifyConfigError(ValueError):
    """The [notify] configuration cannot be used as written."""


@dataclass(frozen=True)
class Contact:
    """One contact point and the policy that decides what it receives."""

    name: str
    url: str = field(repr=False)  # may carry credentials (mailto user:password, a signature)
    min_severity: str = "severe"
    rules: tuple[str, ...] = ()  # empty = every rule
    tier: int = 1
    secret_env: str | None = None

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower()

    @property
    def is_webhook(self) -> bool:
        """json:// or jsons://: the body is our JSON document, signed."""
        return self.scheme in WEBHOOK_SCHEMES

    def accepts(self, severity: str, rule_id: str) -> bool:
        """The severity and rule policy (the tier is chosen by the event)."""
        if SEVERITY_RANK.get(severity, 0) < SEVERITY_RANK[self.min_severity]:
            return False
        return not self.rules or rule_id in self.rules


@dataclass(frozen=True)
class NotifyConfig:
    """Everything enqueue and delivery need: contacts, policy, and where links point."""

    contacts: tuple[Contact, ...] = ()
    quiet_hours: tuple[time, time] | None = None  # ward time, [start, end)
    max_attempts: int = 5
    backoff: timedelta = timedelta(seconds=60)
    backoff_max: timedelta = timedelta(hours=1)
    lease: timedelta = timedelta(minutes=5)
    include_identifiers: bool = False
    ward_tz: str = "UTC"
    public_url: str = "http://localhost:8501"
    source: str = "<none>"

    def contact(self, name: str) -> Contact | None:
        return next((c for c in self.contacts if c.name == name), None)

    def quiet_until(self, when: datetime, severity: str) -> datetime | None:
        """End of the quiet period `when` falls in (UTC), or None: send now.

        Quiet hours hold back info and warning only; a severe notification is never held.
        """
        if self.quiet_hours is None or severity == "severe":
            return None
        start, end = self.quiet_hours
        tz = ZoneInfo(self.ward_tz)
        local = when.astimezone(tz)
        t = local.time().replace(tzinfo=None)
        if start < end:  # e.g. 13:00-15:00, within one day
            if not start <= t < end:
                return None
            day = local.date()
        elif t >= start:  # e.g. 22:00-07:00, before midnight: ends tomorrow
            day = local.date() + timedelta(days=1)
        elif t < end:  # after midnight: ends today
            day = local.date()
        else:
            return None
        return datetime.combine(day, end, tzinfo=tz).astimezone(UTC)

    def backoff_after(self, attempts: int) -> timedelta:
        """Wait before the next attempt after `attempts` failed ones: doubling, capped."""
        return min(self.backoff * (2 ** max(attempts - 1, 0)), self.backoff_max)

    def describe_quiet_hours(self) -> str:
        if self.quiet_hours is None:
            return "none"
        start, end = self.quiet_hours
        return f"{start:%H:%M}–{end:%H:%M} ward time ({self.ward_tz})"


class _AppriseLines(logging.Handler):
    """What Apprise logs at WARNING or above in this thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


@contextmanager
def apprise_messages() -> Iterator[list[str]]:
    """Collect Apprise's warnings and errors of this thread: its calls answer only
    True/False (or None), the reason is in its log."""
    handler = _AppriseLines()
    logger = logging.getLogger("apprise")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def _fail(source: str, where: str, text: str) -> NotifyConfigError:
    return NotifyConfigError(f"{source}: {where}: {text}")


def _clock(text: str) -> time:
    m = _CLOCK.fullmatch(text.strip())
    if not m or int(m.group(1)) > 23 or int(m.group(2)) > 59:
        raise ValueError(text)
    return time(int(m.group(1)), int(m.group(2)))


def _quiet_hours(value: Any, source: str) -> tuple[time, time] | None:
    if value in (None, ""):
        return None
    where = "[notify] quiet_hours"
    if not isinstance(value, str) or value.count("-") != 1:
        raise _fail(source, where, f"must look like \"22:00-07:00\" (ward time), not {value!r}")
    a, b = value.split("-")
    try:
        start, end = _clock(a), _clock(b)
    except ValueError:
        raise _fail(source, where, f"must look like \"22:00-07:00\" (ward time), "
                                   f"not {value!r}") from None
    if start == end:
        raise _fail(source, where, f"start and end are the same ({value!r}); leave it out "
                                   "for no quiet hours")
    return start, end


def _number(table: dict[str, Any], key: str, default: float, source: str, *,
            minimum: float, maximum: float, whole: bool = False) -> float:
    value = table.get(key, default)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and whole:
        ok = float(value).is_integer()
    if not ok or not minimum <= value <= maximum:
        kind = "a whole number" if whole else "a number"
        raise _fail(source, f"[notify] {key}",
                    f"must be {kind} from {minimum:g} to {maximum:g}, not {value!r}")
    return float(value)


def _check_url(name: str, url: Any, source: str) -> str:
    """The URL as Apprise will use it; refuses what Apprise cannot instantiate."""
    import apprise

    where = f"contact {name!r} url"
    if not isinstance(url, str) or "://" not in url:
        raise _fail(source, where, f"must be an Apprise URL such as json://HOST:PORT/PATH or "
                                   f"mailto://HOST:PORT?to=ADDRESS, not {url!r}")
    scheme = url.split("://", 1)[0].lower()
    if scheme in RETIRED_SCHEMES:
        raise _fail(source, where, RETIRED_SCHEMES[scheme])
    with apprise_messages() as said:
        plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        why = [line for line in said if not line.startswith("Could not load")]
        hint = ""
        if scheme in ("mailto", "mailtos"):
            hint = (" (write mailto://SMTPHOST:PORT?from=ADDRESS&to=ADDRESS, adding "
                    "&mode=insecure for a relay without TLS)")
        raise _fail(source, where, f"Apprise cannot use the {scheme}:// URL as written"
                                   + (f": {'; '.join(why)}" if why else
                                      " (unknown scheme, or a required part is missing)")
                                   + hint)
    if scheme in WEBHOOK_SCHEMES and getattr(plugin, "payload_extras", None):
        raise _fail(source, where, "a json:// URL may not set payload fields (:key=value): "
                                   "CAR-T Watch writes and signs the body itself")
    return url


def _contact(raw: Any, index: int, source: str,
             known_rules: Collection[str] | None) -> Contact:
    label = f"[[notify.contact]] #{index + 1}"
    if not isinstance(raw, dict):
        raise _fail(source, label, "must be a table")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 100:
        raise _fail(source, f"{label} name", f"must be a text of 1-100 characters, not {name!r}")
    name = name.strip()
    where = f"contact {name!r}"
    unknown = sorted(set(raw) - _CONTACT_KEYS)
    if unknown:
        raise _fail(source, where, f"unknown field(s) {unknown}; a contact takes "
                                   f"{', '.join(sorted(_CONTACT_KEYS))}")
    url = _check_url(name, raw.get("url"), source)
    severity = raw.get("min_severity", "severe")
    if severity not in SEVERITIES:
        raise _fail(source, f"{where} min_severity",
                    f"must be one of {', '.join(SEVERITIES)}, not {severity!r}")
    rules = raw.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
        raise _fail(source, f"{where} rules", f"must be a list of rule ids, not {rules!r}")
    if known_rules is not None:
        bad = sorted(set(rules) - set(known_rules))
        if bad:
            raise _fail(source, f"{where} rules", f"unknown rule id(s) {bad}; known: "
                                                  f"{', '.join(sorted(known_rules))}")
    tier = raw.get("tier", 1)
    if tier not in (1, 2) or isinstance(tier, bool):
        raise _fail(source, f"{where} tier", f"must be 1 (when the alert fires) or 2 (when it "
                                             f"escalates unacknowledged), not {tier!r}")
    secret_env = raw.get("secret_env")
    scheme = url.split("://", 1)[0].lower()
    if scheme in WEBHOOK_SCHEMES:
        if not isinstance(secret_env, str) or not _ENV_NAME.fullmatch(secret_env):
            raise _fail(source, f"{where} secret_env",
                        "a json:// or jsons:// contact is signed (Standard Webhooks): name the "
                        "environment variable that holds its \"whsec_...\" secret, e.g. "
                        f"secret_env = \"CARTWATCH_WEBHOOK_SECRET\" (got {secret_env!r})")
    elif secret_env is not None:
        raise _fail(source, f"{where} secret_env",
                    f"only json:// and jsons:// contacts are signed; {scheme}:// takes none")
    return Contact(name=name, url=url, min_severity=severity, rules=tuple(rules), tier=tier,
                   secret_env=secret_env)


def parse_notify_config(data: dict[str, Any] | str, *, source: str = "<string>",
                        ward_tz: str = "UTC", public_url: str = "http://localhost:8501",
                        known_rules: Collection[str] | None = None) -> NotifyConfig:
    """The [notify] part of a site TOML (the whole document, as text or parsed).

    `known_rules`: rule ids a contact's `rules` may name (None: not checked).
    Raises NotifyConfigError (a ValueError) naming the file, the contact and the field.
    """
    base = NotifyConfig(ward_tz=ward_tz, public_url=public_url.rstrip("/"), source=source)
    table = site_section(data, "notify", _NOTIFY_KEYS, source=source, error=NotifyConfigError)
    if table is None:
        return base
    raw_contacts = table.get("contact", [])
    if not isinstance(raw_contacts, list):
        raise _fail(source, "[notify] contact", "write each contact as [[notify.contact]]")
    contacts = tuple(_contact(c, i, source, known_rules) for i, c in enumerate(raw_contacts))
    names = [c.name for c in contacts]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise _fail(source, f"contact {dupes[0]!r} name", "is used twice; names must be unique "
                                                          "(they key the delivery log)")
    include = table.get("include_identifiers", False)
    if not isinstance(include, bool):
        raise _fail(source, "[notify] include_identifiers", f"must be true or false, not "
                                                            f"{include!r}")
    backoff = _number(table, "backoff_seconds", 60, source, minimum=1, maximum=86_400)
    backoff_max = _number(table, "backoff_max_seconds", max(3600, backoff), source,
                          minimum=backoff, maximum=7 * 86_400)
    return NotifyConfig(
        contacts=contacts,
        quiet_hours=_quiet_hours(table.get("quiet_hours"), source),
        max_attempts=int(_number(table, "max_attempts", 5, source, minimum=1, maximum=50,
                                 whole=True)),
        backoff=timedelta(seconds=backoff),
        backoff_max=timedelta(seconds=backoff_max),
        lease=timedelta(seconds=_number(table, "lease_seconds", 300, source, minimum=1,
                                        maximum=86_400)),
        include_identifiers=include,
        ward_tz=ward_tz, public_url=public_url.rstrip("/"), source=source,
    )


@lru_cache(maxsize=8)
def _load(path: str, stamp: tuple[int, int], ward_tz: str, public_url: str) -> NotifyConfig:
    from core.rules.catalog import all_specs

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise NotifyConfigError(f"cannot read site configuration {path}: {exc.strerror}") from None
    return parse_notify_config(text, source=path, ward_tz=ward_tz, public_url=public_url,
                               known_rules={s.rule.id for s in all_specs()})


def notify_config(settings: Settings) -> NotifyConfig:
    """The contact points and policy of this deployment (Settings.site_config).

    No site file, or no [notify] in it: no contacts, so nothing is ever enqueued. Parsed once
    per version of the file (its mtime and size), as evaluation asks on every write.
    """
    base = NotifyConfig(ward_tz=settings.ward_tz, public_url=settings.public_url.rstrip("/"))
    if settings.site_config is None:
        return base
    path = Path(settings.site_config)
    try:
        st = path.stat()
    except OSError as exc:
        raise NotifyConfigError(f"cannot read site configuration {path}: {exc.strerror}") from None
    return _load(str(path), (st.st_mtime_ns, st.st_size), settings.ward_tz, settings.public_url)
