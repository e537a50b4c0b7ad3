"""load_frames / load_image: every clip form gives the same T x H x W x 3 uint8 array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tasks.scoring.images import load_frames, load_image
from tasks.scoring.loading.errors import FrameInputError
from tests.scoring.clips import linear_motion


def test_gif_folder_and_list_give_the_same_frames(tmp_path: Path) -> None:
    frames = linear_motion(5)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(frames):  # unpadded numbers: natural order, not text order
        Image.fromarray(frame).save(folder / f"frame_{i * 5}.png")
    gif = tmp_path / "clip.gif"
    pictures = [Image.fromarray(f) for f in frames]
    pictures[0].save(gif, save_all=True, append_images=pictures[1:], duration=100, loop=0)

    from_folder = load_frames(folder)
    assert from_folder.dtype == np.uint8 and from_folder.shape == frames.shape
    assert np.array_equal(from_folder, frames)
    assert np.array_equal(load_frames(sorted(folder.iterdir(), key=lambda p: int(p.stem[6:]))),
                          frames)  # fmt: skip
    from_gif = load_frames(gif)  # palette colours: close, not equal
    assert from_gif.shape == frames.shape
    assert np.abs(from_gif.astype(int) - frames).mean() < 8


def test_video_file_is_decoded_with_opencv(tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    frames = linear_motion(6)
    path = tmp_path / "clip.avi"
    h, w = frames.shape[1:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 8, (w, h))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG video")
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    clip = load_frames(path)
    assert clip.shape == frames.shape and clip.dtype == np.uint8
    assert np.abs(clip.astype(int) - frames).mean() < 8


def test_grey_and_alpha_become_rgb() -> None:
    grey = np.zeros((3, 8, 8), dtype=np.uint8)
    assert load_frames(grey).shape == (3, 8, 8, 3)
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    assert load_image(rgba).mode == "RGB"


def test_bad_clips_name_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(FrameInputError, match="frame 1"):
        load_frames([np.zeros((8, 8, 3), np.uint8), np.zeros((9, 8, 3), np.uint8)])
    with pytest.raises(FrameInputError, match="uint8"):
        load_frames(np.zeros((2, 8, 8, 3), dtype=np.float32))
    with pytest.raises(FrameInputError, match="no such clip"):
        load_frames(tmp_path / "missing.mp4")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FrameInputError, match="no frame images"):
        load_frames(tmp_path / "empty")
    assert issubclass(FrameInputError, ValueError)
