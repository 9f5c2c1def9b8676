"""Descriptors, manifests, indexes, configs: real documents round-tripped, Docker <-> OCI, errors naming the field."""

import base64
import json
import subprocess
from dataclasses import replace

import pytest

from pyoci import manifest as m
from pyoci import mediatypes as mt
from pyoci.errors import InvalidDocument, NotFound
from pyoci.manifest import Descriptor, ImageConfig, Index, Manifest
from pyoci.platform import Platform
from tests.support import assert_valid
from tests.support import require

CFG = "sha256:e67d23e7820c49a8051dac2831f38290f5e72f66c8db5079eeb60d82f14894c0"
L1 = "sha256:2804bad6fe94a55f18b2b37e300919a5fd517b95aa81e95db574c0ba069a3740"
L2 = "sha256:8a1cee436cbac1489a1883c9d886fcfc46f302c55ed4106ae31729e4f4eb9041"
L3 = "sha256:10dacdccfe877dc064d57442e6fa7a4e3085dc94e11a29819c2290fc3d788724"
M1 = "sha256:ca0df2c95aa144c1d0ff2ff3c8f967fdc1de9ef0c4120b3726416701b519d619"
M2 = "sha256:29c1b289e7522195b362e44f54e05470b69ad20540ab60a18a05e5bf6951f13d"
M3 = "sha256:153812ae5fea0b73a011bf28bd7cea93644437c3fe3260b7b2d7e1e2f9f46bde"
M4 = "sha256:2396a1256ac4b1c6849c931ddb8018bdd984bb2383be21bb819a33b95d8d603f"
ATT = "sha256:f745a15153c4dacf0ea4bbf57265e73283941f8335939b33c693975315cf5916"
SUB = "sha256:ddc6e2b224d0fd821669202258386936fc9ce2899e215eec6322b95f8dd96d6a"
EMPTY = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"  # sha256("{}")

# An OCI image manifest as containerd/skopeo write it (json.Marshal: struct order, compact).
OCI_MANIFEST = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"' + CFG + '","size":1470},'
    '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"' + L1 + '","size":2815224},'
    '{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"' + L2 + '","size":127,'
    '"annotations":{"org.opencontainers.image.title":"etc/motd"}},'
    '{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"' + L3 + '","size":3012}],'
    '"annotations":{"org.opencontainers.image.created":"2024-03-01T10:00:00Z",'
    '"org.opencontainers.image.source":"https://example.com/a?b=1\\u0026c=\\u003c2\\u003e"}}'
).encode()

# An OCI index with platforms, including buildkit's attestation manifest (unknown/unknown).
OCI_INDEX = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
    '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"' + M1 + '","size":1017,'
    '"platform":{"architecture":"amd64","os":"linux"}},'
    '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"' + M2 + '","size":1017,'
    '"platform":{"architecture":"arm64","os":"linux","variant":"v8"}},'
    '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"' + M3 + '","size":1017,'
    '"platform":{"architecture":"arm","os":"linux","variant":"v7"}},'
    '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"' + M4 + '","size":1420,'
    '"platform":{"architecture":"amd64","os":"windows","os.version":"10.0.20348.2227"}},'
    '{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"' + ATT + '","size":566,'
    '"annotations":{"vnd.docker.reference.digest":"' + M1 + '","vnd.docker.reference.type":"attestation-manifest"},'
    '"platform":{"architecture":"unknown","os":"unknown"}}],'
    '"annotations":{"org.opencontainers.image.ref.name":"1.36"}}'
).encode()

# A Docker schema2 manifest as `docker push` sends it and the registry returns it (MarshalIndent, 3 spaces).
DOCKER_MANIFEST = b"""{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {
      "mediaType": "application/vnd.docker.container.image.v1+json",
      "size": 1457,
      "digest": "%s"
   },
   "layers": [
      {
         "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
         "size": 2207025,
         "digest": "%s"
      },
      {
         "mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
         "size": 1570,
         "digest": "%s",
         "urls": [
            "https://mcr.microsoft.com/v2/windows/blobs/x"
         ]
      }
   ]
}""" % (CFG.encode(), L1.encode(), L2.encode())

