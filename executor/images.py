"""Sample job images, built locally (there is no container registry to pull from).

Each folder of ``images/`` at the repository root is one image, named ``depin/<folder>``: a
Dockerfile ``FROM scratch`` that copies Debian's statically linked ``/bin/busybox`` (package
``busybox-static``), which :func:`build_sample_images` puts into the build context, so a build
needs no network and no base image. Images:

- ``depin/busybox``: busybox applets in ``/bin``, user 65534:65534 (``nobody``);
- ``depin/checksum``: the same plus ``/bin/depin-checksum``, a deterministic job that writes
  ``<name> <sha256> <words>`` for each file of ``/in`` to ``/out/result.txt``.

**What a JobSpec pins.** :func:`build_sample_images` returns ``name -> "depin/<name>@sha256:<hex>"``
where the hex is the local **image ID**: the sha256 of the image's config JSON, which names every
layer by the digest of its content. It is the content address ``docker images --no-trunc`` shows
and what :mod:`executor.containers` compares with the spec's digest. (A registry's *manifest*
digest, shown as RepoDigests after a push, is a different hash of the same image; this project has
no registry, so it pins image IDs.) The ID depends on the build (timestamps in the config), so two
machines that build the same Dockerfile get different IDs: a requester must pin the ID of the image
the provider actually has, e.g. one loaded from an exported archive (``podman save``/``load`` keep it).

**Idempotent and fast.** Every build is tagged ``depin/<name>:r<recipe>`` where ``recipe`` is a
hash of the folder's files and the busybox binary; when that tag exists, nothing is built. A
changed Dockerfile or busybox gives a new tag and a new image; ``:latest`` follows the newest.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import docker
from docker.errors import BuildError, DockerException, ImageNotFound

from depin.errors import ExecutionError

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
BUSYBOX = Path("/bin/busybox")
REPO_PREFIX = "depin/"


class ImageBuildError(ExecutionError):
    """A sample image could not be built."""


def sample_image_names(images_dir: Path = IMAGES_DIR) -> list[str]:
    """The sample image folders (``busybox``, ``checksum``, ...), sorted."""
    return sorted(p.name for p in Path(images_dir).iterdir() if (p / "Dockerfile").is_file())


def _recipe(folder: Path, busybox: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(path.relative_to(folder).as_posix().encode() + b"\0")
        h.update(f"{path.stat().st_mode & 0o111:o}\0".encode())
        h.update(path.read_bytes())
    h.update(b"busybox\0" + busybox.read_bytes())
    return h.hexdigest()[:16]


def image_reference(repository: str, image_id: str) -> str:
    """``repository@sha256:<hex>`` from an image ID (``sha256:<hex>``): what a JobSpec pins."""
    return f"{repository}@{image_id if image_id.startswith('sha256:') else 'sha256:' + image_id}"


def build_sample_image(client: docker.DockerClient, name: str, *, images_dir: Path = IMAGES_DIR, busybox: Path = BUSYBOX) -> str:
    """Builds ``depin/<name>`` from ``images/<name>`` unless the same recipe is already built;
    returns ``depin/<name>@sha256:<image id hex>``."""
    folder = Path(images_dir) / name
    if not (folder / "Dockerfile").is_file():
        raise ImageBuildError(f"no sample image {name!r}: {folder}/Dockerfile does not exist")
    if not busybox.is_file():
        raise ImageBuildError(f"{busybox} is missing: install Debian's busybox-static (tools/setup.sh does)")
    repository = REPO_PREFIX + name
    recipe_tag = f"{repository}:r{_recipe(folder, busybox)}"
    try:
        image = client.images.get(recipe_tag)
        return image_reference(repository, image.id)
    except ImageNotFound:
        pass
    except DockerException as exc:
        raise ImageBuildError(f"cannot query the engine for {recipe_tag}: {exc}") from exc
    with tempfile.TemporaryDirectory(prefix=f"depin-image-{name}-") as tmp:
        context = Path(tmp)
        for path in folder.iterdir():
            if path.is_file():
                shutil.copy2(path, context / path.name)
        shutil.copy2(busybox, context / "busybox")
        try:
            image, _ = client.images.build(path=str(context), tag=recipe_tag, rm=True, forcerm=True, pull=False)
        except BuildError as exc:
            log = "".join(str(item.get("stream", item.get("error", ""))) for item in exc.build_log)[-800:]
            raise ImageBuildError(f"building {repository} failed: {exc.msg}\n{log}") from exc
        except DockerException as exc:
            raise ImageBuildError(f"building {repository} failed: {exc}") from exc
    image.tag(repository, "latest")
    return image_reference(repository, image.id)


def build_sample_images(client: docker.DockerClient, *, images_dir: Path = IMAGES_DIR) -> dict[str, str]:
    """Builds every sample image (skipping those already built); returns
    ``{"busybox": "depin/busybox@sha256:<id>", "checksum": ..., ...}``."""
    return {name: build_sample_image(client, name, images_dir=images_dir) for name in sample_image_names(images_dir)}
