# harness's CPU image: Python, the experiment dependencies pinned by hash, and the
# harness runtime. Every project without a Dockerfile of its own builds with this one
# (`harness init --dockerfiles` copies it into a project to customise). Build it with
# `harness build --variant cpu`: harness assembles the context (constraints.txt and
# wheels/ with the pins its frameworks image lacks, dist/, ca-bundle.crt) and passes
# FRAMEWORKS_IMAGE as that image's ID, so what it builds on is fixed by content, not by
# a tag. The image holds only what the constraints pin: a project that needs numpy and
# scikit-learn gets those, and no framework it does not use.
#
# Two builds of the same inputs give the same layers, byte for byte, on the classic
# builder too (harness then rewrites the image configuration, whose times the engine
# stamps, so the image ID is the same as well):
#   - nothing that varies is written: no pip cache, no logs, and the bytecode is
#     hash-based (PEP 552: a .pyc names its source's hash, not its time), compiled in
#     one process with a fixed hash seed (see harness's Dockerfile.frameworks);
#   - the final stage runs nothing: it copies trees prepared in the install stage, each
#     rooted at / so that every directory it touches comes with its own time rather
#     than the time of the copy;
#   - every time in those trees is set: the packages to 0 (their bytes depend on the
#     constraints alone), the harness runtime to SOURCE_DATE_EPOCH, the time of the
#     commit it was built from.
#
# The image is built FROM harness's frameworks image (FRAMEWORKS_IMAGE, an image ID):
# the base, the venv with the large pins (every wheel of 1 MiB or more: the frameworks
# and their big dependencies) installed and compiled, and the image's user (see
# harness's Dockerfile.frameworks). harness builds and keeps that image and passes only
# the other pins here, in constraints.txt and wheels/, so a change to a small pin or to
# harness's runtime reinstalls seconds of packages, not gigabytes, and the image shares
# the frameworks' layers on disk.
ARG BASE_IMAGE
ARG FRAMEWORKS_IMAGE

FROM ${BASE_IMAGE} AS install
# The installer (pip in a throwaway environment) and the empty venv that names the
# image's Python, before any file of the context comes in: this step depends on the base
# alone, so harness keeps its image for the engine's cache and later builds skip it.
RUN python3 -m venv /tmp/installer && python3 -m venv --without-pip /opt/harness/venv
ARG PYTHON_VERSION=3.11
COPY constraints.txt /tmp/harness/
COPY wheels/ /tmp/harness/wheels/
COPY dist/ /tmp/harness/dist/
ARG SOURCE_DATE_EPOCH=0
# One step makes both trees the final stage copies (each step is a container to start
# and a layer to write, and this stage is thrown away).
#
# The small pins: pip in its own throwaway environment, --require-hashes --no-deps
# --no-index (every file installed is one whose sha256 the constraints name, from the
# wheels/ harness put there), into a tree rooted where the venv lives: --prefix writes
# the same files an install into the venv would, with scripts naming the venv's Python
# (the empty venv made above at that path supplies it). Their modules are compiled as the
# frameworks' are (one process, sorted, a fixed hash seed, -S -f; see
# Dockerfile.frameworks), named by the path they will have (-s/-p). An empty list would
# make compileall compile the interpreter's own path instead, hence the test.
#
# harness's own runtime gets a layer of its own, so that the packages' layer keeps its
# bytes from commit to commit (registries and hosts that hold it receive only the
# runtime's layer). It is pure Python and needs nothing beyond the standard library
# inside the image, hence --no-deps. It is installed by name and hash from the dist/
# folder, not by a file:// URL, so pip records no direct_url.json naming a path that
# exists only in this stage. Its console script is of no use in the image (the venv's
# own bin/ is not its target), so it goes, and with it its RECORD line.
RUN set -eu; \
    packages=/out/packages/opt/harness/venv; \
    mkdir -p "$packages"; \
    if [ -s /tmp/harness/constraints.txt ]; then \
        /tmp/installer/bin/pip --python /opt/harness/venv/bin/python install \
            --no-cache-dir --no-compile --no-deps --require-hashes --only-binary=:all: \
            --disable-pip-version-check --no-input --progress-bar off --no-warn-script-location \
            --no-index --find-links /tmp/harness/wheels \
            --prefix "$packages" -r /tmp/harness/constraints.txt; \
    fi; \
    find "$packages" -type f -name '*.py' | LC_ALL=C sort > /tmp/harness/new-modules; \
    if [ -s /tmp/harness/new-modules ]; then \
        PYTHONHASHSEED=0 /opt/harness/venv/bin/python -S -m compileall -qq -f -j 1 \
            --invalidation-mode unchecked-hash -s /out/packages -p / \
            -i /tmp/harness/new-modules || true; \
    fi; \
    find /out/packages -exec touch -h -d @0 {} +; \
    site=/out/runtime/opt/harness/venv/lib/python${PYTHON_VERSION}/site-packages; \
    /tmp/installer/bin/pip install \
        --no-cache-dir --no-compile --no-deps --require-hashes --only-binary=:all: \
        --disable-pip-version-check --no-input --progress-bar off \
        --no-index --find-links /tmp/harness/dist \
        --target "$site" -r /tmp/harness/dist/harness-requirement.txt; \
    rm -rf "$site/bin"; \
    sed -i '/^\.\.\/\.\.\/bin\//d' "$site"/harness-*.dist-info/RECORD; \
    PYTHONHASHSEED=0 python3 -S -m compileall -qq -f -j 1 --invalidation-mode unchecked-hash \
        -s /out/runtime -p / "$site/harness"; \
    find /out/runtime -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +

FROM ${FRAMEWORKS_IMAGE}
COPY --from=install /out/packages/ /
COPY --from=install /out/runtime/ /
ENV VIRTUAL_ENV=/opt/harness/venv \
    PATH=/opt/harness/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
CMD ["python"]
