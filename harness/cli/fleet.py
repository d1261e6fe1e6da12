"""Commands that reach beyond this machine: `harness collect`, `harness k8s`, `harness ci`."""

from __future__ import annotations

import difflib
from pathlib import Path

import click

from harness import atomic
from harness.cli.options import json_option
from harness.cli.state import State
from harness.cli.trust import conclude
from harness.errors import ConfigError
from harness.fleet import ci_github
from harness.fleet import collect as collect_module
from harness.fleet.ci_github import DEFAULT_OUTPUT
from harness.fleet.k8s import manifests
from harness.fleet.k8s.settings import DEFAULT_CLAIM, settings_from
from harness.trust import certify, gate, keys


@click.group("k8s")
def k8s_group() -> None:
    """Run experiments on Kubernetes nodes in a pinned image.

    `harness k8s render` writes the manifests (one Job per node and experiment);
    `kubectl apply --server-side -f FILE` starts them; `kubectl cp` copies their folders
    off the claim and `harness collect` turns each into a run record.
    """


@k8s_group.command("render")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--image",
    required=True,
    metavar="REF@sha256:DIGEST",
    help="The pushed image, by digest (every node must pull the same bytes).",
)
@click.option(
    "--image-id",
    metavar="sha256:HEX",
    help="The image's ID (`docker image inspect --format '{{.Id}}' REF`), for the records; "
    "without it they carry the registry digest in its place.",
)
@click.option(
    "--variant",
    metavar="NAME",
    help="The image's variant, for the records (default: each experiment's own).",
)
@click.option(
    "--node",
    "nodes",
    multiple=True,
    metavar="NODE",
    help="Run on this node, by its kubernetes.io/hostname label (repeatable; one Job per node "
    "and experiment).",
)
@click.option(
    "--selector",
    "selectors",
    multiple=True,
    metavar="KEY=VALUE",
    help="Another node label every Job's node must have (repeatable).",
)
@click.option(
    "--gpus",
    type=click.IntRange(min=0),
    metavar="N",
    help="GPUs per Job (nvidia.com/gpu; the cuda variant; device cuda). Default 0: CPU.",
)
@click.option(
    "--claim",
    metavar="PVC",
    help=f"PersistentVolumeClaim the Jobs write to (default {DEFAULT_CLAIM}).",
)
@click.option("--namespace", metavar="NS", help="Namespace of everything rendered.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the manifests to this file (default: stdout).",
)
@click.pass_obj
def render_command(
    state: State,
    *,
    names: tuple[str, ...],
    image: str,
    image_id: str | None,
    variant: str | None,
    nodes: tuple[str, ...],
    selectors: tuple[str, ...],
    gpus: int | None,
    claim: str | None,
    namespace: str | None,
    output: Path | None,
) -> None:
    """Write Kubernetes manifests that run experiments on chosen nodes in a pinned image.

    One YAML file holds: a ConfigMap with the project's source (the files `harness run`
    shows its container, as a gzip tar that is the same bytes every time; never .harness,
    .git, caches or virtual environments)
    and each Job's run spec; a NetworkPolicy that cuts the runs off the network; one Job
    per node and experiment (NAMEs, or every declared one), pinned to its node, run as
    user 10001 with a read-only root, no service account token, the determinism
    environment of `harness run` and the config's seed, profile, threads and timeout,
    writing its artifacts and report to the claim under JOB-NAME/; and a Pod
    harness-gather that mounts the claim read-only to copy those folders back.

    The image must be pushed and named by digest. The claim must exist (ReadWriteMany
    when the nodes differ). Experiments with inputs are refused: inputs are not shipped
    to clusters yet. Apply with --server-side: the archive makes the ConfigMap too large
    for the annotation that client-side apply keeps.

    \b
      harness k8s render --image REGISTRY/harness@sha256:DIGEST \\
          --node node-a --node node-b -o runs.yaml
      harness k8s render torch --image REF@sha256:DIGEST --variant cuda --gpus 1 \\
          --node gpu-1 --selector nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3 -o gpu.yaml
      kubectl apply --server-side -f runs.yaml
      kubectl get jobs -l harness.dev/render=ID --watch     (ID: see the file's header)
      kubectl cp harness-gather:/records ./collected
      harness collect collected/*

    Defaults come from [tool.harness.k8s]: nodes (list), selectors (table), claim,
    namespace, gpus.
    """
    config = state.config()
    settings = settings_from(
        config.table("k8s"),
        image=image,
        image_id=image_id,
        variant=variant,
        nodes=nodes,
        selectors=selectors,
        gpus=gpus,
        claim=claim,
        namespace=namespace,
    )
    experiments = [config.experiment(name) for name in dict.fromkeys(names)] or list(
        config.experiments.values()
    )
    rendered = manifests.render(config, experiments, settings, say=state.ui.say)
    text = rendered.yaml(settings, output)
    if output is None:
        click.echo(text, nl=False)
        return
    atomic.write_text(output, text)
    state.ui.result(
        f"wrote {output}: {len(rendered.jobs)} Job(s), render {rendered.render_id}; "
        f"apply with `kubectl apply --server-side -f {output}`"
    )


