"""Hosts: how --hosts and [tool.harness.hosts] name the engines a command runs on."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import load_config
from harness.errors import ConfigError
from harness.fleet.hosts import LOCAL, Host, configured, resolve


def with_hosts(project: Path, table: str) -> Path:
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[tool.harness.hosts]\n" + table)
    return project


def test_local_is_the_default_engine_with_bind_mounts(project: Path) -> None:
    config = load_config(project, environ={"HARNESS_HOST_NAME": "laptop"})
    (host,) = resolve(config, [LOCAL])
    assert host == Host("laptop", None, ship="never", files="bind")
    # The machine's own name works as well as "local".
    assert resolve(config, ["laptop"]) == [host]


def test_configured_hosts_keep_their_order_and_settings(project: Path) -> None:
    with_hosts(
        project,
        'gpu = "ssh://ci@gpu-box"\n'
        'runner = { url = "tcp://10.0.0.12:2376", ship = "registry" }\n'
        'ctx = { url = "remote-context", ship = "never", files = "bind" }\n',
    )
    config = load_config(project, environ={"HARNESS_HOST_NAME": "a"})
    hosts = resolve(config, ["runner,gpu", "local"])
    assert [h.name for h in hosts] == ["runner", "gpu", "a"]
    assert hosts[0] == Host("runner", "tcp://10.0.0.12:2376", ship="registry", files="copy")
    assert hosts[1].url == "ssh://ci@gpu-box"
    assert configured(config)["ctx"] == Host("ctx", "remote-context", "never", "bind")


def test_all_is_local_then_every_configured_host_without_repeats(project: Path) -> None:
    with_hosts(project, 'b = "unix:///run/b.sock"\nc = "ssh://c"\n')
    config = load_config(project, environ={"HARNESS_HOST_NAME": "a"})
    assert [h.name for h in resolve(config, ["all", "b"])] == ["a", "b", "c"]


def test_a_url_not_configured_becomes_a_host_named_by_its_address(project: Path) -> None:
    config = load_config(project, environ={})
    (host,) = resolve(config, ["ssh://ci@build-7.example.org"])
    assert (host.name, host.url, host.files) == (
        "build-7.example.org",
        "ssh://ci@build-7.example.org",
        "copy",
    )


def test_name_equals_url_names_a_host_on_the_command_line(project: Path) -> None:
    config = load_config(project, environ={"HARNESS_HOST_NAME": "a"})
    hosts = resolve(config, ["local,second=unix:///run/second/docker.sock"])
    assert hosts[1] == Host("second", "unix:///run/second/docker.sock")
    with pytest.raises(ConfigError):
        resolve(config, ["a=ssh://elsewhere"])


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("b = 3\n", "[tool.harness.hosts] b: expected a string or a table"),
        ('b = { url = "ssh://b", colour = "red" }\n', "unknown key 'colour'"),
        ('b = { ship = "registry" }\n', "[tool.harness.hosts.b] has no url"),
        ('b = { url = "ssh://b", ship = "fax" }\n', "ship: expected one of auto, registry"),
        ('b = { url = "ssh://b", files = "nfs" }\n', "files: expected one of bind, copy"),
        ('b = "ftp://b"\n', '"ftp://b" is not a Docker endpoint'),
        ('local = "ssh://b"\n', "the name 'local' is not allowed"),
    ],
)
def test_bad_host_tables_are_refused_naming_the_host(
    project: Path, table: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(with_hosts(project, table), environ={})
    assert message in caught.value.message


def test_an_unknown_host_name_lists_the_known_ones(project: Path) -> None:
    config = load_config(with_hosts(project, 'b = "ssh://b"\n'), environ={})
    with pytest.raises(ConfigError) as caught:
        resolve(config, ["local,nope"])
    assert caught.value.message == "unknown host 'nope'"
    assert "local, b" in (caught.value.hint or "")
