"""The commands that establish trust: `verify`, `certify`, `keys` and `certificate`.

They live beside cli.py, which registers them, so that each file stays about one thing:
cli.py builds and runs, this module proves and checks.
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from harness import registry as registry_module
from harness.cli.options import (
    RunOptions,
    hosts_option,
    json_option,
    mlproject_options,
    run_options,
    selected_experiments,
)
from harness.cli.state import State
from harness.compare.report import print_table
from harness.config import Config, find_project_root
from harness.errors import EXIT_DIFFERS, ConfigError, HarnessError
from harness.fleet import collect as collect_module
from harness.fleet import crosshost
from harness.fleet import hosts as hosts_module
from harness.fleet.slurm import commands as slurm_commands
from harness.fleet.slurm import node_keys as slurm_node_keys
from harness.images import build as build_module
from harness.images import provenance as provenance_statements
from harness.runs import host_executor, reconcile, records
from harness.runs import run as run_module
from harness.runs import verify as verify_module
from harness.runs.variations import (
    DEFAULT,
    NEEDS_A_CONTAINER,
    Choice,
    choices_for,
    without,
)
from harness.trust import (
    attest,
    certify,
    deploy_certificate,
    evidence,
    gate,
    keys,
    model_signature,
    provenance,
    registry_attestations,
)


@click.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--runs",
    "control_runs",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="Control runs with nothing varied; they must agree with each other.",
)
@click.option(
    "--vary",
    default=None,
    help="Variations: all, none, or names (cpus, hostname, timezone, locale, user, workdir, env, "
    "hashseed); -NAME leaves one out. Wins over vary in pyproject.toml (default: the "
    "experiment's vary, else [tool.harness.verify]'s, else all).",
)
@run_options
@mlproject_options
@hosts_option
@json_option("the verification document")
@click.pass_obj
def verify_command(
    state: State,
    *,
    names: tuple[str, ...],
    control_runs: int,
    vary: str | None,
    mlproject_entry: str | None,
    mlproject_params: tuple[str, ...],
    run_options: RunOptions,
    host_names: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run experiments under variations and name what breaks reproducibility.

    Control runs first (fresh containers, nothing varied), which must agree; then one run
    with every variation at once; when its artifacts move or it fails, each variation
    alone, to name the culprit with its evidence. Artifacts agree when `harness compare`
    passes them under the configured policies. The result is saved under
    .harness/verifications/ for `harness certify`.

    \b
      harness verify                         every experiment, its configured variations
      harness verify torch --vary hashseed,locale
      harness verify --vary all,-cpus        all but the CPU-count variation
      harness verify --hosts local,gpu-box   then the same image on gpu-box, compared
      harness verify --mlproject main -P conf_file=confs/training.yaml

    The runs of every experiment overlap, up to --jobs at once on each host; the control
    runs and the run with every variation go together, then each variation alone when
    needed. The document is the same whatever finished first.

    With --hosts, the first host is the control: it builds the image, runs the control
    runs and the variations; at the same time every other host gets the image by digest
    (through the registry setting, else a save/load stream) and runs each experiment
    once; each is then compared with the control. The certificate names the hosts that
    agreed ("2 of 2"). Ctrl-C stops and removes every container on every host.

    Without --vary, each experiment's variations come from pyproject.toml: its own
    vary, else the one under [tool.harness.verify], else all. The saved verification
    says, per experiment, which variations it made and where that choice came from.

    \b
      [tool.harness.experiments.NAME]
      vary = ["all", "-workdir"]             all but the project-path variation

    Exit 0 when every experiment reproduced (on every host), 1 when one did not, 2 on
    trouble (a run that could not finish, a host unreachable or holding another image:
    what finished is saved).
    """
    config = state.config(**run_options.config_overrides())
    attest.use(
        keys.host_key(config.project_root, run_options.sign_key),
        keys.engine_keys(config.project_root),
    )
    experiments = selected_experiments(config, names, mlproject_entry, mlproject_params)
    variations = choices_for(config, experiments, vary)
    _say_choices(state, variations)

    base = functools.partial(run_options.request, config)

    others: list[hosts_module.Host] = []
    cluster = slurm_commands.cluster_of(config, host_names)
    if cluster is not None:
        verification = slurm_commands.verify_on(
            config,
            cluster,
            experiments,
            variations=variations,
            control_runs=control_runs,
            base=base,
            variant=run_options.variant,
            jobs=run_options.jobs,
            gpus=run_options.gpus,
            say=state.ui.say,
        )
        others = [cluster]
    elif run_options.on_host:
        verification = _verify_on_host(
            state,
            config,
            experiments,
            run_options,
            variations=variations,
            control_runs=control_runs,
            base=base,
            host_names=host_names,
        )
    else:
        wanted = {run_options.variant or e.variant for e in experiments}
        if len(wanted) != 1:
            raise HarnessError(
                f"these experiments use several variants ({', '.join(sorted(wanted))})",
                "verify one variant at a time with --variant",
            )
        variant = wanted.pop()
        control, *others = hosts_module.resolve(config, host_names)
        others = hosts_module.for_gpus(others, run_options.gpus, say=state.ui.say)
        engine = control.connect()
        reconcile.tidy(config.project_root, engine, state.ui.say)
        run_module.check_gpu_request(engine, variant, run_options.gpus)
        image = build_module.build(
            engine,
            build_module.plan(config, variant),
            say=state.ui.say,
            on_line=state.ui.build_line,
        )
        provenance.record_build(config.project_root, image.provenance, state.ui.say)
        verification = verify_module.verify(
            engine,
            config,
            image,
            experiments,
            variations=variations,
            control_runs=control_runs,
            base=base,
            control_host=control,
            other_hosts=others,
            jobs=run_options.jobs,
            say=state.ui.say,
        )
    if not as_json:
        for result in verification.experiments:
            if result.reproducible:
                state.ui.result(f"{result.experiment.name:<14} reproducible")
                continue
            why = result.failure or f"moved by {', '.join(result.culprits)}"
            state.ui.result(f"{result.experiment.name:<14} NOT reproducible: {why}")
            for evidence in result.evidence.values():
                if evidence not in why:
                    state.ui.result(f"  {evidence}")
            if result.hint:
                state.ui.result(f"  {result.hint}")
            for check in result.checks:
                if check.comparison is not None and not check.agrees:
                    state.ui.result(f"  {check.label}:")
                    print_table(check.comparison)
    conclude(state, config, verification, as_json=as_json, show_hosts=bool(others))


