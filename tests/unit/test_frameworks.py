"""The frameworks image: which pins go into it, its context, and when a build makes it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from harness.config import load_config
from harness.engine import PODMAN
from harness.images import build, dockerfiles, frameworks, layers
from harness.images import built as builtimages
from harness.images import config as imageconfig
from harness.images.base import BaseImage
from harness.images.wheelcache import Choice, Provided
from tests.unit.test_build import plan_of
from tests.unit.test_builtimages import FakeEngine

LARGE = frameworks.LARGE_WHEEL_BYTES
TORCH = Choice("torch", "2.5.0", "aa" * 32, "torch-2.5.0-cp311-none-any.whl")
NUMPY = Choice("numpy", "2.1.0", "bb" * 32, "numpy-2.1.0-cp311-none-any.whl")
SIX = Choice("six", "1.17.0", "cc" * 32, "six-1.17.0-py3-none-any.whl")
SIZES = {TORCH.filename: 3 * LARGE, NUMPY.filename: LARGE, SIX.filename: LARGE - 1}


def lay_out(context: Path, choices: tuple[Choice, ...] = (TORCH, NUMPY, SIX)) -> Provided:
    """An image context as assemble_context leaves it: every wheel, every pin's line."""
    wheels = context / "wheels"
    wheels.mkdir(parents=True)
    (context / "Dockerfile").write_bytes(dockerfiles.builtin_text("cpu"))
    (context / "constraints.txt").write_text("all the pins\n")
    files = []
    for choice in choices:
        (wheels / choice.filename).write_bytes(b"w" * SIZES[choice.filename])
        files.append(wheels / choice.filename)
    return Provided(choices, files=tuple(files))


def test_wheels_of_one_mib_or_more_go_into_the_frameworks(tmp_path: Path) -> None:
    wheels = frameworks.split(lay_out(tmp_path))
    assert wheels.large == (TORCH, NUMPY)
    assert wheels.small == (SIX,)


def test_requirements_name_exactly_the_one_file_of_each_pin_in_name_order() -> None:
    assert frameworks.requirements([TORCH, SIX, NUMPY]) == (
        f"numpy==2.1.0 --hash=sha256:{'bb' * 32}\n"
        f"six==1.17.0 --hash=sha256:{'cc' * 32}\n"
        f"torch==2.5.0 --hash=sha256:{'aa' * 32}\n"
    )
    assert frameworks.requirements([]) == ""


def test_assemble_moves_the_large_wheels_and_splits_the_constraints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frameworks, "HEAVY_WHEEL_BYTES", LARGE)
    image = tmp_path / "image"
    provided = lay_out(image)
    (layout,) = frameworks.assemble(
        tmp_path / "frameworks", image, frameworks.split(provided), base_id="sha256:base"
    )
    assert sorted(p.name for p in (layout.folder / "wheels").iterdir()) == sorted(
        [TORCH.filename, NUMPY.filename]
    )
    assert [p.name for p in (image / "wheels").iterdir()] == [SIX.filename]
    assert (layout.folder / "constraints.txt").read_text() == frameworks.requirements(
        [TORCH, NUMPY]
    )
    assert (image / "constraints.txt").read_text() == frameworks.requirements([SIX])
    assert (layout.folder / "Dockerfile").read_bytes() == dockerfiles.frameworks_text()
    assert layout.pins == 2


def test_the_input_digest_follows_the_base_and_the_large_pins_only() -> None:
    def digest(base: str = "sha256:base", lines: str = "a\n") -> str:
        return frameworks.input_digest(
            dockerfile=dockerfiles.frameworks_text(), base_id=base, requirement_lines=lines
        )

    assert digest() == digest()
    assert digest(base="sha256:other") != digest()
    assert digest(lines="b\n") != digest()
    assert frameworks.reference(digest()) == f"harness-frameworks:{digest()[:16]}"


