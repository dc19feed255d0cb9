"""Containerfile templates per stack, for apps that bring no Containerfile of their own."""

from __future__ import annotations

import json

from .base import BuildSpec

# Each install step runs only when its manifest is there and its tool is in the base image,
# so an offline build on a minimal base still builds (and says what it skipped).
_INSTALL: dict[str, str] = {
    "python": "if [ -f requirements.txt ]; then "
    "if command -v pip >/dev/null 2>&1; then pip install --no-cache-dir -r requirements.txt; "
    "else echo 'sagactl: no pip in the base image: requirements.txt not installed'; fi; fi",
    "node": "if [ -f package.json ]; then "
    "if command -v npm >/dev/null 2>&1; then npm install --omit=dev; "
    "else echo 'sagactl: no npm in the base image: dependencies not installed'; fi; fi",
    "bun": "if command -v bun >/dev/null 2>&1; then bun install --production; "
    "else echo 'sagactl: no bun in the base image: dependencies not installed'; fi",
    "go": "if command -v go >/dev/null 2>&1; then go build -o app .; "
    "else echo 'sagactl: no go in the base image: not compiled'; fi",
    "ruby": "if command -v bundle >/dev/null 2>&1; then bundle install; "
    "else echo 'sagactl: no bundle in the base image: gems not installed'; fi",
    "rust": "if command -v cargo >/dev/null 2>&1; then cargo build --release; "
    "else echo 'sagactl: no cargo in the base image: not compiled'; fi",
}


def containerfile(spec: BuildSpec, base_image: str) -> str:
    """The generated Containerfile for `spec` on `base_image`."""
    lines = [
        f"FROM {base_image}",
        "WORKDIR /app",
        "COPY . /app",
    ]
    if spec.stack in _INSTALL:
        lines.append(f"RUN {_INSTALL[spec.stack]}")
    env = {"PORT": str(spec.port or 8080), **spec.env}
    for key, value in env.items():
        lines.append(f"ENV {key}={json.dumps(value)}")
    for key, value in spec.labels.items():
        lines.append(f"LABEL {json.dumps(key)}={json.dumps(value)}")
    if spec.port:
        lines.append(f"EXPOSE {spec.port}")
    if spec.command:
        lines.append(f"CMD {json.dumps(['/bin/sh', '-c', spec.command])}")
    return "\n".join(lines) + "\n"
