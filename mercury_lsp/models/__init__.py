"""Bundled model folders (package data)."""
