"""Who may do what, checked in core for every write (the pages only hide what is refused).

`require(role, action)` raises `NotAllowed` (a PermissionError) with a sentence naming the
role and the roles that may. A `role` of None is a trusted internal caller: the operator's
command line, seeding, the scheduled `evaluate`. The dashboard always passes the signed-in
user's role.
"""

from __future__ import annotations

from core.store.models import Role

D, V, N, C, A = (Role.DISPLAY.value, Role.VIEWER.value, Role.NURSE.value, Role.CLINICIAN.value,
                 Role.ADMIN.value)

PERMISSIONS: dict[str, frozenset[str]] = {
    "enter_data": frozenset({N, C, A}),
    "correct_data": frozenset({N, C, A}),
    "acknowledge_alert": frozenset({C, A}),
    "snooze_alert": frozenset({C, A}),
    "document_episode": frozenset({C, A}),
    "manage_users": frozenset({A}),
    "site_settings": frozenset({A}),
    "rule_thresholds": frozenset({A}),
    "view": frozenset({V, N, C, A}),
    "view_huddle": frozenset({D, V, N, C, A}),
    "own_account": frozenset({D, V, N, C, A}),
}

DESCRIPTIONS = {
    "enter_data": "enter or import data",
    "correct_data": "correct or verify data",
    "acknowledge_alert": "acknowledge alerts",
    "snooze_alert": "snooze alerts",
    "document_episode": "document CRS, ICANS or IEC-HS episodes",
    "manage_users": "manage users",
    "site_settings": "change site settings",
    "rule_thresholds": "change rule thresholds",
    "view": "view patient data",
    "view_huddle": "view the huddle screen",
    "own_account": "change their own password",
}
_ORDER = [r.value for r in Role]


class NotAllowed(PermissionError):
    """A role tried an action it may not do; the message says who may."""

    def __init__(self, role: str, action: str) -> None:
        self.role, self.action = role, action
        who = ", ".join(r for r in _ORDER if r in PERMISSIONS[action])
        if role not in _ORDER:
            text = (f"Unknown role {role!r}: nobody with it may {DESCRIPTIONS[action]} "
                    f"(roles are {', '.join(_ORDER)}).")
        else:
            text = (f"A {role} may not {DESCRIPTIONS[action]}; this needs one of: {who}. "
                    "Nothing was saved.")
        super().__init__(text)


def allowed(role: str | None, action: str) -> bool:
    """Whether `role` may do `action` (None = trusted internal caller: always)."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(PERMISSIONS)}")
    return role is None or str(role) in PERMISSIONS[action]


def require(role: str | None, action: str) -> None:
    """Raise NotAllowed unless `role` may do `action`."""
    if not allowed(role, action):
        raise NotAllowed(str(role), action)


def actions_for(role: str) -> list[str]:
    return [a for a, roles in PERMISSIONS.items() if role in roles]
