//! The backward pass of a network's convolutional body, run by tarun instead of Candle's graph.
//!
//! Candle's `Tensor::backward` adds every gradient that reaches a tensor into a fresh zero tensor
//! (`GradStore::or_insert`, then `add`), also where the tensor has a single consumer, which is
//! almost every activation: a full-size zero fill plus a full-size add into yet another new
//! buffer per edge of the graph, a measurable share of a training step on the narrow networks
//! (docs/performance.md, fifth round).
//!
//! A [`Tape`] records the body's ops (tarun's kernels, each with its inputs and output) while the
//! forward pass runs them off Candle's graph, and runs their backward passes itself in reverse:
//! the first gradient to reach a tensor is kept as it is, and only real fan-in (ResNet's and
//! MobileNetV2's identity paths) adds. The head (pooling, classifier, loss) stays on Candle's
//! graph: the body's output enters it as a variable ([`Tape::output`]), and [`Tape::backward`]
//! continues from that variable's gradient and puts the parameters' gradients into the same
//! `GradStore`, where the optimizer finds them as before. Each node is dropped once its backward
//! has run, so activations are freed as the pass goes instead of when it ends.
//!
//! The gradients are the same ops' gradients, added in the same pairs: the tests check that they
//! equal Candle's graph's bit for bit.

use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use candle_core::backprop::GradStore;
use candle_core::{CustomOp2, CustomOp3, Result, Tensor, TensorId, Var};
use rayon::prelude::*;

/// An op's backward pass, given its inputs, output and the output's gradient: the inputs'
/// gradients, `None` where there is none or where `needs` says it is not wanted.
pub(crate) trait Backward: Send + Sync {
    fn backward(
        &self,
        inputs: &[Tensor],
        out: &Tensor,
        grad: &Tensor,
        needs: &[bool],
    ) -> Result<Vec<Option<Tensor>>>;
}

struct Node {
    op: Box<dyn Backward>,
    inputs: Vec<Tensor>,
    out: Tensor,
}

/// The recorded ops of one forward pass; see the module documentation.
#[derive(Default)]
pub struct Tape {
    nodes: RefCell<Vec<Node>>,
    /// The outputs of recorded ops: with the variables, the tensors that need a gradient.
    produced: RefCell<HashSet<TensorId>>,
    /// The tensors handed over to Candle's graph ([`Tape::output`]), each with the variable
    /// standing for it there.
    outputs: RefCell<Vec<(TensorId, Var)>>,
}

impl Tape {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a gradient must reach `t`: a variable, or the output of a recorded op.
    fn needs(&self, t: &Tensor) -> bool {
        t.is_variable() || self.produced.borrow().contains(&t.id())
    }

    fn record(&self, op: impl Backward + 'static, inputs: Vec<Tensor>, out: Tensor) -> Tensor {
        self.produced.borrow_mut().insert(out.id());
        self.nodes.borrow_mut().push(Node {
            op: Box::new(op),
            inputs,
            out: out.clone(),
        });
        out
    }

    /// `t` made contiguous; a copy that `t`'s gradient must pass through is recorded.
    pub(crate) fn contiguous(&self, t: &Tensor) -> Result<Tensor> {
        let c = t.contiguous()?;
        if c.id() != t.id() && self.needs(t) {
            return Ok(self.record(Share, vec![t.clone()], c));
        }
        Ok(c)
    }

    /// Hands `y` (the body's output, or a recorded op's) over to Candle's graph as a new
    /// variable (a copy), whose gradient [`Tape::backward`] takes up.
    pub fn output(&self, y: &Tensor) -> Result<Tensor> {
        let var = Var::from_tensor(y)?;
        let t = var.as_tensor().clone();
        self.outputs.borrow_mut().push((y.id(), var));
        Ok(t)
    }

