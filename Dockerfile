# The sgt server image: `docker build -t sgt .` at the repository root.
# Build stage: a release binary of the `sgt` command, with the AWS backends.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p sgt-bin --bin sgt \
    && cp target/release/sgt /sgt \
    && mkdir /empty-data

# Run stage: distroless (glibc, CA certificates, no shell), as the non-root user 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /sgt /usr/local/bin/sgt
# /data belongs to the server's user, so a volume mounted there starts writable.
COPY --from=build --chown=65532:65532 /empty-data /data
# Listen on every interface inside the container; state and first-start files in /data
# (mount a volume there for the embedded SQLite backend; with the AWS backends it holds only
# the first-start files).
ENV SGT_LISTEN=0.0.0.0:8443 \
    SGT_DATA_DIR=/data
WORKDIR /data
USER 65532:65532
EXPOSE 8443
# The load balancer (or your orchestrator) checks GET /healthz.
HEALTHCHECK NONE
ENTRYPOINT ["/usr/local/bin/sgt"]
CMD ["serve"]
