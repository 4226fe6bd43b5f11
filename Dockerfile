# mpsandbox image. There is no base image to pull: the binary is static
# (CGO_ENABLED=0) and the two files Go needs from an OS are copied in.
#
# The build context is build/image/, prepared by `make image` (e2e's TestMain
# prepares the same files): mpsandbox, ca-certificates.crt, zoneinfo.zip, an
# empty data/ and this Dockerfile. `docker build .` at the repository root is
# not how it is built.
FROM scratch

# Roots for outbound TLS, should a notify_url be https.
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
# The tz database for time.LoadLocation (ZONEINFO below). The sandbox calls
# none itself (its Beijing times are a fixed +08:00 zone); a TZ given to the
# container is not looked up here (Go reads local time from /usr/share/zoneinfo,
# so logs stay in UTC).
COPY zoneinfo.zip /zoneinfo.zip
# Not root. The directory is created here, owned by that user, so the SQLite
# file can be written; a fresh named volume mounted on /data inherits the
# ownership. A bind mount does not: run with --user "$(id -u):$(id -g)".
COPY --chown=65532:65532 data /data
COPY mpsandbox /mpsandbox

# The semantic version of the HTTP surface (sandbox.APIVersion; the Makefile
# and the e2e harness pass it) and the build it came from.
ARG API_VERSION=unknown
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mpsandbox" \
      org.opencontainers.image.version="${API_VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

ENV ZONEINFO=/zoneinfo.zip \
    MPSANDBOX_ADDR=0.0.0.0:8080 \
    MPSANDBOX_DATA_DIR=/data
USER 65532:65532
VOLUME /data
EXPOSE 8080
# The engine here (20.10) has no --start-interval, so the interval is short
# enough for `depends_on: condition: service_healthy` not to stall CI; a check
# is one exec of the static binary and one GET.
HEALTHCHECK --interval=2s --timeout=2s --start-period=5s --retries=3 \
    CMD ["/mpsandbox", "healthcheck"]
ENTRYPOINT ["/mpsandbox"]
