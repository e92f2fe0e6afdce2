//! Drawing for the synthetic dataset: scenes (backgrounds), shapes built from signed-distance
//! primitives, and colour palettes. [`super::synthetic`] decides which combination each class
//! and image gets; this module only knows how to put it on a 32x32 canvas.
//!
//! Shapes live in "object units" (x right, y down, about ±13 across) and are mapped to pixels
//! by a per-image similarity transform. Edges are anti-aliased by turning the signed distance
//! into coverage, which avoids supersampling and keeps generation fast.

use rand::{Rng, RngCore};
use rand_chacha::ChaCha8Rng;

use super::SIDE;

const PIXELS: usize = SIDE * SIDE;

/// A float canvas, three planes (R, G, B) of 32x32, values on the 0-255 scale.
pub(super) type Canvas = [f32; 3 * PIXELS];

/// What surrounds the object; classes sharing a scene share most of their pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Scene {
    /// Blue gradient with soft clouds: both sky and open sea.
    Blue,
    /// Grey asphalt with a dashed lane under a blocky grey skyline.
    Road,
    /// Striped beige wallpaper above a brown floor.
    Indoor,
    /// Textured green field.
    Grass,
}

/// The object's silhouette. Silhouettes come in families whose members differ only in small
/// details, so that telling them apart needs spatial features, not colour statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    /// Wing family, top view: fuselage, swept wings, tail fins, cockpit.
    Plane,
    /// Wing family, top view: shorter body, broad wings, fan tail, head and beak.
    Bird,
    /// Vehicle family, side view: body, cabin with windows, two wheels.
    Car,
    /// Vehicle family, side view: tall cargo box, small cab, three wheels.
    Truck,
    /// Vehicle family without wheels, side view: tapered hull, superstructure with windows,
    /// funnel. Its long box-on-box outline is deliberately close to the truck's.
    Ship,
    /// Pet family, front view: round head with pointed ears, on a body.
    Cat,
    /// Pet family, front view: round head with hanging ears and a light snout, on a body.
    Dog,
    /// Quadruped family, side view: slim legs, short tail, antlers.
    Deer,
    /// Quadruped family, side view: thick legs, long neck with mane, long tail.
    Horse,
    /// Top view: squat body, two bulging eyes, splayed legs.
    Frog,
}

/// The object's main colour, before per-image jitter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Palette {
    White,
    /// One of a few car paints (red, blue, yellow, black), drawn per image.
    Vivid,
    Brown,
    Orange,
    Fawn,
    Tan,
    Chestnut,
    Green,
}

impl Palette {
    fn rgb(self, rng: &mut ChaCha8Rng) -> [f32; 3] {
        const PAINTS: [[f32; 3]; 4] = [
            [185.0, 45.0, 40.0],
            [40.0, 70.0, 170.0],
            [215.0, 185.0, 50.0],
            [45.0, 45.0, 50.0],
        ];
        match self {
            Palette::White => [222.0, 224.0, 228.0],
            Palette::Vivid => PAINTS[rng.random_range(0..PAINTS.len())],
            Palette::Brown => [140.0, 100.0, 65.0],
            Palette::Orange => [205.0, 135.0, 70.0],
            Palette::Fawn => [160.0, 112.0, 70.0],
            Palette::Tan => [170.0, 128.0, 88.0],
            Palette::Chestnut => [125.0, 75.0, 45.0],
            Palette::Green => [105.0, 165.0, 60.0],
        }
    }
}

/// Which colour a part takes.
#[derive(Clone, Copy)]
enum Role {
    /// The palette colour.
    Body,
    /// The palette colour lightened (superstructures, snouts).
    Light,
    /// The palette colour darkened (ears, manes, antlers).
    Shade,
    /// Near black (wheels, eyes, funnels).
    Dark,
    /// Blue-grey glass (windows).
    Glass,
}

