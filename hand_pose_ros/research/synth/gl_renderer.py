"""Offscreen OpenGL renderer for textured meshes (moderngl, headless EGL on Mesa llvmpipe).

Meshes are given in the camera optical frame (x right, y down, z forward, metres)
and projected with pinhole intrinsics ``K`` in the OpenCV pixel convention (pixel
centres at integer coordinates, row 0 at the top), so a rendered pixel ``(u, v)``
is exactly where ``K @ p`` lands.

With multisampling (``msaa`` > 1), two passes per image:

- colour: multisampled, RGBA with coverage alpha (the background is cleared to
  zero, so the resolved colour is premultiplied);
- labels: one sample per pixel, float ``(id, depth_z)``, so masks and depth are
  never averaged across silhouettes.

Without multisampling, one pass writes both to two attachments.

Textures stay resident on the GPU side (upload them once with
:meth:`MeshRenderer.add_texture`). One renderer per process; llvmpipe uses
``LP_NUM_THREADS`` threads (set it to 1 in worker processes).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

_VERTEX_SHADER = """
#version 330
uniform mat4 proj;
in vec3 in_pos;
in vec3 in_nrm;
in vec2 in_uv;
out vec3 v_pos;
out vec3 v_nrm;
out vec2 v_uv;
void main() {
    v_pos = in_pos;
    v_nrm = in_nrm;
    v_uv = in_uv;
    gl_Position = proj * vec4(in_pos, 1.0);
}
"""

_COLOR_FRAGMENT = """
#version 330
uniform sampler2D tex;
uniform bool use_tex;
uniform vec3 tint;
uniform vec3 base_color;
uniform vec3 ambient_sky;
uniform vec3 ambient_ground;
uniform vec3 up_dir;
uniform vec3 light_dir[2];
uniform vec3 light_color[2];
uniform float spec_scale;
uniform float shininess;
uniform float wrap;
in vec3 v_pos;
in vec3 v_nrm;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_nrm);
    vec3 view = normalize(-v_pos);
    // Back faces (seen through openings) are shaded as seen from the camera side.
    if (dot(n, view) < 0.0) n = -n;
    vec4 t = use_tex ? texture(tex, v_uv) : vec4(1.0, 1.0, 1.0, 0.5);
    vec3 albedo = t.rgb * tint * base_color;
    float h = 0.5 + 0.5 * dot(n, up_dir);
    vec3 col = albedo * mix(ambient_ground, ambient_sky, h);
    for (int i = 0; i < 2; ++i) {
        vec3 l = normalize(-light_dir[i]);
        float ndl = dot(n, l);
        // Wrapped diffuse: light bleeds past the terminator like subsurface scattering,
        // with a reddish tint where it wraps.
        float d = max((ndl + wrap) / (1.0 + wrap), 0.0);
        vec3 sss = mix(vec3(1.0), vec3(1.0, 0.55, 0.45), clamp(wrap - ndl, 0.0, 1.0) * wrap);
        col += albedo * light_color[i] * d * sss;
        vec3 hv = normalize(l + view);
        float s = pow(max(dot(n, hv), 0.0), shininess) * step(0.0, ndl);
        col += light_color[i] * s * spec_scale * t.a;
    }
    f_color = vec4(col, 1.0);
}
"""

_COLOR_LABEL_FRAGMENT = _COLOR_FRAGMENT.replace(
    "out vec4 f_color;", "uniform float object_id;\nout vec4 f_color;\nout vec2 f_label;"
).replace(
    "f_color = vec4(col, 1.0);",
    "f_color = vec4(col, 1.0);\n    f_label = vec2(object_id, v_pos.z);",
)

_LABEL_FRAGMENT = """
#version 330
uniform float object_id;
in vec3 v_pos;
in vec3 v_nrm;
in vec2 v_uv;
out vec2 f_label;
void main() {
    f_label = vec2(object_id, v_pos.z);
}
"""

_UV_VERTEX_SHADER = """
#version 330
in vec2 in_uv;
in vec3 in_pos;
in vec3 in_nrm;
out vec3 v_pos;
out vec3 v_nrm;
void main() {
    v_pos = in_pos;
    v_nrm = in_nrm;
    gl_Position = vec4(in_uv * 2.0 - 1.0, 0.0, 1.0);
}
"""

_UV_FRAGMENT = """
#version 330
in vec3 v_pos;
in vec3 v_nrm;
out vec4 f_pos;
out vec4 f_nrm;
void main() {
    f_pos = vec4(v_pos, 1.0);
    f_nrm = vec4(normalize(v_nrm), 1.0);
}
"""


def create_egl_context():
    """A standalone headless OpenGL 3.3+ context on EGL.

    Raises:
        RuntimeError: when moderngl or the EGL/Mesa libraries are missing (the
            message names the Debian packages ``scripts/setup.sh`` installs).
    """
    try:
        import moderngl
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "moderngl is not installed (pip install -r requirements/base.txt)"
        ) from exc
    try:
        return moderngl.create_context(standalone=True, backend="egl")
    except Exception as exc:
        raise RuntimeError(
            "cannot create a headless EGL OpenGL context: install the Debian packages "
            "libegl1 libgl1-mesa-dri libegl-mesa0 (scripts/setup.sh does) "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def projection_from_intrinsics(
    K: np.ndarray, width: int, height: int, near: float = 0.02, far: float = 20.0
) -> np.ndarray:
    """OpenGL clip matrix reproducing the OpenCV pinhole projection ``K``.

    Window row 0 is image row 0 (top), so the framebuffer reads back top-first.

    Args:
        K: (3, 3) intrinsics, pixels, pixel centres at integers.
        width, height: image size, pixels.
        near, far: depth range, metres.

    Returns:
        (4, 4) float32 matrix acting on camera-frame points ``[x, y, z, 1]``.
    """
    fx, fy, cx, cy, skew = K[0, 0], K[1, 1], K[0, 2], K[1, 2], K[0, 1]
    P = np.zeros((4, 4), dtype=np.float64)
    P[0, 0] = 2.0 * fx / width
    P[0, 1] = 2.0 * skew / width
    P[0, 2] = 2.0 * (cx + 0.5) / width - 1.0
    P[1, 1] = 2.0 * fy / height
    P[1, 2] = 2.0 * (cy + 0.5) / height - 1.0
    P[2, 2] = (far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = 1.0
    return P.astype(np.float32)


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals, (V, 3), orientation from the face winding."""
    tri = verts[faces]
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    idx = faces.reshape(-1)
    fn3 = np.repeat(fn, 3, axis=0)
    normals = np.stack(
        [np.bincount(idx, fn3[:, c], minlength=len(verts)) for c in range(3)], axis=1
    )
    # Isolated vertices have a zero normal: keep them finite.
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


