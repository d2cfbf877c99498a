"""corrections: an agent's labels for a post, the model version that answered and what it answered

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feedback_corrections",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("post_id", sa.String(256), nullable=False),
        sa.Column("agent", sa.String(256), nullable=False, server_default=""),
        sa.Column("queue", sa.String(256), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("urgency", sa.String(32), nullable=False),
        sa.Column("issue_type", sa.String(64), nullable=False),
        sa.Column("prior_channels", sa.JSON(), nullable=False),
        sa.Column("model_name", sa.String(128), nullable=False, server_default=""),
        sa.Column("model_version", sa.String(64), nullable=False, server_default=""),
        sa.Column("predicted_urgency", sa.String(32), nullable=True),
        sa.Column("predicted_issue_type", sa.String(64), nullable=True),
        sa.Column("predicted_prior_channels", sa.JSON(), nullable=True),
        sa.Column("predicted_source", sa.String(16), nullable=True),
        sa.Column("agree_urgency", sa.Boolean(), nullable=True),
        sa.Column("agree_issue_type", sa.Boolean(), nullable=True),
        sa.Column("agree_prior_channels", sa.Boolean(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("post_id", "agent", name="uq_feedback_post_agent"),
    )
    op.create_index("ix_feedback_corrections_model_version", "feedback_corrections", ["model_version"])


def downgrade() -> None:
    op.drop_index("ix_feedback_corrections_model_version", table_name="feedback_corrections")
    op.drop_table("feedback_corrections")
