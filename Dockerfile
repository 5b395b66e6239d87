# Tapeward: every binary in one small image (see docker-compose.yml).
#   docker build -t tapeward:dev .
#
# Build stage: static binaries (no cgo) of the daemons and tools.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ENV CGO_ENABLED=0
RUN mkdir -p /out && go build -trimpath -ldflags="-s -w" -o /out/ ./director ./storaged ./tools/tapectl ./tools/tapekey ./tools/tapextract ./tools/vtl

# Runtime stage: Debian slim (a shell for the compose "keys" init service
# and for debugging), a non-root user, the binaries in /usr/local/bin.
FROM debian:12-slim
RUN groupadd --system --gid 10001 tapeward \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/tapeward --shell /usr/sbin/nologin tapeward \
 && mkdir -p /var/lib/tapeward/keys /var/lib/tapeward/storaged /var/lib/tapeward/vtl /run/tapeward \
      /var/lib/tapeward/public /var/lib/tapeward/secrets/director /var/lib/tapeward/secrets/storaged /var/lib/tapeward/secrets/console \
 && chown -R tapeward:tapeward /var/lib/tapeward /run/tapeward \
 && chmod 0700 /var/lib/tapeward/keys /var/lib/tapeward/storaged /var/lib/tapeward/secrets/director /var/lib/tapeward/secrets/storaged /var/lib/tapeward/secrets/console
COPY --from=build /out/ /usr/local/bin/
# Named volumes mounted on the directories above start with their owner
# (tapeward) and mode.
USER 10001:10001
WORKDIR /var/lib/tapeward
