"""Image builders (group `sagactl.builders`): buildah, buildkit and the embedded OCI writer."""