class BuildingEngine(FakeEngine):
    """Records each engine build: its Dockerfile, its arguments and the wheels it got."""

    def __init__(self) -> None:
        super().__init__()
        self.builds: list[dict[str, Any]] = []
        self.removed: list[str] = []

    def build(
        self,
        context: Path,
        *,
        tag: str | None = None,
        dockerfile: str = "Dockerfile",
        buildargs: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        nocache: bool = False,
        on_line: Callable[[str], None] | None = None,
    ) -> str:
        number = len(self.builds) + 1
        self.builds.append(
            {
                "frameworks": (context / dockerfile).read_bytes() == dockerfiles.frameworks_text(),
                "layer": (context / dockerfile).read_bytes() == dockerfiles.frameworks_layer_text(),
                "buildargs": dict(buildargs or {}),
                "wheels": sorted(p.name for p in (context / "wheels").iterdir()),
                "constraints": (context / "constraints.txt").read_text(),
                "nocache": nocache,
            }
        )
        built = f"sha256:{number:064x}"
        self.add(built, [f"sha256:layer{number}"])
        if on_line is not None:  # as the classic builder reports its last step
            for line in ("Step 1/1 : RUN make", f" ---> {built[7:19]}"):
                on_line(line)
        return built

    def remove_unused_image(self, reference: str, *, prune: bool = False) -> bool:
        self.removed.append(reference)
        return True


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> BuildingEngine:
    """An engine whose finished images are their built ones renamed (no configuration
    to rewrite), in a harness whose build context holds TORCH, NUMPY and SIX."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    # Every large pin in the one tier, unless a test stacks layers (see ``stacking``).
    monkeypatch.setattr(frameworks, "HEAVY_WHEEL_BYTES", LARGE)
    fake = BuildingEngine()

    def finalise(
        engine: BuildingEngine, image_id: str, *, labels: Mapping[str, str], **_: object
    ) -> str:
        finished = "sha256:f" + image_id[len("sha256:f") :]
        engine.add(finished, [f"sha256:layer-of-{image_id}"], labels[build.LABEL_BUILD_INPUT])
        return finished

    monkeypatch.setattr(imageconfig, "finalise", finalise)

    def assemble_context(context: Path, *_: object, **__: object) -> Provided:
        provided = lay_out(context)
        (context / "dist").mkdir()
        return provided

    monkeypatch.setattr(build, "assemble_context", assemble_context)
    return fake


def prepared_for(project: Path, dockerfile: bytes | None = None) -> build.Prepared:
    (project / "constraints.txt").write_text("")
    if dockerfile is not None:
        (project / "Dockerfile").write_bytes(dockerfile)
    plan = plan_of(load_config(project, environ={}))
    base = BaseImage("harness-base:test", "sha256:base", "sha256:base", None, False)
    labels = {build.LABEL_BUILD_INPUT: "11" * 32}
    return build.Prepared(plan, base, {"BASE_IMAGE": base.id}, labels, "demo:cpu", 1000)


def test_a_first_build_makes_the_frameworks_image_and_builds_the_image_on_it(
    engine: BuildingEngine, project: Path
) -> None:
    fresh = build.build_image(engine, prepared_for(project))
    made, image = engine.builds
    assert made["frameworks"] and not image["frameworks"]
    assert made["buildargs"] == {"BASE_IMAGE": "sha256:base"}
    assert made["wheels"] == sorted([TORCH.filename, NUMPY.filename])
    assert made["constraints"] == frameworks.requirements([TORCH, NUMPY])
    # The image is built on the finished frameworks image, named by its ID, and gets
    # only the small pins.
    named = [t for t in engine.tags if t.startswith("harness-frameworks:")]
    assert len(named) == 1
    assert image["buildargs"][frameworks.ARGUMENT] == engine.tags[named[0]]
    assert image["buildargs"]["BASE_IMAGE"] == "sha256:base"
    assert (image["wheels"], image["constraints"]) == (
        [SIX.filename],
        frameworks.requirements([SIX]),
    )
    # The frameworks build's own images go once it is finished; its image stays.
    assert engine.removed == [f"{1:064x}"[:12]]
    assert engine.tags[named[0]] not in engine.removed
    assert fresh.built_id == f"sha256:{2:064x}"


def test_the_next_build_finds_the_frameworks_image_and_no_cache_makes_it_again(
    engine: BuildingEngine, project: Path
) -> None:
    prepared = prepared_for(project)
    build.build_image(engine, prepared)
    build.build_image(engine, prepared)
    assert [b["frameworks"] for b in engine.builds] == [True, False, False]
    assert engine.builds[2]["buildargs"] == engine.builds[1]["buildargs"]
    # Without the cache (build --no-cache, build --check) every layer is built again.
    build.build_image(engine, prepared, no_cache=True)
    assert [b["frameworks"] for b in engine.builds[3:]] == [True, False]
    assert all(b["nocache"] for b in engine.builds[3:])


def test_an_image_only_named_and_labelled_as_the_frameworks_is_not_taken(
    engine: BuildingEngine, project: Path
) -> None:
    prepared = prepared_for(project)
    build.build_image(engine, prepared)
    name = next(t for t in engine.tags if t.startswith("harness-frameworks:"))
    digest = engine.images[engine.tags[name]]["Config"]["Labels"][build.LABEL_BUILD_INPUT]
    # Somebody else's image under that name and label, on an engine whose index of what
    # harness built is gone: it is built again, not taken.
    builtimages.index_path().unlink()
    engine.add("sha256:planted", ["sha256:x"], digest)
    engine.tag("sha256:planted", name)
    build.build_image(engine, prepared)
    assert [b["frameworks"] for b in engine.builds] == [True, False, True, False]
    assert engine.builds[-1]["buildargs"][frameworks.ARGUMENT] != "sha256:planted"
    assert engine.tags[name] != "sha256:planted"


def test_a_dockerfile_without_the_argument_gets_every_pin_as_before(
    engine: BuildingEngine, project: Path
) -> None:
    build.build_image(engine, prepared_for(project, b"ARG BASE_IMAGE\nFROM ${BASE_IMAGE}\n"))
    (only,) = engine.builds
    assert not only["frameworks"]
    assert frameworks.ARGUMENT not in only["buildargs"]
    assert only["wheels"] == sorted([TORCH.filename, NUMPY.filename, SIX.filename])
    assert only["constraints"] == "all the pins\n"


def test_heavy_wheels_make_a_first_tier_and_the_other_large_ones_a_layer_on_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(frameworks, "HEAVY_WHEEL_BYTES", 2 * LARGE)
    image = tmp_path / "image"
    wheels = frameworks.split(lay_out(image))
    assert wheels.tiers() == [(TORCH,), (NUMPY,)]
    heavy, rest = frameworks.assemble(tmp_path / "f", image, wheels, base_id="sha256:base")
    assert (heavy.on_previous, rest.on_previous) == (False, True)
    assert rest.choices == (NUMPY,)
    assert (heavy.folder / "Dockerfile").read_bytes() == dockerfiles.frameworks_text()
    assert (rest.folder / "Dockerfile").read_bytes() == dockerfiles.frameworks_layer_text()
    assert [p.name for p in (rest.folder / "wheels").iterdir()] == [NUMPY.filename]
    # The heavy tier's input is its own pins and the base: the same torch, whatever else.
    without_numpy = tmp_path / "without-numpy"
    alone = frameworks.split(lay_out(without_numpy, (TORCH, SIX)))
    (torch_only,) = frameworks.assemble(tmp_path / "g", without_numpy, alone, base_id="sha256:base")
    assert torch_only.digest == heavy.digest


SCIPY = Choice("scipy", "1.17.1", "dd" * 32, "scipy-1.17.1-cp311-none-any.whl")
SCIPY_BUMPED = Choice("scipy", "1.17.0", "ee" * 32, "scipy-1.17.0-cp311-none-any.whl")
SIZES.update({SCIPY.filename: 2 * LARGE, SCIPY_BUMPED.filename: 2 * LARGE})


class Stacking:
    """Stands in for the layer cache's engine work (taking a layer out of its image,
    loading the stack, the check run): records what each step was given."""

    def __init__(self, engine: BuildingEngine) -> None:
        self.engine = engine
        self.stacks: list[list[tuple[str, ...]]] = []
        self.checked: list[list[str]] = []

    def take(self, _engine: object, built_id: str, workspace: Path) -> tuple[str, Path]:
        archive = workspace / "layer.tar"
        archive.write_text(f"the layer of {built_id}")
        return f"sha256:diff-of-{built_id[7:]}", archive

    def stack(
        self,
        _engine: object,
        tier_id: str,
        kept: list[layers.Layer],
        labels: dict[str, str],
        **_: object,
    ) -> str:
        self.stacks.append([layer.pins for layer in kept])
        image_id = f"sha256:{len(self.stacks):062x}st"
        below = self.engine.images[tier_id]["RootFS"]["Layers"]
        self.engine.add(
            image_id, [*below, *(layer.diff_id for layer in kept)], labels[build.LABEL_BUILD_INPUT]
        )
        return image_id

    def check(self, _engine: object, _image_id: str, _python: str, pins: list[Choice]) -> None:
        self.checked.append(sorted(f"{c.name}=={c.version}" for c in pins))


@pytest.fixture
def stacking(engine: BuildingEngine, monkeypatch: pytest.MonkeyPatch) -> Stacking:
    monkeypatch.setattr(frameworks, "HEAVY_WHEEL_BYTES", 3 * LARGE)
    fake = Stacking(engine)
    monkeypatch.setattr(layers, "take", fake.take)
    monkeypatch.setattr(layers, "stack", fake.stack)
    monkeypatch.setattr(layers, "check", fake.check)
    return fake


def with_pins(monkeypatch: pytest.MonkeyPatch, pins: tuple[Choice, ...]) -> None:
    def assemble_context(context: Path, *_: object, **__: object) -> Provided:
        provided = lay_out(context, pins)
        (context / "dist").mkdir()
        return provided

    monkeypatch.setattr(build, "assemble_context", assemble_context)


def test_adding_a_large_pin_beside_torch_does_not_rebuild_torch(
    engine: BuildingEngine, stacking: Stacking, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding numpy to a torch project reinstalled torch."""
    with_pins(monkeypatch, (TORCH, SIX))
    build.build_image(engine, prepared_for(project))
    assert [(b["frameworks"], b["layer"]) for b in engine.builds] == [(True, False), (False, False)]
    torch_tier = engine.builds[1]["buildargs"][frameworks.ARGUMENT]
    with_pins(monkeypatch, (TORCH, NUMPY, SIX))
    build.build_image(engine, prepared_for(project))
    layer, image = engine.builds[2:]
    # numpy installed alone, on the base (its files depend on nothing else), then stacked.
    assert layer["layer"] and layer["wheels"] == [NUMPY.filename]
    assert layer["buildargs"] == {"BASE_IMAGE": "sha256:base"}
    assert stacking.stacks == [[("numpy==2.1.0",)]]
    stacked = image["buildargs"][frameworks.ARGUMENT]
    assert (
        engine.images[stacked]["RootFS"]["Layers"][:1]
        == engine.images[torch_tier]["RootFS"]["Layers"]
    )
    assert image["wheels"] == [SIX.filename]
    # The stacked image is checked against every large pin, the tier's included.
    assert stacking.checked == [["numpy==2.1.0", "torch==2.5.0"]]
    # The layer's build leaves nothing on the engine; its layer is in the cache.
    assert layer_build_id(3) in [
        f"sha256:{r}" if not r.startswith("sha256:") else r for r in engine.removed
    ]


