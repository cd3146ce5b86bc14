# One multi-stage build for every Porthole image; pick one with --target
# (signaling, turn, agent, demo-device). compose.yaml builds all four.

# The web app's CSS foundation, from npm at the version web/package-lock.json
# pins (what `make web` does; the tests' devDependencies are left out).
FROM node:20-bookworm-slim AS web
WORKDIR /web
COPY web/package.json web/package-lock.json ./
RUN npm ci --ignore-scripts --omit=dev --no-audit --no-fund \
 && mkdir -p ui/vendor && cp node_modules/@picocss/pico/css/pico.min.css ui/vendor/

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
COPY --from=web /web/ui/vendor/ web/ui/vendor/
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags="-s -w" -o /out/ \
      ./signaling/cmd/porthole-signaling \
      ./turnserver/cmd/porthole-turn \
      ./agent/cmd/porthole-agent \
      ./integration/cmd/porthole-demo-device

FROM gcr.io/distroless/static-debian12:nonroot AS signaling
COPY --from=build /out/porthole-signaling /usr/local/bin/porthole-signaling
EXPOSE 8080 8443
ENTRYPOINT ["/usr/local/bin/porthole-signaling"]

FROM gcr.io/distroless/static-debian12:nonroot AS turn
COPY --from=build /out/porthole-turn /usr/local/bin/porthole-turn
EXPOSE 3478/udp 3478/tcp 9090
ENTRYPOINT ["/usr/local/bin/porthole-turn"]

FROM gcr.io/distroless/static-debian12:nonroot AS agent
COPY --from=build /out/porthole-agent /usr/local/bin/porthole-agent
ENTRYPOINT ["/usr/local/bin/porthole-agent"]

FROM gcr.io/distroless/static-debian12:nonroot AS demo-device
COPY --from=build /out/porthole-demo-device /usr/local/bin/porthole-demo-device
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/porthole-demo-device"]
