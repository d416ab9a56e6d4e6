# Build stage: compile the release binary (migrations are embedded in it).
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY projections ./projections
COPY migrations ./migrations
RUN cargo build --release --locked --bin chat

# Runtime stage: a small Debian with the binary and curl for the health check.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 chat
COPY --from=build /src/target/release/chat /usr/local/bin/chat
USER chat
EXPOSE 8080
ENV CHAT_LISTEN=0.0.0.0:8080
STOPSIGNAL SIGTERM
ENTRYPOINT ["chat"]
CMD ["serve"]
