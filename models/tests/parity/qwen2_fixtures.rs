//! Qwen2 decoder on burn (flex) vs transformers' `Qwen2ForCausalLM` on a tiny random model.

use crate::common;

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::qwen2::{Qwen2, Qwen2Cache};
use emomon_models::whisper::token_tensor;

const TOL: f32 = 1e-3;

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 data")
}

#[test]
fn qwen2_logits_and_cached_greedy_match_transformers() {
    let device = Device::flex();
    let reference = Reference::load_from(&fixture("tiny-qwen2-ref.safetensors"));
    let (config, model) = Qwen2::load(&fixture("tiny-qwen2"), &device).expect("load tiny qwen2");
    let prompt = reference.ids("prompt");

    let mut cache = Qwen2Cache::default();
    let logits = model
        .forward(token_tensor(&prompt, &device), &mut cache)
        .expect("forward");
    assert_eq!(logits.dims(), [1, prompt.len(), config.vocab_size]);
    let (_, want) = reference.f32("prompt_logits");
    let d = max_abs_diff(&to_vec(logits.clone()), &want);
    println!("qwen2 prompt logits: max |Δ| = {d:.3e}");
    assert!(d <= TOL, "prompt logits max |Δ| = {d}");

    // Greedy with the KV cache vs transformers' uncached recomputation.
    let want_tokens = reference.ids("greedy_tokens");
    let (_, want_steps) = reference.f32("greedy_logits");
    let v = config.vocab_size;
    let t = prompt.len();
    let mut last = to_vec(logits.slice(s![0..1, t - 1..t, ..]));
    let mut got = Vec::new();
    let mut worst = 0.0f32;
    for (step, want_step) in want_steps.chunks(v).enumerate() {
        worst = worst.max(max_abs_diff(&last, want_step));
        let next = last
            .iter()
            .enumerate()
            .fold(0, |b, (i, &x)| if x > last[b] { i } else { b }) as u32;
        got.push(next);
        if step + 1 < want_tokens.len() {
            let l = model
                .forward(token_tensor(&[next], &device), &mut cache)
                .expect("step");
            last = to_vec(l);
        }
    }
    println!("qwen2 greedy step logits (KV cache): max |Δ| = {worst:.3e}");
    assert_eq!(got, want_tokens);
    assert!(worst <= TOL, "greedy logits max |Δ| = {worst}");
}
