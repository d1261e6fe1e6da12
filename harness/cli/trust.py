"""The commands that establish trust: `verify`, `certify`, `keys` and `certificate`.

They live beside cli.py, which registers them, so that each file stays about one thing:
cli.py builds and runs, this module proves and checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from harness.cli.options import RunOptions, hosts_option, json_option, run_options
from harness.cli.state import State
from harness.compare.report import print_table
from harness.config import Config, find_project_root
from harness.errors import EXIT_DIFFERS, ConfigError, HarnessError
from harness.fleet import crosshost
from harness.fleet import hosts as hosts_module
from harness.images import build as build_module
from harness.runs import host_executor
from harness.runs import run as run_module
from harness.runs import verify as verify_module
from harness.runs.variations import Variation, select
from harness.trust import certify, gate, keys


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
    default="all",
    show_default=True,
    help="Variations: all, none, or names (cpus, hostname, timezone, locale, user, workdir, env, "
    "hashseed); -NAME leaves one out.",
)
@run_options
@hosts_option
@json_option("the verification document")
@click.pass_obj
def verify_command(
    state: State,
    *,
    names: tuple[str, ...],
    control_runs: int,
    vary: str,
    run_options: RunOptions,
    host_names: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run experiments under variations and name what breaks reproducibility.

    Control runs first (fresh containers, nothing varied), which must agree; then one run
    with every variation at once; when its artifacts move, each variation alone, to name
    the culprit. Artifacts agree when `harness compare` passes them under the configured
    policies. The result is saved under .harness/verifications/ for `harness certify`.

    \b
      harness verify                         every experiment, every variation
      harness verify torch --vary hashseed,locale
      harness verify --vary all,-cpus        all but the CPU-count variation
      harness verify --hosts local,gpu-box   then the same image on gpu-box, compared

    The runs of every experiment overlap, up to --jobs at once on each host; the control
    runs and the run with every variation go together, then each variation alone when
    needed. The document is the same whatever finished first.

    With --hosts, the first host is the control: it builds the image, runs the control
    runs and the variations; at the same time every other host gets the image by digest
    (through the registry setting, else a save/load stream) and runs each experiment
    once; each is then compared with the control. The certificate names the hosts that
    agreed ("2 of 2"). Ctrl-C stops and removes every container on every host.

    Exit 0 when every experiment reproduced (on every host), 1 when one did not, 2 on
    trouble (a run that could not finish, a host unreachable or holding another image:
    what finished is saved).
    """
    variations = select(vary)
    config = state.config(**run_options.config_overrides())
    experiments = [config.experiment(n) for n in names] or list(config.experiments.values())

    base = functools.partial(run_options.request, config)

    others: list[hosts_module.Host] = []
    if run_options.on_host:
        if host_names:
            raise ConfigError(
                "--executor host verifies on this machine only; it takes no --hosts",
                "leave out --hosts, or verify in containers",
            )
        verification = _verify_on_host(
            state,
            config,
            experiments,
            run_options,
            variations=variations,
            control_runs=control_runs,
            base=base,
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
        run_module.check_gpu_request(engine, variant, run_options.gpus)
        image = build_module.build(
            engine,
            build_module.plan(config, variant),
            say=state.ui.say,
            on_line=state.ui.build_line,
        )
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
            for check in result.checks:
                if check.comparison is not None and not check.agrees:
                    state.ui.result(f"  {check.label}:")
                    print_table(check.comparison)
    conclude(state, config, verification, as_json=as_json, show_hosts=bool(others))


def _verify_on_host(
    state: State,
    config: Config,
    experiments: list[Any],
    options: RunOptions,
    *,
    variations: list[Variation],
    control_runs: int,
    base: Callable[[Any], run_module.RunRequest],
) -> verify_module.Verification:
    """`verify --executor host`: the control runs and the variations a host run can make."""
    python = host_executor.inspect_python(
        host_executor.resolve_python(options.python, config.project_root)
    )
    host_executor.check_gpus(options.gpus)
    left_out = [v.name for v in variations if v.name in host_executor.NEEDS_A_CONTAINER]
    if left_out:
        state.ui.say(f"host executor: leaving out {', '.join(left_out)} (they need a container)")
    return verify_module.verify_on_host(
        config,
        python,
        experiments,
        variations=[v for v in variations if v.name not in left_out],
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
        raise HarnessError(
            f"{experiment}: the {label} run could not finish: {error.message}",
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
    as_json: bool,
) -> None:
    """Sign a reproducibility certificate for a successful verification.

    The certificate is an in-toto Statement v1 in a DSSE envelope signed with ed25519: its
    subjects are the image (by digest) and every reproduced artifact (by sha256); its
    predicate records the experiment, commit, constraints and lock hashes, seed, profile,
    observed switches, hosts, runs, and the policy and verdict of each artifact.

    \b
      harness keys generate
      harness verify && harness certify --tag
    """
    config = state.config()
    _, verification = verify_module.load(config, verification_id)
    private = keys.load_private_key(key or keys.keys_dir(config.project_root) / keys.DEFAULT_KEY)
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
    statement = certify.statement(verification, manifests)
    envelope = certify.envelope(statement, private)
    path = output or certify.certificate_path(config.project_root, image_id)
    certify.write(path, envelope)
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
            }
        )
        return
    state.ui.result(f"certificate {path}")
    if tagged:
        state.ui.result(f"tagged {tagged}")


