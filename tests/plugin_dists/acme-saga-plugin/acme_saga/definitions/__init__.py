"""Saga definitions shipped by the acme plugin."""
