"""A tiny web app: a greeting at `/`, and at `/facts` what it can see of where it runs.

Its one dependency, `humanize` (from PyPI, requirements.txt), is installed into the image
by the build; the local fast path (host processes) runs without it and says so.
"""

import http.server
import json
import os

try:
    import humanize
except ImportError:  # the local runtime runs the source with the host's python3
    humanize = None


def facts() -> dict[str, object]:
    return {
        "cwd": os.getcwd(),
        "pid": os.getpid(),
        "processes": sum(name.isdigit() for name in os.listdir("/proc")),
        "uid": os.getuid(),
        "probe": os.path.exists(os.environ["PROBE"]) if "PROBE" in os.environ else None,
        "humanize": getattr(humanize, "__version__", None),
        "uptime": humanize.naturaldelta(1234) if humanize else None,
        "version": os.environ.get("SAGACTL_VERSION"),
    }


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/facts":
            body = (json.dumps(facts()) + "\n").encode()
            kind = "application/json"
        else:
            greeting = os.environ.get("GREETING", "hello")
            body = f"{greeting} from {os.environ.get('SAGACTL_VERSION', 'python-web')}\n".encode()
            kind = "text/plain"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    http.server.ThreadingHTTPServer(("127.0.0.1", port), Hello).serve_forever()
