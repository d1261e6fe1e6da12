"""`harness lint` reads a project as one program: seeds set by helpers in other modules
count, in the order they run; values are followed through the project's functions, and
only those that reach a result are findings."""

from __future__ import annotations

import textwrap
from pathlib import Path

from harness.lint import check_source, enabled_rules, lint_paths


def write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def found(folder: Path, *targets: str, **options: object) -> set[tuple[str, int, str]]:
    paths = [folder / target for target in targets] or [folder]
    result = lint_paths(paths, enabled_rules(["ALL"], []), relative_to=folder, **options)  # type: ignore[arg-type]
    return {(f.path, f.line, f.rule) for f in result.findings}


def test_a_seed_set_by_a_helper_in_another_module_counts(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/seeding.py": """
                import numpy as np
                import torch

                def seed_all(seed):
                    np.random.seed(seed)
                    torch.manual_seed(seed)
            """,
            "pkg/train.py": """
                import numpy as np
                import torch
                from pkg.seeding import seed_all

                def main():
                    noise = np.random.rand(3)
                    seed_all(0)
                    return torch.randn(2), np.random.rand(2), noise

                if __name__ == "__main__":
                    np.save("result.npy", main())
            """,
        },
    )
    # Only the draw before the helper's seed is a finding.
    assert found(tmp_path, "pkg/train.py", "pkg/seeding.py") == {("pkg/train.py", 7, "HR002")}


def test_a_helper_module_not_named_is_read_for_context_and_not_reported(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "helpers.py": """
                import random

                def seed_all():
                    random.seed(0)

                def unseeded():
                    return random.random()
            """,
            "run.py": """
                import random
                from helpers import seed_all

                seed_all()
                print(random.random())
            """,
        },
    )
    result = lint_paths([tmp_path / "run.py"], enabled_rules(["ALL"], []), relative_to=tmp_path)
    assert result.files == ("run.py",)
    assert result.findings == ()


def test_a_seed_in_a_function_nothing_calls_does_not_count(tmp_path: Path) -> None:
    source = textwrap.dedent("""
        import random

        def set_seed():
            random.seed(0)

        def main():
            return random.random()

        with open("result.txt", "w") as out:
            out.write(str(main()))
    """)
    assert [(f.line, f.rule) for f in check_source(source, str(tmp_path / "x.py"))] == [
        (8, "HR001")
    ]


def test_a_seed_inside_a_method_counts_where_the_object_is_made(tmp_path: Path) -> None:
    source = textwrap.dedent("""
        import torch
        from torch import nn

        class Trainer:
            def __init__(self, seed):
                torch.manual_seed(seed)
                self.model = nn.Linear(2, 2)

        Trainer(0)
    """)
    assert check_source(source, str(tmp_path / "x.py")) == []


def test_methods_the_framework_calls_run_after_the_programs_seeds(tmp_path: Path) -> None:
    source = textwrap.dedent("""
        import torch
        from torch import nn

        class Noisy(nn.Module):
            def forward(self, x):
                return x + torch.randn_like(x)

        def main():
            torch.manual_seed(0)
            model = Noisy()
            return model(torch.zeros(2))

        main()
    """)
    assert check_source(source, str(tmp_path / "x.py")) == []


def test_a_clock_returned_by_a_helper_is_a_finding_only_where_it_is_kept(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "clock.py": """
                import time

                def now():
                    return time.time()
            """,
            "printed.py": """
                from clock import now

                print(f"done at {now()}")
            """,
        },
    )
    assert found(tmp_path) == set()
    write(
        tmp_path,
        {
            "saved.py": """
                import json
                from clock import now

                def record(path):
                    json.dump({"at": now()}, open(path, "w"))

                record("out.json")
            """
        },
    )
    # Reported at the source, naming where it ends.
    result = lint_paths([tmp_path], enabled_rules(["ALL"], []), relative_to=tmp_path)
    (finding,) = result.findings
    assert (finding.path, finding.line, finding.rule) == ("clock.py", 5, "HR010")
    assert "json.dump() at saved.py:6" in finding.message


def test_a_listing_kept_on_a_dataset_reaches_its_items(tmp_path: Path) -> None:
    source = textwrap.dedent("""
        import os

        class Images:
            def __init__(self, root):
                self.files = os.listdir(root)

            def __getitem__(self, index):
                return self.files[index]

        class Sorted:
            def __init__(self, root):
                self.files = sorted(os.listdir(root))

            def __getitem__(self, index):
                return self.files[index]
    """)
    assert [(f.line, f.rule) for f in check_source(source, str(tmp_path / "x.py"))] == [
        (6, "HR014")
    ]


def test_a_parameter_that_reaches_a_sink_makes_the_callers_value_a_finding(tmp_path: Path) -> None:
    source = textwrap.dedent("""
        import numpy as np
        import socket

        def save(path, value):
            np.save(path, value)

        def show(value):
            print(value)

        save("host.npy", socket.gethostname())
        show(socket.getfqdn())
    """)
    assert [(f.line, f.rule) for f in check_source(source, str(tmp_path / "x.py"))] == [
        (11, "HR010")
    ]


def test_harness_entries_start_seeded_as_the_runtime_seeds_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "exp.py": """
                import torch
                from torch import nn

                def train(output, seed, inputs):
                    model = nn.Linear(2, 2)
                    torch.save(model.state_dict(), output / "model.pt")
                    return {"x": float(torch.rand(1))}
            """
        },
    )
    result = lint_paths([tmp_path], enabled_rules(["ALL"], []), relative_to=tmp_path)
    # One cause, torch never seeded: the layer, with the later draw as a related location.
    (finding,) = result.findings
    assert finding.rule == "HR017"
    assert [r.message.split(" ", 1)[0] for r in finding.related][:1] == ["HR004"]
    managed = {(tmp_path / "exp.py").resolve(): frozenset({"train"})}
    assert found(tmp_path, managed=managed) == set()


def test_recursion_and_import_cycles_terminate(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.py": """
                import b
                import random

                def f(n):
                    return f(n - 1) if n else b.g(n)

                random.seed(0)
                f(3)
            """,
            "b.py": """
                import a
                import random

                def g(n):
                    return a.f(n) + random.random()
            """,
        },
    )
    assert found(tmp_path) == set()


def test_a_long_chain_of_calls_is_followed_to_its_end(tmp_path: Path) -> None:
    chain = ["import json, time", "def f0():", "    return time.time()"]
    for n in range(1, 400):
        chain += [f"def f{n}():", f"    return f{n - 1}()"]
    chain.append("json.dump(f399(), open('o', 'w'))")
    (tmp_path / "chain.py").write_text("\n".join(chain) + "\n")
    assert found(tmp_path) == {("chain.py", 3, "HR010")}
