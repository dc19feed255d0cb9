"""A test plugin for sagactl: actions, a command, a definitions folder, a builder."""

# Counts factory calls, so a test can tell whether sagactl had to call one.
FACTORY_CALLS: list[str] = []
