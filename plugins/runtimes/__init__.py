"""Sandbox runtimes (group `sagactl.runtimes`): the default runs services as local processes."""
