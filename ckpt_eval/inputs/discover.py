"""Find the checkpoints and their images at plan time, so that each checkpoint is its own job.

The walk follows symbolic links (a store of linked images, a checkpoint folder linked from
elsewhere) and refuses what would make a number silently wrong: a folder reached twice (a link
loop, which would never end, or two links to one folder, whose images would count twice), a
broken link (an unmounted drive must not read as fewer images), a folder it may not list.
Each folder is listed once and stat-ed once; files cost no system call beyond the listing, so
planning stays linear in the number of files.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ckpt_eval.errors import CkptEvalError
from ckpt_eval.inputs.steps import parse_position

Identity = tuple[int, int]  # (device, inode): the folder itself, whatever path reaches it


def list_images(
    folder: str | Path, extensions: Iterable[str], outside: Mapping[str, str | Path] | None = None
) -> list[Path]:
    """Image files below `folder`, recursively, in a stable (sorted) order; hidden files skipped.

    Paths are as reached through `folder` (links are not resolved), so that they stay relative
    to it the way the prompt file names them. `outside` names folders the walk must not reach
    (the real set's walk: the samples and the results), also not through a link.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise CkptEvalError(
            "Folder not found.",
            path=folder,
            fix="check the path in the config (relative paths "
            "are relative to the directory snakemake runs in).",
        )
    wanted = {"." + e.lower().lstrip(".") for e in extensions}
    top = _identity(folder)
    walked: dict[Identity, Path] = {top: folder}
    forbidden = {
        _identity(Path(place)): (name, Path(place))
        for name, place in (outside or {}).items()
        if Path(place).is_dir()
    }
    stack: list[tuple[Path, str, tuple[Identity, ...]]] = [(folder, "", (top,))]
    found: list[tuple[str, Path]] = []
    while stack:
        directory, prefix, ancestors = stack.pop()
        for path, is_dir in _entries(directory):
            relative = prefix + path.name
            if not is_dir:
                if os.path.splitext(path.name)[1].lower() in wanted:
                    found.append((relative, path))
                continue
            identity = _identity(path)
            if identity in forbidden:
                raise _leads_into(folder, path, *forbidden[identity])
            if identity in walked:
                raise _reached_twice(path, walked[identity], folder, identity in ancestors)
            walked[identity] = path
            stack.append((path, relative + "/", (*ancestors, identity)))
    return [path for _, path in sorted(found, key=lambda item: item[0])]


def checkpoint_folders(root: Path) -> list[Path]:
    """The visible subfolders of `root` (links to folders included), sorted by name."""
    return sorted(path for path, is_dir in _entries(root) if is_dir)


def _entries(directory: Path) -> Iterator[tuple[Path, bool]]:
    """(path, is a folder) for every visible file and folder in `directory`, links followed.

    `os.scandir` tells files from folders without a stat call, except for links (one stat each).
    """
    try:
        with os.scandir(directory) as listing:
            entries = list(listing)
    except PermissionError as exc:
        raise CkptEvalError(
            "Cannot list the folder (permission denied).",
            path=directory,
            fix="make it readable (chmod -R u+rX), or move it out of the images' folder.",
        ) from exc
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = directory / entry.name
        try:
            if entry.is_dir():
                yield path, True
                continue
            if entry.is_file():
                yield path, False
                continue
            problem = "it points to a file or folder that does not exist"
        except OSError as exc:  # a link to itself, or links in a circle: ELOOP
            problem = exc.strerror or str(exc)
        if entry.is_symlink():
            raise CkptEvalError(
                f"Broken symbolic link: {problem} ({os.readlink(path)}). A moved folder or an "
                "unmounted drive would otherwise silently mean fewer images.",
                path=path,
                fix="restore what the link points to, or delete the link.",
            )
        # a socket, FIFO or device: not an image, and nothing to walk


def _identity(folder: Path) -> Identity:
    info = os.stat(folder)
    return (info.st_dev, info.st_ino)


def _link_on_the_way(path: Path, top: Path) -> Path | None:
    """The innermost symbolic link among `path` and its parents below `top`."""
    while path != top and path != path.parent:
        if path.is_symlink():
            return path
        path = path.parent
    return None


def _reached_twice(path: Path, first: Path, top: Path, loop: bool) -> CkptEvalError:
    """The error for a folder met again, naming the link that leads to it the second time
    (whichever of the two ways in the walk took first)."""
    link = _link_on_the_way(path, top)
    if not loop and link is None and (other := _link_on_the_way(first, top)) is not None:
        link, first = other, path
    link = link or path
    if loop:
        return CkptEvalError(
            f"Symbolic link loop: {link} leads back to {first}, a folder that holds it; the "
            "walk would never end.",
            path=link,
            fix="delete the link (the folder it points to is read anyway), or point it at a "
            "folder outside this one.",
        )
    return CkptEvalError(
        f"The same folder is reached twice, as {first} and as {link} (a symbolic link): its "
        "images would count twice.",
        path=link,
        fix="delete one of the two (usually the link).",
    )


