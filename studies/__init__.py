"""Nightly study definitions, scheduling, drift checks and reports."""