# A manifest list as `docker manifest push` writes it (distribution's manifestlist: MarshalIndent, 3 spaces).
DOCKER_LIST = b"""{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
   "manifests": [
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "%s",
         "platform": {
            "architecture": "amd64",
            "os": "linux"
         }
      },
      {
         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "size": 528,
         "digest": "%s",
         "platform": {
            "architecture": "arm",
            "os": "linux",
            "variant": "v6",
            "features": [
               "sse4"
            ]
         }
      }
   ]
}""" % (M1.encode(), M2.encode())

# Docker Hub's official-image lists: sorted keys and PHP-style "\/" escapes.
DOCKER_HUB_LIST = (
    '{"manifests":[{"digest":"' + M1 + '","mediaType":"application\\/vnd.docker.distribution.manifest.v2+json",'
    '"platform":{"architecture":"amd64","os":"linux"},"size":527},{"digest":"' + M3 + '","mediaType":'
    '"application\\/vnd.docker.distribution.manifest.v2+json","platform":{"architecture":"arm","os":"linux",'
    '"variant":"v7"},"size":527}],"mediaType":"application\\/vnd.docker.distribution.manifest.list.v2+json",'
    '"schemaVersion":2}'
).encode()

# A Docker image config from the classic builder: sorted keys, nulls, Docker-only fields.
DOCKER_CONFIG = (
    '{"architecture":"amd64","config":{"Hostname":"","Domainname":"","User":"","AttachStdin":false,'
    '"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,'
    '"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],'
    '"Healthcheck":{"Test":["CMD-SHELL","wget -q -O- localhost || exit 1"],"Interval":30000000000},'
    '"Image":"sha256:9d5226e6ce3fb6aee2f6f7f4b4d2b8e7fbab5c0b4f4b9c5e3f4b2c5d6e7f8a9b",'
    '"Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":{"maintainer":"me"},'
    '"Shell":["/bin/sh","-c"],"StopSignal":"SIGTERM"},'
    '"container":"a3c4f0b6d5e2","container_config":{"Hostname":"a3c4f0b6d5e2","Cmd":["/bin/sh","-c",'
    '"#(nop) ","CMD [\\"sh\\"]"]},"created":"2023-05-19T20:19:27.652441079Z","docker_version":"20.10.23",'
    '"history":[{"created":"2023-05-19T20:19:27.530495767Z","created_by":"/bin/sh -c #(nop) ADD file:5b1 in / "},'
    '{"created":"2023-05-19T20:19:27.652441079Z","created_by":"/bin/sh -c #(nop)  CMD [\\"sh\\"]",'
    '"empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["' + L3 + '"]}}'
).encode()

# An OCI artifact (image-spec 1.1): empty config embedded with `data`, a subject, an artifactType.
OCI_ARTIFACT = (
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    '"artifactType":"application/vnd.example.sbom.v1+json",'
    '"config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"' + EMPTY + '","size":2,"data":"e30="},'
    '"layers":[{"mediaType":"application/spdx+json","digest":"' + L1 + '","size":1024}],'
    '"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"' + SUB + '","size":1017},'
    '"annotations":{"org.opencontainers.image.created":"2024-03-01T10:00:00Z"}}'
).encode()

# What umoci writes for a config (ocispec.Image order, Go's HTML-safe escapes).
UMOCI_CONFIG = (
    '{"created":"2020-01-01T00:00:00Z","author":"me","architecture":"amd64","os":"linux","config":'
    '{"ExposedPorts":{"80/tcp":{}},"Env":["A=1"],"Cmd":["sh"],"Labels":{"x":"\\u003cy\\u003e\\u0026"}},'
    '"rootfs":{"type":"layers","diff_ids":["' + L3 + '"]},"history":[{"created":"2026-11-23T17:01:01.972159148Z",'
    '"created_by":"umoci config","author":"me","empty_layer":true},{"created":"2026-11-23T17:01:06.340932506Z",'
    '"created_by":"umoci insert"}]}'
).encode()