def _leads_into(folder: Path, path: Path, name: str, place: Path) -> CkptEvalError:
    return CkptEvalError(
        f"{path}, below {folder}, is {name} ({place}), reached through a symbolic link: its "
        f"images would also be counted among those of {folder}.",
        path=path,
        fix="delete the link, or move what it points to out of the way.",
    )


def relative_file(path: str | Path, root: str | Path) -> str:
    """The path as manifests and prompt files name it: relative to `root`, forward slashes.

    Lexical (links are not resolved): an image linked from outside `root` is named by where it
    sits under `root`, as the user sees it.
    """
    # strings, not Path objects: this runs once per sample at plan time. A path already spelled
    # as `root` + "/" + a plain remainder (as the walk makes them) is cut lexically: abspath
    # would give the same remainder, in less than half the time (bench/RESULTS.md, sixth pass)
    full, base = os.fspath(path), os.fspath(root).rstrip(os.sep)
    if base and full.startswith(base + os.sep) and _plain(base.removeprefix(os.sep)):
        rest = full[len(base) + 1 :]
        if _plain(rest):
            return rest.replace(os.sep, "/")
    full, base = os.path.abspath(path), os.path.abspath(root)
    if full == base or not full.startswith(base.rstrip(os.sep) + os.sep):
        raise ValueError(f"{path} is not below {root}")
    return full[len(base.rstrip(os.sep)) + 1 :].replace(os.sep, "/")


def _plain(path: str) -> bool:
    """No empty, `.` or `..` part: normalising the path would not change it."""
    return not any(part in ("", ".", "..") for part in path.split(os.sep))


def discover_checkpoints(root: str | Path, extensions: Iterable[str]) -> dict[str, list[Path]]:
    """One checkpoint per subfolder of `root`, sorted by training position then name."""
    root = Path(root)
    if not root.is_dir():
        raise CkptEvalError(
            "samples.root is not a folder.",
            path=root,
            fix="set samples.root to the folder "
            "holding one subfolder of sample images per checkpoint.",
        )
    extensions = list(extensions)
    found: dict[str, list[Path]] = {}
    for sub in checkpoint_folders(root):
        images = list_images(sub, extensions)
        if not images:
            raise CkptEvalError(
                f"Checkpoint folder '{sub.name}' holds no images ({', '.join(extensions)}).",
                path=sub,
                fix="add its sample images, or move the folder out of samples.root.",
            )
        found[sub.name] = images
    if not found:
        raise CkptEvalError(
            "No checkpoint folders found.",
            path=root,
            fix="samples.root must hold one subfolder of sample images per checkpoint.",
        )
    return dict(sorted(found.items(), key=lambda kv: (parse_position(kv[0]).sort_key, kv[0])))


def check_separate_folders(real: str | Path, samples: str | Path, results: str | Path) -> None:
    """Stop when the real images, the samples and the results share a folder.

    A samples folder inside the real images' would count every sample as a real image (FID of
    a set against itself, partly); real images inside `samples.root` would be read as a
    checkpoint; results inside either would add the report's charts to the images. Compared by
    where the folders really are (links resolved). The results may hold the samples (the
    generate stage renders them there).
    """
    places = {
        "real_images": Path(real).resolve(),
        "samples.root": Path(samples).resolve(),
        "the results folder": Path(results).resolve(),
    }
    # (inner, outer): what would go wrong, and the fix
    overlaps = {
        ("samples.root", "real_images"): (
            "every sample image would also count as a real image",
            "move the samples out of the real images' folder and set samples.root to their "
            "new place (or point real_images at a folder that holds only the real images)",
        ),
        ("real_images", "samples.root"): (
            "the real images would be read as samples of a checkpoint",
            "move the real images out of samples.root and set real_images to their new place",
        ),
        ("the results folder", "real_images"): (
            "the report's charts would count as real images on the next run",
            "run the workflow from a folder outside real_images (results/<run> is relative to "
            "it), or move the real images",
        ),
        ("the results folder", "samples.root"): (
            "the report's charts would be read as samples on the next run",
            "run the workflow from a folder outside samples.root (results/<run> is relative "
            "to it), or move the samples",
        ),
    }
    for (inner, outer), (harm, fix) in overlaps.items():
        a, b = places[inner], places[outer]
        if a == b or a.is_relative_to(b):
            where = "is the same folder as" if a == b else "is inside"
            raise CkptEvalError(
                f"{inner} ({a}) {where} {outer} ({b}): {harm}.", path=a, fix=f"{fix}."
            )


def check_distinct_names(names: Iterable[str], root: str | Path) -> None:
    """Stop when two checkpoint names differ only by case (`Step-100`, `step-100`).

    Each checkpoint's results are files named after it; on a case-insensitive file system
    (macOS and Windows by default, many network shares) the two would be one file, and one
    checkpoint's numbers would silently be the other's.
    """
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.casefold(), name)
        if other != name:
            raise CkptEvalError(
                f"Checkpoints '{other}' and '{name}' differ only by case: their result files "
                "would be one file on a case-insensitive file system (macOS, Windows).",
                path=Path(root) / name,
                fix=f"rename one of them (e.g. '{name}' to '{name}-b'), or move it out of "
                "samples.root.",
            )