def _say_choices(state: State, choices: Mapping[str, Choice]) -> None:
    """Say which variations each experiment is verified under, when configuration chose."""
    for name, choice in choices.items():
        if choice.source != DEFAULT:
            varied = ", ".join(choice.names) or "none"
            state.ui.say(f"{name}: variations {varied} (chosen by {choice.source})")


def _verify_on_host(
    state: State,
    config: Config,
    experiments: list[Any],
    options: RunOptions,
    *,
    variations: Mapping[str, Choice],
    control_runs: int,
    base: Callable[[Any], run_module.RunRequest],
    host_names: tuple[str, ...] = (),
) -> verify_module.Verification:
    """`verify --executor host`: the control runs and the variations a host run can make."""
    if host_names:
        raise ConfigError(
            "--executor host verifies on this machine only; it takes no --hosts",
            "leave out --hosts, or verify in containers",
        )
    python = host_executor.inspect_python(
        host_executor.resolve_python(options.python, config.project_root)
    )
    host_executor.check_gpus(options.gpus)
    possible, left_out = without(variations, host_executor.NEEDS_A_CONTAINER, NEEDS_A_CONTAINER)
    if left_out:
        state.ui.say(f"host executor: leaving out {', '.join(left_out)} (they need a container)")
    return verify_module.verify_on_host(
        config,
        python,
        experiments,
        variations=possible,
        control_runs=control_runs,
        base=base,
        jobs=options.jobs,
        say=state.ui.say,
    )


