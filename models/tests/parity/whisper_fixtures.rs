//! Whisper on burn (flex CPU backend) vs transformers on the tiny random fixture model.

use crate::common;

use std::path::PathBuf;

use burn::prelude::*;
use common::{Reference, fixture, max_abs_diff};
use emomon_models::mel::{MelConfig, MelExtractor, Padding};
use emomon_models::safetensors_load::TensorStore;
use emomon_models::whisper::{Whisper, WhisperConfig, token_tensor};

const TOL: f32 = 1e-3;

fn device() -> Device {
    Device::flex()
}

fn model_dir() -> PathBuf {
    fixture("tiny-whisper")
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("f32 data")
}

/// 30 s padded features of reference clip `i`, computed by the Rust front end
/// (itself checked against transformers in `mel_fixtures.rs`).
fn padded_features(reference: &Reference, i: usize, device: &Device) -> Tensor<3> {
    let (_, audio) = reference.f32(&format!("audio.{i}"));
    let mel = MelExtractor::new(MelConfig::whisper(80))
        .expect("mel config")
        .compute(&audio, Padding::Chunk)
        .expect("mel");
    Tensor::from_data(
        TensorData::new(mel.data, [1, mel.n_mels, mel.n_frames]),
        device,
    )
}

#[test]
fn encoder_matches_transformers() {
    let device = device();
    let reference = Reference::load();
    let model = Whisper::load(&model_dir(), &device).expect("load tiny whisper");
    let (shape, feats) = reference.f32("mel80_padded.0");
    let x = Tensor::from_data(TensorData::new(feats, [1, shape[0], shape[1]]), &device);
    let enc = model.encode(x).expect("encode");
    let (want_shape, want) = reference.f32("encoder.0");
    assert_eq!(enc.dims(), [1, want_shape[0], want_shape[1]]);
    let d = max_abs_diff(&to_vec(enc), &want);
    println!("encoder.0: max |Δ| = {d:.3e}");
    assert!(d <= TOL, "encoder max |Δ| = {d}");
}

#[test]
fn decoder_logits_and_greedy_tokens_match_transformers() {
    let device = device();
    let reference = Reference::load();
    let model = Whisper::load(&model_dir(), &device).expect("load tiny whisper");
    let prompt = reference.ids("prompt");
    let vocab = model.config.vocab_size;
    for i in 0..reference.clips() {
        let enc = model
            .encode(padded_features(&reference, i, &device))
            .expect("encode");

        // Whole prompt in one pass.
        let mut cache = model.decoder.start(enc.clone());
        let logits = model
            .decoder
            .forward(token_tensor(&prompt, &device), &mut cache)
            .expect("decoder");
        assert_eq!(logits.dims(), [1, prompt.len(), vocab]);
        let (_, want) = reference.f32(&format!("prompt_logits.{i}"));
        let d = max_abs_diff(&to_vec(logits), &want);
        println!("prompt_logits.{i}: max |Δ| = {d:.3e}");
        assert!(d <= TOL, "prompt logits clip {i}: max |Δ| = {d}");

        // Greedy with the KV cache vs transformers' uncached recomputation.
        let steps = reference.ids(&format!("greedy_tokens.{i}")).len();
        let greedy = model.greedy(enc, &prompt, steps, None).expect("greedy");
        assert_eq!(
            greedy.tokens,
            reference.ids(&format!("greedy_tokens.{i}")),
            "clip {i}"
        );
        let (_, want) = reference.f32(&format!("greedy_logits.{i}"));
        let got: Vec<f32> = greedy.logits.concat();
        let d = max_abs_diff(&got, &want);
        println!("greedy_logits.{i}: max |Δ| = {d:.3e}");
        assert!(d <= TOL, "greedy logits clip {i}: max |Δ| = {d}");
    }
}

fn config() -> WhisperConfig {
    WhisperConfig::from_file(&model_dir().join("config.json")).expect("config.json")
}

#[test]
fn half_precision_checkpoints_convert_exactly() {
    let f32_path = model_dir().join("model.safetensors");
    let mut f32_store = TensorStore::from_files(&[f32_path]).expect("f32");
    for (file, round) in [
        (
            "model.f16.safetensors",
            (|v: f32| half::f16::from_f32(v).to_f32()) as fn(f32) -> f32,
        ),
        ("model.bf16.safetensors", |v: f32| {
            half::bf16::from_f32(v).to_f32()
        }),
    ] {
        let mut store =
            TensorStore::from_files(&[fixture("tiny-whisper-dtypes").join(file)]).expect(file);
        assert_eq!(store.names(), f32_store.names(), "{file}: tensor names");
        for name in store.names() {
            let shape = store.shape(&name).expect("shape").to_vec();
            let half = store.take_vec(&name, &shape).expect("half tensor");
            let full = f32_store.take_vec(&name, &shape).expect("f32 tensor");
            let rounded: Vec<f32> = full.iter().map(|&v| round(v)).collect();
            assert_eq!(
                half, rounded,
                "{file}: `{name}` is not the rounded f32 tensor"
            );
        }
        // And the whole model loads from it.
        let device = device();
        let store =
            TensorStore::from_files(&[fixture("tiny-whisper-dtypes").join(file)]).expect(file);
        Whisper::from_store(config(), store, &device).expect("model from half checkpoint");
    }
}

