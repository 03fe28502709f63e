"""The engine: kernel tables from a setup, encoding and charge order, usage, pricing, QPS, bills, rate and explain."""