def conclude(
    state: State,
    config: Config,
    verification: verify_module.Verification,
    *,
    as_json: bool,
    document: Any = None,
    show_hosts: bool = True,
) -> None:
    """Save a verification, print its hosts and where it went (or ``document`` as JSON,
    by default the verification), and exit as its hosts and experiments say.

    Exit 2 when a run on the control host could not finish (its engine was lost, ...) or a
    host could not take part, after saving what finished; 1 when a host disagreed or an
    experiment did not reproduce on the control.
    """
    saved = verify_module.save(config, verification).relative_to(config.project_root)
    if as_json:
        state.ui.json(verification.as_dict(config) if document is None else document)
    else:
        if show_hosts:
            for outcome in verification.hosts:
                why = f": {outcome.reason}" if outcome.reason else ""
                state.ui.result(f"host {outcome.host.name:<14} {outcome.status}{why}")
            state.ui.result(f"reproduced on {crosshost.quorum(verification.hosts)['text']} hosts")
        state.ui.result(f"verification {verification.id} saved to {saved}")
    if verification.trouble is not None:
        experiment, label, error = verification.trouble
        finished = isinstance(error, verify_module.NothingToCompare)
        raise HarnessError(
            f"{experiment}: {error.message}"
            if finished
            else f"{experiment}: the {label} run could not finish: {error.message}",
            f"{error.hint + '; ' if error.hint else ''}what finished is saved in {saved}",
        )
    outcomes = verification.hosts
    troubled = [o for o in outcomes if o.status in crosshost.TROUBLE]
    if troubled:
        names = ", ".join(o.host.name for o in troubled)
        raise HarnessError(
            f"{len(troubled)} of {len(outcomes)} host(s) could not take part ({names}): "
            f"{troubled[0].reason}",
            f"the other hosts' results are saved in {saved}; fix the host and verify again, "
            "or certify what agreed",
        )
    if not verification.reproducible or any(not o.counted for o in outcomes):
        raise click.exceptions.Exit(EXIT_DIFFERS)


