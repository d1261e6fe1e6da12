"""The distributions a repository's code imports, for one that declares none.

Many research repositories list their dependencies only in a README (or nowhere): the
code's ``import torch`` is the declaration. `harness init` then proposes the experiments
group from the imports of the project's Python files, so the first image holds what the
code needs instead of failing one missing package per run.

Only imports that run when a module loads are taken: those at module level, in its ``if``
blocks (``if __name__ == "__main__":`` among them) and class bodies. An import inside a
function runs only when called, and one under ``try: ... except ImportError`` is optional
by intent: both are left out and named. The standard library (``sys.stdlib_module_names``)
and the project's own modules and packages are not dependencies. An import name is not
always the name of the distribution that provides it (``import cv2`` comes from
``opencv-python``): a table maps the well-known ones; a name harness does not know is taken
as it is, and one with no single distribution (``faiss``: ``faiss-cpu`` or ``faiss-gpu``)
is taken as it is with a note, so the user checks exactly those. A few imports need a
package their distribution does not install: ``torch.utils.tensorboard`` imports
``tensorboard`` lazily, and without it ``SummaryWriter`` fails to import.

A notebook's ``%pip install X`` line (:mod:`harness.notebooks`) names a distribution its
author installs: it is needed as surely as an import, under its own name, and where it
names another build of what an import maps to (``opencv-python-headless`` for ``cv2``,
``faiss-cpu`` for ``faiss``), it is taken in the import's place.

Everything is proposed unpinned: `harness lock` pins it.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Iterator, Set
from dataclasses import dataclass, field

from packaging.utils import canonicalize_name

# Import names whose distribution is named otherwise. A dotted key matches that module
# and those below it, and wins over a shorter one.
RENAMED = {
    "Bio": "biopython",
    "Crypto": "pycryptodome",
    "IPython": "ipython",
    "MySQLdb": "mysqlclient",
    "OpenGL": "pyopengl",
    "PIL": "pillow",
    "absl": "absl-py",
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "community": "python-louvain",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "docx": "python-docx",
    "dotenv": "python-dotenv",
    "fitz": "pymupdf",
    "gin": "gin-config",
    "git": "gitpython",
    "github": "pygithub",
    "google.protobuf": "protobuf",
    "haiku": "dm-haiku",
    "hydra": "hydra-core",
    "jwt": "pyjwt",
    "magic": "python-magic",
    "ml_collections": "ml-collections",
    "mpl_toolkits": "matplotlib",
    "open_clip": "open-clip-torch",
    "pkg_resources": "setuptools",
    "pptx": "python-pptx",
    "pyro": "pyro-ppl",
    "serial": "pyserial",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "sonnet": "dm-sonnet",
    "tree": "dm-tree",
    "umap": "umap-learn",
    "yaml": "pyyaml",
    "z3": "z3-solver",
    "zmq": "pyzmq",
}
# Imports that need a distribution besides their own, which their own does not install.
IMPLIED = {
    # torch imports tensorboard only when torch.utils.tensorboard is imported.
    "torch.utils.tensorboard": "tensorboard",
}
# Import names with no one distribution to take: taken as they are, with why.
AMBIGUOUS = {
    "apex": "NVIDIA's apex is built from its repository, not PyPI's apex",
    "clip": "OpenAI's CLIP installs from its repository; PyPI's clip is another package",
    "cupy": "cupy's wheels are named for the CUDA version, such as cupy-cuda12x",
    "detectron2": "detectron2 installs from its repository, not PyPI",
    "faiss": "faiss-cpu or faiss-gpu",
    "google": "a namespace of many distributions (google-cloud-storage, ...)",
    "psycopg2": "psycopg2 builds against libpq; psycopg2-binary does not",
}
# Distributions that install the same modules as the one an import maps to: a notebook
# that installs opencv-python-headless needs no opencv-python besides.
ALTERNATIVES = {
    "opencv-python": (
        "opencv-python-headless",
        "opencv-contrib-python",
        "opencv-contrib-python-headless",
    ),
}
# Modules only a hosted notebook service provides (``from google.colab import drive``):
# no distribution installs them, so they are left out and named.
HOSTED_ONLY = ("google.colab", "kaggle_secrets", "kaggle_datasets")
# Distributions whose import name is their own (after PEP 503 normalisation), well known
# enough that taking the name as it is needs no check.
KNOWN = frozenset(
    canonicalize_name(name)
    for name in [
        "accelerate",
        "albumentations",
        "anndata",
        "annoy",
        "arviz",
        "astropy",
        "bitsandbytes",
        "boto3",
        "captum",
        "catboost",
        "chex",
        "click",
        "cloudpickle",
        "colorama",
        "corner",
        "dask",
        "datasets",
        "deepspeed",
        "diffusers",
        "dill",
        "einops",
        "emcee",
        "evaluate",
        "fastapi",
        "filelock",
        "fire",
        "flask",
        "flax",
        "fsspec",
        "ftfy",
        "gcsfs",
        "gdown",
        "gensim",
        "geopandas",
        "gradio",
        "graphviz",
        "gym",
        "gymnasium",
        "h5py",
        "hdbscan",
        "hnswlib",
        "huggingface_hub",
        "hypothesis",
        "imageio",
        "ipywidgets",
        "jax",
        "jaxlib",
        "jinja2",
        "joblib",
        "jraph",
        "jsonlines",
        "keras",
        "kornia",
        "librosa",
        "lightgbm",
        "lightning",
        "lime",
        "lxml",
        "markdown",
        "matplotlib",
        "mlflow",
        "mpi4py",
        "msgpack",
        "netCDF4",
        "networkx",
        "nibabel",
        "nltk",
        "numba",
        "numpy",
        "numpyro",
        "omegaconf",
        "onnx",
        "onnxruntime",
        "openpyxl",
        "optax",
        "optuna",
        "orjson",
        "pandas",
        "peft",
        "plotly",
        "polars",
        "psutil",
        "pyarrow",
        "pycocotools",
        "pydantic",
        "pydicom",
        "pymc",
        "pytorch_lightning",
        "rapidfuzz",
        "rasterio",
        "ray",
        "regex",
        "requests",
        "rich",
        "s3fs",
        "safetensors",
        "scanpy",
        "scipy",
        "seaborn",
        "sentence_transformers",
        "sentencepiece",
        "shap",
        "shapely",
        "spacy",
        "sqlalchemy",
        "stable_baselines3",
        "statsmodels",
        "streamlit",
        "sympy",
        "tabulate",
        "tensorboard",
        "tensorboardX",
        "tensorflow",
        "tensorflow_datasets",
        "tensorflow_hub",
        "tensorflow_probability",
        "termcolor",
        "tf_keras",
        "tifffile",
        "tiktoken",
        "timm",
        "tokenizers",
        "toml",
        "tomli",
        "torch",
        "torch_geometric",
        "torchaudio",
        "torchmetrics",
        "torchtext",
        "torchvision",
        "tqdm",
        "transformers",
        "triton",
        "typer",
        "typing_extensions",
        "ujson",
        "unidecode",
        "uvicorn",
        "wandb",
        "xarray",
        "xformers",
        "xgboost",
        "xlrd",
        "zarr",
    ]
)
# PEP 508's distribution names: what the group can hold.
_DISTRIBUTION_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?")
# Exceptions whose handler makes the imports of its ``try`` optional.
_OPTIONAL_HANDLERS = frozenset({"ImportError", "ModuleNotFoundError", "Exception"})
# Files whose imports are not the experiments': packaging, tests, docs.
_NOT_FOR_RUNNING_FOLDERS = frozenset({"test", "tests", "testing", "doc", "docs"})
_NOT_FOR_RUNNING_FILES = frozenset({"setup.py", "conftest.py", "noxfile.py"})


@dataclass(frozen=True)
class Imported:
    """A distribution to install: why (the module imported) and which files import it."""

    distribution: str
    module: str
    files: tuple[str, ...]
    # "" for a known distribution, else why the user should check the name.
    doubt: str = ""

    def shown(self) -> str:
        where = self.files[0] + (f" and {len(self.files) - 1} more" if len(self.files) > 1 else "")
        top = canonicalize_name(self.module.split(".")[0])
        # A hosted notebook's module is named as itself (google.colab), not via its top.
        renamed = self.module != self.distribution and top != canonicalize_name(self.distribution)
        via = f"{self.module} in " if renamed else ""
        return f"{self.distribution} ({via}{where})"


@dataclass
class Inferred:
    """What the imports need, and what was left out (imported lazily or optionally)."""

    dependencies: list[Imported] = field(default_factory=list)
    left_out: list[Imported] = field(default_factory=list)

    def describe(self) -> str:
        """One line: each distribution and the file importing it, then the doubtful ones."""
        sure = [item.shown() for item in self.dependencies if not item.doubt]
        doubtful = [f"{item.shown()}: {item.doubt}" for item in self.dependencies if item.doubt]
        parts = [", ".join(sure)] if sure else []
        if doubtful:
            parts.append("taken as the import name, check it: " + "; ".join(doubtful))
        return "; ".join(parts)

    def describe_left_out(self) -> str:
        """One line naming the imports left out, or "" when none were."""
        if not self.left_out:
            return ""
        shown = ", ".join(item.shown() for item in self.left_out)
        return (
            "imports left out of the experiments group (inside a function, under try/except "
            "ImportError, a hosted notebook's own, or not a distribution's name): "
            f"{shown}; add those the experiments need"
        )


# (module, whether it is imported when its file loads), as :func:`module_imports` gives.
Import = tuple[str, bool]


def infer(
    files: Iterable[tuple[str, Iterable[Import]]],
    own_names: Set[str],
    installed: Iterable[tuple[str, Iterable[str]]] = (),
) -> Inferred:
    """The distributions that the imports of ``files`` (path, its imports) need, and those
    that ``installed`` (path, the distributions it installs) names, sorted by name;
    ``own_names`` are the project's own modules and packages."""
    needed: dict[str, tuple[str, set[str], str]] = {}
    lazy: dict[str, tuple[str, set[str], str]] = {}
    installs = _take_installed(installed, own_names, needed)
    for path, imports in files:
        if not _for_running(path):
            continue
        for module, eager in imports:
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in own_names or top == "__main__":
                continue
            hosted = [name for name in HOSTED_ONLY if f"{module}.".startswith(f"{name}.")]
            if hosted:
                lazy.setdefault(hosted[0], (hosted[0], set(), ""))[1].add(path)
                continue
            for distribution, doubt in _distributions(module):
                # A name no distribution can have (a non-ASCII module) is named, not taken.
                target = needed if eager and _DISTRIBUTION_NAME.fullmatch(distribution) else lazy
                _, importers, _ = target.setdefault(distribution, (module, set(), doubt))
                importers.add(path)
    for distribution, (_, importers, doubt) in list(needed.items()):
        instead = _installed_instead(distribution, doubt, installs)
        if instead is not None:
            needed[instead][1].update(importers)
            del needed[distribution]
    inferred = Inferred()
    for distribution in sorted(needed):
        module, importers, doubt = needed[distribution]
        inferred.dependencies.append(
            Imported(distribution, module, tuple(sorted(importers, key=_shallow_first)), doubt)
        )
    for distribution in sorted(set(lazy) - set(needed)):
        module, importers, doubt = lazy[distribution]
        inferred.left_out.append(
            Imported(distribution, module, tuple(sorted(importers, key=_shallow_first)), doubt)
        )
    return inferred


