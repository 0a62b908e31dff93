"""Single sign-on in core: the [oidc] site table, claims -> role (deny by default, highest
wins), the user row made at first sign-in and kept in line with the claims, and the audit."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from core.access.accounts import active_account, password_sign_in
from core.access.admin import change_own_password, reset_password, set_active
from core.access.identity import (
    OidcConfig,
    OidcConfigError,
    expired,
    parse_oidc_config,
    role_for,
    sign_in_external,
    username_for,
)
from core.access.users import check_password, create_user, is_external
from core.store.models import AuditLog, User

SITE = """
[oidc]
label = "Hospital account"
groups_claim = ["groups", "roles"]

[[oidc.role]]
group = "cart-viewers"
role = "viewer"

[[oidc.role]]
group = "cart-nurses"
role = "nurse"

[[oidc.role]]
group = "cart-clinicians"
role = "clinician"

[[oidc.role]]
group = "CARTWatch.Admin"
role = "admin"
"""
CONFIG = parse_oidc_config(SITE, source="site.toml")


@pytest.mark.parametrize("claims,role", [
    ({"groups": ["cart-nurses"]}, "nurse"),                                  # one group
    ({"groups": ["staff", "cart-nurses", "cart-clinicians"]}, "clinician"),  # highest wins
    ({"groups": ["cart-clinicians", "cart-viewers"]}, "clinician"),          # order irrelevant
    ({"groups": ["staff", "everyone"]}, None),                               # none mapped
    ({"groups": []}, None),
    ({}, None),                                                              # claim missing
    ({"groups": None}, None),
    ({"groups": 7}, None),                                                   # not a group
    ({"groups": "cart-nurses"}, "nurse"),                                    # a single text
    ({"roles": "CARTWatch.Admin"}, "admin"),                                 # app role, text
    ({"roles": ["CARTWatch.Admin"], "groups": ["cart-nurses"]}, "admin"),    # both claims
    ({"groups": ["Cart-Nurses"]}, None),                                     # exact match
    ({"groups": ["cart-nurses "]}, None),
    ({"group": ["cart-nurses"]}, None),                                      # other claim
])
def test_claims_map_to_the_highest_role_and_deny_by_default(claims: dict, role: str | None
                                                            ) -> None:
    assert role_for(CONFIG, claims) == role


@pytest.mark.parametrize("claims,configured,username", [
    ({"preferred_username": " kim.lee ", "email": "k@h.org", "sub": "1"}, None, "kim.lee"),
    ({"email": "k@h.org", "sub": "1"}, None, "k@h.org"),
    ({"preferred_username": "", "sub": "abc"}, None, "abc"),
    ({"sub": 5}, None, None),
    ({"upn": "kim@h.org", "preferred_username": "kim"}, ["upn"], "kim@h.org"),
])
def test_the_user_name_comes_from_the_first_claim_that_has_one(claims, configured, username):
    config = CONFIG if configured is None else OidcConfig(username_claims=tuple(configured))
    assert username_for(config, claims) == username


@pytest.mark.parametrize("claims,is_expired", [
    ({"exp": 2_000}, True), ({"exp": 1_000}, True), ({"exp": 2_001}, False),
    ({"exp": 2_000.5}, False), ({}, True), ({"exp": "3000"}, True), ({"exp": True}, True),
])
def test_an_id_token_is_expired_at_its_exp_or_without_one(claims, is_expired):
    assert expired(claims, now=2_000) is is_expired


@pytest.mark.parametrize("text,fragment", [
    ("[oidc]\nlabel = 'x'\n", "needs at least one [[oidc.role]]"),
    ("[oidc]\n[[oidc.role]]\ngroup = 'g'\nrole = 'boss'\n", "'boss' is not a role"),
    ("[oidc]\n[[oidc.role]]\ngroup = ''\nrole = 'nurse'\n", "group must be a non-empty"),
    ("[oidc]\n[[oidc.role]]\ngroup = 'g'\n", "exactly the keys group and role"),
    ("[oidc]\ngroup_claim = 'g'\n[[oidc.role]]\ngroup = 'g'\nrole = 'nurse'\n",
     "unknown key(s) ['group_claim']"),
    ("[oidc]\ngroups_claim = []\n[[oidc.role]]\ngroup = 'g'\nrole = 'nurse'\n",
     "groups_claim must be a claim name"),
    ("[oidc]\nprovider = 'my_idp'\n[[oidc.role]]\ngroup = 'g'\nrole = 'nurse'\n",
     "no underscore"),
    ("[oidc\n", "not valid TOML"),
])
def test_a_bad_oidc_table_is_refused_naming_file_and_key(text: str, fragment: str) -> None:
    with pytest.raises(OidcConfigError, match="site.toml") as err:
        parse_oidc_config(text, source="site.toml")
    assert fragment in str(err.value)


def test_no_oidc_table_means_single_sign_on_is_off_and_defaults_apply() -> None:
    assert parse_oidc_config("[notify]\n", source="site.toml") is None
    config = parse_oidc_config("[oidc]\n[[oidc.role]]\ngroup = 'g'\nrole = 'nurse'\n")
    assert config.groups_claims == ("groups",) and config.provider is None
    assert config.username_claims == ("preferred_username", "email", "sub")
    assert CONFIG.label == "Hospital account" and len(CONFIG.roles) == 4


def claims(sub: str, *groups: str, **more: object) -> dict:
    return {"iss": "https://idp.test", "sub": sub, "preferred_username": sub,
            "name": sub.title(), "groups": list(groups), "exp": time.time() + 3600, **more}


def rows(engine: Engine, actor: str) -> list[AuditLog]:
    with Session(engine) as s:
        return list(s.scalars(select(AuditLog).where(AuditLog.actor == actor)
                              .order_by(AuditLog.id)))


def test_first_sign_in_makes_an_external_user_and_later_ones_follow_the_groups(
        store: Engine) -> None:
    first = sign_in_external(store, CONFIG, claims("kim.lee", "cart-nurses"))
    assert first.refusal is None and first.account.role == "nurse"
    assert first.account.external and first.account.name == "Kim.Lee"
    with Session(store) as s:
        user = s.scalars(select(User).where(User.username == "kim.lee")).one()
        assert is_external(user.password_hash) and user.password_hash.endswith("idp.test")
    assert [r.action for r in rows(store, "kim.lee")] == ["create_user", "login"]
    assert rows(store, "kim.lee")[1].after["method"] == "oidc"

    again = sign_in_external(store, CONFIG, claims("KIM.LEE", "cart-nurses"))
    assert again.account.username == "kim.lee"  # the same row, whatever the case
    assert [r.action for r in rows(store, "kim.lee")][2:] == ["login"]  # nothing changed

    promoted = sign_in_external(store, CONFIG, claims("kim.lee", "cart-clinicians"))
    assert promoted.account.role == "clinician"
    change = rows(store, "kim.lee")[-2]
    assert (change.action, change.before["role"], change.after["role"]) == (
        "set_role", "nurse", "clinician")
    assert "cart-clinicians" in change.reason
    assert active_account(store, "kim.lee").role == "clinician"


def test_no_password_ever_opens_an_external_user(store: Engine) -> None:
    sign_in_external(store, CONFIG, claims("kim.lee", "cart-nurses"))
    marker = active_account(store, "kim.lee").password_hash
    for guess in ("", marker, "!sso:https://idp.test", "a long enough password"):
        assert not check_password(guess, marker)
        assert password_sign_in(store, "kim.lee", guess, attempts=50, minutes=15).account is None
    with pytest.raises(ValueError, match="identity provider"):
        reset_password(store, "kim.lee", "a new long password", "admin", actor_role="admin")
    with pytest.raises(ValueError, match="change your password there"):
        change_own_password(store, "kim.lee", marker, "a new long password", actor_role="nurse")
    assert is_external(active_account(store, "kim.lee").password_hash)


@pytest.mark.parametrize("groups", [(), ("staff",)])
def test_a_user_in_no_mapped_group_is_refused_audited_and_not_created(store: Engine,
                                                                      groups) -> None:
    out = sign_in_external(store, CONFIG, claims("sam.none", *groups))
    assert out.account is None
    assert out.refusal == ("Your account sam.none is not in a group that may use CAR-T Watch; "
                           "ask the ward's CAR-T Watch admin to add you to one.")
    (row,) = rows(store, "sam.none")
    assert (row.action, row.after["method"], row.after["groups"]) == (
        "login_refused", "oidc", list(groups))
    assert active_account(store, "sam.none") is None


def test_a_local_account_name_and_a_deactivated_user_are_refused(store: Engine) -> None:
    create_user(store, "admin.amy", "admin", "a long enough password")
    out = sign_in_external(store, CONFIG, claims("Admin.Amy", "CARTWatch.Admin"))
    assert out.account is None and "belongs to a local account" in out.refusal
    assert not is_external(active_account(store, "admin.amy").password_hash)  # untouched

    sign_in_external(store, CONFIG, claims("kim.lee", "cart-nurses"))
    set_active(store, "kim.lee", False, "admin.amy", actor_role="admin")
    out = sign_in_external(store, CONFIG, claims("kim.lee", "cart-nurses"))
    assert out.account is None and "has been deactivated" in out.refusal
    assert [r.action for r in rows(store, "kim.lee")][-1] == "login_refused"


def test_no_usable_user_name_is_refused(store: Engine) -> None:
    out = sign_in_external(store, CONFIG, {"sub": "x" * 80, "preferred_username": "y" * 70,
                                           "groups": ["cart-nurses"], "exp": time.time() + 60})
    assert out.account is None and "no usable user name" in out.refusal