@click.command("certify")
@click.option(
    "--verification", "verification_id", help="Verification id or file (default: the newest)."
)
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key (default: harness.key in the keys folder).",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Certificate file (default: .harness/certificates/IMAGE_ID.intoto.json).",
)
@click.option("--tag", is_flag=True, help="Also tag the image IMAGE:certified-<short id>.")
@click.option(
    "--image-digest",
    "manifests",
    multiple=True,
    metavar="REPO@sha256:HEX",
    help="The image's registry reference by digest (repeatable; default: the digests the "
    "engine lists with --tag): a subject that `cosign verify-attestation` matches.",
)
@click.option(
    "--trusted-key",
    "host_keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Public key of a host whose signed runs count (repeatable; default: ${keys.TRUSTED_ENV} "
    "or ~/.config/harness/trusted/*.pub; the signing key's own runs, and those of the SLURM "
    "nodes whose keys `harness keys nodes` kept, always count).",
)
@click.option(
    "--allow-unsigned",
    is_flag=True,
    help="Also count runs no trusted host key signed; the certificate names them as unsigned.",
)
@click.option(
    "--model-signature",
    "model_signature_to",
    is_flag=False,
    flag_value="",
    metavar="[PATH]",
    type=click.Path(dir_okay=False),
    help="Also sign each certified experiment's model folder (its control run's artifacts) "
    "for OpenSSF Model Signing (`model_signing verify key`), with the same key, which must "
    "be ecdsa-p256. PATH when one experiment is certified; default CERT.EXPERIMENT.sig "
    "beside the certificate.",
)
@click.option(
    "--push",
    "push_to",
    metavar="REGISTRY/NAME",
    help="Push the certified image there first, by digest (a subject cosign matches), then "
    "store the certificate and the image's provenance beside it in the registry (cosign's "
    "layout, and OCI 1.1 referrers).",
)
@json_option("what was written")
@click.pass_obj
def certify_command(
    state: State,
    *,
    verification_id: str | None,
    key: Path | None,
    output: Path | None,
    tag: bool,
    manifests: tuple[str, ...],
    host_keys: tuple[Path, ...],
    allow_unsigned: bool,
    model_signature_to: str | None,
    push_to: str | None,
    as_json: bool,
) -> None:
    """Sign a reproducibility certificate, built from the runs a verification names.

    The verification is only an index: every run it names is read from .harness/runs/,
    its artifacts hashed again, its host's signature checked against the keys you trust
    (--trusted-key; this key's own runs always count), and every comparison run again
    under the project's policies. A verification whose claims the runs do not bear out
    (edited, copied from elsewhere, committed to the repository) is refused (exit 2).

    The certificate is an in-toto Statement v1 in a DSSE envelope signed with the key: its
    subjects are the image (by digest) and every reproduced artifact (by sha256); its
    predicate records the experiment, commit, constraints and lock hashes, seed, profile,
    observed switches, the hosts (one per signing key, with its key id and device class),
    runs, the policy and verdict of each artifact, and each host's signed attestation.

    --model-signature also writes, for each certified experiment, an OpenSSF Model Signing
    signature over its model folder (the artifacts the certificate names, hashed again),
    which `model_signing verify key --signature SIG --public_key KEY.pub MODEL_DIR` checks.

    \b
      harness keys generate
      harness verify && harness certify --tag
      harness certify --push registry.example.com/ml/model
      harness collect legs/ --key leg-1.pub --key leg-2.pub && \\
          harness certify --trusted-key leg-1.pub --trusted-key leg-2.pub
    """
    config = state.config()
    path, summary = evidence.load_summary(config.project_root, verification_id)
    private = keys.load_private_key(key or keys.keys_dir(config.project_root) / keys.DEFAULT_KEY)
    model_key = None if model_signature_to is None else model_signature.require_signing_key(private)
    certify.require_reproducible(summary)
    # This machine's own keys vouch for the runs it made; other hosts' keys are trusted
    # only as the user says (--trusted-key, or this user's trusted folder).
    own = [keys.host_key(config.project_root, None), private]
    trusted = [
        *(keys.public_of(k) for k in own if k is not None),
        *(keys.public_of(k) for k in keys.engine_keys(config.project_root).values()),
        # The keys SLURM nodes made and keep (`harness keys nodes HOST`), by their public half.
        *keys.all_node_public_keys(config.project_root),
        *gate.trusted_keys(config, host_keys, certify.Settings(), required=False),
    ]

    def image_on_engine(image_id: str) -> bool | None:
        try:
            return state.engine(config).image(image_id) is not None
        except HarnessError:
            return None

    verification = evidence.gather(
        config,
        path,
        summary,
        trusted,
        allow_unsigned=allow_unsigned,
        image_on_engine=image_on_engine,
    )
    image = verification.get("image")
    if image is None and tag:
        raise ConfigError(
            "--tag: these runs used the host executor, so there is no image to tag",
            "leave out --tag",
        )
    # The image's ID, or for host-executor runs the digest of their Python environment.
    image_id = (
        image["id"] if image else str((verification.get("python_environment") or {}).get("digest"))
    )
    engine = state.engine(config) if tag else None
    if engine is not None and not manifests:
        info = engine.image(image_id)
        manifests = info.repo_digests if info is not None else ()
    pushed = None
    if push_to is not None:
        built, pushed = _push_certified(state, config, image_id, push_to, trusted)
        manifests = (*manifests, str(pushed))
    statement = certify.statement(verification, manifests)
    envelope = certify.envelope(statement, private)
    path = output or certify.certificate_path(config.project_root, image_id)
    # Made before anything is written: a model that cannot be signed leaves no certificate.
    model_signatures = (
        _model_signatures(config.project_root, verification, path, model_key, model_signature_to)
        if model_key is not None
        else []
    )
    certify.write(path, envelope)
    for _, target, bundle in model_signatures:
        model_signature.write(target, bundle)
    attached = (
        None
        if pushed is None
        else registry_attestations.publish(
            pushed,
            [
                registry_attestations.Attestation(
                    certify.PREDICATE_TYPE, certify.canonical(envelope)
                ),
                registry_attestations.Attestation(
                    provenance_statements.PREDICATE_TYPE,
                    registry_attestations.seal_for(config.project_root, built, pushed, private),
                ),
            ],
        )
    )
    tagged = None
    if engine is not None:
        tagged = f"{config.image}:certified-{image_id.removeprefix('sha256:')[:12]}"
        engine.tag(image_id, tagged)
    if as_json:
        state.ui.json(
            {
                "certificate": str(path),
                "image": image_id,
                "tag": tagged,
                "keyid": keys.key_id(private.public_key()),
                "model_signatures": [
                    {
                        "experiment": model.experiment,
                        "signature": str(target),
                        "model": str(model.folder),
                        "files": len(model.files),
                    }
                    for model, target, _ in model_signatures
                ],
                "pushed": str(pushed) if pushed else None,
                "attestations": attached.cosign if attached else None,
                "referrers": list(attached.referrers) if attached else None,
            }
        )
        return
    for host in verification["hosts"]:
        signed = f"key {host['keyid'][:16]}" if host["keyid"] else "UNSIGNED"
        why = f": {host['reason']}" if host["reason"] else ""
        state.ui.result(
            f"host {host['name']:<14} {host['status']} ({signed}, {host['device_class']}){why}"
        )
    state.ui.result(f"reproduced on {verification['quorum']['text']} host(s), counted by key")
    state.ui.result(f"certificate {path}")
    for model, target, _ in model_signatures:
        state.ui.result(
            f"model signature {target} ({model.experiment}: {len(model.files)} file(s) in "
            f"{model.folder})"
        )
    if tagged:
        state.ui.result(f"tagged {tagged}")
    if pushed is not None and attached is not None:
        state.ui.result(f"pushed {pushed}")
        state.ui.result(f"certificate and provenance attached: {attached.cosign}")
        how = "referrers API" if attached.referrers_api else "referrers tag (no referrers API)"
        state.ui.result(f"OCI referrers: {len(attached.referrers)} ({how})")


