# Multi-stage build of the release binary. Runtime image: Debian slim + the binary, non-root.
# tests/dockerfile.rs builds the build stage's COPYed file set (`cargo check --locked`) and checks
# that the runtime stage has every file the binary reads at run time.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
# `sqlx::migrate!` embeds migrations/ (postgres, sqlite) at compile time; `demo` embeds the
# project's own docs (README.md, docs/).
COPY migrations migrations
COPY README.md ./
COPY docs docs
COPY jobs jobs
COPY workflows workflows
COPY src src
RUN cargo build --release --locked --bin chatter-worker

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* && useradd --system --uid 10001 chatter \
    && install -d -o chatter -g chatter /app
# The binary reads `jobs/schedules.toml` relative to its working directory (the cron schedules,
# unless --schedules / CW_SCHEDULES names another file). Without REDIS_URL and DATABASE_URL it
# runs embedded in `/app/chatter-worker.db` (mount a volume there to keep it), so /app is the
# user's.
WORKDIR /app
COPY jobs/schedules.toml jobs/schedules.toml
COPY --from=build /src/target/release/chatter-worker /usr/local/bin/chatter-worker
USER chatter
ENV CW_HTTP_ADDR=0.0.0.0:9464
EXPOSE 9464
ENTRYPOINT ["chatter-worker"]
CMD ["run"]
