"""What reproducibility costs: harness's build of the CPU image against a plain one (target 1.2x).

Both builds run without the engine's cache, from the same build context (harness's wheel
built, the constraints and wheels laid out), one after the other, alternating:

- plain: the Dockerfile as it was before the images were made reproducible (the engine's
  own times everywhere, a RUN in the final stage, labels given to the engine);
- reproducible: `harness build`'s path: every time set in the Dockerfile, then the
  configuration rewritten with SOURCE_DATE_EPOCH and loaded (the layers stay put).

It prints the median of each, their ratio, and the image IDs of the reproducible builds,
which must all be the same. With --rewrite-layers it also times the other way to
normalise an image: saving it, rewriting every layer and loading it back.

    .venv/bin/python benchmarks/reproducible_build.py [--repeats N] [--rewrite-layers]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from harness.config import load_config
from harness.engine import Engine
from harness.images import build
from harness.images import config as imageconfig

REPOSITORY = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.2
IMAGE = "harness-bench"

# The CPU Dockerfile before reproducibility, but for the requirement line: harness is
# installed by name from dist/ (as the reproducible one does) so that both read the same
# build context.
PLAIN_DOCKERFILE = """\
ARG BASE_IMAGE

FROM ${BASE_IMAGE} AS install
ARG INDEX_URL=https://pypi.org/simple
COPY ca-bundle.crt constraints.txt /tmp/harness/
COPY wheels/ /tmp/harness/wheels/
RUN set -eu; \\
    if [ -s /tmp/harness/ca-bundle.crt ]; then export PIP_CERT=/tmp/harness/ca-bundle.crt; fi; \\
    python3 -m venv /tmp/installer; \\
    python3 -m venv --without-pip /opt/harness/venv; \\
    /tmp/installer/bin/pip --python /opt/harness/venv/bin/python install \\
        --no-cache-dir --no-compile --no-deps --require-hashes --only-binary=:all: \\
        --disable-pip-version-check --no-input --progress-bar off \\
        --index-url "$INDEX_URL" --find-links /tmp/harness/wheels \\
        -r /tmp/harness/constraints.txt
COPY dist/ /tmp/harness/dist/
RUN /tmp/installer/bin/pip install \\
        --no-cache-dir --no-compile --no-deps --require-hashes --only-binary=:all: \\
        --disable-pip-version-check --no-input --progress-bar off \\
        --no-index --find-links /tmp/harness/dist \\
        --target /opt/harness/runtime -r /tmp/harness/dist/harness-requirement.txt \\
 && rm -rf /opt/harness/runtime/bin

FROM ${BASE_IMAGE}
ARG PYTHON_VERSION=3.11
COPY --from=install /opt/harness/venv /opt/harness/venv
COPY --from=install /opt/harness/runtime/ \
    /opt/harness/venv/lib/python${PYTHON_VERSION}/site-packages/
RUN echo 'harness:x:10001:10001:harness:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \\
 && echo 'harness:x:10001:' >> /etc/group
ENV VIRTUAL_ENV=/opt/harness/venv \\
    PATH=/opt/harness/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\
    PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /tmp
CMD ["python"]
"""


def plain_build(engine: Engine, prepared: build.Prepared) -> tuple[str, list[str]]:
    """A no-cache build the way harness built before: its image, and every image it made
    (newest first, the order in which they can be removed)."""
    steps = build.StepImages()
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as folder:
        context = Path(folder)
        build.assemble_context(context, prepared.build_plan)
        (context / "Dockerfile").write_text(PLAIN_DOCKERFILE)
        image_id = engine.build(
            context,
            buildargs=prepared.buildargs,
            labels=prepared.labels,
            nocache=True,
            on_line=steps.feed,
        )
    return image_id, list(reversed(steps.images))


def remove(engine: Engine, images: list[str]) -> None:
    """Remove the images a build made (newest first), and forget them."""
    for image in images:
        engine.remove_unused_image(image)
    images.clear()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="builds of each kind (default 2)")
    parser.add_argument(
        "--rewrite-layers", action="store_true", help="also time saving, rewriting and loading"
    )
    arguments = parser.parse_args()

    config = load_config(REPOSITORY, {"image": IMAGE})
    engine = Engine.connect(config.docker_host)
    prepared = build.prepare(engine, build.plan(config, "cpu"))
    # Each build's images are removed as soon as it is timed: a plain build leaves about
    # 5 GB of layers of its own, and two rounds of them would not fit on a CI disk. The
    # last plain build stays for --rewrite-layers.
    plain_made: list[str] = []
    made: list[str] = []
    plain: list[float] = []
    reproducible: list[float] = []
    ids: list[str] = []
    rewrite = None
    try:
        for round_number in range(1, arguments.repeats + 1):
            print(f"round {round_number}: plain build ...", file=sys.stderr)
            remove(engine, plain_made)
            started = time.perf_counter()
            plain_image, plain_made = plain_build(engine, prepared)
            plain.append(time.perf_counter() - started)
            if not arguments.rewrite_layers:
                remove(engine, plain_made)
            print(f"round {round_number}: reproducible build ...", file=sys.stderr)
            fresh = build.build_image(engine, prepared, no_cache=True)
            reproducible.append(fresh.seconds)
            ids.append(fresh.image_id)
            made = [fresh.image_id, *reversed(fresh.step_images)]
            remove(engine, made)
        if arguments.rewrite_layers:
            print("rewriting every layer of the last plain build ...", file=sys.stderr)
            started = time.perf_counter()
            made.append(
                imageconfig.finalise(
                    engine,
                    plain_image,
                    epoch=prepared.epoch,
                    labels=prepared.labels,
                    rewrite_layers=True,
                )
            )
            rewrite = time.perf_counter() - started
    finally:
        remove(engine, made)
        remove(engine, plain_made)

    plain_s, reproducible_s = statistics.median(plain), statistics.median(reproducible)
    each = ", ".join
    print(
        f"plain build, no cache:        median {plain_s:6.1f} s ({each(f'{s:.1f}' for s in plain)})"
    )
    print(
        f"reproducible build, no cache: median {reproducible_s:6.1f} s "
        f"({each(f'{s:.1f}' for s in reproducible)})"
    )
    ratio = reproducible_s / plain_s
    print(f"ratio reproducible / plain: {ratio:.2f}x (target at most {TARGET_RATIO}x)")
    print(f"reproducible image IDs: {' '.join(sorted(set(ids)))}")
    print(f"all reproducible builds identical: {'yes' if len(set(ids)) == 1 else 'NO'}")
    if rewrite is not None:
        print(f"rewriting the layers of a plain build instead: {rewrite:.1f} s more")


if __name__ == "__main__":
    main()
