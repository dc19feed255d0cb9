"""The build-from-tar actions and the libraries they use (staging, tar checks, app config)."""
