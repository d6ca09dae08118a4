"""Persistence: SQLAlchemy Core tables, named queries and Alembic migrations."""
