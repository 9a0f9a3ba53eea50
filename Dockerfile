# syntax=docker/dockerfile:1

# ---- build ------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /build
# The build needs no database: herald's queries are checked at run time (and by its
# test suite), and the migrations are embedded from migrations/.
ENV CARGO_TERM_COLOR=never

# Dependencies first, with placeholder sources: this layer is rebuilt only when
# Cargo.toml or Cargo.lock change, not on every source edit.
COPY Cargo.toml Cargo.lock ./
COPY bench/Cargo.toml bench/Cargo.toml
RUN mkdir -p src bench/src \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > bench/src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked -p herald \
 && rm -rf src bench/src

# The real sources (see .dockerignore). Migrations, templates and config are part
# of the context too, for anything the crate embeds at compile time. The touch makes
# sure cargo rebuilds the crate itself rather than trusting the placeholder build.
COPY . .
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked -p herald \
 && install -m 0755 target/release/herald /usr/local/bin/herald

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# ca-certificates: TLS to SMTP, SMS providers, PostgreSQL and RabbitMQ.
# curl: the container health check (GET /healthz).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*

RUN groupadd --system herald \
 && useradd --system --gid herald --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin herald

WORKDIR /app
COPY --from=builder /usr/local/bin/herald /usr/local/bin/herald
COPY templates/ /app/templates/
COPY migrations/ /app/migrations/
COPY config/ /app/config/
# var/ is writable by herald: the `file` e-mail transport writes under var/mail.
RUN mkdir -p /app/var && chown herald:herald /app/var

USER herald
EXPOSE 8080
ENTRYPOINT ["herald"]
CMD ["serve"]
