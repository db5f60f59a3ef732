# A stand-in for the official redis:7 image, for a machine that cannot pull it: Debian's
# redis-server on the locally made debian:bookworm-slim, started the same way (command
# redis-server CONFIG, data in /data). Built by scripts/podman-docker.sh only when redis:7 is
# missing; docker-compose.yml names the official image.
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
