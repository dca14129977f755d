# kmervae on the CPU: the CPU build of PyTorch, kmervae with its [train] extra, and the
# programs of the mcl package (kmervae cluster --method mcl).
#   docker build -t kmervae .
#   docker run --rm -v "$PWD:/data" kmervae profile contigs.fa -o contigs.kmv
FROM python:3.11-slim-bookworm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends mcl \
    && rm -rf /var/lib/apt/lists/*

# PyTorch from its CPU index first: with it installed, the [train] extra's torch requirement
# is met and pip does not fetch the CUDA build from PyPI.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /opt/kmervae
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install ".[train]" \
    && kmervae --version

WORKDIR /data
ENTRYPOINT ["kmervae"]
CMD ["--help"]