@click.group("ci")
def ci_group() -> None:
    """Generate CI configuration."""


@ci_group.command("github")
@click.option(
    "--runner",
    "runners",
    multiple=True,
    metavar="LABEL",
    help="Runner label, one matrix leg each (repeatable; default: [tool.harness.ci] runners, "
    "else ubuntu-latest).",
)
@click.option(
    "--variant", help="Image variant the legs build and run (default: [tool.harness.ci], cpu)."
)
@click.option(
    "--python",
    "python",
    metavar="X.Y",
    help="Python that runs harness on the runners (default: [tool.harness.ci], else the "
    "project's python).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Workflow file (default: {DEFAULT_OUTPUT.as_posix()} under the project root).",
)
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 naming the file when it differs from what would be "
    "generated (for CI).",
)
@click.option(
    "--stdout", "to_stdout", is_flag=True, help="Print the workflow instead of writing it."
)
@click.pass_obj
def github_command(
    state: State,
    *,
    runners: tuple[str, ...],
    variant: str | None,
    python: str | None,
    output: Path | None,
    check: bool,
    to_stdout: bool,
) -> None:
    """Write a GitHub Actions workflow that reproduces the experiments on several hosts.

    Job `lint` runs `harness lint` and uploads its SARIF report to GitHub code scanning,
    which shows the findings on pull requests. Job `run` is a matrix with one leg per
    runner label: each leg checks the constraints,
    builds the variant's pinned image, runs every experiment with the runner's label
    recorded as the host (HARNESS_HOST_NAME), and uploads its run records. Job `collect`
    then gathers the records of every leg that finished with `harness collect`, which
    compares each host against the first and fails when their artifacts differ; when they
    agree, job `certify`, bound to the protected environment harness-signing and never
    run for a pull request, signs with `harness certify` and uploads the certificate.

    The secret HARNESS_SIGNING_KEY of the harness-signing environment holds a private key,
    ed25519 or ECDSA P-256, in PEM form: the NAME.key file that `harness keys generate`
    writes (see below; `--type ecdsa-p256` for P-256); certificates are then checked with
    its NAME.pub. Without the secret the hosts are still compared, but nothing is signed.
    Actions are pinned by commit and no value from the configuration is expanded into a
    script (the file passes zizmor).

    Defaults come from [tool.harness.ci] (runners, variant, python, timeout-minutes). The
    workflow checks itself with `harness ci github --check` and the flags it was generated
    with, so keep choices in that table where you can. Run it at the repository's root:
    GitHub reads workflows only from the root's .github/workflows.

    \b
      harness ci github --runner ubuntu-24.04 --runner ubuntu-22.04
      harness ci github --check        0 when the file is current, 1 when stale
      harness ci github --stdout       print the workflow, write nothing
      harness keys generate --name ci
      gh secret set HARNESS_SIGNING_KEY --env harness-signing < ~/.config/harness/keys/ci.key

    Exit 0 when written or current, 1 when --check finds the file stale, 2 on trouble.
    """
    if check and to_stdout:
        raise ConfigError("--check and --stdout do not go together", "give one of them")
    workflow = ci_github.plan(
        state.config(), runners=runners, variant=variant, python=python, output=output
    )
    if to_stdout:
        # click.echo rather than the rich console: the bytes must be the file's, so that
        # `--stdout > FILE` and writing agree.
        click.echo(workflow.text, nl=False)
        return
    if check:
        if workflow.is_current:
            state.ui.result(f"{workflow.shown} is current")
            return
        if workflow.current is not None and not state.ui.quiet:
            diff = difflib.unified_diff(
                workflow.current.splitlines(keepends=True),
                workflow.text.splitlines(keepends=True),
                f"{workflow.shown} (on disk)",
                f"{workflow.shown} (generated)",
            )
            click.echo("".join(diff), err=True, nl=False)
        raise ci_github.stale(workflow)
    if workflow.is_current:
        state.ui.result(f"{workflow.shown} is current (unchanged)")
        return
    atomic.write_text(workflow.path, workflow.text)
    state.ui.result(f"wrote {workflow.shown}")


