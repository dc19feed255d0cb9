#!/bin/sh
# Serves this directory with busybox httpd on $PORT.
exec busybox httpd -f -p "${PORT:-8080}" -h "$(dirname "$0")"