def test_index_schema_rejects_bad_entries():
    with pytest.raises(AssertionError, match="architecture"):
        assert_valid({"schemaVersion": 2, "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": M1, "size": 1,
                                                         "platform": {"os": "linux"}}]}, "index")
    with pytest.raises(AssertionError, match="size"):
        assert_valid({"schemaVersion": 2, "manifests": [{"mediaType": mt.OCI_MANIFEST, "digest": M1}]}, "index")


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("raw,cls,indent", [
    (OCI_MANIFEST, Manifest, None),
    (OCI_INDEX, Index, None),
    (OCI_ARTIFACT, Manifest, None),
    (UMOCI_CONFIG, ImageConfig, None),
    (DOCKER_MANIFEST, Manifest, 3),
    (DOCKER_LIST, Index, 3),
], ids=["oci-manifest", "oci-index", "oci-artifact", "umoci-config", "docker-manifest", "docker-list"])
def test_round_trip_is_byte_identical_for_go_written_documents(raw, cls, indent):
    doc = cls.from_json(raw, source="fixture")
    assert doc.to_json(indent) == raw
    assert cls.from_json(doc.to_json()) == doc
    assert m.parse_document(raw) == doc


@pytest.mark.parametrize("raw", [DOCKER_HUB_LIST, DOCKER_CONFIG, DOCKER_MANIFEST, DOCKER_LIST])
def test_round_trip_loses_nothing(raw):
    doc = m.parse_document(raw)
    out = doc.to_json()
    assert json.loads(out) == json.loads(raw)  # same content, Docker's extra keys and nulls included
    assert out == m.go_json(json.loads(out))  # compact, no whitespace between tokens
    assert m.parse_document(out) == doc


def test_parsed_fields():
    man = Manifest.from_json(OCI_MANIFEST)
    assert man.media_type == mt.OCI_MANIFEST and man.schema_version == 2
    assert man.config == Descriptor(mt.OCI_CONFIG, CFG, 1470)
    assert [d.digest for d in man.layers] == [L1, L2, L3]
    assert man.layers[1].annotations == {"org.opencontainers.image.title": "etc/motd"}
    idx = Index.from_json(OCI_INDEX)
    assert idx.manifests[1].platform == Platform("linux", "arm64", "v8")
    assert idx.manifests[3].platform.os_version == "10.0.20348.2227"
    art = Manifest.from_json(OCI_ARTIFACT)
    assert art.config.data == b"{}" and art.subject.digest == SUB
    assert art.artifact_type == "application/vnd.example.sbom.v1+json"
    cfg = ImageConfig.from_json(DOCKER_CONFIG)
    assert cfg.platform == Platform("linux", "amd64")
    assert cfg.diff_ids == (L3,)
    assert cfg.config.cmd == ("sh",) and cfg.config.shell == ("/bin/sh", "-c")
    assert cfg.config.healthcheck["Interval"] == 30000000000
    assert cfg.config.labels == {"maintainer": "me"} and cfg.config.stop_signal == "SIGTERM"
    assert [h.empty_layer for h in cfg.history] == [False, True]
    assert cfg.extra["docker_version"] == "20.10.23"
    assert cfg.config.extra["Hostname"] == ""


@pytest.mark.parametrize("raw,name", [
    (OCI_MANIFEST, "manifest"), (OCI_INDEX, "index"), (OCI_ARTIFACT, "manifest"), (UMOCI_CONFIG, "config"),
    (DOCKER_CONFIG, "config"),
])
def test_every_document_validates_against_the_official_schema(raw, name):
    doc = m.parse_document(raw)
    assert_valid(json.loads(doc.to_json()), name)
    if isinstance(doc, Manifest):
        for d in (doc.config, *doc.layers):
            assert_valid(d.to_dict(), "descriptor")
    if isinstance(doc, Index):
        for d in doc.manifests:
            assert_valid(d.to_dict(), "descriptor")