/// A signed-distance primitive in object units (negative inside).
#[derive(Clone, Copy)]
enum Prim {
    /// Axis-aligned ellipse: centre and radii.
    Ellipse([f32; 2], [f32; 2]),
    /// Axis-aligned box: centre and half sizes.
    Rect([f32; 2], [f32; 2]),
    /// Disc: centre and radius.
    Disc([f32; 2], f32),
    /// Convex polygon (3 or 4 vertices, either winding; a triangle repeats its last vertex).
    Poly([[f32; 2]; 4]),
}

impl Prim {
    fn sdf(&self, p: [f32; 2]) -> f32 {
        match *self {
            Prim::Ellipse(c, r) => {
                let (x, y) = ((p[0] - c[0]) / r[0], (p[1] - c[1]) / r[1]);
                // Not exact away from the boundary, but exact on it, which is what coverage needs.
                ((x * x + y * y).sqrt() - 1.0) * r[0].min(r[1])
            }
            Prim::Rect(c, h) => {
                let dx = (p[0] - c[0]).abs() - h[0];
                let dy = (p[1] - c[1]).abs() - h[1];
                let outside = (dx.max(0.0).powi(2) + dy.max(0.0).powi(2)).sqrt();
                outside + dx.max(dy).min(0.0)
            }
            Prim::Disc(c, r) => ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt() - r,
            Prim::Poly(v) => poly_sdf(&v, p),
        }
    }
}

impl Prim {
    /// A circle (centre, radius) containing the primitive.
    fn bound(&self) -> ([f32; 2], f32) {
        match *self {
            Prim::Ellipse(c, r) => (c, r[0].max(r[1])),
            Prim::Rect(c, h) => (c, (h[0] * h[0] + h[1] * h[1]).sqrt()),
            Prim::Disc(c, r) => (c, r),
            Prim::Poly(v) => {
                let c = [(v[0][0] + v[2][0]) / 2.0, (v[0][1] + v[2][1]) / 2.0];
                let r = v
                    .iter()
                    .map(|p| ((p[0] - c[0]).powi(2) + (p[1] - c[1]).powi(2)).sqrt())
                    .fold(0.0, f32::max);
                (c, r)
            }
        }
    }
}

/// Largest signed distance to the edge lines: exact inside, a lower bound outside.
fn poly_sdf(v: &[[f32; 2]; 4], p: [f32; 2]) -> f32 {
    let centre = [
        (v[0][0] + v[1][0] + v[2][0] + v[3][0]) / 4.0,
        (v[0][1] + v[1][1] + v[2][1] + v[3][1]) / 4.0,
    ];
    let mut d = f32::MIN;
    for i in 0..4 {
        let (a, b) = (v[i], v[(i + 1) % 4]);
        let (ex, ey) = (b[0] - a[0], b[1] - a[1]);
        let len = (ex * ex + ey * ey).sqrt();
        if len < 1e-6 {
            continue; // the repeated vertex of a triangle
        }
        let side = |q: [f32; 2]| (ey * (q[0] - a[0]) - ex * (q[1] - a[1])) / len;
        // Orient each edge's normal away from the centre, so winding does not matter.
        let s = if side(centre) > 0.0 { -1.0 } else { 1.0 };
        d = d.max(s * side(p));
    }
    d
}

/// Mirrors a polygon top to bottom (the other wing of a top view).
const fn flip_y(v: [[f32; 2]; 4]) -> [[f32; 2]; 4] {
    [
        [v[0][0], -v[0][1]],
        [v[1][0], -v[1][1]],
        [v[2][0], -v[2][1]],
        [v[3][0], -v[3][1]],
    ]
}

const PLANE_WING: [[f32; 2]; 4] = [[2.0, -1.0], [-3.0, -1.0], [-7.5, -12.0], [-4.5, -12.0]];
const PLANE_FIN: [[f32; 2]; 4] = [[-9.0, -0.5], [-11.5, -0.5], [-13.5, -5.0], [-12.0, -5.0]];
const BIRD_WING: [[f32; 2]; 4] = [[3.0, -1.5], [-3.0, -1.5], [-6.0, -10.0], [-0.5, -10.5]];
// Named so that the part lists below stay promotable to `'static`.
const PLANE_WING_2: [[f32; 2]; 4] = flip_y(PLANE_WING);
const PLANE_FIN_2: [[f32; 2]; 4] = flip_y(PLANE_FIN);
const BIRD_WING_2: [[f32; 2]; 4] = flip_y(BIRD_WING);