def _model_signatures(
    project_root: Path,
    verification: dict[str, Any],
    certificate: Path,
    model_key: Any,
    given: str | None,
) -> list[tuple[Any, Path, Any]]:
    """(model, where its signature goes, the signature) for each certified experiment."""
    models = model_signature.models(project_root, verification)
    return [
        (model, target, model_signature.bundle(model, model_key))
        for model, target in model_signature.targets(
            certificate, models, Path(given) if given else None
        )
    ]


def _push_certified(
    state: State,
    config: Config,
    image_id: str,
    repository: str,
    trusted: list[keys.PublicKey],
) -> tuple[dict[str, Any], registry_module.Reference]:
    """Check the image's provenance, then push the image; its provenance and where it went."""
    if not image_id.startswith("sha256:") or state.engine(config).image(image_id) is None:
        raise ConfigError(
            "--push: the certified image is not on this engine (or these runs used the host "
            "executor, which has no image)",
            "certify where the image was built, or leave out --push",
        )
    engine = state.engine(config)
    info = engine.image(image_id)
    labels = info.labels if info is not None else {}
    built = registry_attestations.provenance_to_publish(
        config.project_root, image_id, labels, trusted
    )
    state.ui.say(f"pushing {image_id[:19]} to {repository}")
    return built, registry_attestations.push_image(engine, image_id, repository)


@click.command("attest")
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    metavar="DIR...",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option(
    "--sign-key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="This host's private key (default: $HARNESS_HOST_KEY, else harness.key in the keys "
    "folder).",
)
@click.pass_obj
def attest_command(state: State, *, folders: tuple[Path, ...], sign_key: Path | None) -> None:
    """Sign, as this host, run folders it made that carry no attestation yet.

    For runs no harness process finished here: a Kubernetes Job's output on the node that
    ran it (its record is made from what the runtime wrote) or a run made before this host
    had a key. Run it on that host, with that host's key, before the folders leave it; a
    folder that already carries an attestation is left as it is.

    \b
      harness attest /mnt/claim/harness-run-a1b2c3 --sign-key /etc/harness/node.key
    """
    where = _project_root(state) or Path.cwd()
    key = keys.host_key(where, sign_key)
    if key is None:
        raise ConfigError("no key to sign with", f"pass --sign-key KEY or set ${keys.HOST_KEY_ENV}")
    signed = 0
    for folder in collect_module.run_folders_under(list(folders)):
        if (folder / attest.ATTESTATION).exists() or (folder / attest.ATTESTATION).is_symlink():
            state.ui.say(f"{folder}: already signed, left as it is")
            continue
        record = collect_module.record_of(folder)
        records.check_foreign(record, folder)
        if not (folder / records.RECORD).exists():
            records.write(folder, record)
        attest.sign(folder, record, key)
        signed += 1
        state.ui.result(f"signed {folder} as {keys.key_id(keys.public_of(key))[:16]}")
    state.ui.result(f"{signed} run(s) signed")


@click.group("keys")
def keys_group() -> None:
    """Manage signing keys, ed25519 or ECDSA P-256 (kept outside any project, so never in an
    image or run)."""


