"""Thin Slack adapters: each module exposes `register(app, service)`."""
