"""Alembic environment: migrations run on the connection fleet_api.db.migrate hands over."""

from alembic import context

from fleet_api.db import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through fleet_api.db.migrate(engine)")
context.configure(connection=connection, target_metadata=metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