@keys_group.command("generate")
@click.option(
    "--name", default="harness", show_default=True, help="Key pair name: NAME.key and NAME.pub."
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(file_okay=False, path_type=Path),
    help=f"Folder (default: ${keys.KEYS_ENV} or ~/.config/harness/keys; never inside a project).",
)
@click.option("--force", is_flag=True, help="Replace an existing pair with a new one.")
@click.option(
    "--type",
    "key_type",
    type=click.Choice(keys.KEY_TYPES),
    help=f"Key type (default for a new pair: {keys.DEFAULT_KEY_TYPE}). ecdsa-p256 is the one "
    "OpenSSF Model Signing (certify --model-signature) and cosign key pairs use.",
)
@click.pass_obj
def keys_generate(
    state: State, *, name: str, folder: Path | None, force: bool, key_type: str | None
) -> None:
    """Write a new key pair; the private key gets mode 0600 and is never printed.

    With a pair of that name already there, it says where and exits 0 (--force replaces it);
    one of another type than --type asks for is refused (exit 2).
    """
    project = _project_root(state)
    if folder is not None and project is not None:
        keys.refuse_inside_project(folder, project, what="the keys folder")
    pair = keys.generate_keys(
        folder or keys.keys_dir(project), name, force=force, key_type=key_type
    )
    if pair.existing:
        state.ui.say(f"a key pair {name!r} already exists: kept (--force replaces it)")
    state.ui.result(f"private {pair.private}")
    state.ui.result(f"public  {pair.public}")
    state.ui.result(f"type    {pair.key_type}")
    state.ui.result(f"keyid   {pair.keyid}")


@keys_group.command("nodes")
@click.argument("host_name", metavar="HOST")
@click.option(
    "--node", "nodes", multiple=True, help="A node (repeatable; default: every node taking jobs)."
)
@click.option(
    "--type",
    "key_type",
    type=click.Choice(keys.KEY_TYPES),
    default=keys.DEFAULT_KEY_TYPE,
    show_default=True,
    help="The type of a key made on a node (one already there is kept).",
)
@click.option("--force", is_flag=True, help="Keep a node's key even when it changed.")
@click.pass_obj
def keys_nodes(
    state: State, *, host_name: str, nodes: tuple[str, ...], key_type: str, force: bool
) -> None:
    """Have each node of the SLURM host HOST keep a signing key of its own.

    One short job per node makes the key where the host's node_key says (with openssl,
    readable by its owner alone; one already there is kept) and leaves its public half,
    which is kept here as nodes/HOST/NODE.pub in the keys folder: the jobs of HOST then
    have the node sign what it saw, harness checks it, and certify counts node keys.

    \b
      harness keys nodes cluster
      harness keys nodes cluster --node gpu07 --node gpu08
    """
    config = state.config()
    host = hosts_module.resolve(config, [host_name])[0]
    for made in slurm_node_keys.fetch(
        config, host, nodes, key_type=key_type, force=force, say=state.ui.say
    ):
        kept = "kept" if made.kept else "new "
        state.ui.result(f"{made.node}  {kept}  {made.keyid[:16]}  {made.path}")


@click.group("certificate")
def certificate_group() -> None:
    """Check certificates, or add a runner's signature to one."""


@certificate_group.command("verify")
@click.argument(
    "certificate_file",
    metavar="[CERT]",
    required=False,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--key",
    "public_keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Trusted public key (repeatable; default: ${keys.TRUSTED_ENV} or "
    "~/.config/harness/trusted/*.pub). The project's [tool.harness.certify] trusted-keys "
    "can only narrow these.",
)
@click.option(
    "--image",
    help="The image in hand: its ID must be the certified one. Without CERT, an image in a "
    "registry, REGISTRY/NAME@sha256:HEX, whose certificate and provenance are read from there.",
)
@click.option(
    "--wheel",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A deploy image's certificate: the wheel in hand must be the certified one.",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    help="Distinct trusted signers required (default 1; the project's threshold when higher).",
)
@click.option(
    "--min-hosts",
    type=click.IntRange(min=1),
    help="Distinct host keys you trust (--key) that must vouch, by their signed runs inside "
    "the certificate, for having reproduced the result; host names never count.",
)
@click.option(
    "--rerun", is_flag=True, help="Also run the experiments again and compare with the certificate."
)
@json_option("the checks and the statement")
@click.pass_obj
def certificate_verify(
    state: State,
    *,
    certificate_file: Path | None,
    public_keys: tuple[Path, ...],
    image: str | None,
    wheel: Path | None,
    threshold: int | None,
    min_hosts: int | None,
    rerun: bool,
    as_json: bool,
) -> None:
    """Check a certificate: signatures, threshold, image, artifacts, optionally a rerun.

    A deployment gate: `harness certificate verify CERT --key ci.pub --image REF` exits 0
    only when the image is the certified one and enough trusted runners signed.

    Without CERT, everything comes from the registry alone (no project, engine or local
    copy): the certificate and the SLSA provenance stored beside the image (`harness
    certify --push`); both signatures are checked, that both name the image the manifest
    holds, and that the provenance's inputs are the image's labels:

    \b
      harness certificate verify --image registry.example.com/ml/model@sha256:HEX --key ci.pub

    Exit 0 when it verifies, 1 when it does not, 2 on trouble (missing file or key).
    """
    if certificate_file is None:
        _verify_in_registry(
            state,
            image,
            public_keys=public_keys,
            threshold=threshold,
            min_hosts=min_hosts,
            rerun=rerun,
            as_json=as_json,
        )
        return
    config = state.config()
    verified = _verify_certificate(
        state, config, certificate_file, public_keys=public_keys, threshold=threshold, image=image
    )
    settings = certify.settings(config.table("certify"), config.project_root)
    trusted = gate.trusted_keys(config, public_keys, settings)
    deploy_certificate.check(verified, trusted, wheel)
    certify.check_hosts(verified, trusted, min_hosts)
    if rerun:
        gate.rerun(state.engine(config), config, verified, state.ui.say)
    if as_json:
        state.ui.json(
            {
                "ok": True,
                "signers": verified.signers,
                "checks": verified.checks,
                "statement": verified.statement,
            }
        )
        return
    for line in verified.checks:
        state.ui.result(f"ok  {line}")
    state.ui.result(f"certificate verifies: {verified.pinned_by}")


