"""Made-up files for the "try it" buttons: a landscape picture, and a broken one."""

import random
from io import BytesIO

from PIL import Image, ImageDraw


def landscape(seed: int, width: int = 1200, height: int = 800) -> bytes:
    """A PNG of hills under a sky, different for every seed."""
    rng = random.Random(seed)
    hue = rng.random()
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    top, bottom = _colour(hue, 0.55, 0.35), _colour(hue + 0.08, 0.45, 0.92)
    for y in range(height):
        draw.line([(0, y), (width, y)], fill=_mix(top, bottom, y / height))
    sun_x, sun_y, radius = (
        rng.randint(200, width - 200),
        rng.randint(120, 320),
        rng.randint(60, 110),
    )
    draw.ellipse(
        [sun_x - radius, sun_y - radius, sun_x + radius, sun_y + radius],
        fill=_colour(hue + 0.12, 0.7, 0.97),
    )
    for layer in range(4):
        base = height * (0.55 + 0.12 * layer)
        points = [(0, height)]
        for x in range(0, width + 100, 100):
            points.append((x, base - rng.randint(0, int(120 - 20 * layer))))
        points.append((width, height))
        draw.polygon(points, fill=_colour(hue + 0.45, 0.45, 0.55 - 0.12 * layer))
    buffer = BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def broken() -> bytes:
    """Text in a file that claims to be a JPEG."""
    return b"This is not a picture, whatever the file name says.\n"


def _colour(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    import colorsys

    red, green, blue = colorsys.hsv_to_rgb(hue % 1.0, saturation, value)
    return round(red * 255), round(green * 255), round(blue * 255)


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return tuple(round(x + (y - x) * t) for x, y in zip(a, b, strict=True))  # type: ignore[return-value]
