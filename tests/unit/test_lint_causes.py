"""`harness lint` on deep-learning code as people write it: one finding per cause with the
uses as related locations, draws that count only when they reach a result, seeds the
default run does not set, layers and loaders as written."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from click.testing import CliRunner

from harness.cli.lint import lint
from harness.lint import Finding, check_source, enabled_rules, lint_paths
from harness.lint.sarif import document


def findings(source: str) -> list[Finding]:
    return check_source(textwrap.dedent(source), "x.py")


def rules_at(source: str) -> list[tuple[int, str]]:
    return [(f.line, f.rule) for f in findings(source)]


def uses(finding: Finding) -> list[tuple[int, str]]:
    """The related locations that are further uses of the cause, with their rule."""
    return [
        (place.line, place.message.split(" ", 1)[0])
        for place in finding.related
        if place.message.startswith("HR")
    ]


# -- one finding per cause ---------------------------------------------------------------


UNSEEDED_PROGRAM = """
    import random, json
    a = random.random()
    b = random.random(); c = random.choice([1, 2])
    order = [1, 2, 3]; random.shuffle(order)
    json.dump([a, b, c, order], open("out.json", "w"))
"""


def test_one_unseeded_generator_is_one_finding_with_its_uses_related() -> None:
    (finding,) = findings(UNSEEDED_PROGRAM)
    assert (finding.line, finding.column, finding.rule) == (3, 5, "HR001")
    assert uses(finding) == [(4, "HR001"), (4, "HR001"), (5, "HR001")]
    assert "3 more use(s) of Python's random" in finding.message
    assert "random.seed(seed)" in finding.message


def test_json_and_sarif_carry_the_related_locations_and_count_the_cause_once(
    tmp_path: Path,
) -> None:
    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(UNSEEDED_PROGRAM))
    result = CliRunner().invoke(lint, ["--json", str(script)])
    assert result.exit_code == 1
    (entry,) = json.loads(result.stdout)["findings"]
    # The result the first draw reaches, then the other uses.
    assert [(r["line"], r["column"]) for r in entry["related"]] == [
        (6, 1),
        (4, 5),
        (4, 26),
        (5, 20),
    ]
    assert entry["related"][0]["message"] == "reaches json.dump()"
    assert "1 finding(s) in 1 file(s)" in result.stderr
    (result_entry,) = document(findings(UNSEEDED_PROGRAM), frozenset({"HR001"}))["runs"][0][
        "results"
    ]
    related = result_entry["relatedLocations"]
    assert [r["id"] for r in related] == [1, 2, 3, 4]
    assert related[1]["physicalLocation"]["region"] == {
        "startLine": 4,
        "startColumn": 5,
        "endLine": 4,
        "endColumn": 20,
    }
    assert related[1]["message"]["text"].startswith("HR001")


def test_two_calls_on_one_line_are_one_finding() -> None:
    clock = """
        import json, time
        json.dump([time.time(), time.time()], open("out.json", "w"))
    """
    (finding,) = findings(clock)
    assert (finding.line, finding.column, finding.rule) == (3, 12, "HR010")
    assert any(place.column == 25 for place in finding.related)


def test_a_random_seed_value_is_one_finding_at_the_first_seed() -> None:
    source = """
        import random, torch
        seed = random.randint(0, 1000)
        random.seed(seed)
        torch.manual_seed(seed)
    """
    (finding,) = findings(source)
    assert (finding.line, finding.rule) == (4, "HR018")
    assert sorted(place.line for place in finding.related) == [3, 5]


# -- reach into results ----------------------------------------------------------------


def test_checks_traces_timings_and_dropped_values_are_not_results() -> None:
    source = """
        import time
        import numpy as np
        import torch

        x = np.random.rand(3)
        np.testing.assert_allclose(x, x)
        model = torch.load("model.pt")
        traced = torch.jit.trace(model, torch.rand(1, 3))
        traced.save("traced.pt")
        print(np.random.rand(2))

        def noise():
            return np.random.rand(3)

        noise()
    """
    assert findings(source) == []


def test_a_dropped_value_that_one_caller_keeps_is_a_finding() -> None:
    source = """
        import numpy as np

        def noise():
            return np.random.rand(3)

        noise()
        np.save("noise.npy", noise())
    """
    assert rules_at(source) == [(5, "HR002")]


def test_differences_of_clock_readings_are_durations() -> None:
    source = """
        import json, time
        from datetime import datetime

        start = time.time()
        tokens = 1000
        elapsed = time.time() - start
        began = datetime.now()
        took = (datetime.now() - began).total_seconds()
        json.dump({"tokens_per_s": tokens / elapsed, "mfu": 0.4 / took}, open("m.json", "w"))
    """
    assert findings(source) == []


def test_a_draw_that_picks_an_augmentation_reaches_the_item() -> None:
    source = """
        import random

        class Flip:
            def __getitem__(self, index):
                image = [index]
                if random.random() < 0.5:
                    image = image[::-1]
                return image
    """
    assert rules_at(source) == [(7, "HR001")]


def test_random_data_trained_on_through_backward_is_a_result() -> None:
    source = """
        import torch

        def step(model):
            batch = torch.randn(4, 2)
            loss = model(batch).sum()
            loss.backward()
    """
    assert rules_at(source) == [(5, "HR004")]


def test_a_date_in_an_output_path_reaches_the_artifact() -> None:
    source = """
        from datetime import date
        import torch

        folder = f"runs/{date.today()}"
        torch.save({}, folder + "/model.pt")
    """
    assert rules_at(source) == [(5, "HR010")]


# -- seeds that may not be set -----------------------------------------------------------


def optional_seed(default: str, test: str = "args.seed is not None") -> str:
    return f"""
        import argparse
        import torch
        from torch import nn

        parser = argparse.ArgumentParser()
        parser.add_argument("--seed", type=int{default})
        args = parser.parse_args()
        if {test}:
            torch.manual_seed(args.seed)
        model = nn.Linear(2, 2)
        torch.save(model.state_dict(), "model.pt")
    """


def test_a_seed_under_a_test_of_an_optional_argument_is_a_finding_naming_the_default() -> None:
    (finding,) = findings(optional_seed(", default=None"))
    assert (finding.line, finding.rule) == (10, "HR019")
    assert "--seed defaults to None" in finding.message
    assert "default=0" in finding.fix
    assert uses(finding) == [(11, "HR017")]
    (finding,) = findings(optional_seed(""))
    assert "--seed has no default (None)" in finding.message


def test_a_seed_whose_default_run_sets_it_is_not_a_finding() -> None:
    assert findings(optional_seed(", default=0")) == []
    # `if args.seed:` skips a seed of 0: the default run is unseeded.
    (finding,) = findings(optional_seed(", default=0", test="args.seed"))
    assert "--seed defaults to 0" in finding.message
    # A default computed at run time is not judged.
    assert findings(optional_seed(", default=int(SEED)")) == []


def test_a_seeding_call_given_an_optional_argument_is_a_finding() -> None:
    source = """
        import argparse
        import numpy as np

        parser = argparse.ArgumentParser()
        parser.add_argument("--seed", type=int)
        args = parser.parse_args()
        np.random.seed(args.seed)
        np.save("x.npy", np.random.rand(3))
    """
    (finding,) = findings(source)
    assert (finding.line, finding.rule) == (8, "HR019")
    assert uses(finding) == [(9, "HR002")]


def test_an_optional_seed_parameter_of_an_entry_point_is_a_finding() -> None:
    entry = """
        import random

        def main(seed=None):
            if seed is not None:
                random.seed(seed)
            return random.random()
    """
    (finding,) = findings(entry)
    assert finding.rule == "HR019"
    assert "main(seed=None) by default" in finding.message
    helper = """
        import random

        def set_seed(seed=None):
            if seed is not None:
                random.seed(seed)

        set_seed(0)
        with open("out.txt", "w") as out:
            out.write(str(random.random()))
    """
    assert findings(helper) == []


def test_a_seed_drawn_when_none_is_given_is_a_random_seed_not_an_unset_one() -> None:
    source = """
        import argparse, random
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--manualSeed", type=int)
        opt = parser.parse_args()
        if opt.manualSeed is None:
            opt.manualSeed = random.randint(1, 10000)
        random.seed(opt.manualSeed)
        torch.manual_seed(opt.manualSeed)
    """
    assert [f.rule for f in findings(source)] == ["HR018"]


# -- layers and loaders as written -------------------------------------------------------


def test_subclasses_of_framework_layers_draw_their_weights() -> None:
    source = """
        import torch
        from torch import nn

        class Scaled(nn.Linear):
            pass

        class Wider(Scaled):
            pass

        layer = Wider(4, 2)
        torch.manual_seed(0)
    """
    assert rules_at(source) == [(11, "HR017")]


def test_model_zoo_constructors_draw_unless_given_pretrained_weights() -> None:
    source = """
        import timm
        import torchvision
        from torchvision.models import resnet50
        from transformers import AutoConfig, AutoModelForCausalLM, GPT2LMHeadModel

        a = resnet50()
        b = torchvision.models.vit_b_16(weights=None)
        c = timm.create_model("resnet50")
        d = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained("gpt2"))
        e = GPT2LMHeadModel(config)
        resnet50(weights="IMAGENET1K_V2"); timm.create_model("vit", pretrained=True)
        AutoModelForCausalLM.from_pretrained("gpt2"); torchvision.models.get_weight("x")
    """
    (finding,) = findings(source)
    assert (finding.line, finding.rule) == (7, "HR017")
    assert uses(finding) == [(8, "HR017"), (9, "HR017"), (10, "HR017"), (11, "HR017")]


def test_a_model_built_through_a_classmethod_factory_before_the_seed() -> None:
    source = """
        import torch
        from torch import nn

        class Net(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fc = nn.Linear(width, 2)

            @classmethod
            def build(cls, config):
                return cls(config["width"])

        model = Net.build({"width": 4})
        torch.manual_seed(0)
    """
    assert rules_at(source) == [(8, "HR017")]


def test_weights_loaded_after_building_replace_the_drawn_ones() -> None:
    source = """
        import torch
        from torch import nn

        class Scorer(nn.Module):
            def __init__(self, path):
                super().__init__()
                self.mlp = nn.Linear(4, 1)
                self.mlp.load_state_dict(torch.load(path))

        scorer = Scorer("mlp.pt")
    """
    assert findings(source) == []


def test_dataloader_keywords_spread_from_a_dict_are_resolved() -> None:
    source = """
        from torch.utils.data import DataLoader

        def train(model, dataset):
            train_kwargs = {"batch_size": 64}
            cuda_kwargs = {"num_workers": 1, "pin_memory": True, "shuffle": True}
            train_kwargs.update(cuda_kwargs)
            loader = DataLoader(dataset, **train_kwargs)
            for x, y in loader:
                model(x).sum().backward()
    """
    (finding,) = findings(source)
    assert (finding.line, finding.rule) == (8, "HR004")
    assert uses(finding) == [(8, "HR006")]
    unknown = source.replace("train_kwargs.update(cuda_kwargs)", "train_kwargs.update(load())")
    assert findings(unknown) == []


def test_a_shuffle_computed_at_run_time_counts_as_shuffling() -> None:
    source = """
        from torch.utils.data import DataLoader

        def train(model, dataset, sampler):
            loader = DataLoader(dataset, shuffle=(sampler is None), sampler=sampler)
            for x in loader:
                model(x).sum().backward()
            return DataLoader(dataset, shuffle=False)
    """
    (finding,) = findings(source)
    assert (finding.line, finding.rule) == (5, "HR004")
    assert "shuffle=sampler is None" in finding.message


def test_a_trainer_that_seeds_when_built_seeds_the_callbacks_it_calls() -> None:
    source = """
        import numpy as np
        from trl import DDPOConfig, DDPOTrainer

        def prompt_fn():
            return np.random.choice(["cat", "dog"]), {}

        trainer = DDPOTrainer(DDPOConfig(), None, prompt_fn, None)
        trainer.train()
    """
    assert findings(source) == []


def test_a_date_in_an_options_default_reaches_what_the_option_names() -> None:
    source = """
        import argparse
        from datetime import date
        import torch

        parser = argparse.ArgumentParser()
        parser.add_argument("--log-dir", default=f"runs/{date.today()}")
        parser.add_argument("--lr", type=float, default=0.1)
        args = parser.parse_args()
        torch.save({"lr": args.lr}, "model.pt")
        torch.save({}, args.log_dir + "/model.pt")
    """
    (finding,) = findings(source)
    assert (finding.line, finding.rule) == (7, "HR010")
    assert "reaches torch.save() at line 11" in finding.message


def test_one_conditional_seeding_block_is_one_finding() -> None:
    source = optional_seed(", default=None").replace(
        "            torch.manual_seed(args.seed)",
        "            random.seed(args.seed)\n            torch.manual_seed(args.seed)",
    )
    source = source.replace("import argparse", "import argparse, random")
    (finding,) = findings(source)
    assert (finding.line, finding.rule) == (10, "HR019")
    assert finding.message.startswith("Python's random and torch's global generator; --seed")


def test_an_option_is_read_from_its_own_script(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(textwrap.dedent(optional_seed(", default=1")))
    (tmp_path / "b.py").write_text(textwrap.dedent(optional_seed(", default=None")))
    result = lint_paths([tmp_path], enabled_rules(["ALL"], []), relative_to=tmp_path)
    assert [(f.path, f.rule) for f in result.findings] == [("b.py", "HR019")]


def test_helpers_re_exported_by_a_package_are_followed_and_unused_ones_are_not_results(
    tmp_path: Path,
) -> None:
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "__init__.py").write_text("from .dates import run_date, unused\n")
    (tmp_path / "utils" / "dates.py").write_text(
        textwrap.dedent("""
            from datetime import datetime

            def run_date():
                return datetime.now().strftime("%Y-%m-%d")

            def unused():
                return datetime.now()
        """)
    )
    (tmp_path / "train.py").write_text(
        textwrap.dedent("""
            from utils import run_date

            stamp = run_date()
            print("started", stamp)
        """)
    )
    result = lint_paths([tmp_path], enabled_rules(["ALL"], []), relative_to=tmp_path)
    assert result.findings == ()


# -- one cause across files ----------------------------------------------------------------

SEED_ALL = """
    import random

    import numpy as np


    def seed_all(seed):
        random.seed(seed)
        np.random.seed(seed)
"""
SETUP_WITH_OPTIONAL_SEED = """
    import argparse

    import torch


    def setup():
        parser = argparse.ArgumentParser()
        parser.add_argument("--seed", type=int, default=None)
        args = parser.parse_args()
        if args.seed is not None:
            torch.manual_seed(args.seed)
        return args
"""


def training_script(helper_call: str, layers: int = 1, extra: str = "") -> str:
    built = "\n".join(f"layer{n} = nn.Linear(4, 2)" for n in range(layers))
    saved = ", ".join(f"layer{n}.state_dict()" for n in range(layers))
    return (
        "import torch\nfrom torch import nn\n\nimport common\n"
        f"{extra}{helper_call}\n{built}\ntorch.save([{saved}], 'out.pt')\n"
    )


def project(tmp_path: Path, helper: str, scripts: dict[str, str]) -> Path:
    (tmp_path / "common.py").write_text(textwrap.dedent(helper))
    for name, text in scripts.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def lint_project(root: Path, *paths: str) -> list[Finding]:
    targets = [root / path for path in paths] or [root]
    return list(lint_paths(targets, enabled_rules(["ALL"], []), relative_to=root).findings)


def test_a_helper_that_leaves_a_generator_unseeded_is_one_finding_for_every_script(
    tmp_path: Path,
) -> None:
    root = project(
        tmp_path,
        SEED_ALL,
        {
            "a.py": training_script("common.seed_all(0)"),
            "b.py": training_script("common.seed_all(1)", 2),
        },
    )
    (found,) = lint_project(root)
    # At the helper's last seeding call, where the missing seed goes.
    assert (found.path, found.line, found.rule) == ("common.py", 9, "HR017")
    assert "seed_all() seeds" in found.message and "not torch's global generator" in found.message
    assert "3 use(s) in 2 files" in found.message
    assert found.fix == "add torch.manual_seed(seed) to seed_all()"
    assert "[also at a.py:6, b.py:6, b.py:7]" in found.one_line()
    assert [(r.path, r.line) for r in found.related] == [("a.py", 6), ("b.py", 6), ("b.py", 7)]
    (result,) = document([found], frozenset({"HR017"}))["runs"][0]["results"]
    uris = [r["physicalLocation"]["artifactLocation"]["uri"] for r in result["relatedLocations"]]
    assert uris == ["a.py", "b.py", "b.py"]


def test_a_seed_the_helper_sets_only_when_given_is_one_finding_for_every_script(
    tmp_path: Path,
) -> None:
    root = project(
        tmp_path,
        SETUP_WITH_OPTIONAL_SEED,
        {
            "a.py": training_script("args = common.setup()"),
            "b.py": training_script("args = common.setup()"),
        },
    )
    (found,) = lint_project(root)
    assert (found.path, found.line, found.rule) == ("common.py", 12, "HR019")
    assert "2 use(s) in 2 files then run unseeded" in found.message
    assert [(r.path, r.line) for r in found.related] == [("a.py", 6), ("b.py", 6)]


def test_files_whose_cause_is_their_own_keep_their_own_finding(tmp_path: Path) -> None:
    other_helper = "def seed_numpy(seed):\n    import numpy\n    numpy.random.seed(seed)\n"
    (tmp_path / "more.py").write_text(other_helper)
    root = project(
        tmp_path,
        SEED_ALL,
        {
            # Seeds torch itself, after building: its own ordering, not the helper's.
            "own.py": training_script("common.seed_all(0)", extra="import torch\n")
            + "torch.manual_seed(0)\n",
            # Two seeding helpers: which one should seed torch is not one answer.
            "two.py": training_script(
                "common.seed_all(0); more.seed_numpy(0)", extra="import more\n"
            ),
            # No helper at all: the script's own missing seed.
            "none.py": training_script("pass"),
        },
    )
    found = lint_project(root, "own.py", "two.py", "none.py", "common.py", "more.py")
    assert [(f.path, f.line, f.rule) for f in found] == [
        ("none.py", 6, "HR017"),
        ("own.py", 7, "HR017"),
        ("two.py", 7, "HR017"),
    ]


def test_a_helper_read_only_for_context_is_not_where_the_finding_goes(tmp_path: Path) -> None:
    root = project(tmp_path, SEED_ALL, {"a.py": training_script("common.seed_all(0)")})
    # common.py is read to follow seed_all(), but it is not linted: the finding stays in a.py.
    assert [(f.path, f.line, f.rule) for f in lint_project(root, "a.py")] == [("a.py", 6, "HR017")]


def test_the_finding_at_a_helper_is_silenced_by_an_ignore_comment_there(tmp_path: Path) -> None:
    ignored = SEED_ALL.replace(
        "np.random.seed(seed)", "np.random.seed(seed)  # harness: ignore[HR017]"
    )
    root = project(tmp_path, ignored, {"a.py": training_script("common.seed_all(0)")})
    assert lint_project(root) == []