def _trusted_anywhere(
    state: State, public_keys: tuple[Path, ...]
) -> tuple[list[keys.PublicKey], int]:
    """The keys a registry check trusts, and the project's threshold: in a project, as its
    gate would (narrowed by it); outside one, the command line's or this machine's."""
    if _project_root(state) is not None:
        config = state.config()
        settings = certify.settings(config.table("certify"), config.project_root)
        return gate.trusted_keys(config, public_keys, settings), settings.threshold
    # Outside any project nothing narrows the keys; an empty folder stands for the project
    # inside which no trusted key may lie.
    with tempfile.TemporaryDirectory(prefix="harness-no-project-") as nowhere:
        return keys.trusted_keys(Path(nowhere), public_keys, ()), 1


def _verify_in_registry(
    state: State,
    image: str | None,
    *,
    public_keys: tuple[Path, ...],
    threshold: int | None,
    min_hosts: int | None,
    rerun: bool,
    as_json: bool,
) -> None:
    """`certificate verify --image REGISTRY/NAME@sha256:...`: everything from the registry."""
    if image is None:
        raise ConfigError(
            "give a certificate file, or --image REGISTRY/NAME@sha256:HEX to read it from the "
            "registry",
            "harness certificate verify --image registry.example.com/ml/model@sha256:... "
            "--key certifier.pub",
        )
    if rerun:
        raise ConfigError(
            "--rerun needs the project and its certificate file", "give CERT, or leave out --rerun"
        )
    reference = registry_module.parse(image, digest_required=True)
    trusted, project_threshold = _trusted_anywhere(state, public_keys)
    required = max(threshold or 1, project_threshold)
    verified = registry_attestations.verify(
        registry_module.Registry(reference.registry), reference, trusted, required
    )
    before = len(verified.certificate.checks)
    certify.check_hosts(verified.certificate, trusted, min_hosts)
    checks = [*verified.checks, *verified.certificate.checks[before:]]
    if as_json:
        state.ui.json(
            {
                "ok": True,
                "image": str(reference),
                "signers": verified.certificate.signers,
                "checks": checks,
                "statement": verified.certificate.statement,
                "provenance": verified.provenance,
            }
        )
        return
    for line in checks:
        state.ui.result(f"ok  {line}")
    state.ui.result(
        f"{reference} verifies: certified and built as its provenance says "
        f"({verified.certificate.pinned_by})"
    )


@certificate_group.command("attach")
@click.argument("certificate_file", metavar="CERT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--image",
    required=True,
    metavar="REGISTRY/NAME@sha256:HEX",
    help="The certified image in its registry, by manifest digest.",
)
@click.option(
    "--key",
    "public_keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Trusted public key (repeatable; default: ${keys.TRUSTED_ENV} or "
    "~/.config/harness/trusted/*.pub).",
)
@click.pass_obj
def certificate_attach(
    state: State, *, certificate_file: Path, image: str, public_keys: tuple[Path, ...]
) -> None:
    """Store CERT beside the image in its registry, in place of the certificate there.

    For a certificate that gained signatures after `harness certify --push` stored it
    (`harness certificate sign`): it must verify under the trusted keys, be about the image
    the registry holds under that digest, and name that digest among its subjects.

    \b
      harness certificate sign CERT --key runner-2.key --trusted-key certifier.pub
      harness certificate attach CERT --image registry.example.com/ml/model@sha256:HEX
    """
    reference = registry_module.parse(image, digest_required=True)
    trusted, _ = _trusted_anywhere(state, public_keys)
    document = certify.read_envelope(certificate_file)
    verified, attached = registry_attestations.attach_certificate(
        registry_module.Registry(reference.registry), reference, document, trusted
    )
    state.ui.result(f"{len(verified.signers)} trusted signature(s) valid")
    state.ui.result(f"certificate attached: {attached.cosign}")


