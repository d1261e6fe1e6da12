"""Image listings and the layer normal form, on small synthetic archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from harness.errors import EngineError
from harness.images import filesystem as imagefs


@dataclass
class Member:
    name: str
    kind: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = 100
    linkname: str = ""
    pax: dict[str, str] = field(default_factory=dict)
    uname: str = "root"


def layer_tar(members: Sequence[Member], fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.kind
            info.mode, info.uid, info.gid, info.mtime = (
                member.mode,
                member.uid,
                member.gid,
                member.mtime,
            )
            info.uname = info.gname = member.uname
            info.linkname = member.linkname
            info.pax_headers = dict(member.pax)
            if member.kind == tarfile.CHRTYPE:
                info.devmajor, info.devminor = 1, 3
            if member.kind == tarfile.REGTYPE:
                info.size = len(member.data)
                archive.addfile(info, io.BytesIO(member.data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def saved_archive(layers: Sequence[bytes], *, oci: bool = False, gzipped: bool = False) -> bytes:
    """A `docker save` archive, the manifest last as the legacy layout has it."""
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    members: list[tuple[str, bytes]] = []
    names = []
    for index, layer in enumerate(layers):
        body = gzip.compress(layer, mtime=0) if gzipped else layer
        name = (
            f"blobs/sha256/{hashlib.sha256(body).hexdigest()}" if oci else f"{index:064x}/layer.tar"
        )
        names.append(name)
        members.append((name, body))
        if not oci:
            members.append((f"{index:064x}/json", b"{}"))
    members.append((config_name, config))
    manifest = [{"Config": config_name, "RepoTags": None, "Layers": names}]
    members.append(("manifest.json", json.dumps(manifest).encode()))
    return b"".join(imagefs.tar_stream([(name, body, len(body)) for name, body in members]))


BASE = [
    Member("etc", tarfile.DIRTYPE, mode=0o755),
    Member("etc/passwd", data=b"root:x:0:0\n"),
    Member("usr", tarfile.DIRTYPE, mode=0o755),
    Member("usr/bin", tarfile.DIRTYPE, mode=0o755),
    Member("usr/bin/python3", data=b"ELF", mode=0o755),
    Member("usr/bin/python", tarfile.SYMTYPE, linkname="python3", mode=0o777),
    Member("usr/share", tarfile.DIRTYPE, mode=0o755),
    Member("usr/share/doc", tarfile.DIRTYPE, mode=0o755),
    Member("usr/share/doc/readme", data=b"hello"),
    Member("opt", tarfile.DIRTYPE, mode=0o755),
    Member("opt/old", data=b"gone soon"),
]
TOP = [
    Member("./opt/", tarfile.DIRTYPE, mode=0o755),
    Member("./opt/.wh.old", tarfile.CHRTYPE),
    Member("./usr/share/doc/", tarfile.DIRTYPE, mode=0o755),
    Member("./usr/share/doc/.wh..wh..opq", tarfile.REGTYPE),
    Member("./usr/share/doc/new", data=b"fresh"),
    Member(
        "./bin/ping", data=b"ping", mode=0o4755, pax={"SCHILY.xattr.security.capability": "cap"}
    ),
    Member("./bin/ping6", tarfile.LNKTYPE, linkname="bin/ping", mode=0o4755),
]


def test_scan_layer_lists_entries_whiteouts_and_hashes_the_archive() -> None:
    data = layer_tar(TOP)
    layer = imagefs.scan_layer(io.BytesIO(data))
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert layer.size == len(data)
    assert layer.whiteouts == ["opt/old"]
    assert layer.opaque == ["usr/share/doc"]
    ping = layer.entries["bin/ping"]
    assert ping.kind == "file"
    assert ping.mode == 0o4755
    assert ping.sha256 == hashlib.sha256(b"ping").hexdigest()
    assert ping.xattrs == (("security.capability", "cap"),)
    assert layer.entries["bin/ping6"].target == "bin/ping"


def test_merge_applies_whiteouts_opaque_folders_and_resolves_hard_links() -> None:
    layers = [imagefs.scan_layer(io.BytesIO(layer_tar(m))) for m in (BASE, TOP)]
    view = imagefs.merge(layers)
    assert "opt/old" not in view
    assert "opt" in view
    assert "usr/share/doc/readme" not in view  # hidden by the opaque marker
    assert view["usr/share/doc/new"].layer == 1
    assert view["usr/share/doc"].layer == 1
    assert view["etc/passwd"].layer == 0
    assert view["bin/ping6"].entry.sha256 == view["bin/ping"].entry.sha256
    assert view["usr/bin/python"].entry.target == "python3"


def test_content_digest_ignores_times_and_sees_everything_else() -> None:
    def digest(members: Sequence[Member]) -> str:
        return imagefs.content_digest(
            imagefs.merge([imagefs.scan_layer(io.BytesIO(layer_tar(members)))])
        )

    reference = digest(BASE)
    assert (
        digest(
            [Member(m.name, m.kind, m.data, m.mode, mtime=999, linkname=m.linkname) for m in BASE]
        )
        == reference
    )
    changed = {
        "content": Member("etc/passwd", data=b"root:x:0:1\n"),
        "mode": Member("etc/passwd", data=b"root:x:0:0\n", mode=0o600),
        "owner": Member("etc/passwd", data=b"root:x:0:0\n", uid=1),
        "target": Member("usr/bin/python", tarfile.SYMTYPE, linkname="python3.11", mode=0o777),
    }
    for aspect, member in changed.items():
        members = [member if m.name == member.name else m for m in BASE]
        assert digest(members) != reference, aspect


def test_entry_differences_name_each_aspect() -> None:
    a = imagefs.Entry("file", 0o644, 0, 0, 3, "aa", mtime=1)
    assert a.differences(a) == ()
    b = imagefs.Entry("file", 0o755, 0, 1, 3, "bb", mtime=2)
    assert b.differences(a) == ("content", "mode", "owner", "mtime")


@pytest.mark.parametrize(("oci", "gzipped"), [(False, False), (True, False), (True, True)])
def test_read_saved_orders_layers_by_the_manifest_that_comes_last(oci: bool, gzipped: bool) -> None:
    layers = [layer_tar(BASE), layer_tar(TOP)]
    saved = imagefs.read_saved(io.BytesIO(saved_archive(layers, oci=oci, gzipped=gzipped)))
    assert saved.diff_ids == ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in layers]
    assert saved.image_id == "sha256:" + hashlib.sha256(saved.config).hexdigest()
    assert "usr/share/doc/new" in saved.files
    assert saved.content_digest.startswith("sha256:")
    # The manifest digest follows the configuration and the layers, nothing else.
    again = imagefs.read_saved(io.BytesIO(saved_archive(layers, oci=oci, gzipped=gzipped)))
    assert again.manifest_digest == saved.manifest_digest


def test_read_saved_without_layers_keeps_only_the_configuration() -> None:
    saved = imagefs.read_saved(io.BytesIO(saved_archive([layer_tar(BASE)])), layers=False)
    assert json.loads(saved.config)["rootfs"]["type"] == "layers"
    assert saved.layers == []


def test_read_saved_refuses_layers_that_do_not_match_the_configuration() -> None:
    archive = saved_archive([layer_tar(BASE)])
    tampered = archive.replace(b"root:x:0:0", b"root:x:0:9")
    with pytest.raises(EngineError, match="diff IDs"):
        imagefs.read_saved(io.BytesIO(tampered))
    with pytest.raises(EngineError, match="manifest"):
        imagefs.read_saved(io.BytesIO(layer_tar(BASE)))


def normalised(data: bytes, epoch: int, tmp_path: Path) -> tuple[bytes, str]:
    source = tmp_path / "in.tar"
    source.write_bytes(data)
    target = io.BytesIO()
    with source.open("rb") as stream:
        diff_id, size = imagefs.normalise_layer(stream, target, epoch)
    out = target.getvalue()
    assert size == len(out)
    assert diff_id == "sha256:" + hashlib.sha256(out).hexdigest()
    return out, diff_id


def test_normal_form_sorts_clamps_and_drops_names_and_volatile_records(tmp_path: Path) -> None:
    members = [
        Member("b/two", data=b"2", mtime=5_000, pax={"atime": "123.5", "ctime": "124.25"}),
        Member("a", tarfile.DIRTYPE, mode=0o755, mtime=10),
        Member("b", tarfile.DIRTYPE, mode=0o755, mtime=6_000),
        Member("a/one", data=b"1", mtime=50, pax={"SCHILY.xattr.user.k": "v"}),
    ]
    out, _ = normalised(layer_tar(members), 1_000, tmp_path)
    with tarfile.open(fileobj=io.BytesIO(out)) as archive:
        infos = archive.getmembers()
        assert [i.name for i in infos] == ["a", "a/one", "b", "b/two"]
        assert [i.mtime for i in infos] == [10, 50, 1_000, 1_000]
        assert {i.uname for i in infos} == {""}
        assert all("atime" not in i.pax_headers and "ctime" not in i.pax_headers for i in infos)
        assert infos[1].pax_headers == {"SCHILY.xattr.user.k": "v"}
        assert archive.extractfile("b/two").read() == b"2"  # type: ignore[union-attr]


def test_normal_form_is_the_same_whatever_the_order_times_or_user_names(tmp_path: Path) -> None:
    members = [
        Member("z", data=b"last", mtime=9_999),
        Member("a", data=b"first", mtime=8_888, uname="someone"),
    ]
    one, first = normalised(layer_tar(members), 1_000, tmp_path)
    reordered = [Member("a", data=b"first", mtime=7_777), Member("z", data=b"last", mtime=5_555)]
    two, second = normalised(layer_tar(reordered, tarfile.GNU_FORMAT), 1_000, tmp_path)
    assert first == second
    assert one == two


def test_normal_form_puts_a_hard_link_after_the_file_it_names(tmp_path: Path) -> None:
    # Sorted, "a-link" comes before "b-file": the first path of the group carries the data.
    members = [
        Member("b-file", data=b"shared", mode=0o755),
        Member("a-link", tarfile.LNKTYPE, linkname="b-file", mode=0o755),
    ]
    out, _ = normalised(layer_tar(members), 1_000, tmp_path)
    with tarfile.open(fileobj=io.BytesIO(out)) as archive:
        first, second = archive.getmembers()
        assert (first.name, first.isreg(), first.size) == ("a-link", True, 6)
        assert (second.name, second.islnk(), second.linkname) == ("b-file", True, "a-link")
        archive.extractall(tmp_path / "out", filter="tar")
    assert (tmp_path / "out" / "b-file").read_bytes() == b"shared"


def test_tar_stream_streams_files_and_bytes_as_a_valid_archive(tmp_path: Path) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"x" * 3_000_000)
    with big.open("rb") as stream:
        data = b"".join(imagefs.tar_stream([("big", stream, 3_000_000), ("small.json", b"{}", 2)]))
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        assert [m.name for m in archive.getmembers()] == ["big", "small.json"]
        assert archive.extractfile("small.json").read() == b"{}"  # type: ignore[union-attr]


def test_tar_stream_refuses_a_file_shorter_than_announced(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="ended"):
        b"".join(imagefs.tar_stream([("short", io.BytesIO(b"abc"), 10)]))


def test_clean_path() -> None:
    assert imagefs.clean_path("./usr/bin/") == "usr/bin"
    assert imagefs.clean_path("/etc") == "etc"
    assert imagefs.clean_path("./") == ""
    assert imagefs.clean_path(".") == ""
