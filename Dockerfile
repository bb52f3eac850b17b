# bedrock-chat in a container: built by the same `./dev release` as on a
# developer's machine, run as a non-root user on a slim Debian.
#
#   docker build -t bedrock-chat .
#   docker run -p 3000:3000 -v bedrock-chat-data:/app/data bedrock-chat
#
# Settings come from the environment (BEDROCK_CHAT_<SECTION>_<KEY>, see
# Leptos.toml); AWS credentials from the standard chain (AWS_* variables, a
# mounted ~/.aws, or the task/instance role with BEDROCK_CHAT_BEDROCK_BACKEND=aws).
# Without credentials the app chats with its built-in demo model.

# --- build -------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nodejs npm \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The tools first (cargo-leptos, wasm-bindgen-cli at Cargo.lock's version,
# binaryen from npm): a layer that survives changes to the source.
COPY dev rust-toolchain.toml Cargo.toml Cargo.lock ./
COPY end2end/package.json end2end/package-lock.json end2end/
RUN ./dev setup release
COPY . .
RUN ./dev release

# --- run ---------------------------------------------------------------------
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin bedrock-chat \
 && mkdir -p /app/data \
 && chown bedrock-chat:bedrock-chat /app/data
WORKDIR /app
COPY --from=build /src/target/release/bedrock-chat /app/bedrock-chat
COPY --from=build /src/target/site /app/site
COPY Leptos.toml /app/Leptos.toml
ENV LEPTOS_OUTPUT_NAME=bedrock-chat \
    LEPTOS_SITE_ROOT=/app/site \
    LEPTOS_SITE_PKG_DIR=pkg \
    BEDROCK_CHAT_SERVER_SITE_ADDR=0.0.0.0:3000 \
    BEDROCK_CHAT_STORAGE_DATA_DIR=/app/data \
    BEDROCK_CHAT_LOG_FORMAT=json \
    RUST_LOG=info
# Conversations (SQLite), the cookie secret and the instance id live here.
VOLUME ["/app/data"]
USER bedrock-chat:bedrock-chat
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:3000/healthz || exit 1
# SIGTERM drains: running answers finish (streams.shutdown_deadline_secs).
STOPSIGNAL SIGTERM
CMD ["/app/bedrock-chat"]
