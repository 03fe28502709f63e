"""The durable ledger: incremental rating on SQLite, idempotent batches, month close, alerts."""
