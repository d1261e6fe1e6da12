"""The catalogue of `harness lint` rules: what each one catches, where it stops, and the fix.

Every rule is static (read from the syntax tree, nothing is imported or run). There are
three kinds:

- state rules (HR001-HR006, HR009, HR013, HR017, HR019) ask whether a global generator was
  seeded, or a determinism switch turned on, before the call runs: the program is walked
  in execution order across the project's own modules (harness.lint.seeding). A draw
  (HR001, HR002, HR004's samplers and shuffles, HR005) counts only when its value reaches a
  result, as the flow rules define it; the unseeded uses of one generator in a file are one
  finding, at the first, with the others as related locations (harness.lint.causes);
- flow rules (HR010-HR012, HR014-HR016, HR018) fire only when a value that differs between
  runs reaches a result: a returned value, an artifact, a metric, training data or a seed
  (harness.lint.flow);
- local rules (HR003, HR007, HR008) match one call or assignment as written.

Aliases resolve (``import numpy as np``, ``from numpy import random as npr``), as do calls
into the project's own modules. A deliberate exception is silenced on its line with
``# harness: ignore[HR0NN]``, or for a whole file with ``# harness: ignore-file[HR0NN]``.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    summary: str
    fix: str
    # What exactly is matched, and what is not: shown by `harness lint --rules`.
    scope: str
    # error: the result differs from run to run; warning: it differs with the machine,
    # the file system, the hash seed or the device (SARIF's levels, GitHub's severities).
    severity: str = ERROR


PARSE_ERROR = "HR000"

_REACH = (
    " Its value must reach a result (returned, written, logged as a metric, trained on "
    "through fit, backward or a trainer's train); a draw that only feeds a print, an "
    "assert, a trace's example input or a timing is not a finding. The unseeded uses of "
    "one generator in a file are one finding, at the first, the others related."
)

RULES: tuple[Rule, ...] = (
    Rule(
        PARSE_ERROR,
        "unparseable",
        "the file cannot be parsed, so none of its code was checked",
        "fix the syntax error, the encoding or the nesting the message names",
        "Any .py file that Python's parser refuses, that is not UTF-8, or that is nested "
        "more than 120 levels deep (too deep to analyse). Always on: it can "
        "be neither deselected nor ignored, because a file that was not read must not pass.",
    ),
    Rule(
        "HR001",
        "unseeded-random",
        "Python's global random generator is used before it is seeded",
        "draw from random.Random(seed), or call random.seed(seed) first",
        "Calls of the module-level functions of `random` (random, randint, randrange, "
        "choice, choices, sample, shuffle, uniform, gauss, ...) reached, in execution order, "
        "before any random.seed(seed) call (nor keras.utils.set_random_seed, lightning's "
        "seed_everything, transformers.set_seed), including seeds set in project functions "
        "the program calls. A seed in a function nothing calls does not count; random.seed() "
        "without a value seeds from the OS and does not count either. Methods of a "
        "random.Random instance are not matched." + _REACH,
    ),
    Rule(
        "HR002",
        "unseeded-numpy-global",
        "NumPy's global random state is used before it is seeded",
        "draw from rng = np.random.default_rng(seed) instead of np.random.*",
        "Calls of numpy.random's legacy module-level functions (rand, randn, randint, "
        "random, choice, shuffle, permutation, normal, uniform, ...) reached before any "
        "np.random.seed(seed) call (or an all-framework seeding call), in execution order "
        "across the project's modules. Methods of a Generator or RandomState object are not "
        "matched." + _REACH,
    ),
    Rule(
        "HR003",
        "unseeded-generator",
        "a random generator is created without a seed, so it draws from OS entropy",
        "pass the seed: np.random.default_rng(seed), random.Random(seed), "
        "torch.Generator().manual_seed(seed)",
        "np.random.default_rng(), RandomState(), SeedSequence() and the bit generators "
        "(PCG64, MT19937, Philox, SFC64) with no argument or None; random.Random() with no "
        "argument; torch.Generator() neither chained into .manual_seed(...) nor assigned "
        "to a name whose .manual_seed(...) is called in the same file.",
    ),
    Rule(
        "HR004",
        "unseeded-torch",
        "torch's global generator is used before torch.manual_seed",
        "pass generator=torch.Generator().manual_seed(seed), or call torch.manual_seed(seed)",
        "Calls of torch.rand, randn, randint, randperm, the *_like variants, normal, "
        "bernoulli, multinomial and poisson without generator=, the in-place samplers "
        "(.uniform_, .normal_, nn.init.*_, ...) without generator=, random_split and "
        "DataLoader(shuffle=...) without generator= (shuffle anything but a literal False, "
        "keywords spread from a dict built in the same function included), reached before "
        "torch.manual_seed (or torch.random/cuda seeding, an all-framework seeding call, or "
        "a transformers or trl Trainer, which seeds when built). Methods that the code never "
        "calls by name (forward, training_step, ...) run once the program has set its "
        "seeds. The in-place samplers initialise weights and always count; the others "
        "must reach a result." + _REACH,
    ),
    Rule(
        "HR005",
        "unseeded-tensorflow",
        "a TensorFlow random op has no seed and runs before tf.random.set_seed",
        "call tf.random.set_seed(seed) (or keras.utils.set_random_seed), or pass seed=",
        "Calls of tf.random.normal, uniform, truncated_normal, shuffle, categorical, gamma, "
        "poisson and tf.nn.dropout without seed=, reached before tf.random.set_seed, "
        "keras.utils.set_random_seed or tf.compat.v1.set_random_seed. The stateless_* ops "
        "and tf.random.Generator.from_seed are seeded by construction." + _REACH,
    ),
    Rule(
        "HR006",
        "dataloader-workers",
        "DataLoader workers are seeded from torch's global generator, which is not seeded here",
        "call torch.manual_seed(seed) first, or pass generator=torch.Generator().manual_seed(seed)",
        "DataLoader calls whose num_workers= is present (or spread from a dict) and not the "
        "literal 0, with neither "
        "generator= nor worker_init_fn=, reached before torch.manual_seed. Since torch 1.9 "
        "each worker seeds its random, NumPy and torch from the main generator, so with "
        "torch seeded the workers reproduce; a num_workers computed at run time counts as "
        "workers.",
        WARNING,
    ),
    Rule(
        "HR007",
        "cudnn-autotune",
        "cuDNN is allowed to pick algorithms by timing, or to use nondeterministic ones",
        "set torch.backends.cudnn.benchmark = False and torch.backends.cudnn.deterministic = True",
        "Assignments of the literal True to an attribute `benchmark` of something named "
        "`cudnn`, and of the literal False to its `deterministic`.",
        WARNING,
    ),
    Rule(
        "HR008",
        "determinism-off",
        "a framework's determinism switch is turned off or weakened to a warning",
        "remove the call: harness turns determinism on before the experiment starts",
        "torch.use_deterministic_algorithms(False) or (..., warn_only=True); "
        "torch.set_deterministic_debug_mode(0 or 'default'); assignments of '0' or 'false' "
        "to TF_DETERMINISTIC_OPS or TF_CUDNN_DETERMINISTIC through os.environ.",
        WARNING,
    ),
    Rule(
        "HR009",
        "nondeterministic-op",
        "this op uses atomic adds or an unordered reduction on CUDA: its result can vary "
        "between runs",
        "turn on torch.use_deterministic_algorithms(True) (or "
        "tf.config.experimental.enable_op_determinism()); for ops without a deterministic "
        "kernel, use a deterministic formulation or keep them on the CPU",
        "index_add(_), scatter_add(_), scatter_reduce(_) and index_put(_)(accumulate=True), "
        "except where torch.use_deterministic_algorithms(True) is on, which makes them "
        "deterministic; histc, kthvalue, bincount with weights and put_(accumulate=True), "
        "which have no deterministic CUDA kernel (they raise under the switch); "
        "tf.math.unsorted_segment_sum, _mean, _prod and _sqrt_n unless op determinism is "
        "on. Not matched on numpy. Sources: PyTorch's torch.use_deterministic_algorithms "
        "reference, TensorFlow's enable_op_determinism reference. The device is not known "
        "statically: CPU-only code may ignore the rule on the line.",
        WARNING,
    ),
    Rule(
        "HR010",
        "clock-or-host",
        "the wall clock, the host or the process id reaches a result, which then differs per run",
        "leave timestamps and host names out of artifacts and metrics (the run record keeps "
        "them); durations belong in logs",
        "time.time, time_ns, ctime, localtime, gmtime, asctime, strftime; datetime.now, "
        "utcnow, today and date.today; socket.gethostname, getfqdn; platform.node, uname; "
        "os.uname, os.getpid; getpass.getuser - when the value reaches a returned result, an "
        "artifact written, a metric logged or training data. Printed and logged values are "
        "not findings; durations (time.perf_counter, monotonic, and the difference of two "
        "clock readings: a throughput, a time per step) are not matched. An option whose "
        "default reads the clock (default=f'runs/{date.today()}') counts where the option "
        "is used.",
    ),
    Rule(
        "HR011",
        "os-entropy",
        "randomness from the operating system reaches a result and cannot be seeded",
        "derive the value from the seed (random.Random(seed), np.random.default_rng(seed))",
        "os.urandom, os.getrandom, the secrets module's functions, uuid.uuid1, uuid.uuid4 "
        "and random.SystemRandom() whose value reaches a result (see HR010).",
    ),
    Rule(
        "HR012",
        "set-order",
        "a set's iteration order reaches a result: it depends on hashing, not on the data",
        "iterate over sorted(...) of the set",
        "for loops, comprehensions, list, tuple, enumerate, iter, next, zip, map and "
        "str.join over a set (set(...), frozenset(...), a literal, a comprehension, set "
        "operators, or a name only ever assigned one of those), when what the order "
        "produces reaches a result. sorted, len, set, min, max, sum, any, all and "
        "membership tests are order-free and stop it.",
        WARNING,
    ),
    Rule(
        "HR013",
        "sklearn-random-state",
        "a scikit-learn estimator or splitter draws from NumPy's global state, which is "
        "not seeded here",
        "pass random_state=SEED (an int), or call np.random.seed(seed) first",
        "scikit-learn classes and functions whose randomness random_state controls "
        "(forests, trees, boosting, MLP, SGD, KMeans, mixtures, TSNE, ShuffleSplit, "
        "train_test_split, permutation_importance, make_* datasets, ...) called without "
        "random_state or with None; KFold and StratifiedKFold only with shuffle=True, "
        "LogisticRegression only with solver sag, saga or liblinear, SVC only with "
        "probability=True, PCA only with svd_solver randomized or arpack. random_state=None "
        "draws from NumPy's global RandomState, so an earlier np.random.seed(seed) is "
        "enough.",
    ),
    Rule(
        "HR014",
        "listing-order",
        "a directory listing's order reaches a result: it is the file system's, which "
        "differs between machines",
        "sort the listing: sorted(os.listdir(...)), sorted(path.glob(...))",
        "os.listdir, os.scandir, os.walk, glob.glob, glob.iglob, Path.glob, rglob and "
        "iterdir (and tf.io.gfile's), when the order reaches a result: what is appended, "
        "accumulated or written across a loop over the listing, an item picked by position, "
        "or the listing itself. Sorting it, or using it as a set or a count, stops it.",
        WARNING,
    ),
    Rule(
        "HR015",
        "unordered-results",
        "parallel results arrive in completion order, and that order reaches a result",
        "use the ordered form (Pool.imap, executor.map, joblib's return_as='generator') or "
        "put results back in submission order",
        "Pool.imap_unordered, concurrent.futures.as_completed, asyncio.as_completed and "
        "joblib.Parallel(return_as='generator_unordered'), when what is accumulated in "
        "their order reaches a result.",
        WARNING,
    ),
    Rule(
        "HR016",
        "string-hash",
        "hash() of a string or bytes differs per process unless PYTHONHASHSEED is fixed, and "
        "here it reaches a result or a seed",
        "use a stable digest: int(hashlib.sha256(text.encode()).hexdigest(), 16) % N, or "
        "zlib.crc32",
        "Calls of the builtin hash() on anything but a number literal whose value reaches "
        "a result or a seed (hash(name) % 10 to split data, np.random.seed(hash(key))).",
        WARNING,
    ),
    Rule(
        "HR017",
        "unseeded-layers",
        "a layer's weights are initialised before the framework's generator is seeded",
        "call torch.manual_seed(seed) (or keras.utils.set_random_seed(seed)) before "
        "building the model",
        "torch.nn layers with random initial weights (Linear, Conv*, ConvTranspose*, "
        "Embedding, RNN, LSTM, GRU, MultiheadAttention, Transformer*) and keras layers "
        "(Dense, Conv*, Embedding, LSTM, GRU, SimpleRNN, MultiHeadAttention, ...) without "
        "seed= or an explicit initializer, the project's subclasses of those torch layers, "
        "and model constructors of torchvision (resnet50(), ... without weights=), timm "
        "(create_model without pretrained=True) and transformers (Model.from_config, a "
        "model class called with a config), created before torch.manual_seed or "
        "tf.random.set_seed / keras.utils.set_random_seed runs; layers built in a model's "
        "__init__ (or through a classmethod factory) are checked where the model is "
        "created. A model assigned to a name whose .load_state_dict(...) the same function "
        "calls has its drawn weights replaced, and is not a finding.",
    ),
    Rule(
        "HR018",
        "random-seed-value",
        "the seed itself differs per run: it comes from the clock, OS entropy or an unseeded draw",
        "use a fixed seed (a constant, a parameter, or HARNESS_SEED)",
        "Seeding calls (random.seed, np.random.seed, torch.manual_seed, tf.random.set_seed, "
        "the all-framework helpers), generator constructors (default_rng, RandomState, "
        "Random, Generator.manual_seed) and seed= / random_state= arguments given a value "
        "that comes from the clock, the host, OS entropy or an unseeded global draw.",
    ),
    Rule(
        "HR019",
        "seed-may-be-unset",
        "the seed is set only when one is given, and the default run gives none",
        "give the seed a fixed default (default=0 for the option or parameter), or seed "
        "unconditionally",
        "Seeding calls under `if X is not None:`, `if X:` (and their negations) where X is an "
        "argparse option, a dataclass field or a parameter whose default is None (or falsy "
        "for `if X:`), and seeding calls given such an X directly (random.seed(None) and "
        "np.random.seed(None) seed from the OS; torch.manual_seed(None) fails). The "
        "default run then draws unseeded: the uses of the generator that run after it are "
        "the finding's related locations. Defaults computed at run time, options the "
        "module assigns itself, and parameters of methods or of functions every call "
        "passes them to, are not judged.",
    ),
)

BY_ID = {rule.id: rule for rule in RULES}
