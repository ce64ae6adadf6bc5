# dhanhook container image: `docker build -t dhanhook .` from the repo root.
#
# Two stages: a Rust toolchain builds the release binary, and a distroless runtime holds only
# that binary. Runtime choice: gcr.io/distroless/cc-debian12:nonroot carries glibc, libgcc_s, CA
# certificates and a non-root user (65532) and nothing else (no shell, no package manager), which
# is all dhanhook needs (`ldd`: libc, libm, libgcc_s). The build stage is Debian 12 (bookworm)
# too, so the binary links against the same glibc it runs with.
#
# Nothing is read from the image at run time: the holiday calendars
# (crates/dhanhook/data/holidays), the scrip-master sample and the SQL migrations are compiled in
# (include_str!, sqlx::migrate!). The only paths used at run time are DATA_DIR (journal, CSV log,
# generated webhook secret, downloaded scrip master) and the optional HOLIDAYS_PATH and
# INSTRUMENTS_PATH, which you mount yourself if you set them.

# The workspace's rust-version is 1.94; pin a 1.9x toolchain on bookworm.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src

# Dependency layer: the manifests and the lock file with stub sources, so the (slow) dependency
# build is cached until Cargo.toml or Cargo.lock change. Plain layers, no BuildKit cache mounts,
# so any builder can run this file.
COPY Cargo.toml Cargo.lock ./
COPY crates/dhanhook/Cargo.toml crates/dhanhook/Cargo.toml
COPY crates/dhan-sim/Cargo.toml crates/dhan-sim/Cargo.toml
RUN mkdir -p crates/dhanhook/src crates/dhan-sim/src \
    && echo 'fn main() {}' > crates/dhanhook/src/main.rs \
    && touch crates/dhanhook/src/lib.rs crates/dhan-sim/src/lib.rs \
    && cargo build --release --locked -p dhanhook \
    && rm -rf crates/dhanhook/src crates/dhan-sim/src

# The real sources. COPY keeps the files' own modification times, which can be older than the
# stub build: touch the crate roots so cargo rebuilds both workspace crates. The runtime image
# has no shell, so its data folder is made here (/out/data) and copied over with its owner.
COPY crates crates
RUN touch crates/dhanhook/src/main.rs crates/dhanhook/src/lib.rs crates/dhan-sim/src/lib.rs \
    && cargo build --release --locked -p dhanhook \
    && install -D -m 0755 target/release/dhanhook /out/dhanhook \
    && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot

COPY --from=build /out/dhanhook /usr/local/bin/dhanhook
COPY --from=build --chown=65532:65532 /out/data /data

# Absolute DATA_DIR in the volume; JSON logs for the container runtime's log collector.
# SHUTDOWN_TIMEOUT stays at its default (8 s): below `docker stop`'s 10 s and Cloud Run's 10 s.
ENV DATA_DIR=/data \
    HOST=0.0.0.0 \
    PORT=8080 \
    LOG_FORMAT=json

# A new named volume is initialised from this folder, owner included, so 65532 can write it.
VOLUME /data
EXPOSE 8080

# 65532 is distroless's "nonroot" user; numeric so Kubernetes' runAsNonRoot can verify it.
USER 65532:65532

# `dhanhook health` GETs http://127.0.0.1:$PORT/health and exits 0 when it answers healthy
# (no shell or curl in this image).
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/dhanhook", "health"]

ENTRYPOINT ["/usr/local/bin/dhanhook"]
CMD ["serve"]
