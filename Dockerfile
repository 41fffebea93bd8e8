# msmt-rank runtime image: Debian 13 (glibc 2.41, Python 3.13) + the pinned lock file.
#   docker build -t msmt-rank .
#   docker run --rm -v /data:/data msmt-rank run --data '/data/span-*/impressions.csv' --spec synthetic --output /data/run
FROM debian:trixie-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-pip python3-dev g++ ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    TF_USE_LEGACY_KERAS=1 \
    MSMT_IN_RUNTIME=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY requirements.lock requirements.in /opt/msmt/
RUN python3 -m venv /opt/venv \
 && pip install --no-cache-dir --upgrade pip \
 && pip install --no-cache-dir -r /opt/msmt/requirements.lock

COPY . /opt/msmt
RUN pip install --no-cache-dir --no-deps /opt/msmt

# Run as an unprivileged user with a fixed uid/gid (1000). USER is numeric so that Kubernetes'
# runAsNonRoot (Kubeflow pods) can verify it is not root. Everything above is installed by root and stays
# read-only for the user; its home is the writable working directory. Mounted data/output directories
# (e.g. -v /data:/data) must be writable by uid 1000 (or run with --user <uid>:<gid>).
RUN groupadd --gid 1000 msmt \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/msmt msmt
ENV HOME=/home/msmt
USER 1000:1000
WORKDIR /home/msmt
ENTRYPOINT ["msmt"]
CMD ["--help"]
