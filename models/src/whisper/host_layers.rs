//! The int8 encoder's transformer layers as one pass over host buffers (CPU only).
//!
//! Once every linear layer of the encoder is quantised ([`super::WhisperEncoder::quantize_q8`]),
//! the matmuls are emomon's int8 kernel on plain `f32` slices, and going back into burn
//! tensors between them (a new zeroed tensor per op, heads split and merged by copies,
//! GELU and the residual additions as passes of their own,
//! the query, key and value projections each quantising the same input) took a fifth to
//! a quarter of the int8 encoder's time. Here the residual stream stays in one buffer:
//! each layer normalises it into a scratch buffer, quantises that once for the query,
//! key and value projections, attends on the projections in place
//! ([`crate::nn::host::attention`]), and the output and second MLP projections add into
//! the stream in their epilogue; GELU is one pass over the hidden states on all cores.
//! The numbers are those of the tensor path up to the order of f32 additions (tested).

use std::cell::RefCell;

use rayon::prelude::*;

use crate::kernels::q8::{Activations, Epilogue, Q8Matrix};
use crate::kernels::{Isa, isa};
use crate::nn::host::{AttentionShape, HostLayerNorm, attention};
use crate::nn::{Dense, gelu_slice};

/// Values one GELU task takes (a pass over the MLP's hidden states, spread over the
/// cores; applied inside the matmul's epilogue, 32 values at a time, it cost 4× more).
const GELU_CHUNK: usize = 1 << 14;

/// A quantised linear layer's weight and bias, borrowed from its [`Dense`].
#[derive(Clone, Copy)]
struct Linear<'a> {
    weight: &'a Q8Matrix,
    bias: Option<&'a [f32]>,
}

impl<'a> Linear<'a> {
    fn of(dense: &'a Dense) -> Option<Self> {
        let (weight, bias) = dense.q8_parts()?;
        Some(Self { weight, bias })
    }

    fn apply(&self, acts: &Activations, out: &mut [f32], epilogue: Epilogue, isa: Isa) {
        self.weight
            .matmul_quantized(acts, self.bias, out, epilogue, isa);
    }
}

/// One pre-norm encoder layer (`x += attn(norm(x)); x += mlp(norm(x))`) with int8 weights.
pub(super) struct HostLayer<'a> {
    attn_norm: HostLayerNorm,
    /// Query, key, value and output projections.
    attn: [Linear<'a>; 4],
    heads: usize,
    mlp_norm: HostLayerNorm,
    fc1: Linear<'a>,
    fc2: Linear<'a>,
}

impl<'a> HostLayer<'a> {
    /// The layer, when its norms are f32 and all six projections are quantised.
    pub(super) fn new(
        attn_norm: &burn::nn::LayerNorm,
        attn: [&'a Dense; 4],
        heads: usize,
        mlp_norm: &burn::nn::LayerNorm,
        [fc1, fc2]: [&'a Dense; 2],
    ) -> Option<Self> {
        let [q, k, v, o] = attn;
        Some(Self {
            attn_norm: HostLayerNorm::from_layer_norm(attn_norm)?,
            attn: [
                Linear::of(q)?,
                Linear::of(k)?,
                Linear::of(v)?,
                Linear::of(o)?,
            ],
            heads,
            mlp_norm: HostLayerNorm::from_layer_norm(mlp_norm)?,
            fc1: Linear::of(fc1)?,
            fc2: Linear::of(fc2)?,
        })
    }

    /// Applies the layer to the residual stream `x` (`[batch · t, d]`) in place.
    fn forward(&self, x: &mut [f32], batch: usize, t: usize, buf: &mut Buffers, isa: Isa) {
        let rows = batch * t;
        let d = self.attn_norm.gamma.len();
        let ffn = self.fc1.weight.n();
        buf.size(rows * d, rows * ffn);
        let [q, k, v, o] = &self.attn;

        self.attn_norm.apply(x, &mut buf.normed);
        buf.acts.requantize(&buf.normed, rows, d, isa);
        q.apply(&buf.acts, &mut buf.q, Epilogue::Store, isa);
        k.apply(&buf.acts, &mut buf.k, Epilogue::Store, isa);
        v.apply(&buf.acts, &mut buf.v, Epilogue::Store, isa);
        let shape = AttentionShape {
            batch,
            t,
            d,
            heads: self.heads,
        };
        attention(&buf.q, &buf.k, &buf.v, &mut buf.ctx, shape, isa);
        buf.acts.requantize(&buf.ctx, rows, d, isa);
        o.apply(&buf.acts, x, Epilogue::Accumulate, isa);

        self.mlp_norm.apply(x, &mut buf.normed);
        buf.acts.requantize(&buf.normed, rows, d, isa);
        self.fc1
            .apply(&buf.acts, &mut buf.hidden, Epilogue::Store, isa);
        buf.hidden
            .par_chunks_mut(GELU_CHUNK)
            .for_each(|values| gelu_slice(values, isa));
        buf.acts.requantize(&buf.hidden, rows, ffn, isa);
        self.fc2.apply(&buf.acts, x, Epilogue::Accumulate, isa);
    }
}

/// Scratch buffers the layers share, kept per thread (each layer resizes them to its
/// shape, which allocates only when an utterance is longer than any before).
struct Buffers {
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    ctx: Vec<f32>,
    hidden: Vec<f32>,
    acts: Activations,
}

impl Buffers {
    fn new() -> Self {
        Self {
            normed: Vec::new(),
            q: Vec::new(),
            k: Vec::new(),
            v: Vec::new(),
            ctx: Vec::new(),
            hidden: Vec::new(),
            acts: Activations::default(),
        }
    }

    /// Every buffer `[rows, d]`, the MLP's `[rows, ffn]`; contents are overwritten
    /// before they are read.
    fn size(&mut self, model: usize, hidden: usize) {
        for b in [
            &mut self.normed,
            &mut self.q,
            &mut self.k,
            &mut self.v,
            &mut self.ctx,
        ] {
            b.resize(model, 0.0);
        }
        self.hidden.resize(hidden, 0.0);
    }
}

/// Runs `layers` over the residual stream `x` (`[batch · t, d]`, in place), calling
/// `tap(done, x)` before the first layer and after each (`done` layers applied).
pub(super) fn run(
    layers: &[HostLayer],
    x: &mut [f32],
    batch: usize,
    t: usize,
    tap: impl FnMut(usize, &[f32]),
) {
    run_with(layers, x, batch, t, isa(), tap);
}

/// [`run`] with the kernels of `isa` (one of [`Isa::available`]).
pub(super) fn run_with(
    layers: &[HostLayer],
    x: &mut [f32],
    batch: usize,
    t: usize,
    isa: Isa,
    mut tap: impl FnMut(usize, &[f32]),
) {
    BUFFERS.with_borrow_mut(|buf| {
        tap(0, x);
        for (i, layer) in layers.iter().enumerate() {
            layer.forward(x, batch, t, buf, isa);
            tap(i + 1, x);
        }
    });
}

thread_local! {
    /// Each scoring thread's scratch buffers, kept from one utterance to the next: fresh
    /// ones each time would be fresh pages, zeroed by the kernel on first touch.
    static BUFFERS: RefCell<Buffers> = RefCell::new(Buffers::new());
}
