"""The saga definitions shipped with sagactl, as YAML package data."""
