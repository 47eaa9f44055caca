"""How much memory a dataset held in memory needs while it is loaded (an estimate, checked
before its arrays are allocated: ``check_images_fit``).

* its images: uint8, one byte per pixel, every split;
* its per-channel mean and std: the training images laid out by channel (a uint8 copy), as
  float64, and a scaled copy: 17 bytes per training pixel (``odenet.data.datasets``);
* what making the images needs on top (``work``: the synthetic task's float32 maps while a
  split is generated; one decoded image of an image folder).

Measured on the synthetic task (size 32, 20,000 images): 51.6 bytes per image position with 3
channels (estimated: 54), 25.6 with one channel (estimated: 33).
"""

from __future__ import annotations

from odenet.sizes import check_memory

STATS_BYTES_PER_PIXEL = 17  # training pixels by channel: uint8, float64 and a scaled copy


def check_images_fit(
    name: str, train: int, test: int, channels: int, size: int, fix: str, work: int = 0
) -> None:
    """ConfigError naming the sizes and ``fix`` when loading ``train`` + ``test`` images of
    ``channels`` x ``size`` x ``size`` (plus ``work`` bytes while they are made) cannot fit in
    this machine's memory."""
    pixels = channels * size * size
    stored = (train + test) * pixels
    need = stored + max(work, STATS_BYTES_PER_PIXEL * train * pixels)
    check_memory(
        need,
        f"dataset {name!r}",
        fix,
        f" to load ({train:,} + {test:,} images of {channels}x{size}x{size})",
    )
