"""vasopressor administrations from the EHR (the source of the derived vasopressor counts)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('vasopressoradministration',
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('source_record_id', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('import_batch_id', sa.Integer(), nullable=True),
    sa.Column('row_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('entered_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('entered_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('supersedes_id', sa.Integer(), nullable=True),
    sa.Column('correction_reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('patient_pk', sa.Integer(), nullable=False),
    sa.Column('drug', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('started_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('ended_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('admin_status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.ForeignKeyConstraint(['import_batch_id'], ['importbatch.id'], ),
    sa.ForeignKeyConstraint(['patient_pk'], ['patient.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('vasopressoradministration', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vasopressoradministration_import_batch_id'),
                              ['import_batch_id'], unique=False)
        batch_op.create_index('ix_vasopressoradministration_patient_time',
                              ['patient_pk', 'started_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_vasopressoradministration_status'), ['status'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('vasopressoradministration', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vasopressoradministration_status'))
        batch_op.drop_index('ix_vasopressoradministration_patient_time')
        batch_op.drop_index(batch_op.f('ix_vasopressoradministration_import_batch_id'))

    op.drop_table('vasopressoradministration')