/// The parts of each silhouette, drawn in order (later parts on top).
fn parts(shape: Shape) -> &'static [(Prim, Role)] {
    use Prim::*;
    use Role::*;
    match shape {
        Shape::Plane => &[
            (Poly(PLANE_WING), Body),
            (Poly(PLANE_WING_2), Body),
            (Poly(PLANE_FIN), Body),
            (Poly(PLANE_FIN_2), Body),
            (Ellipse([0.0, 0.0], [13.0, 2.2]), Body),
            (Ellipse([8.5, 0.0], [2.0, 1.0]), Glass),
        ],
        Shape::Bird => &[
            (Poly(BIRD_WING), Body),
            (Poly(BIRD_WING_2), Body),
            (
                Poly([[-7.0, -1.0], [-7.0, 1.0], [-13.0, 4.0], [-13.0, -4.0]]),
                Shade,
            ),
            (Ellipse([0.0, 0.0], [9.0, 3.0]), Body),
            (Disc([9.0, 0.0], 2.8), Body),
            (
                Poly([[11.3, -0.9], [11.3, 0.9], [14.0, 0.0], [14.0, 0.0]]),
                Dark,
            ),
        ],
        Shape::Car => &[
            (Rect([-1.0, -5.0], [6.0, 2.4]), Body),
            (Rect([-1.0, -5.0], [4.8, 1.3]), Glass),
            (Rect([0.0, 0.0], [12.0, 3.0]), Body),
            (Disc([-7.0, 3.3], 2.7), Dark),
            (Disc([7.0, 3.3], 2.7), Dark),
        ],
        Shape::Truck => &[
            (Rect([-3.5, -4.0], [9.5, 4.5]), Body),
            (Rect([9.0, -2.5], [3.5, 3.5]), Body),
            (Rect([10.0, -4.0], [2.0, 1.3]), Glass),
            (Rect([0.0, 1.5], [13.0, 1.5]), Shade),
            (Disc([-8.0, 3.3], 2.6), Dark),
            (Disc([-3.0, 3.3], 2.6), Dark),
            (Disc([9.0, 3.3], 2.6), Dark),
        ],
        Shape::Ship => &[
            (Rect([3.5, -6.5], [1.1, 2.5]), Dark),
            (Rect([-2.0, -2.8], [5.5, 2.8]), Light),
            (Rect([-2.0, -3.0], [4.5, 0.7]), Glass),
            (
                Poly([[-12.5, 0.0], [13.0, 0.0], [9.0, 5.0], [-10.5, 5.0]]),
                Body,
            ),
        ],
        Shape::Cat => &[
            (Ellipse([0.0, 7.5], [8.0, 6.0]), Body),
            (
                Poly([[-6.3, -4.5], [-1.8, -7.6], [-6.2, -12.5], [-6.2, -12.5]]),
                Body,
            ),
            (
                Poly([[6.3, -4.5], [1.8, -7.6], [6.2, -12.5], [6.2, -12.5]]),
                Body,
            ),
            (Disc([0.0, -2.0], 6.5), Body),
            (Disc([-2.5, -3.0], 1.1), Dark),
            (Disc([2.5, -3.0], 1.1), Dark),
            (Disc([0.0, 0.2], 0.9), Dark),
        ],
        Shape::Dog => &[
            (Ellipse([0.0, 7.5], [8.0, 6.0]), Body),
            (Disc([0.0, -2.0], 6.3), Body),
            (Ellipse([-6.2, -1.0], [2.2, 4.8]), Shade),
            (Ellipse([6.2, -1.0], [2.2, 4.8]), Shade),
            (Ellipse([0.0, 1.2], [3.2, 2.4]), Light),
            (Disc([-2.6, -3.5], 1.0), Dark),
            (Disc([2.6, -3.5], 1.0), Dark),
            (Disc([0.0, 0.3], 1.1), Dark),
        ],
        Shape::Deer => &[
            (Rect([-6.0, 6.2], [0.75, 4.8]), Body),
            (Rect([-3.5, 6.2], [0.75, 4.8]), Body),
            (Rect([4.0, 6.2], [0.75, 4.8]), Body),
            (Rect([6.5, 6.2], [0.75, 4.8]), Body),
            (Rect([-9.0, -2.0], [0.9, 1.3]), Light),
            (
                Poly([[6.0, -2.0], [8.5, -2.0], [11.0, -8.0], [9.0, -8.5]]),
                Body,
            ),
            (Ellipse([0.0, 0.0], [8.5, 4.0]), Body),
            (Ellipse([11.5, -9.0], [3.0, 2.0]), Body),
            (
                Poly([[10.0, -10.5], [10.8, -10.5], [8.5, -15.0], [8.0, -15.0]]),
                Shade,
            ),
            (
                Poly([[11.5, -10.5], [12.3, -10.5], [14.0, -15.0], [13.4, -15.0]]),
                Shade,
            ),
        ],
        Shape::Horse => &[
            (Rect([-6.0, 6.2], [1.3, 4.8]), Body),
            (Rect([-3.5, 6.2], [1.3, 4.8]), Body),
            (Rect([4.0, 6.2], [1.3, 4.8]), Body),
            (Rect([6.5, 6.2], [1.3, 4.8]), Body),
            (
                Poly([[-9.0, -2.0], [-10.0, -3.0], [-13.0, 5.0], [-11.5, 5.5]]),
                Shade,
            ),
            (
                Poly([[5.5, -2.0], [9.0, -2.0], [12.5, -9.5], [9.5, -10.5]]),
                Body,
            ),
            (
                Poly([[5.5, -2.5], [6.8, -2.5], [10.0, -10.5], [9.0, -11.0]]),
                Shade,
            ),
            (Ellipse([0.0, 0.0], [9.5, 4.8]), Body),
            (Ellipse([13.0, -10.0], [3.6, 2.0]), Body),
        ],
        Shape::Frog => &[
            (Ellipse([-9.0, 6.0], [4.0, 1.8]), Body),
            (Ellipse([9.0, 6.0], [4.0, 1.8]), Body),
            (Ellipse([0.0, 1.0], [9.0, 6.0]), Body),
            (Disc([-4.5, -4.5], 2.6), Body),
            (Disc([4.5, -4.5], 2.6), Body),
            (Disc([-4.5, -4.8], 1.1), Dark),
            (Disc([4.5, -4.8], 1.1), Dark),
        ],
    }
}