    /// Runs the recorded ops' backward passes from the output variable's gradient in `grads`
    /// (removed from it) and adds the parameters' gradients to `grads`. The tape is empty after.
    pub fn backward(&self, grads: &mut GradStore) -> Result<()> {
        let mut nodes = std::mem::take(&mut *self.nodes.borrow_mut());
        let mut acc: HashMap<TensorId, Tensor> = HashMap::new();
        for (id, var) in std::mem::take(&mut *self.outputs.borrow_mut()) {
            if let Some(g) = grads.remove(var.as_tensor()) {
                add_into(&mut acc, id, g)?;
            }
        }
        while let Some(node) = nodes.pop() {
            let Some(g) = acc.remove(&node.out.id()) else {
                continue;
            };
            let needs: Vec<bool> = node.inputs.iter().map(|t| self.needs(t)).collect();
            let input_grads = node.op.backward(&node.inputs, &node.out, &g, &needs)?;
            for ((t, g), need) in node.inputs.iter().zip(input_grads).zip(needs) {
                if let (Some(g), true) = (g, need) {
                    add_into(&mut acc, t.id(), g)?;
                }
            }
        }
        self.produced.borrow_mut().clear();
        // What is left are the variables' gradients.
        for (id, g) in acc {
            let g = match grads.get_id(id) {
                Some(other) => (other + g)?,
                None => g,
            };
            grads.insert_id(id, g);
        }
        Ok(())
    }
}

fn add_into(acc: &mut HashMap<TensorId, Tensor>, id: TensorId, g: Tensor) -> Result<()> {
    match acc.entry(id) {
        Entry::Occupied(mut e) => {
            let sum = (e.get() + g)?;
            e.insert(sum);
        }
        Entry::Vacant(e) => {
            e.insert(g);
        }
    }
    Ok(())
}

/// `op(a, b)` on Candle's graph, or, given a tape, off it and recorded there.
pub(crate) fn apply2<O>(a: &Tensor, b: &Tensor, op: O, tape: Option<&Tape>) -> Result<Tensor>
where
    O: CustomOp2 + Backward + 'static,
{
    match tape {
        None => a.contiguous()?.apply_op2(&b.contiguous()?, op),
        Some(t) => {
            let (a, b) = (t.contiguous(a)?, t.contiguous(b)?);
            let y = a.apply_op2_no_bwd(&b, &op)?;
            Ok(t.record(op, vec![a, b], y))
        }
    }
}

/// [`apply2`] for three inputs.
pub(crate) fn apply3<O>(
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    op: O,
    tape: Option<&Tape>,
) -> Result<Tensor>
where
    O: CustomOp3 + Backward + 'static,
{
    match tape {
        None => a
            .contiguous()?
            .apply_op3(&b.contiguous()?, &c.contiguous()?, op),
        Some(t) => {
            let (a, b, c) = (t.contiguous(a)?, t.contiguous(b)?, t.contiguous(c)?);
            let y = a.apply_op3_no_bwd(&b, &c, &op)?;
            Ok(t.record(op, vec![a, b, c], y))
        }
    }
}

/// A Candle op's backward through [`Backward`], for `CustomOp2::bwd`: every input that is on
/// Candle's graph gets its gradient.
pub(crate) fn candle_bwd2(
    op: &impl Backward,
    a: &Tensor,
    b: &Tensor,
    out: &Tensor,
    grad: &Tensor,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let needs = [a.track_op(), b.track_op()];
    let mut g = op.backward(&[a.clone(), b.clone()], out, grad, &needs)?;
    g.resize(2, None);
    let b_grad = g.pop().flatten();
    Ok((g.pop().flatten(), b_grad))
}

/// `a + b` of two equally shaped tensors, recorded on `tape` when given (MobileNetV2's
/// residual connections).
pub(crate) fn add(a: &Tensor, b: &Tensor, tape: Option<&Tape>) -> Result<Tensor> {
    let y = (a + b)?;
    Ok(match tape {
        Some(t) => t.record(Share, vec![a.clone(), b.clone()], y),
        None => y,
    })
}

/// `gamma` and `beta` stacked into batch norm's `[2, C]` parameter tensor, recorded on `tape`
/// when given.
pub(crate) fn stack_rows(gamma: &Tensor, beta: &Tensor, tape: Option<&Tape>) -> Result<Tensor> {
    match tape {
        None => Tensor::stack(&[gamma, beta], 0),
        Some(t) => {
            let y = Tensor::stack(&[gamma.detach(), beta.detach()], 0)?;
            Ok(t.record(Rows, vec![gamma.clone(), beta.clone()], y))
        }
    }
}

/// `w` (`rows x (cols * group)`) summed over each run of `group` consecutive columns, recorded on
/// `tape`: VGG-11-BN's first classifier weight folded over the 49 copies of a 1x1 map. On
/// Candle's graph the backward of that sum and reshape goes through four transient
/// weight-sized (411 MB at width 1) buffers per step; here the gradient, the column gradient
/// repeated, is one.
pub(crate) fn fold_columns(w: &Tensor, group: usize, tape: &Tape) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if group == 0 || cols % group != 0 {
        candle_core::bail!("fold_columns: {cols} columns are not runs of {group}");
    }
    #[cfg(feature = "cuda")]
    if w.device().is_cuda() {
        let y = super::cuda::fold_columns(&w.detach(), group, false)?;
        return Ok(tape.record(Fold(group), vec![w.clone()], y));
    }
    let y = w.detach().reshape((rows, cols / group, group))?.sum(2)?;
    Ok(tape.record(Fold(group), vec![w.clone()], y))
}

