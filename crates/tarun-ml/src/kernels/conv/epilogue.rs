//! [`Epilogue`]: what an inference convolution applies to its outputs right after writing them
//! (a per-channel scale and shift, an optional residual, an activation), whichever algorithm
//! computed them; the depthwise convolution uses it too.

use candle_core::{Result, Tensor};

use crate::kernels::batchnorm::{Activation, image_affine_in_place, plane_affine_in_place};
use crate::kernels::residual::add_act_in_place;

/// A per-output-channel `act(y * scale + shift)` applied to each group of outputs right after
/// the convolution writes them, while they are in cache: batch norm's evaluation-mode affine
/// (and a bias) folded into the convolution, for inference ([`super::conv2d_affine`]).
pub(crate) struct Epilogue<'r> {
    scale: Vec<f32>,
    shift: Vec<f32>,
    act: Activation,
    /// `scale` and `shift` repeated over the planes of one image, for small planes
    /// ([`Epilogue::apply`]), built on first use.
    per_element: std::sync::OnceLock<(Vec<f32>, Vec<f32>)>,
    /// The whole batch's residual, shaped like the output and added before the activation
    /// (ResNet's identity path, [`super::conv2d_affine_residual`]).
    residual: Option<&'r [f32]>,
}

/// Planes smaller than this get the epilogue image by image ([`image_affine_in_place`]).
pub(in crate::kernels) const SMALL_PLANE: usize = 16;

impl Epilogue<'_> {
    /// From tensors of one scale and one shift per output channel (`channels`).
    pub(in crate::kernels) fn new(
        op: &str,
        channels: usize,
        (scale, shift): (&Tensor, &Tensor),
        act: Activation,
    ) -> Result<Self> {
        let (scale, shift) = (
            scale.flatten_all()?.to_vec1::<f32>()?,
            shift.flatten_all()?.to_vec1::<f32>()?,
        );
        if scale.len() != channels || shift.len() != channels {
            candle_core::bail!(
                "{op}: {channels} output channels, but {} scales and {} shifts",
                scale.len(),
                shift.len()
            );
        }
        Ok(Self {
            scale,
            shift,
            act,
            per_element: std::sync::OnceLock::new(),
            residual: None,
        })
    }

    /// This epilogue with `residual` added before the activation.
    pub(in crate::kernels) fn with_residual<'r>(&self, residual: &'r [f32]) -> Epilogue<'r> {
        Epilogue {
            scale: self.scale.clone(),
            shift: self.shift.clone(),
            act: self.act,
            per_element: std::sync::OnceLock::new(),
            residual: Some(residual),
        }
    }

    /// Applies itself to one output plane of channel `c` (no residual).
    pub(in crate::kernels) fn apply_plane(&self, plane: &mut [f32], c: usize) {
        debug_assert!(self.residual.is_none(), "apply_plane has no residual");
        plane_affine_in_place(plane, (self.scale[c], self.shift[c]), self.act);
    }

    /// Applies itself to `out`, whole images (from image `first` of the batch on) of `co` planes
    /// of `hw` outputs.
    pub(in crate::kernels) fn apply(&self, out: &mut [f32], first: usize, co: usize, hw: usize) {
        // With a residual, the activation comes after adding it.
        let act = match self.residual {
            Some(_) => Activation::None,
            None => self.act,
        };
        self.affine(out, co, hw, act);
        if let Some(r) = self.residual {
            let at = first * co * hw;
            add_act_in_place(out, &r[at..at + out.len()], self.act);
        }
    }

    fn affine(&self, out: &mut [f32], co: usize, hw: usize, act: Activation) {
        if (1..SMALL_PLANE).contains(&hw) && co == self.scale.len() {
            let (scale, shift) = self.per_element.get_or_init(|| {
                let repeat = |v: &[f32]| -> Vec<f32> {
                    v.iter().flat_map(|&x| std::iter::repeat_n(x, hw)).collect()
                };
                (repeat(&self.scale), repeat(&self.shift))
            });
            if scale.len() == co * hw {
                for img in out.chunks_exact_mut(co * hw) {
                    image_affine_in_place(img, scale, shift, act);
                }
                return;
            }
        }
        for (i, plane) in out.chunks_exact_mut(hw.max(1)).enumerate() {
            plane_affine_in_place(plane, (self.scale[i % co], self.shift[i % co]), act);
        }
    }
}
