"""What the API, the CLI, the UI and the Pinpoint routes all call: one module per thing a
user manages. Services take and return typed objects (``spillway.model``) and raise domain
errors (``spillway.errors``); the edges turn those into HTTP answers or exit codes.

- ``destinations``: connect, validate, update, rotate and delete destinations;
- ``exports``: create, change, run now, backfill and delete exports;
- ``profiles``: endpoints (user profiles): merge rules, upsert, read, delete;
- ``projects``: projects, integration keys and their scopes.
"""
