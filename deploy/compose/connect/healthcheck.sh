#!/bin/bash
# Health check of the Connect container (compose.yaml), with bash alone: the Kafka image has no
# HTTP client. Healthy when GET /health answers 200 (the worker joined its group and read its
# configuration topic) and GET /connector-plugins lists Code Bank's sink.
# (No pipefail: grep -q may close the pipe before the answer is read to its end.)
set -eu

get() {
	exec 3<>/dev/tcp/127.0.0.1/8083
	printf 'GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n' "$1" >&3
	cat <&3
	exec 3<&-
}

get /health | head -n 1 | grep -q ' 200 '
get /connector-plugins | grep -q 'codebank.connect.OpenSearchSinkConnector'
