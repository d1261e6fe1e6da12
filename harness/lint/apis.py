"""What `harness lint` knows about libraries: which calls draw, seed, read the clock, list
files, write results or only display them.

Kept apart from the analyses so that a missed API is a one-line addition here, and so that
every table can be read, and argued with, against the library's own documentation. Names
are fully qualified (``numpy.random.rand``); method names (``.append``, ``.to_csv``) are
matched on any object, because the linter does not know types.
"""

from __future__ import annotations

from collections.abc import Mapping

# -- global generators -------------------------------------------------------------------

PYTHON, NUMPY, TORCH, TENSORFLOW = "python", "numpy", "torch", "tensorflow"
# Determinism switches, tracked in the same state as the seeds.
TORCH_DETERMINISTIC = "torch-deterministic"
TF_DETERMINISTIC = "tf-deterministic"

PY_RANDOM = frozenset(
    {
        "random",
        "randint",
        "randrange",
        "choice",
        "choices",
        "sample",
        "shuffle",
        "uniform",
        "triangular",
        "gauss",
        "normalvariate",
        "lognormvariate",
        "expovariate",
        "vonmisesvariate",
        "gammavariate",
        "betavariate",
        "paretovariate",
        "weibullvariate",
        "binomialvariate",
        "getrandbits",
        "randbytes",
    }
)
NUMPY_GLOBAL = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "random_integers",
        "random_sample",
        "random",
        "ranf",
        "sample",
        "choice",
        "bytes",
        "shuffle",
        "permutation",
        "beta",
        "binomial",
        "chisquare",
        "dirichlet",
        "exponential",
        "f",
        "gamma",
        "geometric",
        "gumbel",
        "hypergeometric",
        "laplace",
        "logistic",
        "lognormal",
        "logseries",
        "multinomial",
        "multivariate_normal",
        "negative_binomial",
        "noncentral_chisquare",
        "noncentral_f",
        "normal",
        "pareto",
        "poisson",
        "power",
        "rayleigh",
        "standard_cauchy",
        "standard_exponential",
        "standard_gamma",
        "standard_normal",
        "standard_t",
        "triangular",
        "uniform",
        "vonmises",
        "wald",
        "weibull",
        "zipf",
    }
)
UNSEEDED_CONSTRUCTORS = frozenset(
    {
        "numpy.random.default_rng",
        "numpy.random.RandomState",
        "numpy.random.SeedSequence",
        "numpy.random.PCG64",
        "numpy.random.PCG64DXSM",
        "numpy.random.MT19937",
        "numpy.random.Philox",
        "numpy.random.SFC64",
        "random.Random",
    }
)
TORCH_GENERATOR = "torch.Generator"
TORCH_SAMPLERS = frozenset(
    {
        "rand",
        "randn",
        "randint",
        "randperm",
        "rand_like",
        "randn_like",
        "randint_like",
        "normal",
        "bernoulli",
        "multinomial",
        "poisson",
    }
)
TORCH_INPLACE_SAMPLERS = frozenset(
    {
        "uniform_",
        "normal_",
        "random_",
        "bernoulli_",
        "exponential_",
        "geometric_",
        "log_normal_",
        "cauchy_",
    }
)
TF_OPS = frozenset(
    {
        f"tensorflow.random.{name}"
        for name in (
            "normal",
            "uniform",
            "truncated_normal",
            "shuffle",
            "categorical",
            "gamma",
            "poisson",
        )
    }
    | {"tensorflow.nn.dropout"}
)