def _size(text: str) -> int:
    """A size in bytes, or with a K, M, G or T suffix (powers of 1024)."""
    units = {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}
    number, unit = text.strip().upper().rstrip("IB"), ""
    if number and number[-1] in units:
        number, unit = number[:-1], number[-1]
    if not number.isdigit():
        raise click.BadParameter(f"{text!r} is not a size (e.g. 500M, 8G, or bytes)")
    return int(number) << units[unit]


@click.command("collect")
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    metavar="DIR...",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--control", help="Host the others are compared with (default: the host of the first run)."
)
@click.option(
    "--key",
    "host_keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Public key of a host whose runs count (repeatable; default: ${keys.TRUSTED_ENV} or "
    "~/.config/harness/trusted/*.pub, never the project's files).",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Also count runs no host key signed, grouped by the names they give; the "
    "verification and certificate say they were unsigned.",
)
@click.option(
    "--max-size",
    "max_size",
    default="8G",
    show_default=True,
    metavar="SIZE",
    help="Largest run folder collected, all files at their full size (K, M, G, T suffixes).",
)
@json_option("the verification document, with each run's node statement")
@click.pass_obj
def collect_command(
    state: State,
    *,
    folders: tuple[Path, ...],
    control: str | None,
    host_keys: tuple[Path, ...],
    allow_unsigned: bool,
    max_size: str,
    as_json: bool,
) -> None:
    """Gather run records made elsewhere (CI jobs, other machines) and compare the hosts.

    Each run folder found under DIR (record.json with its artifacts, or what a
    `harness k8s render` Job wrote) is checked: signed by a host key you trust (--key, or
    your trusted keys folder; unsigned runs only with --allow-unsigned), under --max-size,
    every artifact with the sha256 its record names, every declared output present when it
    succeeded. Then it is copied into .harness/runs/, with the SLURM node's signed statement
    of the run when it is one of that very run (one that is not is left behind, in one
    line). Hosts are the keys that signed, never the names records give: one key is one
    host, and a run whose node statement a trusted node key signed (--key, or the node keys
    `harness keys nodes` kept) counts under that node's key, as `harness certify` counts it.
    Each host is compared with the control, and the outcome is saved as a verification for
    `harness certify`; --json adds, per run, its node statement and whose key signed it.

    \b
      harness collect artifacts/harness-runs-* --key keys/leg-1.pub --key keys/leg-2.pub
      harness collect collected/ --control ubuntu-24.04 && harness certify

    Exit 0 when every host agrees with the control, 1 when one differs or lacks a run,
    2 on trouble (an unsigned or corrupt run, a host that ran another image).
    """
    config = state.config()
    settings = certify.settings(config.table("certify"), config.project_root)
    trusted = gate.trusted_keys(config, host_keys, settings, required=False)
    policy = collect_module.Policy(
        tuple(trusted),
        allow_unsigned,
        _size(max_size),
        node_keys=tuple(keys.all_node_public_keys(config.project_root)),
    )
    collected = collect_module.collect(config, list(folders), policy)
    copied = sum(1 for c in collected if c.how == "copied")
    state.ui.say(f"collected {len(collected)} run(s), {copied} new")
    for note in filter(None, (c.note() for c in collected)):
        state.ui.say(note)
    statements = [c.node for c in collected if c.node is not None and c.node.carried]
    if statements:
        vouched = sum(1 for node in statements if node.keyid is not None)
        state.ui.say(
            f"{len(statements)} node statement(s) came with their runs, {vouched} signed by a "
            "node key trusted here"
        )
    verification = collect_module.verification(
        config,
        [c.run for c in collected],
        control=control,
        signers={c.run.run_id: c.host for c in collected},
    )
    if not as_json:
        for result in verification.experiments:
            verdict = (
                "reproducible" if result.reproducible else f"NOT reproducible: {result.failure}"
            )
            state.ui.result(f"{result.experiment.name:<14} {verdict}")
        for outcome in verification.hosts:
            state.ui.result(f"host {outcome.host.name}: signed by {outcome.signer}")
    # The saved verification stays as verify writes it; what came with each run is shown.
    document = (
        {**verification.as_dict(config), "collected": [c.as_dict() for c in collected]}
        if as_json
        else None
    )
    conclude(state, config, verification, as_json=as_json, document=document)