/// Where and how an object is drawn: centre in pixels, pixels per object unit, aspect
/// stretch, rotation, and whether it faces left.
pub(super) struct Pose {
    pub centre: [f32; 2],
    pub scale: f32,
    pub aspect: f32,
    pub angle: f32,
    pub mirror: bool,
}

/// Draws `shape` in `colour` (RGB, 0-255) over `canvas`.
pub(super) fn draw_object(canvas: &mut Canvas, shape: Shape, colour: [f32; 3], pose: &Pose) {
    let (sin, cos) = pose.angle.sin_cos();
    let (sx, sy) = (pose.scale * pose.aspect, pose.scale);
    // Bounding circles in object units, widened by the anti-aliasing margin, skip most
    // primitive evaluations.
    let margin = 1.0 / sx.min(sy);
    let parts: Vec<(Prim, [f32; 3], [f32; 2], f32)> = parts(shape)
        .iter()
        .map(|&(prim, role)| {
            let (c, r) = prim.bound();
            (prim, role_colour(role, colour), c, (r + margin).powi(2))
        })
        .collect();
    let reach = 16.0 * sx.max(sy);
    let lo = |c: f32| (c - reach).floor().max(0.0) as usize;
    let hi = |c: f32| ((c + reach).ceil().max(0.0) as usize).min(SIDE);
    for y in lo(pose.centre[1])..hi(pose.centre[1]) {
        for x in lo(pose.centre[0])..hi(pose.centre[0]) {
            let (dx, dy) = (
                x as f32 + 0.5 - pose.centre[0],
                y as f32 + 0.5 - pose.centre[1],
            );
            let mut q = [(dx * cos + dy * sin) / sx, (-dx * sin + dy * cos) / sy];
            if pose.mirror {
                q[0] = -q[0];
            }
            // Light from above: the top of an object is a little brighter.
            let shade = 1.0 - 0.012 * q[1];
            for (prim, c, bc, br2) in &parts {
                if (q[0] - bc[0]).powi(2) + (q[1] - bc[1]).powi(2) > *br2 {
                    continue;
                }
                let coverage = (0.5 - prim.sdf(q) * pose.scale).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    for (ch, &v) in c.iter().enumerate() {
                        let px = &mut canvas[ch * PIXELS + y * SIDE + x];
                        *px += coverage * (v * shade - *px);
                    }
                }
            }
        }
    }
}

