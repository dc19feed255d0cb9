"""A deliberately broken sagactl plugin."""
