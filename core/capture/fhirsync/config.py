"""The FHIR server fhir-sync pulls from, read from the site TOML's `[fhir]` table.

    [fhir]
    base_url = "https://ehr.example.org/fhir/R4"
    auth = "smart"                 # none | bearer | smart (SMART Backend Services)
    patient_identifier_system = "urn:oid:1.2.36.146.595.217.0.1"  # whose value is our ID
    # bearer: the token is read from this environment variable, never written here
    token_env = "CARTWATCH_FHIR_TOKEN"
    # smart: a client-credentials token obtained with a private-key JWT (RS384 or ES384)
    client_id = "cartwatch"
    private_key_file = "/etc/cartwatch/fhir-client.pem"
    key_id = "cartwatch-2026"      # the kid of the key in the JWKS the server knows
    token_url = ""                 # empty: from <base_url>/.well-known/smart-configuration
    scope = "system/Observation.rs system/MedicationAdministration.rs system/Patient.rs"
    page_size = 1000               # _count of each search (a server may send fewer)
    patients_per_query = 20        # patients batched in one search
    resource_types = ["Observation", "MedicationAdministration"]
    max_retry_after_seconds = 60   # a longer Retry-After is cut to this
    timeout_seconds = 30

Like [notify], a typo is an error naming the file and the key, never a silent default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.config import Settings, site_section

AUTH_MODES = ("none", "bearer", "smart")
RESOURCE_TYPES = ("Observation", "MedicationAdministration")
OBSERVATION_CATEGORIES = ("laboratory", "vital-signs")
DEFAULT_SCOPE = "system/Observation.rs system/MedicationAdministration.rs system/Patient.rs"
ALGORITHMS = ("RS384", "ES384")
_KEYS = frozenset({"base_url", "auth", "patient_identifier_system", "token_env", "client_id",
                   "private_key_file", "key_id", "algorithm", "token_url", "scope",
                   "page_size", "patients_per_query", "resource_types",
                   "max_retry_after_seconds", "timeout_seconds"})
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class FhirConfigError(ValueError):
    """The [fhir] table cannot be used as written."""


@dataclass(frozen=True)
class FhirConfig:
    """Where and how fhir-sync pulls (see the module docstring for the TOML keys)."""

    base_url: str
    auth: str = "none"
    patient_identifier_system: str | None = None
    token_env: str | None = None
    client_id: str | None = None
    private_key_file: Path | None = None
    key_id: str | None = None
    algorithm: str | None = None  # None: RS384 for an RSA key, ES384 for an EC key
    token_url: str | None = None
    scope: str = DEFAULT_SCOPE
    page_size: int = 1000
    patients_per_query: int = 20
    resource_types: tuple[str, ...] = RESOURCE_TYPES
    max_retry_after_seconds: float = 60.0
    timeout_seconds: float = 30.0
    source: str = "<string>"


def _fail(source: str, key: str, message: str) -> FhirConfigError:
    return FhirConfigError(f"{source}: [fhir] {key} {message}")


def _text(table: dict[str, Any], key: str, source: str) -> str | None:
    value = table.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _fail(source, key, f"must be a string, not {value!r}")
    return value.strip()


def _number(table: dict[str, Any], key: str, default: float, source: str, *, low: float,
            high: float, whole: bool = False) -> float:
    value = table.get(key, default)
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not low <= value <= high or (whole and not float(value).is_integer())):
        kind = "a whole number" if whole else "a number"
        raise _fail(source, key, f"must be {kind} from {low:g} to {high:g}, not {value!r}")
    return float(value)


def parse_fhir_config(data: dict[str, Any] | str, *, source: str = "<string>",
                      base_dir: Path | None = None) -> FhirConfig | None:
    """The [fhir] part of a site TOML (the whole document, as text or parsed); None when there
    is no [fhir] table or it has no base_url (no server: fhir-sync has nothing to do).
    A relative private_key_file is read relative to `base_dir` (the TOML's folder)."""
    table = site_section(data, "fhir", _KEYS, source=source, error=FhirConfigError)
    if table is None:
        return None
    base_url = _text(table, "base_url", source)
    if base_url is None:
        return None
    if not re.match(r"https?://[^/\s]+", base_url):
        raise _fail(source, "base_url", f"must be an http:// or https:// URL, not {base_url!r}")
    auth = _text(table, "auth", source) or "none"
    if auth not in AUTH_MODES:
        raise _fail(source, "auth", f"must be one of {', '.join(AUTH_MODES)}, not {auth!r}")
    token_env = _text(table, "token_env", source)
    if token_env is not None and not _ENV_NAME.fullmatch(token_env):
        raise _fail(source, "token_env", f"must name an environment variable, not "
                                         f"{token_env!r} (the token itself never goes here)")
    if auth == "bearer" and token_env is None:
        raise _fail(source, "token_env", "is needed with auth = \"bearer\": the name of the "
                                         "environment variable holding the token")
    key_file = _text(table, "private_key_file", source)
    key_path = None if key_file is None else Path(key_file)
    if key_path is not None and not key_path.is_absolute() and base_dir is not None:
        key_path = base_dir / key_path
    if auth == "smart":
        for key, value in (("client_id", _text(table, "client_id", source)),
                           ("private_key_file", key_file), ("key_id",
                                                            _text(table, "key_id", source))):
            if value is None:
                raise _fail(source, key, "is needed with auth = \"smart\"")
    algorithm = _text(table, "algorithm", source)
    if algorithm is not None and algorithm not in ALGORITHMS:
        raise _fail(source, "algorithm", f"must be one of {', '.join(ALGORITHMS)} (SMART "
                                         f"Backend Services), not {algorithm!r}")
    token_url = _text(table, "token_url", source)
    if token_url is not None and not re.match(r"https?://[^/\s]+", token_url):
        raise _fail(source, "token_url", f"must be an http:// or https:// URL, not "
                                         f"{token_url!r}")
    types = table.get("resource_types", list(RESOURCE_TYPES))
    if (not isinstance(types, list) or not types
            or any(t not in RESOURCE_TYPES for t in types)):
        raise _fail(source, "resource_types", f"must be a list drawn from "
                                              f"{list(RESOURCE_TYPES)}, not {types!r}")
    return FhirConfig(
        base_url=base_url.rstrip("/"), auth=auth,
        patient_identifier_system=_text(table, "patient_identifier_system", source),
        token_env=token_env, client_id=_text(table, "client_id", source),
        private_key_file=key_path, key_id=_text(table, "key_id", source), algorithm=algorithm,
        token_url=token_url, scope=_text(table, "scope", source) or DEFAULT_SCOPE,
        page_size=int(_number(table, "page_size", 1000, source, low=1, high=5000,
                              whole=True)),
        patients_per_query=int(_number(table, "patients_per_query", 20, source, low=1,
                                       high=200, whole=True)),
        resource_types=tuple(dict.fromkeys(types)),
        max_retry_after_seconds=_number(table, "max_retry_after_seconds", 60, source, low=0,
                                        high=3600),
        timeout_seconds=_number(table, "timeout_seconds", 30, source, low=1, high=600),
        source=source,
    )


def fhir_config(settings: Settings) -> FhirConfig | None:
    """The FHIR server of this deployment (Settings.site_config's [fhir]); None if none."""
    if settings.site_config is None:
        return None
    path = Path(settings.site_config)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FhirConfigError(f"cannot read site configuration {path}: {exc.strerror}") from None
    return parse_fhir_config(text, source=str(path), base_dir=path.parent)
