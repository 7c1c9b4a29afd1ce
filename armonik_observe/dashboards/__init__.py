"""Grafana dashboards and Prometheus rules for the exporter's metrics, written as code.

`python -m armonik_observe.dashboards.generate` writes them under `dashboards/`; the queries they
share live in `queries.py`, so a dashboard panel and the recording rule of the same rate are one
expression at two scopes.
"""
