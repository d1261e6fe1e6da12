"""The catalogue of `harness lint` rules: what each one catches, where it stops, and the fix.

Every rule is static (read from the syntax tree, nothing is imported or run) and local to one
file: "a seed is visible" means a seeding call appears anywhere in the same file. The checks
resolve module aliases (``import numpy as np``, ``from numpy import random as npr``,
``from random import choice``), but not values passed between files or functions, so a rule
errs towards reporting; a deliberate exception is silenced on its line with
``# harness: ignore[HR0NN]``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    summary: str
    fix: str
    # What exactly is matched, and what is not: shown by `harness lint --rules`.
    scope: str


PARSE_ERROR = "HR000"

RULES: tuple[Rule, ...] = (
    Rule(
        PARSE_ERROR,
        "unparseable",
        "the file cannot be parsed, so none of its code was checked",
        "fix the syntax error (or the encoding) the message names",
        "Any .py file that Python's parser refuses, or that is not UTF-8. Always on: it can "
        "be neither deselected nor ignored, because a file that was not read must not pass.",
    ),
    Rule(
        "HR001",
        "unseeded-random",
        "Python's global random generator is used but never seeded in this file",
        "draw from random.Random(seed), or call random.seed(seed) first",
        "Calls of the module-level functions of `random` (random, randint, randrange, "
        "choice, choices, sample, shuffle, uniform, gauss, ...) in a file with no "
        "random.seed(...) call (nor keras.utils.set_random_seed, lightning's seed_everything "
        "or transformers.set_seed). Methods of a random.Random instance are not matched.",
    ),
    Rule(
        "HR002",
        "unseeded-numpy-global",
        "NumPy's global random state is used but never seeded in this file",
        "draw from rng = np.random.default_rng(seed) instead of np.random.*",
        "Calls of numpy.random's legacy module-level functions (rand, randn, randint, "
        "random, choice, shuffle, permutation, normal, uniform, ...) in a file with no "
        "np.random.seed(...) call (nor one of the all-framework seeding calls). Methods of a "
        "Generator or RandomState object are not matched.",
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
        "torch's global generator is used but torch.manual_seed is never called in this file",
        "pass generator=torch.Generator().manual_seed(seed), or call torch.manual_seed(seed)",
        "Calls of torch.rand, randn, randint, randperm, the *_like variants, normal, "
        "bernoulli, multinomial and poisson without a generator= argument, and the in-place "
        "samplers (.uniform_, .normal_, .random_, .bernoulli_, .exponential_, "
        ".geometric_, .log_normal_, .cauchy_) without generator=, in a file that imports torch "
        "and has no torch.manual_seed(...) (nor torch.random/cuda seeding, nor an "
        "all-framework seeding call). Weight initialisation inside nn modules is not visible.",
    ),
    Rule(
        "HR005",
        "unseeded-tensorflow",
        "a TensorFlow random op has no seed and tf.random.set_seed is never called in this file",
        "call tf.random.set_seed(seed) (or keras.utils.set_random_seed), or pass seed=",
        "Calls of tf.random.normal, uniform, truncated_normal, shuffle, categorical, gamma, "
        "poisson and tf.nn.dropout without seed=, in a file with no tf.random.set_seed, "
        "keras.utils.set_random_seed or tf.compat.v1.set_random_seed call. The stateless_* ops "
        "and tf.random.Generator.from_seed are seeded by construction.",
    ),
    Rule(
        "HR006",
        "dataloader-workers",
        "a DataLoader with worker processes has neither generator= nor worker_init_fn=",
        "pass generator=torch.Generator().manual_seed(seed) and a worker_init_fn that seeds "
        "numpy and random from torch.initial_seed() (see PyTorch's reproducibility notes)",
        "Calls named DataLoader (torch.utils.data.DataLoader or an imported alias) whose "
        "num_workers= is present and not the literal 0, with neither generator= nor "
        "worker_init_fn=. A num_workers computed at run time counts as workers.",
    ),
    Rule(
        "HR007",
        "cudnn-autotune",
        "cuDNN is allowed to pick algorithms by timing, or to use nondeterministic ones",
        "set torch.backends.cudnn.benchmark = False and torch.backends.cudnn.deterministic = True",
        "Assignments of the literal True to an attribute `benchmark` of something named "
        "`cudnn`, and of the literal False to its `deterministic`.",
    ),
    Rule(
        "HR008",
        "determinism-off",
        "a framework's determinism switch is turned off or weakened to a warning",
        "remove the call: harness turns determinism on before the experiment starts",
        "torch.use_deterministic_algorithms(False) or (..., warn_only=True); "
        "torch.set_deterministic_debug_mode(0 or 'default'); assignments of '0' or 'false' "
        "to TF_DETERMINISTIC_OPS or TF_CUDNN_DETERMINISTIC through os.environ.",
    ),
    Rule(
        "HR009",
        "nondeterministic-op",
        "this op uses atomic adds or an unordered reduction on CUDA: its result can vary "
        "between runs",
        "use a deterministic formulation (sort then segment_sum, or accumulate on the CPU), "
        "or keep it on the CPU",
        "Calls named index_add(_), scatter_add(_), scatter_reduce(_), index_put(_) or put_ "
        "with accumulate=True, bincount, histc and kthvalue, except on numpy; and "
        "tf.math.unsorted_segment_sum, _mean, _prod and _sqrt_n. Sources: PyTorch's "
        "torch.use_deterministic_algorithms reference (the ops it makes deterministic or "
        "refuses on CUDA), TensorFlow's tf.config.experimental.enable_op_determinism "
        "reference, and NVIDIA's framework-reproducibility notes. The device is not known "
        "statically: CPU-only code may ignore the rule on the line.",
    ),
    Rule(
        "HR010",
        "clock-or-host",
        "the wall clock or the machine's name is read: a result that holds it differs per run",
        "leave timestamps and host names out of artifacts and metrics (the run record keeps "
        "them), or ignore the line when the value is only printed",
        "Calls of time.time, time_ns, ctime, localtime, gmtime, asctime, strftime; "
        "datetime.now, utcnow, today and date.today; socket.gethostname, getfqdn; "
        "platform.node, uname; os.uname; getpass.getuser. Durations (time.perf_counter, "
        "monotonic) are not matched. Where the value goes is not followed.",
    ),
    Rule(
        "HR011",
        "os-entropy",
        "randomness from the operating system cannot be seeded",
        "derive the value from the seed (random.Random(seed), np.random.default_rng(seed))",
        "Calls of os.urandom, os.getrandom, the secrets module's functions, uuid.uuid1 and "
        "uuid.uuid4, and random.SystemRandom().",
    ),
    Rule(
        "HR012",
        "set-order",
        "a set's iteration order feeds a result: it depends on hashing, not on the data",
        "iterate over sorted(...) of the set",
        "for loops and comprehensions over a set (set(...), frozenset(...), a set literal or "
        "comprehension, set operators and methods on one of those, or a name every "
        "assignment of which in the same function is one of those), and list, tuple, "
        "enumerate, iter, next and str.join applied directly to such a set. sorted(...), len, "
        "membership and min/max are order-free and not matched; sum() of floats is not "
        "matched either.",
    ),
)

BY_ID = {rule.id: rule for rule in RULES}