fn role_colour(role: Role, body: [f32; 3]) -> [f32; 3] {
    match role {
        Role::Body => body,
        Role::Light => body.map(|v| v + 0.5 * (245.0 - v)),
        Role::Shade => body.map(|v| v * 0.6),
        Role::Dark => [32.0, 32.0, 36.0],
        Role::Glass => [70.0, 90.0, 115.0],
    }
}

/// The palette colour with per-image jitter: each channel moves independently (hue) and all
/// together (brightness), so neighbouring palettes overlap.
pub(super) fn jittered(palette: Palette, rng: &mut ChaCha8Rng) -> [f32; 3] {
    let base = palette.rgb(rng);
    let bright = rng.random_range(0.8f32..1.15);
    base.map(|v| (v * bright + rng.random_range(-20.0f32..20.0)).clamp(0.0, 255.0))
}

/// `sin(f * i + phase)` for i in 0..32: scene textures are separable, so a pixel costs table
/// look-ups rather than transcendental calls.
fn wave(f: f32, phase: f32) -> [f32; SIDE] {
    std::array::from_fn(|i| (f * i as f32 + phase).sin())
}

/// Fills `canvas` with one random instance of `scene`.
pub(super) fn fill_scene(canvas: &mut Canvas, scene: Scene, rng: &mut ChaCha8Rng) {
    let mut jitter = |base: [f32; 3], amp: f32| base.map(|v| v + rng.random_range(-amp..amp));
    match scene {
        Scene::Blue => {
            let top = jitter([90.0, 145.0, 215.0], 30.0);
            let bottom = jitter([170.0, 200.0, 235.0], 25.0);
            let (f, phase) = (
                rng.random_range(0.15f32..0.45),
                rng.random_range(0.0f32..6.3),
            );
            let cloud = rng.random_range(0.0f32..50.0);
            let (wx, wy) = (wave(f, phase), wave(0.7 * f, 2.0 * phase));
            paint(canvas, |x, y| {
                let t = y as f32 / 31.0;
                let puff = (wx[x] * wy[y]).max(0.0) * cloud / 250.0;
                std::array::from_fn(|c| top[c] + t * (bottom[c] - top[c]) + puff * (250.0 - top[c]))
            });
        }
        Scene::Road => {
            let (sky, asphalt) = (
                jitter([150.0, 148.0, 145.0], 30.0),
                jitter([85.0, 85.0, 90.0], 20.0),
            );
            let horizon = rng.random_range(9.0f32..18.0);
            let lane = horizon + rng.random_range(6.0f32..11.0);
            let (f, phase) = (
                rng.random_range(0.35f32..0.9),
                rng.random_range(0.0f32..6.3),
            );
            let (blocks, dashes) = (wave(f, phase), wave(0.8, phase));
            paint(canvas, |x, y| {
                let y = y as f32;
                if y < horizon {
                    sky.map(|v| v * if blocks[x] > 0.0 { 1.12 } else { 0.9 })
                } else if (y - lane).abs() < 0.8 && dashes[x] > 0.0 {
                    [205.0, 200.0, 170.0]
                } else {
                    asphalt
                }
            });
        }
        Scene::Indoor => {
            let (wall, floor) = (
                jitter([195.0, 170.0, 135.0], 30.0),
                jitter([130.0, 95.0, 65.0], 20.0),
            );
            let floor_at = rng.random_range(19.0f32..28.0);
            let stripes = wave(rng.random_range(0.6f32..1.6), rng.random_range(0.0f32..6.3));
            paint(canvas, |x, y| {
                let y = y as f32;
                if y < floor_at {
                    wall.map(|v| v + 12.0 * stripes[x])
                } else {
                    floor.map(|v| v * (1.0 - 0.01 * (y - floor_at)))
                }
            });
        }
        Scene::Grass => {
            let base = jitter([80.0, 125.0, 50.0], 25.0);
            let (f, phase) = (rng.random_range(0.8f32..1.6), rng.random_range(0.0f32..6.3));
            // Blades: sin(f x + 0.3 y + phase) * cos(1.7 f x - phase), with the first factor
            // expanded as sin(a + b) = sin a cos b + cos a sin b to stay separable.
            let (sx, cx) = (wave(f, phase), wave(f, phase + std::f32::consts::FRAC_PI_2));
            let (sy, cy) = (wave(0.3, 0.0), wave(0.3, std::f32::consts::FRAC_PI_2));
            let across = wave(1.7 * f, std::f32::consts::FRAC_PI_2 - phase);
            paint(canvas, |x, y| {
                let blades = 14.0 * (sx[x] * cy[y] + cx[x] * sy[y]) * across[x];
                let t = 1.1 - 0.2 * y as f32 / 31.0;
                base.map(|v| v * t + blades)
            });
        }
    }
}

