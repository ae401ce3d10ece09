# swap as a sidecar image. No pulls, no network: build the static binary first.
#   make build && docker build -t swap:dev .
# The image holds only swap. Mount the Docker socket, the HAProxy admin socket directory
# and the config; `haproxy -c` checks of rendered files need the haproxy binary, so run
# `swap lb render` where HAProxy is installed, or set haproxy.binary to a mounted one.
FROM scratch
COPY bin/swap /swap
USER 0
ENTRYPOINT ["/swap"]
CMD ["--help"]
