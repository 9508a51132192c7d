# One image with both service binaries, the demo upstream (fake-upstream) and
# the Avni demo-data generator (avni-generate); docker-compose.yml runs each
# with its own command. Multi-stage: the build stage has the Rust toolchain,
# the runtime stage only the binaries and CA certificates.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin etl-service --bin migrator-service \
        --bin fake-upstream --bin avni-generate

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home service
COPY --from=build /src/target/release/etl-service /src/target/release/migrator-service \
     /src/target/release/fake-upstream /src/target/release/avni-generate /usr/local/bin/
USER service
EXPOSE 50051 50052 8089 9464 9465
CMD ["etl-service", "serve"]
