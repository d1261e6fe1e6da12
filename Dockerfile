# The CPU image of harness: Python, the experiment frameworks pinned by hash, and the
# harness runtime. Build it with `harness build --variant cpu`: harness assembles the
# context (constraints.txt, wheels/, dist/, ca-bundle.crt) and passes BASE_IMAGE as the
# base's image ID, so the base is fixed by content, not by a tag.
ARG BASE_IMAGE

FROM ${BASE_IMAGE} AS install
ARG INDEX_URL=https://pypi.org/simple
COPY ca-bundle.crt constraints.txt /tmp/harness/
COPY wheels/ /tmp/harness/wheels/
# The installer lives in its own throwaway environment so that the image's environment
# holds exactly the pinned distributions (no pip, no setuptools). --require-hashes with
# --no-deps: every file installed is one whose sha256 the constraints name. --no-compile
# and no cache: bytecode and caches differ from build to build.
RUN set -eu; \
    if [ -s /tmp/harness/ca-bundle.crt ]; then export PIP_CERT=/tmp/harness/ca-bundle.crt; fi; \
    python3 -m venv /tmp/installer; \
    python3 -m venv --without-pip /opt/harness/venv; \
    /tmp/installer/bin/pip --python /opt/harness/venv/bin/python install \
        --no-cache-dir --no-compile --no-deps --require-hashes --only-binary=:all: \
        --disable-pip-version-check --no-input --progress-bar off \
        --index-url "$INDEX_URL" --find-links /tmp/harness/wheels \
        -r /tmp/harness/constraints.txt
# harness's own runtime gets a layer of its own, so that a change to harness rebuilds
# seconds of work instead of the frameworks. It is pure Python and needs nothing beyond
# the standard library inside the image, hence --no-deps.
COPY dist/ /tmp/harness/dist/
RUN /tmp/installer/bin/pip install \
        --no-cache-dir --no-compile --no-deps --require-hashes --only-binary=:all: \
        --disable-pip-version-check --no-input --progress-bar off \
        --target /opt/harness/runtime -r /tmp/harness/dist/harness-requirement.txt \
 && rm -rf /opt/harness/runtime/bin

FROM ${BASE_IMAGE}
ARG PYTHON_VERSION=3.11
COPY --from=install /opt/harness/venv /opt/harness/venv
COPY --from=install /opt/harness/runtime/ /opt/harness/venv/lib/python${PYTHON_VERSION}/site-packages/
# A fixed, numeric non-root user (orchestrators check runAsNonRoot by number). Written
# directly: useradd stamps the day into /etc/shadow, which would vary between builds.
RUN echo 'harness:x:10001:10001:harness:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'harness:x:10001:' >> /etc/group
ENV VIRTUAL_ENV=/opt/harness/venv \
    PATH=/opt/harness/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
CMD ["python"]