@certificate_group.command("sign")
@click.argument("certificate_file", metavar="CERT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key (default: harness.key in the keys folder).",
)
@click.option(
    "--trusted-key",
    "trusted_keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Public key of a runner that already signed (repeatable; default: ${keys.TRUSTED_ENV} "
    "or ~/.config/harness/trusted/*.pub). Every existing signature must verify with one.",
)
@click.option(
    "--rerun", is_flag=True, help="Reproduce the experiments here first; sign only if they agree."
)
@click.pass_obj
def certificate_sign(
    state: State,
    *,
    certificate_file: Path,
    key: Path | None,
    trusted_keys: tuple[Path, ...],
    rerun: bool,
) -> None:
    """Add this runner's signature to a certificate (the payload is left untouched).

    Co-signing vouches for the whole envelope, so the payload and every signature already
    on it are verified first, each with one of the trusted keys (this runner's own key
    counts as trusted); a signature by an unknown key, or one that does not match the
    payload, is refused (exit 1).
    """
    config = state.config()
    private = keys.load_private_key(key or keys.keys_dir(config.project_root) / keys.DEFAULT_KEY)
    document = certify.read_envelope(certificate_file)
    if not document.get("signatures"):
        raise certify.CertificateError(
            f"{certificate_file} has no signature to join",
            "create certificates with `harness certify`",
        )
    settings = certify.settings(config.table("certify"), config.project_root)
    trusted = [
        private.public_key(),
        *gate.trusted_keys(config, trusted_keys, settings, required=False),
    ]
    verified = certify.verify_envelope(document, trusted, threshold=1, every_signature=True)
    if rerun:
        gate.rerun(state.engine(config), config, verified, state.ui.say)
    certify.write(certificate_file, certify.add_signature(document, private))
    state.ui.result(f"signed {certificate_file} as {keys.key_id(private.public_key())[:16]}")


def _project_root(state: State) -> Path | None:
    """The project the command runs in, or None outside any project."""
    try:
        return find_project_root(state.project)
    except ConfigError:
        return None


def _verify_certificate(
    state: State,
    config: Config,
    path: Path,
    *,
    public_keys: tuple[Path, ...],
    threshold: int | None,
    image: str | None,
) -> certify.Verified:
    settings = certify.settings(config.table("certify"), config.project_root)
    trusted = gate.trusted_keys(config, public_keys, settings)
    document = certify.read_envelope(path)
    # The project may ask for more signers than the command line, never for fewer.
    verified = certify.verify_envelope(document, trusted, max(threshold or 1, settings.threshold))
    if image is not None:
        engine = state.engine(config)
        info = engine.image(image)
        if info is None:
            raise HarnessError(f"the engine has no image {image}", "pull or build it first")
        certify.check_image(verified, info.id)
        verified.checks.extend(_local_provenance(config, info.id, info.labels, trusted))
    certify.check_artifacts(verified, config.project_root)
    return verified


def _local_provenance(
    config: Config, image_id: str, labels: Mapping[str, str], trusted: list[keys.PublicKey]
) -> list[str]:
    """The image's provenance kept here, checked against the image when it is signed."""
    path = provenance.path_for(config.project_root, image_id)
    if not os.path.lexists(path):
        return [f"no provenance of {image_id[:19]} kept here (built elsewhere)"]
    document = provenance.read(path)
    if not document.get("signatures"):
        return ["the provenance kept here is unsigned (built without a key): not checked"]
    try:
        statement, _ = provenance.open_signed(document, trusted)
    except provenance.ProvenanceError:
        # The build host's key may be one this gate does not trust; the certificate is
        # what it checks, and `certify --push` re-signs the provenance with the certifier's.
        return ["the provenance kept here is signed by no key trusted here: not checked"]
    return provenance.check_image(statement, image_id, labels, project_root=config.project_root)