@dataclass
class Material:
    """Shading of one mesh draw (see the colour fragment shader)."""

    texture: int | None = None
    """Index of a resident texture (:meth:`MeshRenderer.add_texture`), or None for flat colour."""
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Multiplies the albedo (texture or flat)."""
    base_color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Flat albedo (multiplies the texture too), linear-ish RGB in [0, 1]."""
    spec_scale: float = 0.15
    """Specular strength (times the texture alpha, 0.5 without texture)."""
    shininess: float = 20.0
    """Blinn-Phong exponent."""
    wrap: float = 0.3
    """Diffuse wrap (0 Lambert; ~0.3-0.5 soft, skin-like)."""


@dataclass
class Lighting:
    """Scene lighting in the camera frame."""

    ambient_sky: tuple[float, float, float] = (0.35, 0.35, 0.38)
    ambient_ground: tuple[float, float, float] = (0.18, 0.16, 0.15)
    up_dir: tuple[float, float, float] = (0.0, -1.0, 0.0)
    """Unit 'sky' direction for the hemisphere ambient, camera frame."""
    light_dirs: tuple[tuple[float, float, float], ...] = ((0.3, 0.5, 1.0), (-0.5, 0.2, 0.5))
    """Directions the two lights travel (towards the scene), camera frame."""
    light_colors: tuple[tuple[float, float, float], ...] = ((0.8, 0.78, 0.72), (0.2, 0.2, 0.22))