# Seeding calls and the global generators each one seeds. The all-framework helpers seed
# Python, NumPy and the framework(s) they know.
_ALL = frozenset({PYTHON, NUMPY, TORCH, TENSORFLOW})
SEEDS: Mapping[str, frozenset[str]] = {
    "random.seed": frozenset({PYTHON}),
    "numpy.random.seed": frozenset({NUMPY}),
    "torch.manual_seed": frozenset({TORCH}),
    "torch.random.manual_seed": frozenset({TORCH}),
    "torch.cuda.manual_seed": frozenset({TORCH}),
    "torch.cuda.manual_seed_all": frozenset({TORCH}),
    "tensorflow.random.set_seed": frozenset({TENSORFLOW}),
    "tensorflow.set_random_seed": frozenset({TENSORFLOW}),
    "tensorflow.compat.v1.set_random_seed": frozenset({TENSORFLOW}),
    "tensorflow.compat.v1.random.set_random_seed": frozenset({TENSORFLOW}),
    "keras.utils.set_random_seed": _ALL,
    "tensorflow.keras.utils.set_random_seed": _ALL,
    "lightning.seed_everything": _ALL,
    "lightning.pytorch.seed_everything": _ALL,
    "lightning.fabric.seed_everything": _ALL,
    "lightning_fabric.seed_everything": _ALL,
    "pytorch_lightning.seed_everything": _ALL,
    "transformers.set_seed": _ALL,
    "accelerate.utils.set_seed": _ALL,
}
# Trainer classes that seed every generator from their arguments when built
# (transformers' Trainer calls set_seed(args.seed), trl's trainers likewise).
SEEDING_TRAINER_ROOTS = ("transformers.", "trl.")
# Calls that replace a model's initial weights with trained ones.
WEIGHT_LOADERS = frozenset({"load_state_dict", "load_weights"})
# Keywords that take a seed on any call (tf ops, keras initializers, scikit-learn).
SEED_KEYWORDS = frozenset({"seed", "random_state"})

# -- ops that are nondeterministic on CUDA -----------------------------------------------
# PyTorch's torch.use_deterministic_algorithms reference lists the ops that "act
# deterministically when mode=True" (these) and those that raise instead (below).
TORCH_DETERMINISTIC_WHEN_ON = frozenset(
    {"index_add_", "index_add", "scatter_add_", "scatter_add", "scatter_reduce", "scatter_reduce_"}
)
TORCH_NO_DETERMINISTIC_KERNEL = frozenset({"histc", "kthvalue"})
ACCUMULATING = frozenset({"index_put_", "index_put", "put_"})
TF_SEGMENT = frozenset(
    {
        "unsorted_segment_sum",
        "unsorted_segment_mean",
        "unsorted_segment_prod",
        "unsorted_segment_sqrt_n",
    }
)

