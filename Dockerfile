# syntax=docker/dockerfile:1
# veilleur container image: docker build -t veilleur .
# Two stages: the builder installs veilleur and its runtime dependencies into a venv at
# /opt/veilleur; the final stage is the same Python base with that venv copied in, a non-root
# user (uid 10001) and nothing else: no compiler, no build backend, no pip in the venv.
# See docs/deploy.md ("Container image") for the figures and how to run it.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every dependency has a binary wheel for linux/amd64 and arm64: no build tools needed here.
# The venv is made without pip (and so without setuptools): the base image's pip installs
# into it (--python), and the build backend lives only in pip's temporary isolated env.
RUN python -m venv --without-pip /opt/veilleur
COPY pyproject.toml README.md ./
COPY daemon ./daemon
# A regular (not editable) install, compiled to bytecode so that a read-only root file system
# costs nothing at start.
RUN python -m pip --python /opt/veilleur/bin/python install --no-cache-dir --compile . \
    && /opt/veilleur/bin/veilleur --version

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="veilleur" \
      org.opencontainers.image.description="AWS security-monitoring daemon: CloudTrail and CloudWatch in, SNS and EventBridge alerts out" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/veilleur/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 veilleur \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /var/lib/veilleur \
       --shell /usr/sbin/nologin veilleur \
    && mkdir -p /var/lib/veilleur /etc/veilleur \
    && chown 10001:10001 /var/lib/veilleur \
    && chmod 0700 /var/lib/veilleur
COPY --from=builder /opt/veilleur /opt/veilleur
# A working default: built-in rule packs, metrics on 0.0.0.0:9108 (a container must listen
# beyond its own loopback to be scraped), state in /var/lib/veilleur, JSON logs, no sinks.
# Mount your own file over it (docker -v, a Kubernetes ConfigMap).
COPY deploy/docker/veilleur.yaml /etc/veilleur/veilleur.yaml
USER 10001:10001
WORKDIR /var/lib/veilleur
VOLUME ["/var/lib/veilleur"]
EXPOSE 9108
# Kubernetes ignores this and uses the probes of deploy/kubernetes/deployment.yaml.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:9108/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["veilleur"]
CMD ["run", "-c", "/etc/veilleur/veilleur.yaml"]
