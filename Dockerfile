# syntax=docker/dockerfile:1
# The dbclaim image: one binary on distroless, as the non-root user 65532.
#
#   docker build -t dbclaim:dev .
#   docker run --rm dbclaim:dev --help
#
# Build stage: the Rust toolchain on Debian bookworm builds the release binary
# from Cargo.toml, Cargo.lock and src/ only (see .dockerignore), with
# --locked so the image gets exactly the dependencies the tests ran with.
# Runtime stage: distroless "cc" (bookworm's glibc and libgcc, CA
# certificates, no shell, no package manager), the same Debian release the
# binary was linked against. TLS is rustls, so no OpenSSL is needed.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# Cache mounts keep the crates.io downloads and the target directory between
# builds; the binary is copied out of the (mounted) target directory.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin dbclaim \
 && install -D -m 0755 target/release/dbclaim /out/dbclaim

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="dbclaim" \
      org.opencontainers.image.description="Self-service databases for Kubernetes" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/dbclaim /usr/local/bin/dbclaim
# Numeric, so runAsNonRoot can verify it without reading /etc/passwd.
USER 65532:65532
# /metrics and /healthz + /readyz (the chart's metrics.port and probes.port).
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/dbclaim"]
CMD ["run"]