def test_a_new_image_from_scratch_validates():
    cfg = ImageConfig("amd64", "linux", m.RootFS(diff_ids=(L1,)), created="2024-01-01T00:00:00Z",
                      config=m.ContainerConfig(env=("PATH=/bin",), cmd=("sh",), exposed_ports=("80/tcp",),
                                               volumes=("/data",), labels={"b": "2", "a": "1"}),
                      history=(m.History(created="2024-01-01T00:00:00Z", created_by="pyoci"),))
    cfg_desc = cfg.to_descriptor()
    man = Manifest(cfg_desc, (Descriptor(mt.OCI_LAYER_GZIP, L1, 10),), annotations={"k": "v"})
    idx = Index((man.to_descriptor(platform=cfg.platform),))
    for doc, name in ((cfg, "config"), (man, "manifest"), (idx, "index")):
        assert_valid(json.loads(doc.to_json()), name)
    assert_valid(cfg_desc.to_dict(), "descriptor")
    assert cfg.to_json().startswith(b'{"created":"2024-01-01T00:00:00Z","architecture":"amd64","os":"linux",'
                                    b'"config":{"ExposedPorts":{"80/tcp":{}},"Env":["PATH=/bin"],"Cmd":["sh"],'
                                    b'"Volumes":{"/data":{}},"Labels":{"a":"1","b":"2"}},"rootfs":')
    assert man.to_descriptor().size == len(man.to_json())
    assert idx.to_json().startswith(b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",')


# ---------------------------------------------------------------- Docker <-> OCI


def test_docker_manifest_to_oci():
    docker = Manifest.from_json(DOCKER_MANIFEST)
    assert docker.is_docker
    oci = docker.to_oci()
    assert oci.media_type == mt.OCI_MANIFEST and not oci.is_docker
    assert oci.config == Descriptor(mt.OCI_CONFIG, CFG, 1457)  # same config blob, new media type
    assert [d.media_type for d in oci.layers] == [mt.OCI_LAYER_GZIP, mt.OCI_LAYER_NONDIST_GZIP]
    assert [d.digest for d in oci.layers] == [L1, L2]
    assert oci.layers[1].urls == ("https://mcr.microsoft.com/v2/windows/blobs/x",)
    assert_valid(json.loads(oci.to_json()), "manifest")
    assert json.loads(oci.to_json())["config"] == {"mediaType": mt.OCI_CONFIG, "digest": CFG, "size": 1457}
    # and back: the same Docker document, byte for byte
    assert oci.to_docker().to_json(indent=3) == DOCKER_MANIFEST
    assert oci.to_oci() is oci and docker.to_docker() is docker


def test_oci_to_docker_refuses_what_schema2_cannot_hold():
    with pytest.raises(InvalidDocument, match=r"layers\[2\].mediaType: media type "
                                              r"'application/vnd.oci.image.layer.v1.tar\+zstd' has no Docker"):
        Manifest.from_json(OCI_MANIFEST).to_docker()
    with pytest.raises(InvalidDocument, match="subject: a Docker schema2 manifest cannot carry subject"):
        Manifest.from_json(OCI_ARTIFACT).to_docker()
    # manifest annotations have no place in schema2: dropped, as skopeo does
    gz_only = Manifest.from_json(OCI_MANIFEST)
    gz_only = replace(gz_only, layers=gz_only.layers[:2])
    docker = gz_only.to_docker()
    assert docker.annotations == {} and "annotations" not in json.loads(docker.to_json())
    assert docker.layers[1].annotations == {"org.opencontainers.image.title": "etc/motd"}  # descriptors keep theirs


def test_docker_config_is_the_same_json():
    cfg = ImageConfig.from_json(DOCKER_CONFIG)
    assert_valid(json.loads(DOCKER_CONFIG), "config")
    # to_oci() keeps only image-spec's fields, as skopeo does when it converts
    oci = cfg.to_oci()
    out = json.loads(oci.to_json())
    assert "container_config" not in out and "Healthcheck" not in out["config"] and "Shell" not in out["config"]
    assert out["config"] == {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                             "Cmd": ["sh"], "Labels": {"maintainer": "me"}, "StopSignal": "SIGTERM"}
    assert_valid(out, "config")


def test_docker_list_to_oci_and_back():
    lst = Index.from_json(DOCKER_LIST)
    assert lst.is_docker and lst.manifests[1].platform.features == ("sse4",)
    # children not converted: the entries keep pointing at the unchanged Docker manifests
    shallow = lst.to_oci()
    assert shallow.media_type == mt.OCI_INDEX
    assert [d.media_type for d in shallow.manifests] == [mt.DOCKER_MANIFEST] * 2
    # children converted: their new descriptors replace the old, platforms kept
    new1 = Descriptor(mt.OCI_MANIFEST, M3, 500)
    oci = lst.to_oci({M1: new1})
    assert oci.manifests[0] == Descriptor(mt.OCI_MANIFEST, M3, 500, platform=Platform("linux", "amd64"))
    assert oci.manifests[1].digest == M2
    assert_valid(json.loads(oci.to_json()), "index")
    back = oci.to_docker({M3: Descriptor(mt.DOCKER_MANIFEST, M1, 528)})
    assert back.to_json(indent=3) == DOCKER_LIST


def test_index_to_docker_needs_platforms_and_docker_children():
    idx = Index.from_json(OCI_INDEX)
    with pytest.raises(InvalidDocument, match=r"manifests\[0\].mediaType: .* must be converted"):
        idx.to_docker()
    with pytest.raises(InvalidDocument, match=r"subject: a Docker manifest list cannot carry subject"):
        replace(idx, subject=Descriptor(mt.OCI_MANIFEST, SUB, 1)).to_docker()
    bare = Index((Descriptor(mt.DOCKER_MANIFEST, M1, 1),))
    with pytest.raises(InvalidDocument, match=r"manifests\[0\].platform: a Docker manifest list entry needs"):
        bare.to_docker()
    oci_child = Index((Descriptor(mt.OCI_MANIFEST, M1, 1, platform=Platform("linux", "amd64")),))
    with pytest.raises(InvalidDocument, match=r"manifests\[0\].mediaType: .* must be converted"):
        oci_child.to_docker()


# ---------------------------------------------------------------- detection


@pytest.mark.parametrize("raw,media_type,kind", [
    (OCI_MANIFEST, None, Manifest),
    (OCI_INDEX, None, Index),
    (DOCKER_MANIFEST, None, Manifest),
    (DOCKER_LIST, None, Index),
    (DOCKER_HUB_LIST, None, Index),
    (UMOCI_CONFIG, None, ImageConfig),
    (b'{"schemaVersion":2,"manifests":[]}', None, Index),
    (b'{"schemaVersion":2,"config":{"mediaType":"a/b","digest":"' + CFG.encode() + b'","size":1},"layers":[]}',
     None, Manifest),
    (b'{"schemaVersion":2,"manifests":[]}', mt.OCI_INDEX, Index),
    (DOCKER_CONFIG, mt.DOCKER_CONFIG, ImageConfig),
])
def test_parse_document_detects_the_kind(raw, media_type, kind):
    assert type(m.parse_document(raw, media_type)) is kind


@pytest.mark.parametrize("raw,media_type,message", [
    (OCI_MANIFEST, mt.OCI_INDEX, "document says 'application/vnd.oci.image.manifest.v1\\+json' but it was "
                                 "described as 'application/vnd.oci.image.index.v1\\+json'"),
    (b'{"schemaVersion":1,"name":"x","fsLayers":[]}', None, "Docker schema 1 manifests are not supported"),
    (b'{"foo":1}', None, "not an image manifest, index or config"),
    (b'{"mediaType":"text/plain"}', None, "unsupported document type 'text/plain'"),
    (b"[1,2]", None, "must be a JSON object, got array"),
    (b"{nope", None, "is not valid JSON"),
    (b'{"schemaVersion":NaN}', None, "is not valid JSON"),
    (b"\xff\xfe", None, "is not valid JSON"),
])
def test_parse_document_errors(raw, media_type, message):
    with pytest.raises(InvalidDocument, match=message):
        m.parse_document(raw, media_type, source="blob sha256:abc")


# ---------------------------------------------------------------- errors name the field


def _edit(raw: bytes, fn) -> dict:
    doc = json.loads(raw)
    fn(doc)
    return doc


@pytest.mark.parametrize("cls,raw,edit,message", [
    (Manifest, OCI_MANIFEST, lambda d: d["layers"][2].update(digest="sha256:1234"),
     r"^manifest sha256:abc: layers\[2\]\.digest: invalid digest 'sha256:1234'"),
    (Manifest, OCI_MANIFEST, lambda d: d["layers"][0].update(size="12"),
     r"layers\[0\]\.size: must be an integer >= 0, got '12'"),
    (Manifest, OCI_MANIFEST, lambda d: d["layers"][0].update(size=-1), r"layers\[0\]\.size: must be an integer"),
    (Manifest, OCI_MANIFEST, lambda d: d["layers"][0].update(size=True), r"layers\[0\]\.size: must be an integer"),
    (Manifest, OCI_MANIFEST, lambda d: d["layers"][1].pop("mediaType"), r"layers\[1\]\.mediaType: is required"),
    (Manifest, OCI_MANIFEST, lambda d: d["layers"][1].update(mediaType="nope"),
     r"layers\[1\]\.mediaType: invalid media type 'nope'"),
    (Manifest, OCI_MANIFEST, lambda d: d["layers"][1]["annotations"].update(n=1),
     r"layers\[1\]\.annotations\['n'\]: must be a string, got number"),
    (Manifest, OCI_MANIFEST, lambda d: d["layers"][0].update(urls="http://x"),
     r"layers\[0\]\.urls: must be an array of strings"),
    (Manifest, OCI_MANIFEST, lambda d: d.pop("config"), r"config: is required"),
    (Manifest, OCI_MANIFEST, lambda d: d.pop("layers"), r"layers: is required"),
    (Manifest, OCI_MANIFEST, lambda d: d.update(layers={}), r"layers: must be an array, got object"),
    (Manifest, OCI_MANIFEST, lambda d: d.update(schemaVersion=1), r"schemaVersion: must be 2, got 1"),
    (Manifest, OCI_MANIFEST, lambda d: d.pop("schemaVersion"), r"schemaVersion: is required"),
    (Manifest, OCI_MANIFEST, lambda d: d.update(mediaType=mt.OCI_INDEX), r"mediaType: .* is not an image manifest"),
    (Manifest, OCI_MANIFEST, lambda d: d.update(annotations=[]), r"annotations: must be an object of strings"),
    (Manifest, OCI_ARTIFACT, lambda d: d["config"].update(data="e30"), r"config\.data: is not valid base64"),
    (Manifest, OCI_ARTIFACT, lambda d: d["config"].update(data=base64.b64encode(b"[]").decode()),
     r"config\.data: does not match the descriptor's digest"),
    (Manifest, OCI_ARTIFACT, lambda d: d["subject"].pop("digest"), r"subject\.digest: is required"),
    (Index, OCI_INDEX, lambda d: d["manifests"][1]["platform"].pop("architecture"),
     r"manifests\[1\]\.platform\.architecture: must be a string"),
    (Index, OCI_INDEX, lambda d: d["manifests"][1].update(platform="linux/amd64"),
     r"manifests\[1\]\.platform: must be an object"),
    (Index, OCI_INDEX, lambda d: d["manifests"].append(7), r"manifests\[5\]: must be an object, got number"),
    (Index, OCI_INDEX, lambda d: d.update(mediaType=mt.OCI_MANIFEST), r"mediaType: .* is not an image index"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d.pop("rootfs"), r"^config sha256:abc: rootfs: is required"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d["rootfs"].update(type="tar"), r"rootfs\.type: must be \"layers\""),
    (ImageConfig, UMOCI_CONFIG, lambda d: d["rootfs"]["diff_ids"].append("md5:x"),
     r"rootfs\.diff_ids\[1\]: invalid digest 'md5:x'"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d.pop("os"), r"os: is required"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d.update(architecture=64), r"architecture: must be a string, got number"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d["config"]["Env"].append(1), r"config\.Env\[1\]: must be a string"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d["config"].update(ExposedPorts=["80/tcp"]),
     r"config\.ExposedPorts: must be an object"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d["config"].update(ArgsEscaped="yes"),
     r"config\.ArgsEscaped: must be a boolean"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d["history"][1].update(created="yesterday"),
     r"history\[1\]\.created: invalid RFC 3339 time 'yesterday'"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d["history"][0].update(empty_layer=1),
     r"history\[0\]\.empty_layer: must be a boolean"),
    (ImageConfig, UMOCI_CONFIG, lambda d: d.update(config=[]), r"config: must be an object, got array"),
])
def test_bad_input_names_the_field(cls, raw, edit, message):
    source = {Manifest: "manifest sha256:abc", Index: "index sha256:abc", ImageConfig: "config sha256:abc"}[cls]
    with pytest.raises(InvalidDocument, match=message):
        cls.from_json(_edit(raw, edit), source=source)
    # bytes in, same error
    with pytest.raises(InvalidDocument, match=message):
        cls.from_json(json.dumps(_edit(raw, edit)).encode(), source=source)


# ---------------------------------------------------------------- details


def test_go_json_escapes_like_go():
    assert m.go_json({"a": "<&>", "b": "é\u2028", "c": [1, {}], "d": None}) == \
        '{"a":"\\u003c\\u0026\\u003e","b":"é\\u2028","c":[1,{}],"d":null}'.encode()
    assert m.go_json({"a": [1]}, indent=3) == b'{\n   "a": [\n      1\n   ]\n}'


def test_created_times_are_written_as_go_does():
    raw = json.loads(UMOCI_CONFIG)
    raw["created"] = "2020-01-01T00:00:00.500000000+00:00"
    raw["history"][0]["created"] = "2020-01-01T02:00:00.000-02:00"
    cfg = ImageConfig.from_json(raw)
    assert cfg.created == "2020-01-01T00:00:00.5Z"
    assert cfg.history[0].created == "2020-01-01T02:00:00-02:00"


def test_descriptor_helpers():
    d = Descriptor.for_bytes(mt.OCI_EMPTY, b"{}", embed=True)
    assert d.digest == EMPTY and d.size == 2
    assert d.to_json() == ('{"mediaType":"application/vnd.oci.empty.v1+json","digest":"' + EMPTY +
                           '","size":2,"data":"e30="}').encode()
    assert Descriptor.from_json(d.to_json()) == d
    assert d.digest_obj.algorithm == "sha256"
    # descriptors are hashable (by content) although they hold dicts, so a graph walk can keep a set
    annotated = Descriptor(mt.OCI_EMPTY, EMPTY, 2, annotations={"a": "b"})
    assert hash(annotated) == hash(d) and annotated != d
    assert len({d, annotated, replace(annotated, annotations={"a": "b"})}) == 2
    with pytest.raises(AttributeError):
        d.size = 3  # type: ignore[misc]


def test_null_known_fields_survive_a_round_trip():
    raw = b'{"schemaVersion":2,"mediaType":null,"manifests":[],"annotations":null}'
    idx = Index.from_json(raw)
    assert idx.media_type == "" and idx.annotations == {}
    assert json.loads(idx.to_json()) == json.loads(raw)
    # fields Go always writes stay where they are; Go's nil diff_ids (null) reads as no layers
    raw = b'{"architecture":"amd64","os":"windows","config":{},"rootfs":{"type":"layers","diff_ids":null,"x":"y"}}'
    cfg = ImageConfig.from_json(raw)
    assert cfg.diff_ids == () and cfg.extra == {}
    assert cfg.to_json() == b'{"architecture":"amd64","os":"windows","config":{},"rootfs":{"type":"layers",' \
                            b'"diff_ids":[],"x":"y"}}'
    assert ImageConfig.from_json(cfg.to_json()) == cfg


# ---------------------------------------------------------------- against the real tools


@pytest.fixture
def umoci_image(tmp_path):
    """A one-layer image written by umoci, and skopeo's Docker schema2 and OCI conversions of it."""
    umoci, skopeo = require("umoci"), require("skopeo")
    layout = tmp_path / "L"
    (tmp_path / "f").write_text("hello\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, cwd=tmp_path)  # noqa: E731
    run(umoci, "init", "--layout", str(layout))
    run(umoci, "new", "--image", f"{layout}:t")
    run(umoci, "config", "--image", f"{layout}:t", "--config.cmd", "sh", "--config.env", "A=1",
        "--config.label", "x=<y>&", "--config.exposedports", "80/tcp", "--author", "me",
        "--created", "2020-01-01T00:00:00Z")
    run(umoci, "insert", "--image", f"{layout}:t", str(tmp_path / "f"), "/f")
    run(skopeo, "copy", "-q", "--format", "v2s2", f"oci:{layout}:t", f"dir:{tmp_path / 'docker'}")
    run(skopeo, "copy", "-q", "--format", "oci", f"dir:{tmp_path / 'docker'}", f"oci:{tmp_path / 'L2'}:t")
    return tmp_path


def _blob(layout, digest):
    return (layout / "blobs" / "sha256" / digest.split(":")[1]).read_bytes()


@pytest.mark.interop
def test_umoci_documents_round_trip_byte_for_byte(umoci_image):
    layout = umoci_image / "L"
    index_raw = (layout / "index.json").read_bytes()
    index = Index.from_json(index_raw, source="index.json")
    # umoci writes with json.Encoder, which appends a newline; the rest is Go's json.Marshal, as ours
    assert index.to_json() + b"\n" == index_raw
    man_raw = _blob(layout, index.manifests[0].digest)
    man = Manifest.from_json(man_raw)
    assert man.to_json() + b"\n" == man_raw
    cfg_raw = _blob(layout, man.config.digest)
    assert ImageConfig.from_json(cfg_raw).to_json() + b"\n" == cfg_raw
    assert ImageConfig.from_json(cfg_raw).config.labels == {"x": "<y>&"}


@pytest.mark.interop
def test_conversions_match_skopeo_byte_for_byte(umoci_image):
    layout = umoci_image / "L"
    oci_man = Manifest.from_json(_blob(layout, Index.from_json((layout / "index.json").read_bytes())
                                       .manifests[0].digest))
    docker_raw = (umoci_image / "docker" / "manifest.json").read_bytes()
    # OCI -> Docker schema2: skopeo keeps the config blob and writes the manifest as we do
    assert oci_man.to_docker().to_json() == docker_raw
    docker = Manifest.from_json(docker_raw)
    assert docker.is_docker and docker.config.media_type == mt.DOCKER_CONFIG
    # Docker -> OCI: skopeo rewrites the config through image-spec's struct; so does ImageConfig.to_oci()
    cfg = ImageConfig.from_json((umoci_image / "docker" / docker.config.digest.split(":")[1]).read_bytes())
    new_cfg = cfg.to_oci().to_json()
    layout2 = umoci_image / "L2"
    skopeo_man_raw = _blob(layout2, Index.from_json((layout2 / "index.json").read_bytes()).manifests[0].digest)
    assert docker.to_oci(config=cfg.to_oci().to_descriptor()).to_json() == skopeo_man_raw
    assert _blob(layout2, Manifest.from_json(skopeo_man_raw).config.digest) == new_cfg
    assert_valid(json.loads(skopeo_man_raw), "manifest")


def test_platform_select_on_parsed_descriptors():
    from pyoci import platform

    idx = Index.from_json(OCI_INDEX)
    assert platform.select(idx.manifests, "linux/arm64").digest == M2
    assert platform.select(idx.manifests, "linux/arm/v7").digest == M3
    assert platform.select(Index.from_json(DOCKER_HUB_LIST).manifests, "linux/arm64").digest == M3
    with pytest.raises(NotFound, match="no manifest for platform linux/s390x"):
        platform.select(idx.manifests, "linux/s390x")
