"""A pen's stroke: the one definition of how drawn ink looks, for the drawing app (whose Tk
canvas draws round-capped lines), the written numbers and the tests' drawings."""

from PIL import ImageDraw


def pen_line(
    draw: ImageDraw.ImageDraw, points: list[tuple[float, float]], width: float, ink: int
) -> None:
    """A stroke through points, `width` pixels wide, with round ends and round joints."""
    draw.line(points, fill=ink, width=max(1, round(width)), joint="curve")
    r = width / 2
    for x, y in (points[0], points[-1]):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
