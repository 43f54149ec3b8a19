# syntax=docker/dockerfile:1
#
# The codebank image: one static binary on distroless, the role chosen by the first argument
# (`codebank ingress`, `codebank authorizer`, `codebank setup`, ...). Build at the repository root:
#
#   docker build -t codebank:dev .
#
# k8s/README.md says how the Kubernetes manifests use it.

# Build stage. GO_VERSION matches the go line of go.mod: the golang images set GOTOOLCHAIN=local,
# so an older Go would refuse to build instead of fetching a newer toolchain.
ARG GO_VERSION=1.26.8
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
ARG TARGETOS
ARG TARGETARCH
# What `codebank --version` and codebank_build_info report (the build context has no .git):
# docker build --build-arg VERSION=$(git describe --tags --always) --build-arg REVISION=$(git rev-parse HEAD) .
ARG VERSION=
ARG REVISION=
WORKDIR /src
# No separate `go mod download` step: go.mod also lists the code generators (tool lines), which
# the binary does not need. The build fetches only the modules it imports, into a cache mount
# that later builds reuse.
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w -X github.com/codebank/codebank/internal/buildinfo.version=${VERSION} -X github.com/codebank/codebank/internal/buildinfo.revision=${REVISION}" -o /out/codebank ./cmd/codebank \
 && mkdir -p /out/storage

# Runtime stage: no shell, no package manager, user nonroot (65532).
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/codebank /codebank
# The authorizer's default --storage-dir, writable by the nonroot user for `docker run`; on
# Kubernetes a volume is mounted over it.
COPY --from=build --chown=65532:65532 /out/storage /var/lib/codebank
USER 65532:65532
# 50051 gRPC and 8080 REST (ingress), 50052 and 8082 (statements), 8090 (web pages), 9090
# health/metrics (every role).
EXPOSE 50051 8080 50052 8082 8090 9090
ENTRYPOINT ["/codebank"]
# Without a role, print the list of commands and exit 0.
CMD ["help"]
