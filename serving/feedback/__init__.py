"""Agents' corrections of the model's labels: stored (SQLAlchemy + Alembic), exported for training, scored."""