# -- scikit-learn: estimators and splitters whose randomness random_state controls --------
# None means "always random"; otherwise (keyword, values) that make the estimator draw.
# random_state=None draws from NumPy's global RandomState, so np.random.seed covers it.
_ALWAYS: tuple[str, frozenset[object]] | None = None
SKLEARN_RANDOM: Mapping[str, tuple[str, frozenset[object]] | None] = {
    **dict.fromkeys(
        (
            "RandomForestClassifier",
            "RandomForestRegressor",
            "ExtraTreesClassifier",
            "ExtraTreesRegressor",
            "RandomTreesEmbedding",
            "DecisionTreeClassifier",
            "DecisionTreeRegressor",
            "ExtraTreeClassifier",
            "ExtraTreeRegressor",
            "GradientBoostingClassifier",
            "GradientBoostingRegressor",
            "IsolationForest",
            "BaggingClassifier",
            "BaggingRegressor",
            "AdaBoostClassifier",
            "AdaBoostRegressor",
            "MLPClassifier",
            "MLPRegressor",
            "SGDClassifier",
            "SGDRegressor",
            "SGDOneClassSVM",
            "Perceptron",
            "PassiveAggressiveClassifier",
            "PassiveAggressiveRegressor",
            "KMeans",
            "MiniBatchKMeans",
            "BisectingKMeans",
            "GaussianMixture",
            "BayesianGaussianMixture",
            "TSNE",
            "MDS",
            "SpectralClustering",
            "SpectralEmbedding",
            "FastICA",
            "LatentDirichletAllocation",
            "MiniBatchDictionaryLearning",
            "TruncatedSVD",
            "RBFSampler",
            "Nystroem",
            "SkewedChi2Sampler",
            "GaussianRandomProjection",
            "SparseRandomProjection",
            "RandomizedSearchCV",
            "HalvingRandomSearchCV",
            "ShuffleSplit",
            "StratifiedShuffleSplit",
            "GroupShuffleSplit",
            "RepeatedKFold",
            "RepeatedStratifiedKFold",
            "train_test_split",
            "permutation_importance",
            "shuffle",
            "resample",
            "make_classification",
            "make_regression",
            "make_blobs",
            "make_moons",
            "make_circles",
            "make_s_curve",
            "make_swiss_roll",
            "make_friedman1",
            "make_friedman2",
            "make_friedman3",
            "make_low_rank_matrix",
            "make_sparse_coded_signal",
            "make_spd_matrix",
            "make_sparse_spd_matrix",
            "make_multilabel_classification",
            "make_gaussian_quantiles",
            "make_hastie_10_2",
            "make_biclusters",
            "make_checkerboard",
            "make_sparse_uncorrelated",
        ),
        _ALWAYS,
    ),
    "KFold": ("shuffle", frozenset({True})),
    "StratifiedKFold": ("shuffle", frozenset({True})),
    "GroupKFold": ("shuffle", frozenset({True})),
    "LogisticRegression": ("solver", frozenset({"sag", "saga", "liblinear"})),
    "Ridge": ("solver", frozenset({"sag", "saga"})),
    "RidgeClassifier": ("solver", frozenset({"sag", "saga"})),
    "SVC": ("probability", frozenset({True})),
    "NuSVC": ("probability", frozenset({True})),
    "Lasso": ("selection", frozenset({"random"})),
    "ElasticNet": ("selection", frozenset({"random"})),
    "PCA": ("svd_solver", frozenset({"randomized", "arpack"})),
    "KernelPCA": ("eigen_solver", frozenset({"randomized", "arpack"})),
    "NMF": ("init", frozenset({"random", "nndsvdar"})),
}
# Meta-estimators that set the random_state of the estimator they are given from theirs.
SKLEARN_ENSEMBLES = frozenset(
    {"AdaBoostClassifier", "AdaBoostRegressor", "BaggingClassifier", "BaggingRegressor"}
)
# k-means draws only to pick its initial centers ('k-means++' or 'random').
SKLEARN_KMEANS = frozenset({"KMeans", "MiniBatchKMeans", "BisectingKMeans"})
# train_test_split(shuffle=False) and shuffle-less dataset generators draw nothing.
SKLEARN_SHUFFLE_OFF = frozenset({"train_test_split", "make_moons", "make_circles"})

