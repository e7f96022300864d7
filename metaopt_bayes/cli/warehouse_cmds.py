"""Warehouse commands: init, ingest, sql, views, runs."""

from __future__ import annotations
