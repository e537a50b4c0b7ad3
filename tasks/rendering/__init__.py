"""Rendering: one request shape, one renderer interface, one render task for every subject."""