def _take_installed(
    installed: Iterable[tuple[str, Iterable[str]]],
    own_names: Set[str],
    needed: dict[str, tuple[str, set[str], str]],
) -> set[str]:
    """Add what ``installed`` names to ``needed``; returns the names taken."""
    own = {canonicalize_name(name) for name in own_names}
    taken: set[str] = set()
    for path, distributions in installed:
        if not _for_running(path):
            continue
        for distribution in distributions:
            name = canonicalize_name(distribution)
            # The project's own package, installed from PyPI in a notebook, is its code here.
            if name not in own:
                needed.setdefault(name, (name, set(), ""))[1].add(path)
                taken.add(name)
    return taken


def _installed_instead(distribution: str, doubt: str, installs: Set[str]) -> str | None:
    """The installed distribution that provides what ``distribution`` (an import's) would:
    one of its :data:`ALTERNATIVES`, or, for a name taken as the import's with a doubt, one
    named after it (``faiss``: ``faiss-cpu``). None when none does."""
    name = canonicalize_name(distribution)
    if name in installs:
        return None
    return next(
        (
            install
            for install in sorted(installs)
            if install in ALTERNATIVES.get(name, ()) or (doubt and install.startswith(f"{name}-"))
        ),
        None,
    )


def _shallow_first(path: str) -> tuple[int, str]:
    """Files in the root first: the line names the first file, and a root script is the
    one a user recognises."""
    return path.count("/"), path