@click.group("keys")
def keys_group() -> None:
    """Manage ed25519 signing keys (kept outside any project, so never in an image or run)."""


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
@click.pass_obj
def keys_generate(state: State, *, name: str, folder: Path | None, force: bool) -> None:
    """Write a new key pair; the private key gets mode 0600 and is never printed.

    With a pair of that name already there, it says where and exits 0 (--force replaces it).
    """
    project = _project_root(state)
    if folder is not None and project is not None:
        keys.refuse_inside_project(folder, project, what="the keys folder")
    pair = keys.generate_keys(folder or keys.keys_dir(project), name, force=force)
    if pair.existing:
        state.ui.say(f"a key pair {name!r} already exists: kept (--force replaces it)")
    state.ui.result(f"private {pair.private}")
    state.ui.result(f"public  {pair.public}")
    state.ui.result(f"keyid   {pair.keyid}")


@click.group("certificate")
def certificate_group() -> None:
    """Check certificates, or add a runner's signature to one."""


@certificate_group.command("verify")
@click.argument("certificate_file", metavar="CERT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--key",
    "public_keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Trusted public key (repeatable; default: ${keys.TRUSTED_ENV} or "
    "~/.config/harness/trusted/*.pub). The project's [tool.harness.certify] trusted-keys "
    "can only narrow these.",
)
@click.option("--image", help="The image in hand: its ID must be the certified one.")
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    help="Distinct trusted signers required (default 1; the project's threshold when higher).",
)
@click.option(
    "--min-hosts",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Hosts that must have reproduced the result.",
)
@click.option(
    "--rerun", is_flag=True, help="Also run the experiments again and compare with the certificate."
)
@json_option("the checks and the statement")
@click.pass_obj
def certificate_verify(
    state: State,
    *,
    certificate_file: Path,
    public_keys: tuple[Path, ...],
    image: str | None,
    threshold: int | None,
    min_hosts: int,
    rerun: bool,
    as_json: bool,
) -> None:
    """Check a certificate: signatures, threshold, image, artifacts, optionally a rerun.

    A deployment gate: `harness certificate verify CERT --key ci.pub --image REF` exits 0
    only when the image is the certified one and enough trusted runners signed.

    Exit 0 when it verifies, 1 when it does not, 2 on trouble (missing file or key).
    """
    config = state.config()
    verified = _verify_certificate(
        state, config, certificate_file, public_keys=public_keys, threshold=threshold, image=image
    )
    certify.check_hosts(verified, min_hosts)
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
    certify.check_artifacts(verified, config.project_root)
    return verified
