"""Backfill engine state: one row per run, one row per batch

Revision ID: 0002_backfill_state
Revises: 0001_shop_schema
Create Date: 2026-11-24 00:00:01

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002_backfill_state'
down_revision: Union[str, Sequence[str], None] = '0001_shop_schema'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table('backfill_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('scheduled_by', sa.String(length=64), nullable=True),
    sa.Column('executor', sa.String(length=16), nullable=True),
    sa.Column('key_type', sa.String(length=8), server_default='int', nullable=False),
    sa.Column('key_min', sa.String(length=255), nullable=True),
    sa.Column('key_max', sa.String(length=255), nullable=True),
    sa.Column('cursor', sa.String(length=255), nullable=True),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('max_parallel', sa.Integer(), server_default='1', nullable=False),
    sa.Column('rows_total', sa.BigInteger(), nullable=True),
    sa.Column('rows_total_exact', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('rows_scanned', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('rows_done', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('batches_done', sa.Integer(), server_default='0', nullable=False),
    sa.Column('batches_failed', sa.Integer(), server_default='0', nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('wait_reason', sa.Text(), nullable=True),
    sa.Column('next_window_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backfill_runs'))
    )
    with op.batch_alter_table('backfill_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backfill_runs_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_backfill_runs_status'), ['status'], unique=False)

    op.create_table('backfill_batches',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('key_after', sa.String(length=255), nullable=True),
    sa.Column('key_end', sa.String(length=255), nullable=False),
    sa.Column('rows_in_range', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), server_default='pending', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('batch_size', sa.Integer(), nullable=False),
    sa.Column('rows_affected', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['run_id'], ['backfill_runs.id'], name=op.f('fk_backfill_batches_run_id_backfill_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backfill_batches')),
    sa.UniqueConstraint('run_id', 'seq', name=op.f('uq_backfill_batches_run_id_seq'))
    )
    with op.batch_alter_table('backfill_batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backfill_batches_run_id'), ['run_id'], unique=False)
        batch_op.create_index('ix_backfill_batches_run_id_status', ['run_id', 'status', 'finished_at'], unique=False)



    op.create_table('backfill_transitions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=128), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['backfill_runs.id'], name=op.f('fk_backfill_transitions_run_id_backfill_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backfill_transitions'))
    )
    with op.batch_alter_table('backfill_transitions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backfill_transitions_run_id'), ['run_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('backfill_transitions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backfill_transitions_run_id'))

    op.drop_table('backfill_transitions')
    with op.batch_alter_table('backfill_batches', schema=None) as batch_op:
        batch_op.drop_index('ix_backfill_batches_run_id_status')
        batch_op.drop_index(batch_op.f('ix_backfill_batches_run_id'))

    op.drop_table('backfill_batches')
    with op.batch_alter_table('backfill_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backfill_runs_status'))
        batch_op.drop_index(batch_op.f('ix_backfill_runs_name'))

    op.drop_table('backfill_runs')