/// On the CPU the token embedding (Whisper's tied output projection, its largest
/// tensor) of a half checkpoint is kept in half precision: every half value converts to
/// f32 exactly, so the model must give the logits of the same checkpoint widened to f32
/// (full vocabulary, label rows and greedy steps), in half the memory.
#[test]
fn half_embedding_gives_the_logits_of_its_f32_values() {
    use safetensors::tensor::TensorView;
    let device = device();
    let features = || {
        let values: Vec<f32> = (0..80 * 200)
            .map(|i| ((i % 97) as f32 * 0.07).sin())
            .collect();
        Tensor::<3>::from_data(TensorData::new(values, [1, 80, 200]), &device)
    };
    for file in ["model.f16.safetensors", "model.bf16.safetensors"] {
        let path = fixture("tiny-whisper-dtypes").join(file);
        // The same checkpoint widened to f32, so every tensor is loaded as f32.
        let mut store = TensorStore::from_files(std::slice::from_ref(&path)).expect(file);
        let widened: Vec<(String, Vec<u8>, Vec<usize>)> = store
            .names()
            .into_iter()
            .map(|name| {
                let shape = store.shape(&name).expect("shape").to_vec();
                let values = store.take_vec(&name, &shape).expect("values");
                let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name, bytes, shape)
            })
            .collect();
        let views: Vec<(String, TensorView<'_>)> = widened
            .iter()
            .map(|(name, bytes, shape)| {
                let view = TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes);
                (name.clone(), view.expect("view"))
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("emomon-widened-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let wide_path = dir.join(format!("{file}.f32"));
        safetensors::serialize_to_file(views, None, &wide_path).expect("write");

        let half = Whisper::from_store(
            config(),
            TensorStore::from_files(&[path]).expect(file),
            &device,
        )
        .expect("half model");
        let wide = Whisper::from_store(
            config(),
            TensorStore::from_files(std::slice::from_ref(&wide_path)).expect("widened"),
            &device,
        )
        .expect("widened model");
        std::fs::remove_dir_all(&dir).ok();
        assert!(
            half.decoder.embedding_is_half(),
            "{file}: embedding held in f32"
        );
        assert!(!wide.decoder.embedding_is_half());
        // The decoder's step matrices are held in f16 where their values are f16 values:
        // all of them from the f16 checkpoint (widened or not); from the bf16 one, those
        // whose values all fit f16's precision (bf16 has 8 bits of mantissa, f16 11, but
        // f16's narrower exponent range turns tiny values subnormal).
        let held = half.decoder.f16_matrices();
        if file.contains(".f16.") {
            assert_eq!(held, 8 * config().decoder_layers, "{file}");
        }
        assert_eq!(wide.decoder.f16_matrices(), held, "{file} widened");

        let prompt = [401u32, 7, 42];
        let rows = [3u32, 415, 7, 0];
        let run = |m: &Whisper| {
            let states = m.encode(features()).expect("encode");
            let full = m.answer_logits(states.clone(), &prompt).expect("full");
            let some = m.answer_rows(states.clone(), &prompt, &rows).expect("rows");
            let greedy = m.greedy(states, &prompt, 4, None).expect("greedy");
            (full, some, greedy.tokens)
        };
        let (a, b) = (run(&half), run(&wide));
        let d = max_abs_diff(&a.0[0], &b.0[0]);
        assert!(d <= 1e-5, "{file}: full logits differ by {d}");
        assert_eq!(a.1, b.1, "{file}: label rows differ");
        for (i, &r) in rows.iter().enumerate() {
            let d = (a.1[0][i] - a.0[0][r as usize]).abs();
            assert!(
                d <= 1e-5,
                "{file}: row {r} differs from the full row by {d}"
            );
        }
        assert_eq!(a.2, b.2, "{file}: greedy tokens differ");
    }
}

#[test]
fn mismatched_checkpoint_names_every_problem() {
    use safetensors::tensor::TensorView;
    let bytes = std::fs::read(model_dir().join("model.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let mut tensors: Vec<(String, TensorView<'_>)> = Vec::new();
    let odd = vec![0u8; 4 * 3];
    for (name, view) in st.tensors() {
        match name.as_str() {
            "model.decoder.layer_norm.bias" => {} // dropped → missing
            "model.encoder.layers.1.fc1.bias" => tensors.push((
                name,
                TensorView::new(safetensors::Dtype::F32, vec![3], &odd).expect("view"),
            )),
            _ => tensors.push((name, view)),
        }
    }
    tensors.push((
        "model.encoder.extra.weight".into(),
        TensorView::new(safetensors::Dtype::F32, vec![3], &odd).expect("view"),
    ));
    let dir = std::env::temp_dir().join(format!("emomon-bad-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join("model.safetensors");
    safetensors::serialize_to_file(tensors, None, &path).expect("write");
    let err = Whisper::from_store(
        config(),
        TensorStore::from_files(&[path]).expect("open"),
        &device(),
    )
    .expect_err("must fail");
    let msg = err.to_string();
    println!("{msg}");
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        msg.contains("missing tensor `model.decoder.layer_norm.bias`"),
        "{msg}"
    );
    assert!(
        msg.contains("tensor `model.encoder.layers.1.fc1.bias` has shape [3], expected [128]"),
        "{msg}"
    );
    assert!(
        msg.contains("unused tensor `model.encoder.extra.weight`"),
        "{msg}"
    );
}

#[test]
fn encoder_accepts_unpadded_features() {
    let device = device();
    let reference = Reference::load();
    let model = Whisper::load(&model_dir(), &device).expect("load");
    let (shape, feats) = reference.f32("mel80.1");
    let x = Tensor::from_data(TensorData::new(feats, [1, shape[0], shape[1]]), &device);
    let enc = model.encode(x).expect("encode");
    assert_eq!(enc.dims(), [1, shape[1].div_ceil(2), model.config.d_model]);
    let too_long = Tensor::<3>::zeros([1, 80, 3002], &device);
    assert!(model.encode(too_long).is_err());
}

#[test]
fn batched_answer_logits_equal_reference() {
    let device = device();
    let reference = Reference::load();
    let model = Whisper::load(&model_dir(), &device).expect("load");
    let prompt = reference.ids("prompt");
    let n = reference.clips();
    let feats: Vec<Tensor<3>> = (0..n)
        .map(|i| padded_features(&reference, i, &device))
        .collect();
    let enc = model.encode(Tensor::cat(feats, 0)).expect("batched encode");
    let rows = model.answer_logits(enc, &prompt).expect("answer logits");
    assert_eq!(rows.len(), n);
    let vocab = model.config.vocab_size;
    for (i, row) in rows.iter().enumerate() {
        let (_, all) = reference.f32(&format!("prompt_logits.{i}"));
        let want = &all[all.len() - vocab..];
        let d = max_abs_diff(row, want);
        println!("batched answer logits clip {i}: max |Δ| = {d:.3e}");
        assert!(d <= TOL, "clip {i}: {d}");
    }
}

#[test]
fn sharded_checkpoint_loads_like_a_single_file() {
    use safetensors::tensor::TensorView;
    let bytes = std::fs::read(model_dir().join("model.safetensors")).expect("read");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
    let dir = std::env::temp_dir().join(format!("emomon-sharded-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    type Shard<'a> = Vec<(String, TensorView<'a>)>;
    let (mut a, mut b): (Shard<'_>, Shard<'_>) = (Vec::new(), Vec::new());
    let mut map = serde_json::Map::new();
    for (name, view) in st.tensors() {
        let shard = if name.starts_with("model.encoder") {
            1
        } else {
            2
        };
        let file = format!("model-0000{shard}-of-00002.safetensors");
        map.insert(name.clone(), serde_json::Value::String(file));
        if shard == 1 {
            a.push((name, view))
        } else {
            b.push((name, view))
        }
    }
    safetensors::serialize_to_file(a, None, &dir.join("model-00001-of-00002.safetensors"))
        .expect("shard 1");
    safetensors::serialize_to_file(b, None, &dir.join("model-00002-of-00002.safetensors"))
        .expect("shard 2");
    let index = serde_json::json!({ "metadata": {}, "weight_map": map });
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).expect("index");
    std::fs::copy(model_dir().join("config.json"), dir.join("config.json")).expect("config");

    let device = device();
    let sharded = Whisper::load(&dir, &device).expect("sharded load");
    let single = Whisper::load(&model_dir(), &device).expect("single load");
    let reference = Reference::load();
    let enc_a = sharded
        .encode(padded_features(&reference, 0, &device))
        .expect("encode");
    let enc_b = single
        .encode(padded_features(&reference, 0, &device))
        .expect("encode");
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(to_vec(enc_a), to_vec(enc_b));
}
