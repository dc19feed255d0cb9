"""Fails on import, as a plugin with a missing dependency does."""

raise RuntimeError("acme_broken cannot start: libfoo is missing")
