"""Notifications that leave the app (design.md "Live monitoring"): contact points written as
Apprise URLs in the site TOML, an outbox written with the alert change, and delivery by the
monitor with retries, quiet hours, cancellation on acknowledgement and every attempt kept.

- config: `notify_config(settings)` -> `NotifyConfig` (contacts and policy);
- outbox: `enqueue(...)`, called by core.monitoring.alerts in the alert change's transaction, and
the
  read helpers of the admin page (`contact_rows`, `delivery_log`, `failed_deliveries`);
- delivery: `deliver_pending(...)` (the monitor) and `send_test(...)` (the admin page).

Every notification carries the screening-flag sentence: an alert is a screening flag for
clinician review, never a diagnosis.
"""

from core.monitoring.notify.config import (
    Contact,
    NotifyConfig,
    NotifyConfigError,
    notify_config,
    parse_notify_config,
)
from core.monitoring.notify.delivery import (
    DeliveryReport,
    deliver_pending,
    send,
    send_test,
    webhook_id,
)
from core.monitoring.notify.outbox import (
    alert_payload,
    contact_rows,
    delivery_log,
    enqueue,
    failed_deliveries,
    patient_for_link,
    patient_link,
)

__all__ = [
    "Contact", "DeliveryReport", "NotifyConfig", "NotifyConfigError", "alert_payload",
    "contact_rows", "deliver_pending", "delivery_log", "enqueue", "failed_deliveries",
    "notify_config", "parse_notify_config", "patient_for_link", "patient_link", "send",
    "send_test", "webhook_id",
]
