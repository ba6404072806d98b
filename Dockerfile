# slogate's container image: `docker build -t slogate:0.1.0 .`
#
# Two stages: a Rust build stage, and a small Debian runtime stage that runs as the
# unprivileged user 65532. The runtime is not distroless/static because slogate runs the
# `git` command line (and ssh, for ssh remotes) for its GitOps reverts, and `kill` to stop
# a git process group that overran its timeout; see src/adapters/git/mod.rs.

FROM rust:1-bookworm AS build
WORKDIR /src
# Dependencies first, so that source changes reuse the cached dependency build. The cargo
# configuration builds mimalloc, the binary's allocator, as the benchmarks measured it.
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin slogate \
    && strip target/release/slogate

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates git openssh-client procps \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 slogate \
    && useradd --uid 65532 --gid 65532 --home-dir /var/lib/slogate --create-home \
       --shell /usr/sbin/nologin slogate
COPY --from=build /src/target/release/slogate /usr/local/bin/slogate
USER 65532:65532
WORKDIR /var/lib/slogate
ENV HOME=/var/lib/slogate
EXPOSE 8080
ENTRYPOINT ["slogate"]
CMD ["run", "--config", "/etc/slogate/slogate.yaml"]
