"""TensorBoard: one event file of scalars at each checkpoint's step, the recommendation as text
and the grids and charts as images, written with tensorboard's own event writer (the one
`torch.utils.tensorboard` uses) so that TensorBoard and its `event_accumulator` read it.

Scalars are `simple_value`s (TensorBoard's Scalars dashboard, `EventAccumulator.Scalars`);
the text and images sit at the latest checkpoint's step.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

from PIL import Image

from ckpt_eval.export.facts import PREFIX, ExportFacts

# PIL mode -> the colorspace field of TensorBoard's image summary
COLORSPACE = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
RECOMMENDATION_TAG = f"{PREFIX}recommendation"


def write(facts: ExportFacts, folder: Path) -> None:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.text.summary_v2 import text_pb
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(str(folder))
    now = time.time()

    def add(step: int, summary: summary_pb2.Summary) -> None:
        writer.add_event(event_pb2.Event(wall_time=now, step=step, summary=summary))

    for point in facts.points:
        values = [
            summary_pb2.Summary.Value(tag=tag, simple_value=value)
            for tag, value in point.scalars.items()
        ]
        add(point.step, summary_pb2.Summary(value=values))
    add(facts.last_step, text_pb(RECOMMENDATION_TAG, facts.markdown()))
    for tag, path in facts.images:
        width, height, colorspace, data = encoded(path)
        picture = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=colorspace, encoded_image_string=data
        )
        add(
            facts.last_step,
            summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=picture)]),
        )
    writer.close()


def encoded(path: Path) -> tuple[int, int, int, bytes]:
    """Width, height, colorspace and encoded bytes of an image: the file as it is (a PNG chart,
    a JPEG contact sheet: TensorBoard shows either), or converted to an RGB PNG when its mode (a
    palette, 16-bit grey) is not one TensorBoard's summary names."""
    with Image.open(path) as image:
        if image.mode in COLORSPACE:
            return image.width, image.height, COLORSPACE[image.mode], path.read_bytes()
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
        return image.width, image.height, COLORSPACE["RGB"], buffer.getvalue()
