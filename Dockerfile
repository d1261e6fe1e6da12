# The CPU image of harness: Python, the experiment frameworks pinned by hash, and the
# harness runtime. Build it with `harness build --variant cpu`: harness assembles the
# context (constraints.txt, wheels/, dist/, ca-bundle.crt) and passes BASE_IMAGE as the
# base's image ID, so the base is fixed by content, not by a tag.
#
# Two builds of the same inputs give the same layers, byte for byte, on the classic
# builder too (harness then rewrites the image configuration, whose times the engine
# stamps, so the image ID is the same as well):
#   - nothing that varies is written: no bytecode (--no-compile), no pip cache, no logs;
#   - the final stage runs nothing: it copies trees prepared in the install stage, each
#     rooted at / so that every directory it touches comes with its own time rather
#     than the time of the copy;
#   - every time in those trees is set: the frameworks to 0, like the base (their bytes
#     depend on the constraints alone, so the layer stays shared between commits), the
#     harness runtime to SOURCE_DATE_EPOCH, the time of the commit it was built from.
ARG BASE_IMAGE

FROM ${BASE_IMAGE} AS install
ARG INDEX_URL=https://pypi.org/simple
ARG PYTHON_VERSION=3.11
COPY ca-bundle.crt constraints.txt /tmp/harness/
COPY wheels/ /tmp/harness/wheels/
# The installer lives in its own throwaway environment so that the image's environment
# holds exactly the pinned distributions (no pip, no setuptools). --require-hashes with
# --no-deps: every file installed is one whose sha256 the constraints name. --no-compile
# and no cache: bytecode and caches differ from build to build. The environment is made
# where it will live (scripts name their interpreter by path), then moved into the tree.
RUN set -eu; \
    if [ -s /tmp/harness/ca-bundle.crt ]; then export PIP_CERT=/tmp/harness/ca-bundle.crt; fi; \
    python3 -m venv /tmp/installer; \
    python3 -m venv --without-pip /opt/harness/venv; \
    /tmp/installer/bin/pip --python /opt/harness/venv/bin/python install \
        --no-cache-dir --no-compile --no-deps --require-hashes --only-binary=:all: \
        --disable-pip-version-check --no-input --progress-bar off \
        --index-url "$INDEX_URL" --find-links /tmp/harness/wheels \
        -r /tmp/harness/constraints.txt; \
    mkdir -p /out/venv/opt; \
    mv /opt/harness /out/venv/opt/harness; \
    find /out/venv -exec touch -h -d @0 {} +
# A fixed, numeric non-root user (orchestrators check runAsNonRoot by number). Written
# directly: useradd stamps the day into /etc/shadow, which would vary between builds.
RUN set -eu; \
    mkdir -p /out/users/etc; \
    cp -p /etc/passwd /etc/group /out/users/etc/; \
    echo 'harness:x:10001:10001:harness:/nonexistent:/usr/sbin/nologin' >> /out/users/etc/passwd; \
    echo 'harness:x:10001:' >> /out/users/etc/group; \
    find /out/users -exec touch -h -d @0 {} +
# harness's own runtime gets a layer of its own, so that a change to harness rebuilds
# seconds of work instead of the frameworks. It is pure Python and needs nothing beyond
# the standard library inside the image, hence --no-deps. It is installed by name and
# hash from the dist/ folder, not by a file:// URL, so pip records no direct_url.json
# naming a path that exists only in this stage. Its console script is of no use in the
# image (the venv's own bin/ is not its target), so it goes, and with it its RECORD line.
COPY dist/ /tmp/harness/dist/
ARG SOURCE_DATE_EPOCH=0
RUN set -eu; \
    site=/out/runtime/opt/harness/venv/lib/python${PYTHON_VERSION}/site-packages; \
    /tmp/installer/bin/pip install \
        --no-cache-dir --no-compile --no-deps --require-hashes --only-binary=:all: \
        --disable-pip-version-check --no-input --progress-bar off \
        --no-index --find-links /tmp/harness/dist \
        --target "$site" -r /tmp/harness/dist/harness-requirement.txt; \
    rm -rf "$site/bin"; \
    sed -i '/^\.\.\/\.\.\/bin\//d' "$site"/harness-*.dist-info/RECORD; \
    find /out/runtime -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

FROM ${BASE_IMAGE}
COPY --from=install /out/venv/ /
COPY --from=install /out/runtime/ /
COPY --from=install /out/users/ /
ENV VIRTUAL_ENV=/opt/harness/venv \
    PATH=/opt/harness/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
CMD ["python"]
