# The sidecar image: `swap serve` as a non-root user (docs/serve.md, "The sidecar image").
# FROM scratch and nothing pulled, so it builds with no registry reachable:
#   make image                       # make build, then docker build -t swap:dev .
#   make image IMAGE=registry.example/swap:1.4
# It holds the static bin/swap and a writable /tmp (swap's pull/prune lock, hooks'
# output) — no shell, no haproxy, no CA bundle. At run time (examples/serve/compose.yaml):
# - the Docker socket, and --group-add its group id (stat -c %g /var/run/docker.sock);
# - HAProxy's files directory, mounted at the same path as in HAProxy's container, and
#   writable by this user (its admin socket: haproxy.socket_gid: 65532, or run the
#   sidecar as HAProxy's user);
# - haproxy.check_container: HAProxy's container, where `haproxy -c` checks each rendered
#   file before it replaces a live one (through the Docker socket);
# - the config at /etc/swap/swap.yaml, SWAP_SERVE_TOKEN, Consul's address.
FROM scratch
COPY bin/swap /usr/local/bin/swap
COPY --chown=65532:65532 image/tmp/ /tmp/
USER 65532:65532
ENV SWAP_CONFIG=/etc/swap/swap.yaml
EXPOSE 7070
ENTRYPOINT ["/usr/local/bin/swap"]
CMD ["serve"]