def layer_build_id(number: int) -> str:
    return f"sha256:{number:064x}"


def test_moving_one_large_pin_installs_that_pin_alone(
    engine: BuildingEngine, stacking: Stacking, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The open goal: bumping SciPy beside torch and NumPy rebuilt every large pin but torch."""
    with_pins(monkeypatch, (TORCH, NUMPY, SCIPY, SIX))
    build.build_image(engine, prepared_for(project))
    kinds = [
        ("tier" if b["frameworks"] else "layer" if b["layer"] else "image") for b in engine.builds
    ]
    assert kinds == ["tier", "layer", "layer", "image"]
    # Heaviest first: scipy's layer lies below numpy's.
    assert [b["wheels"] for b in engine.builds[1:3]] == [[SCIPY.filename], [NUMPY.filename]]
    assert stacking.stacks == [[("scipy==1.17.1",), ("numpy==2.1.0",)]]

    with_pins(monkeypatch, (TORCH, NUMPY, SCIPY_BUMPED, SIX))
    build.build_image(engine, prepared_for(project))
    moved = engine.builds[4:]
    assert [(b["layer"], b["wheels"]) for b in moved] == [
        (True, [SCIPY_BUMPED.filename]),
        (False, [SIX.filename]),
    ]
    # numpy's layer came from the cache, stacked above the new scipy.
    assert stacking.stacks[-1] == [("scipy==1.17.0",), ("numpy==2.1.0",)]
    assert (
        engine.builds[5]["buildargs"][frameworks.ARGUMENT]
        != engine.builds[3]["buildargs"][frameworks.ARGUMENT]
    )

    # Back to the first pins: the stacked image is found again, nothing is built but the image.
    with_pins(monkeypatch, (TORCH, NUMPY, SCIPY, SIX))
    build.build_image(engine, prepared_for(project))
    assert [b["layer"] or b["frameworks"] for b in engine.builds[6:]] == [False]
    assert len(stacking.stacks) == 2
    # Without the cache (build --check) every layer is installed again.
    build.build_image(engine, prepared_for(project), no_cache=True)
    kinds = [
        ("tier" if b["frameworks"] else "layer" if b["layer"] else "image")
        for b in engine.builds[7:]
    ]
    assert kinds == ["tier", "layer", "layer", "image"]


def test_large_pins_get_a_layer_each_up_to_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(frameworks, "MAX_LAYERS", 3)
    pins = [Choice(f"p{n}", "1", f"{n:02d}" * 32, f"p{n}-1-py3-none-any.whl") for n in range(5)]
    tiers = frameworks.Split((TORCH, *pins), (), (TORCH,)).tiers()
    # The two heaviest alone, the three lightest together: never more than 3 layers.
    assert tiers == [(TORCH,), (pins[0],), (pins[1],), (pins[2], pins[3], pins[4])]
    assert frameworks.Split((TORCH, *pins[:3]), (), (TORCH,)).tiers() == [
        (TORCH,),
        (pins[0],),
        (pins[1],),
        (pins[2],),
    ]


def test_a_layers_input_is_its_pins_and_the_base_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever lies below or above it: a moved pin leaves the other layers' inputs, and so
    their cached layers, as they were."""
    monkeypatch.setattr(frameworks, "HEAVY_WHEEL_BYTES", 3 * LARGE)
    first = frameworks.assemble(
        tmp_path / "a",
        tmp_path / "ia",
        frameworks.split(lay_out(tmp_path / "ia", (TORCH, NUMPY, SCIPY))),
        base_id="sha256:base",
    )
    moved = frameworks.assemble(
        tmp_path / "b",
        tmp_path / "ib",
        frameworks.split(lay_out(tmp_path / "ib", (TORCH, NUMPY, SCIPY_BUMPED))),
        base_id="sha256:base",
    )
    assert [c.choices for c in first] == [(TORCH,), (SCIPY,), (NUMPY,)]
    assert first[2].digest == moved[2].digest  # numpy
    assert first[1].digest != moved[1].digest  # scipy
    stacked = [
        frameworks.stacked_digest(f[0].digest, [c.digest for c in f[1:]]) for f in (first, moved)
    ]
    assert stacked[0] != stacked[1]


def test_the_label_step_of_a_tier_below_is_no_layer() -> None:
    """An image on the second tier sees the first tier's label step without its image:
    judged a layer, it sent every such build to `docker save` for its history."""
    assert imageconfig._looks_empty("LABEL io.harness.build-input.sha256=ab", 0, "harness build")
    assert not imageconfig._looks_empty("LABEL x=y", 0, "")  # not one harness wrote
    assert not imageconfig._looks_empty("/bin/sh -c #(nop) COPY dir:aa in / ", 10, "")


def test_a_project_without_large_pins_still_gets_one_frameworks_image(tmp_path: Path) -> None:
    # The first tier holds the environment and the image's user that every image is built
    # on: without it, an image of small pins (or none) had no python at all.
    image = tmp_path / "image"
    wheels = frameworks.split(lay_out(image, (SIX,)))
    assert wheels.tiers() == [()]
    (only,) = frameworks.assemble(tmp_path / "f", image, wheels, base_id="sha256:base")
    assert not only.on_previous
    assert (only.folder / "Dockerfile").read_bytes() == dockerfiles.frameworks_text()
    assert frameworks.Split((), ()).tiers() == [()]


def test_on_podman_the_large_pins_stay_in_the_one_tier(
    engine: BuildingEngine, stacking: Stacking, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Podman's load needs the file of every layer, the tier's included: nothing to stack."""
    monkeypatch.setattr(BuildingEngine, "product", PODMAN)
    with_pins(monkeypatch, (TORCH, NUMPY, SCIPY, SIX))
    build.build_image(engine, prepared_for(project))
    tier, image = engine.builds
    assert tier["frameworks"] and tier["wheels"] == sorted(
        [TORCH.filename, NUMPY.filename, SCIPY.filename]
    )
    assert stacking.stacks == []
    assert image["wheels"] == [SIX.filename]