# -- layers whose weights are initialised from the framework's global generator ----------
TORCH_LAYERS = frozenset(
    {
        "Linear",
        "Bilinear",
        "LazyLinear",
        "Conv1d",
        "Conv2d",
        "Conv3d",
        "ConvTranspose1d",
        "ConvTranspose2d",
        "ConvTranspose3d",
        "LazyConv1d",
        "LazyConv2d",
        "LazyConv3d",
        "Embedding",
        "EmbeddingBag",
        "RNN",
        "LSTM",
        "GRU",
        "RNNCell",
        "LSTMCell",
        "GRUCell",
        "MultiheadAttention",
        "Transformer",
        "TransformerEncoderLayer",
        "TransformerDecoderLayer",
    }
)
KERAS_LAYERS = frozenset(
    {
        "Dense",
        "EinsumDense",
        "Conv1D",
        "Conv2D",
        "Conv3D",
        "Conv1DTranspose",
        "Conv2DTranspose",
        "Conv3DTranspose",
        "SeparableConv1D",
        "SeparableConv2D",
        "DepthwiseConv1D",
        "DepthwiseConv2D",
        "Embedding",
        "LSTM",
        "GRU",
        "SimpleRNN",
        "LSTMCell",
        "GRUCell",
        "SimpleRNNCell",
        "MultiHeadAttention",
    }
)
KERAS_ROOTS = ("keras.", "tensorflow.keras.", "tf_keras.")
# Model constructors of the model zoos: the weights of a model built without pretrained
# weights come from torch's global generator. Functions under these roots whose name
# starts with a lowercase letter build a model (resnet50, vit_b_16, create_model); the
# others are helpers that draw nothing.
TORCHVISION_MODELS = "torchvision.models."
MODEL_ZOO_HELPERS = frozenset(
    {"get_model_weights", "get_weight", "list_models", "get_model_builder", "list_pretrained"}
)
TIMM_CONSTRUCTORS = frozenset({"timm.create_model", "timm.models.create_model"})
# transformers: a model class's from_config, or the class called with a config, initialises
# its weights randomly; from_pretrained loads them.
TRANSFORMERS_ROOT = "transformers."
TRANSFORMERS_MODEL_SUFFIXES = ("Model", "LMHeadModel")
TRANSFORMERS_MODEL_MARKERS = ("For", "Model")
# Arguments that load trained weights instead of drawing initial ones.
PRETRAINED_KEYWORDS = frozenset({"weights", "pretrained", "pretrained_cfg", "checkpoint_path"})

# -- values that differ between runs (the flow rules' sources) ---------------------------
# Clock and host reads; the value is how many positional arguments pass an explicit time,
# which makes the call deterministic (time.gmtime(0) reads no clock).
CLOCK_OR_HOST: Mapping[str, int | None] = {
    "time.time": None,
    "time.time_ns": None,
    "time.ctime": 1,
    "time.localtime": 1,
    "time.gmtime": 1,
    "time.asctime": 1,
    "time.strftime": 2,
    "datetime.datetime.now": None,
    "datetime.datetime.utcnow": None,
    "datetime.datetime.today": None,
    "datetime.date.today": None,
    "socket.gethostname": None,
    "socket.getfqdn": None,
    "platform.node": None,
    "platform.uname": None,
    "os.uname": None,
    "os.getpid": None,
    "getpass.getuser": None,
}
OS_ENTROPY = frozenset(
    {"os.urandom", "os.getrandom", "uuid.uuid1", "uuid.uuid4", "random.SystemRandom"}
)
SECRETS = frozenset(
    {"token_bytes", "token_hex", "token_urlsafe", "choice", "randbelow", "randbits", "SystemRandom"}
)
# Directory listings come in the file system's order, which differs between machines.
LISTINGS = frozenset(
    {
        "os.listdir",
        "os.scandir",
        "glob.glob",
        "glob.iglob",
        "tensorflow.io.gfile.listdir",
        "tensorflow.io.gfile.glob",
    }
)
LISTING_METHODS = frozenset({"glob", "rglob", "iterdir"})
WALKS = frozenset({"os.walk", "tensorflow.io.gfile.walk", "os.fwalk"})
# Results in completion order, which depends on scheduling.
UNORDERED_METHODS = frozenset({"imap_unordered"})
UNORDERED_CALLS = frozenset({"concurrent.futures.as_completed", "asyncio.as_completed"})