fn paint(canvas: &mut Canvas, colour: impl Fn(usize, usize) -> [f32; 3]) {
    for y in 0..SIDE {
        for x in 0..SIDE {
            let c = colour(x, y);
            for (ch, v) in c.into_iter().enumerate() {
                canvas[ch * PIXELS + y * SIDE + x] = v;
            }
        }
    }
}

/// Applies an overall exposure and white balance, then sensor-like noise, and quantises to
/// bytes.
pub(super) fn finish(canvas: &Canvas, rng: &mut ChaCha8Rng, out: &mut [u8]) {
    let gain = rng.random_range(0.8f32..1.15);
    let tint: [f32; 3] = std::array::from_fn(|_| gain * rng.random_range(0.9f32..1.1));
    let noise = rng.random_range(4.0f32..14.0);
    let mut bits = 0u64;
    for (i, (&v, o)) in canvas.iter().zip(out.iter_mut()).enumerate() {
        // Four 16-bit uniforms per 64 random bits; two summed give a cheap triangular noise.
        if i % 2 == 0 {
            bits = rng.next_u64();
        }
        let u = |k: usize| ((bits >> (16 * k)) & 0xFFFF) as f32 / 65535.0;
        let k = (i % 2) * 2;
        let n = (u(k) + u(k + 1) - 1.0) * noise;
        *o = (v * tint[i / PIXELS] + n).round().clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primitives_are_negative_inside_and_positive_outside() {
        let prims = [
            Prim::Ellipse([0.0, 0.0], [4.0, 2.0]),
            Prim::Rect([0.0, 0.0], [4.0, 2.0]),
            Prim::Disc([0.0, 0.0], 2.0),
            Prim::Poly([[-4.0, -2.0], [4.0, -2.0], [4.0, 2.0], [-4.0, 2.0]]),
            Prim::Poly([[-4.0, 2.0], [4.0, 2.0], [0.0, -3.0], [0.0, -3.0]]),
        ];
        for p in prims {
            assert!(p.sdf([0.0, 0.0]) < 0.0);
            assert!(p.sdf([0.0, 9.0]) > 0.0);
            assert!(p.sdf([9.0, 0.0]) > 0.0);
        }
        assert!((Prim::Rect([0.0, 0.0], [4.0, 2.0]).sdf([6.0, 0.0]) - 2.0).abs() < 1e-6);
        assert!(
            (Prim::Poly([[-4.0, -2.0], [4.0, -2.0], [4.0, 2.0], [-4.0, 2.0]]).sdf([0.0, 3.0])
                - 1.0)
                .abs()
                < 1e-6
        );
    }
}
