"""The site's own tables: users and their roles, site settings, and the audit log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, String
from sqlmodel import Field, SQLModel

from core.store.models.times import utcnow


class Role(StrEnum):
    DISPLAY = "display"
    VIEWER = "viewer"
    NURSE = "nurse"
    CLINICIAN = "clinician"
    ADMIN = "admin"


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True, index=True)
    display_name: str = Field(max_length=120)
    role: Role = Field(sa_type=String(12))
    password_hash: str = Field(max_length=200)
    is_active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class SiteSetting(SQLModel, table=True):
    key: str = Field(primary_key=True, max_length=100)
    value: dict = Field(default_factory=dict, sa_column=Column(JSON))
    updated_by: str = Field(max_length=100)
    updated_at: datetime = Field(default_factory=utcnow)


class AuditLog(SQLModel, table=True):
    """Append-only: who, when, what changed (before/after) and why."""

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    actor: str = Field(max_length=100, index=True)
    action: str = Field(max_length=30)  # insert | correct | entered_in_error | import | login ...
    table_name: str = Field(max_length=40)
    record_id: str | None = Field(default=None, max_length=64)
    patient_id: str | None = Field(default=None, max_length=64, index=True)
    before: dict | None = Field(default=None, sa_column=Column(JSON))
    after: dict | None = Field(default=None, sa_column=Column(JSON))
    reason: str | None = Field(default=None, max_length=1000)
