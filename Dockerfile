# The gateway in a container: built on the official Rust image, run as a non-root user on
# Debian slim, with the configuration and the data as volumes. docs/operations.md
# ("Deployment") says how to run it, and which parts of it the test command checks.
#
#   docker build --build-arg GIT_COMMIT="$(git rev-parse --short=12 HEAD)" -t ussd-gateway .

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# .git is not sent to the build: the commit --version and ussd_build_info show comes from here.
ARG GIT_COMMIT=unknown
ENV USSD_GATEWAY_GIT_COMMIT=${GIT_COMMIT}
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p ussd-gateway --bin ussd-gateway \
    && install -m 0755 target/release/ussd-gateway /usr/local/bin/ussd-gateway

FROM debian:bookworm-slim
# ca-certificates: https upstreams and Africa's Talking; curl: the health check. Debian's
# security updates move the versions: pinning them would break the build, not secure it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ussd \
    && useradd --system --uid 10001 --gid ussd --home-dir /var/lib/ussd-gateway \
       --shell /usr/sbin/nologin ussd \
    && mkdir -p /var/lib/ussd-gateway \
    && chown ussd:ussd /var/lib/ussd-gateway
COPY --from=build /usr/local/bin/ussd-gateway /usr/local/bin/ussd-gateway
# The sample configuration, flows and records; mount your own over /etc/ussd-gateway.
COPY config/ /etc/ussd-gateway/
# Every key of gateway.toml can be set like these (USSD_GATEWAY__<SECTION>__<KEY>). The admin
# listener stays on loopback: to scrape it from another container, set
# USSD_GATEWAY__ADMIN__LISTEN=0.0.0.0:9000 and a token (USSD_GATEWAY__ADMIN__TOKEN_FILE).
ENV USSD_GATEWAY_CONFIG=/etc/ussd-gateway/gateway.toml \
    USSD_GATEWAY__PUBLIC__LISTEN=0.0.0.0:8080 \
    USSD_GATEWAY__STORE__DATA_DIR=/var/lib/ussd-gateway/data \
    USSD_GATEWAY__LOG__FORMAT=json
USER 10001:10001
WORKDIR /var/lib/ussd-gateway
VOLUME ["/etc/ussd-gateway", "/var/lib/ussd-gateway"]
EXPOSE 8080 9000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/health"]
# SIGTERM drains: hops in flight finish within [sessions] shutdown_grace_secs (10 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["ussd-gateway"]
CMD ["serve"]