def _for_running(path: str) -> bool:
    parts = path.split("/")
    name = parts[-1]
    return not (
        _NOT_FOR_RUNNING_FOLDERS.intersection(parts[:-1])
        or name in _NOT_FOR_RUNNING_FILES
        or name.startswith("test_")
        or name.endswith("_test.py")
    )


def _distributions(module: str) -> list[tuple[str, str]]:
    """(distribution, doubt) for each distribution ``module`` needs."""
    found = []
    parts = module.split(".")
    prefixes = [".".join(parts[:length]) for length in range(len(parts), 0, -1)]
    top = parts[0]
    renamed = next((RENAMED[prefix] for prefix in prefixes if prefix in RENAMED), None)
    if renamed is not None:
        found.append((renamed, ""))
    elif top in AMBIGUOUS:
        found.append((top, AMBIGUOUS[top]))
    elif canonicalize_name(top) in KNOWN:
        found.append((canonicalize_name(top), ""))
    else:
        found.append((top, "not a distribution harness knows by name"))
    implied = next((IMPLIED[prefix] for prefix in prefixes if prefix in IMPLIED), None)
    if implied is not None:
        found.append((implied, ""))
    return found


def module_imports(tree: ast.Module) -> Iterator[Import]:
    """(module, whether it is imported when the module loads) for each absolute import.

    ``from a.b import c`` yields ``a.b`` and ``a.b.c`` (``c`` may be a module, as in
    ``from torch.utils import tensorboard``). The walk uses a stack, not recursion, so a
    deeply nested file cannot exhaust Python's.
    """
    # Reversed onto the stack, so that files' imports come out in the order written.
    stack: list[tuple[ast.stmt, bool]] = [(statement, True) for statement in reversed(tree.body)]
    while stack:
        statement, eager = stack.pop()
        if isinstance(statement, ast.Import):
            for alias in statement.names:
                yield alias.name, eager
        elif isinstance(statement, ast.ImportFrom):
            if statement.level or not statement.module:
                continue  # a relative import: the project's own code
            yield statement.module, eager
            for alias in statement.names:
                if alias.name != "*":
                    yield f"{statement.module}.{alias.name}", eager
        else:
            stack.extend(reversed(_inner(statement, eager)))


