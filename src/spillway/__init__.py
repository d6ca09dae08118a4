"""Spillway: deliver engagement data into the customer's own cloud storage and streams."""

__version__ = "0.1.0"
