"""fhir-sync: pull new Observations (laboratory, vital-signs) and MedicationAdministrations
from the site's FHIR R4 server since the last watermark (design.md, `fhir-sync [--once]`).

- config.py: the [fhir] table of the site TOML (server, authentication, paging, scope);
- http.py: the HTTP client (bearer or SMART Backend Services token, Retry-After, 401);
- sync.py: one pass (patient scope, incremental paged searches, import, watermarks).

`python -m core fhir-sync` runs a pass every monitor interval (`--once`: one pass and a
summary); the monitor runs one pass per cycle when [fhir] base_url is configured.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy.engine import Engine

from core.capture.fhirsync.config import FhirConfig, FhirConfigError, fhir_config, parse_fhir_config
from core.capture.fhirsync.http import FhirClient, FhirError
from core.capture.fhirsync.sync import SyncReport, TypeReport, sync_once
from core.config import Settings

log = logging.getLogger(__name__)

__all__ = ["FhirClient", "FhirConfig", "FhirConfigError", "FhirError", "SyncReport",
           "TypeReport", "fhir_config", "parse_fhir_config", "run_forever", "sync_once",
           "sync_configured"]


def sync_configured(engine: Engine, settings: Settings) -> SyncReport | None:
    """One pass against the server in the site TOML's [fhir]; None when none is configured.
    A [fhir] table that cannot be used raises FhirConfigError (naming the file and key)."""
    config = fhir_config(settings)
    if config is None:
        return None
    return sync_once(engine, settings, config)


def run_forever(engine: Engine, settings: Settings, config: FhirConfig,
                stop: threading.Event) -> None:
    """A pass every monitor interval until `stop` is set; a pass that fails is logged and
    the next one runs on time."""
    interval = settings.monitor_interval.total_seconds()
    log.info("fhir-sync started server=%s interval_seconds=%g", config.base_url, interval)
    with FhirClient(config) as client:
        while not stop.is_set():
            began = time.monotonic()
            try:
                report = sync_once(engine, settings, config, client=client)
                for line in report.lines():
                    log.info(line)
            except Exception as exc:  # the database went away, ...: say so, try next time
                log.error("fhir-sync pass failed", exc_info=exc)
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
    log.info("fhir-sync stopped")
