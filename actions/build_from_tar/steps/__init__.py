"""The eleven actions of build-from-tar, each registered as `build.<name>` in `sagactl.actions`."""
