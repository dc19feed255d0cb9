"""Built-in actions; they register through the `sagactl.actions` entry points like any plugin."""
