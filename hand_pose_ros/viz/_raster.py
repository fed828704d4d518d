"""Two CPU rasterizers for flat-shaded triangles already projected to pixels.

- :func:`paint_triangles`: painter's algorithm with OpenCV (faces sorted far to near,
  one ``cv2.fillConvexPoly`` each, supersampled then area-downscaled); no GL needed,
  cost grows with the face count (a Python call per face).
- :class:`GLRasterizer`: moderngl on a headless EGL context (Mesa llvmpipe on the CPU),
  a depth buffer and 4x multisampling; one draw call per frame.

Both take the same input: ``tri_px`` (F, 3, 2) pixel coordinates (u right, v down,
pixel centres at integers), ``tri_depth`` (F, 3) in [0, 1] (0 nearest) and ``rgb``
(F, 3) uint8 colours, and draw onto an (H, W, 3) uint8 RGB background (the painter
also takes (H, W, 4) RGBA with (F, 4) colours: the alpha channel then holds coverage).
"""

from __future__ import annotations

import cv2
import numpy as np

_SHIFT = 4  # fractional bits of the OpenCV polygon coordinates


def paint_triangles(background: np.ndarray, tri_px: np.ndarray, tri_depth: np.ndarray,
                    rgb: np.ndarray, supersample: int = 2) -> np.ndarray:  # fmt: skip
    """Painter's algorithm (far faces first); returns a new image like ``background``."""
    h, w = background.shape[:2]
    s = int(supersample)
    img = cv2.resize(background, (w * s, h * s), interpolation=cv2.INTER_NEAREST) if s > 1 \
        else background.copy()  # fmt: skip
    order = np.argsort(-tri_depth.mean(1))
    limit = 4.0 * max(h, w)  # keep far-off points inside OpenCV's int range
    pts = np.round(np.clip(tri_px * s, -limit * s, limit * s) * (1 << _SHIFT)).astype(np.int32)
    pts, colours = pts[order], rgb[order].tolist()
    fill = cv2.fillConvexPoly
    for tri, colour in zip(pts, colours, strict=True):
        fill(img, tri, colour, cv2.LINE_8, _SHIFT)
    if s > 1:
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
    return img


_VERTEX = """
#version 330
in vec3 in_pos;
in vec3 in_rgb;
out vec3 v_rgb;
void main() {
    v_rgb = in_rgb;
    gl_Position = vec4(in_pos, 1.0);
}
"""

_FRAGMENT = """
#version 330
in vec3 v_rgb;
out vec4 f_color;
void main() {
    f_color = vec4(v_rgb, 1.0);
}
"""


class GLRasterizer:
    """Depth-tested, multisampled triangle rasterizer on a headless EGL context.

    Args:
        size: (width, height) in pixels.
        samples: multisampling (anti-aliasing) samples, 0 for none.

    Raises:
        RuntimeError: no EGL context could be made (moderngl or Mesa's EGL missing).

    The GL context belongs to the thread that made this object: use it there only.
    """

    def __init__(self, size: tuple[int, int], samples: int = 4):
        try:
            import moderngl

            self._ctx = moderngl.create_context(standalone=True, backend="egl")
        except Exception as exc:  # any failure means "no GL here"
            raise RuntimeError(f"no headless EGL OpenGL context ({type(exc).__name__}: {exc}); "
                               "install libegl1 libgl1-mesa-dri libegl-mesa0") from exc  # fmt: skip
        ctx = self._ctx
        self.size = (int(size[0]), int(size[1]))
        self._program = ctx.program(vertex_shader=_VERTEX, fragment_shader=_FRAGMENT)
        self._ms = ctx.framebuffer(
            ctx.renderbuffer(self.size, 4, samples=samples),
            ctx.depth_renderbuffer(self.size, samples=samples),
        )
        self._resolved = ctx.framebuffer(ctx.renderbuffer(self.size, 4)) if samples else self._ms
        self._vbo = None
        self._vao = None
        self._capacity = 0

    def _buffer(self, nbytes: int):
        if nbytes > self._capacity:
            if self._vbo is not None:
                self._vao.release()
                self._vbo.release()
            self._capacity = max(nbytes, 2 * self._capacity)
            self._vbo = self._ctx.buffer(reserve=self._capacity, dynamic=True)
            layout = [(self._vbo, "3f 3f", "in_pos", "in_rgb")]
            self._vao = self._ctx.vertex_array(self._program, layout)
        return self._vbo

    def draw(self, background: np.ndarray, tri_px: np.ndarray, tri_depth: np.ndarray,
             rgb: np.ndarray) -> np.ndarray:  # fmt: skip
        """Rasterize; returns a new (H, W, 3) uint8 RGB image (background kept where empty)."""
        import moderngl

        w, h = self.size
        if background.shape[:2] != (h, w):
            raise ValueError(f"background must be {h}x{w}, got {background.shape}")
        n = len(tri_px)
        data = np.empty((n, 3, 6), np.float32)
        # Pixel centres at integers -> NDC; GL's row 0 is read back first, so v maps to
        # NDC y directly and the image needs no flip.
        data[:, :, 0] = (tri_px[:, :, 0] + 0.5) * (2.0 / w) - 1.0
        data[:, :, 1] = (tri_px[:, :, 1] + 0.5) * (2.0 / h) - 1.0
        data[:, :, 2] = np.clip(tri_depth, 0.0, 1.0) * 1.8 - 0.9
        data[:, :, 3:] = rgb[:, None, :] / 255.0
        self._ms.use()
        self._ctx.enable(moderngl.DEPTH_TEST)
        self._ctx.disable(moderngl.CULL_FACE)
        self._ms.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        if n:
            self._buffer(data.nbytes).write(data.tobytes())
            self._vao.render(moderngl.TRIANGLES, vertices=3 * n)
        if self._resolved is not self._ms:
            self._ctx.copy_framebuffer(self._resolved, self._ms)
        raw = np.frombuffer(self._resolved.read(components=4), np.uint8).reshape(h, w, 4)
        # Alpha is coverage (anti-aliased edges): blend onto the background.
        alpha = raw[:, :, 3:4].astype(np.float32) / 255.0
        out = raw[:, :, :3] + background * (1.0 - alpha)
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)

    def release(self) -> None:
        """Free the GL objects and the context."""
        for obj in (self._vao, self._vbo, self._program, self._ms, self._resolved):
            if obj is not None:
                obj.release()
        self._ctx.release()