struct Fold(usize);

impl Backward for Fold {
    fn backward(
        &self,
        _: &[Tensor],
        y: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        // Each column's gradient repeated over its run, written once on all threads into a
        // buffer that is not zeroed first: Candle's broadcast-and-reshape would be an
        // element-by-element strided copy of the whole weight.
        let (rows, cols) = y.dims2()?;
        let group = self.0;
        #[cfg(feature = "cuda")]
        if y.device().is_cuda() {
            return Ok(vec![Some(super::cuda::fold_columns(g, group, true)?)]);
        }
        if !y.device().is_cpu() {
            let spread = g
                .reshape((rows, cols, 1))?
                .broadcast_as((rows, cols, group))?
                .contiguous()?
                .reshape((rows, cols * group))?;
            return Ok(vec![Some(spread)]);
        }
        let g = g.flatten_all()?.to_vec1::<f32>()?;
        let n = rows * cols * group;
        let mut spread: Vec<f32> = Vec::with_capacity(n);
        spread.spare_capacity_mut()[..n]
            .par_chunks_mut((cols * group).max(1))
            .zip(g.par_chunks(cols.max(1)))
            .for_each(|(dst, src)| {
                for (run, &v) in dst.chunks_exact_mut(group).zip(src) {
                    run.iter_mut().for_each(|x| {
                        x.write(v);
                    });
                }
            });
        // SAFETY: the loop above wrote all `n` elements (`rows` chunks of `cols` runs of
        // `group`).
        unsafe { spread.set_len(n) };
        let spread = Tensor::from_vec(spread, (rows, cols * group), y.device())?;
        Ok(vec![Some(spread)])
    }
}

/// 2x2 max-pool with stride 2 over even-sized maps, every maximum of a window getting the
/// window's full gradient (as the two max-reductions it replaces on Candle's graph do), recorded
/// on `tape`. `x` must already be off Candle's graph.
pub(crate) fn max_pool2x2(x: &Tensor, tape: &Tape) -> Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    if h % 2 != 0 || w % 2 != 0 {
        candle_core::bail!("max_pool2x2 needs even spatial sizes, got {h}x{w}");
    }
    #[cfg(feature = "cuda")]
    if x.device().is_cuda() {
        let y = super::cuda::max_pool2x2(x)?;
        return Ok(tape.record(MaxPool, vec![x.clone()], y));
    }
    let y = x.reshape((b, c, h / 2, 2, w / 2, 2))?.max(5)?.max(3)?;
    Ok(tape.record(MaxPool, vec![x.clone()], y))
}

/// The output's gradient passed unchanged to each of its inputs: a copy (one input) or a sum
/// (two).
struct Share;

impl Backward for Share {
    fn backward(
        &self,
        inputs: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(inputs.iter().map(|_| Some(g.clone())).collect())
    }
}

struct Rows;

impl Backward for Rows {
    fn backward(
        &self,
        _: &[Tensor],
        _: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        Ok(vec![Some(g.get(0)?), Some(g.get(1)?)])
    }
}

struct MaxPool;

impl Backward for MaxPool {
    fn backward(
        &self,
        inputs: &[Tensor],
        y: &Tensor,
        g: &Tensor,
        _: &[bool],
    ) -> Result<Vec<Option<Tensor>>> {
        let x = &inputs[0];
        #[cfg(feature = "cuda")]
        if x.device().is_cuda() {
            return Ok(vec![Some(super::cuda::max_pool2x2_grad(x, y, g)?)]);
        }
        let (b, c, h, w) = x.dims4()?;
        let windows = (b, c, h / 2, 2, w / 2, 2);
        let spread = |t: &Tensor| t.reshape((b, c, h / 2, 1, w / 2, 1))?.broadcast_as(windows);
        let is_max = x.reshape(windows)?.eq(&spread(y)?)?.to_dtype(x.dtype())?;
        let dx = is_max.mul(&spread(g)?)?.reshape((b, c, h, w))?;
        Ok(vec![Some(dx)])
    }
}
