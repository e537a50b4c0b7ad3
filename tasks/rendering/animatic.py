"""The animatic renderer: storyboard panels and simple motion, on any machine, no GPU.

It draws what the cut says (description, camera, cast from their reference images) so a
production can be previewed and the whole pipeline exercised without ComfyUI. It is recorded
as renderer "animatic" in every job; it never pretends to be ComfyUI. Output depends only on
the panel spec (seed included), so re-rendering a stored spec gives identical bytes.
"""

from __future__ import annotations

import platform
import random
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps
from PIL import __version__ as PILLOW_VERSION

from db.image_files import load_image_file
from db.renders import RenderResult
from db.vocabulary import Phase
from tasks.rendering.outputs import describe_file
from tasks.rendering.request import RenderRequest
from workflows.graph import graph_sha256

ANIMATIC_VERSION = "1"
# Shot size -> how tall the characters stand in the frame.
SHOT_SCALE = {"close-up": 1.15, "medium-close": 0.95, "medium": 0.8, "full": 0.62, "wide": 0.42}
DEFAULT_PALETTE = ["#1c2340", "#4b3b78", "#f3eccf", "#c9823d"]


def _hex(color: str) -> tuple[int, int, int]:
    color = color.lstrip("#")
    try:
        return tuple(int(color[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]
    except ValueError:
        return (40, 40, 60)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType
        return ImageFont.load_default()


def panel_spec(
    *,
    label: str,
    description: str,
    camera: dict[str, Any],
    cast: list[dict[str, Any]],
    palette: list[str],
    width: int,
    height: int,
    seed: int,
    frames: int = 1,
    fps: int = 8,
    dialogue: str = "",
    source_image: str | None = None,
) -> dict[str, Any]:
    """The animatic's 'workflow': everything the panel depends on, stored with the job."""
    return {
        "renderer": "animatic",
        "version": ANIMATIC_VERSION,
        "label": label,
        "description": description,
        "dialogue": dialogue,
        "camera": dict(camera),
        "cast": cast,
        "palette": list(palette) or DEFAULT_PALETTE,
        "width": int(width),
        "height": int(height),
        "frames": int(frames),
        "fps": int(fps),
        "seed": int(seed),
        "source_image": source_image,
    }


def cut_out_backdrop(figure: Image.Image) -> Image.Image:
    """Make the reference sheet's flat backdrop (its corner colour) transparent."""
    pixels = np.asarray(figure).copy()
    backdrop = pixels[0, 0, :3].astype(int)
    near = np.abs(pixels[..., :3].astype(int) - backdrop).sum(axis=-1) < 24
    pixels[..., 3] = np.where(near, 0, pixels[..., 3])
    return Image.fromarray(pixels, "RGBA")


def draw_panel(spec: dict[str, Any]) -> Image.Image:
    rng = random.Random(spec["seed"])
    w, h = spec["width"], spec["height"]
    palette = [_hex(c) for c in spec["palette"]] or [_hex(c) for c in DEFAULT_PALETTE]
    top, bottom = palette[0], palette[1 % len(palette)]
    # Background: a vertical gradient in the bible's palette, its angle nudged by the seed.
    t = np.linspace(0.0, 1.0, h)[:, None, None]
    tilt = rng.uniform(-0.25, 0.25) * np.linspace(-1, 1, w)[None, :, None]
    mix = np.clip(t + tilt, 0, 1)
    bg = (np.array(top) * (1 - mix) + np.array(bottom) * mix).astype(np.uint8)
    image = Image.fromarray(np.broadcast_to(bg, (h, w, 3)).copy(), "RGB")
    draw = ImageDraw.Draw(image)
    accent = palette[2 % len(palette)]
    # A horizon and a key light, so shots of one scene read as one place.
    horizon = int(h * rng.uniform(0.55, 0.7))
    draw.rectangle((0, horizon, w, h), fill=tuple(int(c * 0.6) for c in bottom))
    r = int(min(w, h) * 0.08)
    cx, cy = int(w * rng.uniform(0.6, 0.9)), int(h * rng.uniform(0.12, 0.3))
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=accent)

    scale = SHOT_SCALE.get(str(spec["camera"].get("shot", "medium")), 0.8)
    members = spec["cast"]
    for index, member in enumerate(members):
        ref = member.get("reference_image")
        if not ref or not Path(ref).is_file():
            continue
        figure = cut_out_backdrop(load_image_file(ref, "RGBA"))
        figure = ImageOps.contain(figure, (w, int(h * scale)))
        slot = (index + 1) / (len(members) + 1)
        if member.get("position") == "left":
            slot = 0.3
        elif member.get("position") == "right":
            slot = 0.7
        x = int(w * slot - figure.width / 2 + rng.uniform(-0.03, 0.03) * w)
        y = h - figure.height
        image.paste(figure, (x, y), figure)

    # Storyboard furniture: cut label, camera notes, action and dialogue.
    small, body = _font(max(10, h // 28)), _font(max(11, h // 24))
    draw.rectangle((0, 0, w, h // 12), fill=(0, 0, 0))
    camera = " / ".join(str(v).upper() for v in spec["camera"].values() if v)
    draw.text((8, 4), f"{spec['label']}   {camera}", fill=(255, 255, 255), font=small)
    lines = textwrap.wrap(spec["description"], width=max(20, w // 9))[:3]
    if spec.get("dialogue"):
        lines.append(f'"{spec["dialogue"]}"')
    box_top = h - (len(lines) * (h // 20) + 10)
    if lines:
        draw.rectangle((0, box_top, w, h), fill=(255, 255, 255))
        for i, line in enumerate(lines):
            draw.text((8, box_top + 5 + i * (h // 20)), line, fill=(20, 20, 20), font=body)
    draw.rectangle((0, 0, w - 1, h - 1), outline=(0, 0, 0), width=2)
    return image


def animate(panel: Image.Image, spec: dict[str, Any]) -> list[Image.Image]:
    """Camera motion over a panel: push-in, pan, tilt, tracking, or a slow drift if static."""
    w, h = panel.size
    n = spec["frames"]
    movement = str(spec["camera"].get("movement", "static"))
    margin = 0.12
    counter = _font(12)
    big = panel.resize((int(w * (1 + margin)), int(h * (1 + margin))), Image.Resampling.BICUBIC)
    bw, bh = big.size
    frames: list[Image.Image] = []
    for i in range(n):
        t = i / max(1, n - 1)
        zoom = 1.0
        ox, oy = (bw - w) / 2, (bh - h) / 2
        if movement in ("push-in", "zoom-in"):
            zoom = 1.0 + 0.1 * t
        elif movement in ("pan-left", "slow-pan", "tracking"):
            ox = (bw - w) * (1 - t)
        elif movement == "pan-right":
            ox = (bw - w) * t
        elif movement in ("tilt-up",):
            oy = (bh - h) * (1 - t)
        else:
            ox += np.sin(t * np.pi) * 2
        cw, ch = w / zoom, h / zoom
        left = ox + (w - cw) / 2
        top = oy + (h - ch) / 2
        crop = big.crop((int(left), int(top), int(left + cw), int(top + ch)))
        frame = crop.resize((w, h), Image.Resampling.BICUBIC)
        # A frame counter, as on any animatic; it also keeps consecutive frames distinct, which
        # stops the WEBP encoder from merging still frames (the clip keeps all its frames).
        draw = ImageDraw.Draw(frame)
        draw.rectangle((w - 74, h - 20, w - 2, h - 2), fill=(0, 0, 0))
        draw.text((w - 70, h - 18), f"{i + 1:03d}/{n:03d}", fill=(255, 255, 255), font=counter)
        frames.append(frame)
    return frames


def environment() -> dict[str, Any]:
    return {
        "renderer": "animatic",
        "animatic_version": ANIMATIC_VERSION,
        "pillow": PILLOW_VERSION,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": "cpu",
    }


def render_animatic(spec: dict[str, Any], out_dir: Path, name: str) -> RenderResult:
    """Render a panel (frames == 1: PNG) or a clip (WEBP, lossless) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    source = spec.get("source_image")
    if source:
        panel = load_image_file(source, "RGB").resize((spec["width"], spec["height"]))
    else:
        panel = draw_panel(spec)
    if spec["frames"] <= 1:
        path = out_dir / f"{name}.png"
        panel.save(path, format="PNG")
        output = describe_file(path, "image", "image/png")
    else:
        frames = animate(panel, spec)
        path = out_dir / f"{name}.webp"
        frames[0].save(
            path,
            format="WEBP",
            save_all=True,
            append_images=frames[1:],
            duration=int(1000 / spec["fps"]),
            loop=0,
            lossless=True,
            method=4,
        )
        output = describe_file(path, "animation", "image/webp")
    return RenderResult(
        renderer="animatic",
        outputs=[output],
        workflow=spec,
        workflow_sha256=graph_sha256(spec),
        environment=environment(),
        params={
            "seed": spec["seed"],
            "width": spec["width"],
            "height": spec["height"],
            "frames": spec["frames"],
            "fps": spec["fps"],
        },
    )


SHEET_SIZE = 384


def sheet_spec(
    *, character: str, references: list[str], views: list[str], palette: list[str], seed: int
) -> dict[str, Any]:
    """The animatic's 'workflow' for a character sheet: one panel per view."""
    return {
        "renderer": "animatic",
        "kind": "character_sheet",
        "version": "1",
        "character": character,
        "references": references,
        "views": list(views),
        "palette": palette,
        "size": SHEET_SIZE,
        "seed": seed,
    }


def render_sheet(spec: dict[str, Any], out_dir: Path, name: str) -> RenderResult:
    """One panel per view: the character's references, turned and placed per view."""
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(spec["seed"])
    size = spec["size"]
    refs = [r for r in spec["references"] if Path(r).is_file()]
    outputs = []
    for index, view in enumerate(spec["views"]):
        panel = Image.new("RGB", (size, size), (244, 242, 236))
        if refs:
            figure = cut_out_backdrop(load_image_file(refs[index % len(refs)], "RGBA"))
            figure = ImageOps.contain(figure, (size, int(size * 0.85)))
            if view == "back":
                figure = ImageOps.mirror(figure)
            x = (size - figure.width) // 2 + rng.randint(-6, 6)
            panel.paste(figure, (x, size - figure.height), figure)
        ImageDraw.Draw(panel).text((8, 6), f"{spec['character']} / {view}", fill=(30, 30, 30))
        path = out_dir / f"{name}-{index:02d}-{view}.png"
        panel.save(path, format="PNG")
        outputs.append(describe_file(path, "image", "image/png"))
    return RenderResult(
        renderer="animatic",
        outputs=outputs,
        workflow=spec,
        workflow_sha256=graph_sha256(spec),
        environment=environment(),
        params={"seed": spec["seed"], "width": size, "height": size, "frames": len(outputs)},
    )


class AnimaticRenderer:
    """Storyboard panels of what the subject says; deterministic, no GPU."""

    name = "animatic"

    def workflow(self, request: RenderRequest) -> dict[str, Any]:
        board = request.board
        if board.views:
            figure = board.cast[0]
            return sheet_spec(
                character=figure.slug,
                references=figure.reference_images,
                views=board.views,
                palette=board.palette,
                seed=request.seed,
            )
        animating = request.phase is Phase.ANIMATION
        wanted = request.parameters
        return panel_spec(
            label=request.label,
            description=board.description,
            dialogue=board.dialogue,
            camera=board.camera,
            cast=[
                {
                    "slug": f.slug,
                    "reference_image": f.reference_images[0] if f.reference_images else None,
                    "position": f.position,
                }
                for f in board.cast
            ],
            palette=board.palette,
            width=int(wanted.get("width") or 640),
            height=int(wanted.get("height") or 360),
            seed=request.seed,
            frames=int(wanted.get("frames") or 1) if animating else 1,
            fps=int(wanted.get("fps") or 8),
            source_image=board.source_image if animating else None,
        )

    async def execute(
        self, workflow: dict[str, Any], request: RenderRequest, *, new_prompt: bool
    ) -> RenderResult:
        import anyio

        draw = render_sheet if workflow.get("kind") == "character_sheet" else render_animatic
        result = await anyio.to_thread.run_sync(draw, workflow, Path(request.out_dir), request.name)
        result.params["template"] = "animatic"  # what it drew from: its own panel spec
        return result