# -- where values go ---------------------------------------------------------------------
# Consumers whose result does not depend on the order of what they are given.
ORDER_FREE = frozenset(
    {"sorted", "len", "any", "all", "min", "max", "sum", "set", "frozenset", "bool"}
)
ORDER_FREE_QUALIFIED = frozenset(
    {"math.fsum", "numpy.sort", "numpy.unique", "collections.Counter", "heapq.nsmallest"}
)
# Calls that keep the order of the iterable they are given.
ORDER_KEEPING = frozenset(
    {"list", "tuple", "enumerate", "iter", "next", "zip", "map", "filter", "dict.fromkeys"}
)
SET_METHODS = frozenset({"union", "intersection", "difference", "symmetric_difference"})
# Calls that only show a value to a person.
DISPLAY_BUILTINS = frozenset({"print", "repr", "input"})
DISPLAY_QUALIFIED_ROOTS = ("logging.", "warnings.", "pprint.", "rich.", "click.", "tqdm.")
DISPLAY_METHODS = frozenset(
    {
        "debug",
        "info",
        "warning",
        "warn",
        "error",
        "exception",
        "critical",
        "set_description",
        "set_postfix",
        "set_postfix_str",
        "set_title",
        "set_xlabel",
        "set_ylabel",
        "set_text",
        "text",
        "annotate",
        "title",
        "suptitle",
        "xlabel",
        "ylabel",
        "legend",
        "echo",
        "secho",
    }
)
STD_STREAMS = frozenset({"sys.stdout", "sys.stderr"})
# Calls that write an artifact: module functions and methods on any object.
WRITER_FUNCTIONS = frozenset(
    {
        "save",
        "savez",
        "savez_compressed",
        "savetxt",
        "dump",
        "save_file",
        "save_model",
        "save_weights",
        "imwrite",
        "imsave",
    }
)
WRITER_METHODS = frozenset(
    {
        "write",
        "writelines",
        "write_text",
        "write_bytes",
        "writerow",
        "writerows",
        "to_csv",
        "to_json",
        "to_parquet",
        "to_pickle",
        "to_feather",
        "to_hdf",
        "to_excel",
        "to_netcdf",
        "to_sql",
        "save",
        "save_pretrained",
        "save_weights",
        "save_model",
        "savefig",
        "dump",
    }
)
# Metrics and parameters logged to a tracker.
METRIC_METHODS = frozenset(
    {
        "log_metric",
        "log_metrics",
        "log_param",
        "log_params",
        "log_dict",
        "log_text",
        "log_artifact",
        "log_artifacts",
        "log_table",
        "log_hyperparams",
        "add_scalar",
        "add_scalars",
        "add_histogram",
        "add_text",
        "add_hparams",
    }
)
# `.log(name, value)` is a metric on these receivers (Lightning's self.log, wandb.log, a
# run object); on a logger it is a message, on numpy a logarithm.
METRIC_LOG_RECEIVERS = frozenset({"self", "wandb", "run", "experiment", "tracker", "live"})
# Training: what is passed in becomes model state.
TRAINING_METHODS = frozenset({"fit", "partial_fit", "fit_transform", "train_on_batch"})
# Backpropagation: the loss it is called on (or given, as accelerate's backward(loss) and
# lightning's manual_backward) is what the model is trained on.
BACKWARD_METHODS = frozenset({"backward", "manual_backward"})
# Calls that trace or export a module with an example input: the input only picks the
# path through the code, the artifact holds the module's weights, not the input's values.
TRACERS = frozenset(
    {
        "torch.jit.trace",
        "torch.jit.trace_module",
        "torch.onnx.export",
        "torch.onnx.dynamo_export",
        "torch.export.export",
        "torch.fx.symbolic_trace",
    }
)
# Draws whose value goes into their first argument, shuffled in place.
IN_PLACE_DRAWS = frozenset({"random.shuffle", "numpy.random.shuffle"})
# Clock readings: the difference of two is a duration, which is the same kind of value
# on every run (a throughput, a time per step), not a point in time.
CLOCKS = frozenset(
    {
        "time.time",
        "time.time_ns",
        "datetime.datetime.now",
        "datetime.datetime.utcnow",
        "datetime.datetime.today",
    }
)
# Methods that put their arguments into their receiver.
MUTATORS = frozenset(
    {
        "append",
        "extend",
        "insert",
        "add",
        "update",
        "setdefault",
        "appendleft",
        "extendleft",
        "put",
        "put_nowait",
        "push",
        "__setitem__",
    }
)
