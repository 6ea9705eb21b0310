# dispatch in a small image: the static binary, git (worktrees, and the
# checkout a sweep works on) and CA certificates.
#
#   docker build -t dispatch .                      # dispatch and git
#   docker build --target agents -t dispatch:agents .   # and the agent CLIs
#   docker run --rm -v "$PWD:/work" dispatch validate sweep.yaml
#
# Releases publish both to ghcr.io/dispatch-sweeps/dispatch as VERSION and
# VERSION-agents (.github/workflows/release.yml).

FROM rust:1-alpine AS build
RUN apk add --no-cache musl-dev
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin dispatch \
    && cp target/release/dispatch /usr/local/bin/dispatch

# The variant with the agent CLIs, at the versions the real-CLI tests pin
# (scripts/install-agent-clis.sh): claude, codex, gemini, opencode on
# Node.js, aider in a Python virtual environment. Their API keys come from
# the environment at run time, never from the image.
FROM node:22-bookworm-slim AS agents
RUN apt-get update \
    && apt-get install -y --no-install-recommends git ca-certificates python3 python3-venv \
    && rm -rf /var/lib/apt/lists/*
COPY scripts/install-agent-clis.sh /tmp/install-agent-clis.sh
RUN AGENT_CLIS_PREFIX=/opt/agent-clis bash /tmp/install-agent-clis.sh \
    && rm /tmp/install-agent-clis.sh
ENV PATH="/opt/agent-clis/bin:/opt/agent-clis/aider-venv/bin:${PATH}"
COPY --from=build /usr/local/bin/dispatch /usr/local/bin/dispatch
WORKDIR /work
ENTRYPOINT ["dispatch"]

# The default target, last: dispatch and git only.
FROM alpine:3 AS dispatch
RUN apk add --no-cache git ca-certificates
COPY --from=build /usr/local/bin/dispatch /usr/local/bin/dispatch
WORKDIR /work
ENTRYPOINT ["dispatch"]