def _inner(statement: ast.stmt, eager: bool) -> list[tuple[ast.stmt, bool]]:
    """The statements nested in ``statement``, each with whether it runs at load time."""
    if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
        return [(inner, False) for inner in statement.body]
    if isinstance(statement, ast.Try | ast.TryStar):
        optional = any(_catches_import_error(handler) for handler in statement.handlers)
        inner = [(s, eager and not optional) for s in statement.body]
        for handler in statement.handlers:
            inner += [(s, eager and not optional) for s in handler.body]
        return inner + [(s, eager) for s in (*statement.orelse, *statement.finalbody)]
    if isinstance(statement, ast.If) and _is_type_checking(statement.test):
        # Read by type checkers only; never imported when the code runs.
        return [(s, eager) for s in statement.orelse]
    nested: list[tuple[ast.stmt, bool]] = []
    for name in ("body", "orelse", "finalbody"):
        value = getattr(statement, name, None)
        if isinstance(value, list):
            nested += [(s, eager) for s in value if isinstance(s, ast.stmt)]
    for case in getattr(statement, "cases", ()):
        nested += [(s, eager) for s in case.body]
    return nested


def _is_type_checking(test: ast.expr) -> bool:
    name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", "")
    return name == "TYPE_CHECKING"


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(isinstance(c, ast.Name) and c.id in _OPTIONAL_HANDLERS for c in caught)


__all__ = ["Import", "Imported", "Inferred", "infer", "module_imports"]