@dataclass
class DrawItem:
    """One mesh to draw: un-indexed triangle corners in the camera frame."""

    positions: np.ndarray
    """(3F, 3) float32 corner positions, metres, camera frame."""
    normals: np.ndarray
    """(3F, 3) float32 corner normals (outward), camera frame."""
    uvs: np.ndarray
    """(3F, 2) float32 corner texture coordinates in [0, 1]."""
    material: Material = field(default_factory=Material)
    object_id: int = 1
    """Value written to the label pass (0 is background)."""


@dataclass
class RenderOutput:
    """Rendered image and labels, image rows top-first."""

    rgba: np.ndarray
    """(H, W, 4) float32 premultiplied colour with coverage alpha, [0, 1]."""
    ids: np.ndarray
    """(H, W) uint8 object id per pixel (0 background), single sample."""
    depth: np.ndarray
    """(H, W) float32 camera z of the nearest surface, metres (inf on background)."""


def corners(
    verts: np.ndarray,
    faces: np.ndarray,
    uv: np.ndarray,
    uv_faces: np.ndarray,
    flip_normals: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Un-indexed corner arrays of a mesh with per-corner UVs.

    Args:
        verts: (V, 3) positions. faces: (F, 3) vertex ids. uv: (T, 2) texture
            coordinates. uv_faces: (F, 3) ids into ``uv`` per face corner.
        flip_normals: negate the normals (for meshes mirrored with x -> -x, whose
            winding no longer gives outward normals).

    Returns:
        positions (3F, 3), normals (3F, 3), uvs (3F, 2), float32.
    """
    normals = vertex_normals(verts, faces)
    if flip_normals:
        normals = -normals
    flat = faces.reshape(-1)
    return (
        verts[flat].astype(np.float32),
        normals[flat].astype(np.float32),
        uv[uv_faces.reshape(-1)].astype(np.float32),
    )


class MeshRenderer:
    """Renders lists of :class:`DrawItem` at a fixed image size.

    Args:
        width, height: image size, pixels.
        msaa: colour-pass samples (0 or 1 disables multisampling).
        context: an existing moderngl context (default: a new EGL one).
    """

    def __init__(self, width: int, height: int, msaa: int = 4, context=None) -> None:
        import moderngl

        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        self.ctx = context if context is not None else create_egl_context()
        self._mgl = moderngl
        ctx = self.ctx
        size = (self.width, self.height)
        samples = int(msaa) if msaa and msaa > 1 else 0
        self.msaa = samples
        if samples:
            # Two passes: multisampled colour, then single-sample labels.
            self.color_prog = ctx.program(
                vertex_shader=_VERTEX_SHADER, fragment_shader=_COLOR_FRAGMENT
            )
            self.label_prog = ctx.program(
                vertex_shader=_VERTEX_SHADER, fragment_shader=_LABEL_FRAGMENT
            )
            self.fbo_ms = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer(size, 4, samples=samples, dtype="f1")],
                depth_attachment=ctx.depth_renderbuffer(size, samples=samples),
            )
            self.fbo_color = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer(size, 4, dtype="f1")]
            )
            self.fbo_label = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer(size, 2, dtype="f4")],
                depth_attachment=ctx.depth_renderbuffer(size),
            )
        else:
            # One pass writing colour and labels to two attachments.
            self.color_prog = ctx.program(
                vertex_shader=_VERTEX_SHADER, fragment_shader=_COLOR_LABEL_FRAGMENT
            )
            self.label_prog = None
            self.fbo_ms = self.fbo_color = self.fbo_label = ctx.framebuffer(
                color_attachments=[
                    ctx.renderbuffer(size, 4, dtype="f1"),
                    ctx.renderbuffer(size, 2, dtype="f4"),
                ],
                depth_attachment=ctx.depth_renderbuffer(size),
            )
        self.textures: list = []
        self._white = self.add_texture(np.full((2, 2, 4), 255, np.uint8))
        self._buffers: dict[int, tuple] = {}

    def add_texture(self, image: np.ndarray) -> int:
        """Upload an RGBA texture and keep it resident.

        Args:
            image: (H, W, 4) uint8, row 0 = v 0 (texture coordinates index rows
                directly: ``texel = image[int(v * H), int(u * W)]``).

        Returns:
            The texture index for :class:`Material`.
        """
        if image.ndim != 3 or image.shape[2] != 4 or image.dtype != np.uint8:
            raise ValueError(f"texture must be (H, W, 4) uint8, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        tex = self.ctx.texture((w, h), 4, np.ascontiguousarray(image).tobytes())
        tex.build_mipmaps()
        tex.filter = (self._mgl.LINEAR_MIPMAP_LINEAR, self._mgl.LINEAR)
        tex.repeat_x = tex.repeat_y = False
        self.textures.append(tex)
        return len(self.textures) - 1

    def _vao(self, slot: int, item: DrawItem):
        data = np.concatenate([item.positions, item.normals, item.uvs], axis=1).astype(np.float32)
        data = np.ascontiguousarray(data).tobytes()
        cached = self._buffers.get(slot)
        if cached is None or cached[0].size < len(data):
            if cached is not None:
                for obj in cached:
                    if obj is not None:
                        obj.release()
            vbo = self.ctx.buffer(reserve=max(len(data), 1 << 16), dynamic=True)
            layout = [(vbo, "3f 3f 2f", "in_pos", "in_nrm", "in_uv")]
            vao_color = self.ctx.vertex_array(self.color_prog, layout)
            # The label shader only reads positions (unused inputs are optimized out).
            vao_label = (
                self.ctx.vertex_array(self.label_prog, [(vbo, "3f 20x", "in_pos")])
                if self.label_prog
                else None
            )
            cached = (vbo, vao_color, vao_label)
            self._buffers[slot] = cached
        cached[0].write(data)
        return cached, len(item.positions)

    def render(
        self, items: list[DrawItem], K: np.ndarray, lighting: Lighting | None = None
    ) -> RenderOutput:
        """Draw ``items`` (camera frame) with intrinsics ``K``.

        Args:
            items: meshes to draw, each with a material and an object id.
            K: (3, 3) intrinsics for this image size.
            lighting: scene lights (default :class:`Lighting`).

        Returns:
            A :class:`RenderOutput` (colour from the multisampled pass, ids and
            depth from the single-sample pass).
        """
        lighting = lighting or Lighting()
        mgl = self._mgl
        proj = projection_from_intrinsics(np.asarray(K, np.float64), self.width, self.height)
        proj_bytes = np.ascontiguousarray(proj.T).tobytes()  # GLSL matrices are column-major
        prepared = [self._vao(i, item) for i, item in enumerate(items)]
        ctx = self.ctx
        ctx.enable(mgl.DEPTH_TEST)
        ctx.disable(mgl.CULL_FACE)
        self._set_lighting(proj_bytes, lighting)
        rgba = self._colour_pass(items, prepared)
        ids, depth = self._label_pass(items, prepared, proj_bytes)
        return RenderOutput(rgba=rgba, ids=ids, depth=depth)

    def _set_lighting(self, proj_bytes: bytes, lighting: Lighting) -> None:
        """Projection and scene lights (two directional lights, padded) of the colour program."""
        cp = self.color_prog
        cp["proj"].write(proj_bytes)
        cp["ambient_sky"].value = tuple(lighting.ambient_sky)
        cp["ambient_ground"].value = tuple(lighting.ambient_ground)
        cp["up_dir"].value = tuple(lighting.up_dir)
        dirs = list(lighting.light_dirs)[:2] + [(0.0, 0.0, 1.0)] * (2 - len(lighting.light_dirs))
        cols = list(lighting.light_colors)[:2] + [(0.0, 0.0, 0.0)] * (
            2 - len(lighting.light_colors)
        )
        cp["light_dir"].write(np.asarray(dirs, np.float32).tobytes())
        cp["light_color"].write(np.asarray(cols, np.float32).tobytes())

    def _colour_pass(self, items: list[DrawItem], prepared: list) -> np.ndarray:
        """Shaded colour of ``items`` (multisampled when ``msaa``): (H, W, 4) float RGBA."""
        mgl = self._mgl
        cp = self.color_prog
        self.fbo_ms.use()
        self.fbo_ms.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        for item, ((_, vao_color, _), count) in zip(items, prepared, strict=True):
            m = item.material
            tex_index = self._white if m.texture is None else m.texture
            self.textures[tex_index].use(location=0)
            cp["tex"].value = 0
            cp["use_tex"].value = m.texture is not None
            cp["tint"].value = tuple(float(x) for x in m.tint)
            cp["base_color"].value = tuple(float(x) for x in m.base_color)
            cp["spec_scale"].value = float(m.spec_scale)
            cp["shininess"].value = float(m.shininess)
            cp["wrap"].value = float(m.wrap)
            if not self.msaa:
                cp["object_id"].value = float(item.object_id)
            vao_color.render(mgl.TRIANGLES, vertices=count)
        if self.msaa:
            self.ctx.copy_framebuffer(self.fbo_color, self.fbo_ms)
        raw = self.fbo_color.read(components=4, dtype="f1")
        rgba = np.frombuffer(raw, np.uint8).reshape(self.height, self.width, 4)
        return rgba.astype(np.float32) * (1.0 / 255.0)

    def _label_pass(self, items: list[DrawItem], prepared: list,
                    proj_bytes: bytes) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """Object ids (H, W) uint8 and camera depth (H, W) float32 (inf on background): a
        single-sample pass with ``msaa``, else the colour pass's second attachment."""
        if self.msaa:
            lp = self.label_prog
            lp["proj"].write(proj_bytes)
            self.fbo_label.use()
            self.fbo_label.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            for item, ((_, _, vao_label), count) in zip(items, prepared, strict=True):
                lp["object_id"].value = float(item.object_id)
                vao_label.render(self._mgl.TRIANGLES, vertices=count)
            raw_label = self.fbo_label.read(components=2, dtype="f4")
        else:
            raw_label = self.fbo_label.read(components=2, dtype="f4", attachment=1)
        lab = np.frombuffer(raw_label, np.float32)
        lab = lab.reshape(self.height, self.width, 2)
        ids = np.rint(lab[..., 0]).astype(np.uint8)
        depth = np.where(ids > 0, lab[..., 1], np.inf).astype(np.float32)
        return ids, depth

    def bake_uv_maps(
        self,
        verts: np.ndarray,
        normals: np.ndarray,
        faces: np.ndarray,
        uv: np.ndarray,
        uv_faces: np.ndarray,
        size: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rasterize mesh positions and normals into texture (UV) space.

        Args:
            verts, normals: (V, 3) rest-pose positions and normals in any frame.
            faces: (F, 3) vertex ids. uv: (T, 2). uv_faces: (F, 3).
            size: output texture size (square), texels.

        Returns:
            position (size, size, 3), normal (size, size, 3) float32 and coverage
            (size, size) bool; row = v * size, column = u * size.
        """
        ctx = self.ctx
        prog = ctx.program(vertex_shader=_UV_VERTEX_SHADER, fragment_shader=_UV_FRAGMENT)
        flat = faces.reshape(-1)
        data = np.concatenate(
            [uv[uv_faces.reshape(-1)], verts[flat], normals[flat]], axis=1
        ).astype(np.float32)
        vbo = ctx.buffer(np.ascontiguousarray(data).tobytes())
        vao = ctx.vertex_array(prog, [(vbo, "2f 3f 3f", "in_uv", "in_pos", "in_nrm")])
        fbo = ctx.framebuffer(
            color_attachments=[
                ctx.renderbuffer((size, size), 4, dtype="f4"),
                ctx.renderbuffer((size, size), 4, dtype="f4"),
            ]
        )
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0)
        ctx.disable(self._mgl.DEPTH_TEST)
        vao.render(self._mgl.TRIANGLES)
        pos = np.frombuffer(fbo.read(components=4, dtype="f4", attachment=0), np.float32).reshape(
            size, size, 4
        )
        nrm = np.frombuffer(fbo.read(components=4, dtype="f4", attachment=1), np.float32).reshape(
            size, size, 4
        )
        for obj in (vao, vbo, fbo, prog):
            obj.release()
        return pos[..., :3].copy(), nrm[..., :3].copy(), pos[..., 3] > 0.5
