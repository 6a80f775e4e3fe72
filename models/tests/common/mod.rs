//! Shared helpers for the fixture tests: paths and reading reference tensors written by
//! `scripts/make_fixtures.py`.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};

/// `models/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(rel)
}

/// A reference tensor: shape and values (f32 tensors as f32, i64 tensors as i64).
#[derive(Debug, Clone)]
pub enum RefTensor {
    F32(Vec<usize>, Vec<f32>),
    I64(Vec<usize>, Vec<i64>),
}

/// All tensors of `tiny-whisper-ref.safetensors`.
pub struct Reference(BTreeMap<String, RefTensor>);

impl Reference {
    pub fn load() -> Self {
        Self::load_from(&fixture("tiny-whisper-ref.safetensors"))
    }

    pub fn load_from(path: &std::path::Path) -> Self {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let st = SafeTensors::deserialize(&bytes).expect("reference safetensors");
        let mut map = BTreeMap::new();
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            let t = match view.dtype() {
                Dtype::F32 => RefTensor::F32(
                    shape,
                    data.chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                ),
                Dtype::I64 => RefTensor::I64(
                    shape,
                    data.chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                        .collect(),
                ),
                other => panic!("unexpected dtype {other:?} for {name}"),
            };
            map.insert(name, t);
        }
        Self(map)
    }

    pub fn f32(&self, name: &str) -> (Vec<usize>, Vec<f32>) {
        match self.0.get(name) {
            Some(RefTensor::F32(s, v)) => (s.clone(), v.clone()),
            other => panic!("reference `{name}`: expected f32, got {other:?}"),
        }
    }

    pub fn try_f32(&self, name: &str) -> Option<(Vec<usize>, Vec<f32>)> {
        match self.0.get(name) {
            Some(RefTensor::F32(s, v)) => Some((s.clone(), v.clone())),
            _ => None,
        }
    }

    pub fn ids(&self, name: &str) -> Vec<u32> {
        match self.0.get(name) {
            Some(RefTensor::I64(_, v)) => v.iter().map(|&x| x as u32).collect(),
            other => panic!("reference `{name}`: expected i64, got {other:?}"),
        }
    }

    pub fn clips(&self) -> usize {
        self.0.keys().filter(|k| k.starts_with("audio.")).count()
    }
}

/// Largest absolute difference; panics on length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0f32, f32::max)
}

/// A test that cannot run here (shared data, set-up weights or a tool missing) prints a
/// notice and returns, so a fresh clone passes; with `EMOMON_REQUIRE_DATA` set (CI sets
/// it) the missing prerequisite is a failure instead, so CI cannot pass with the deeper
/// tests silently gone.
pub fn skip(test: &str, why: impl std::fmt::Display) {
    if std::env::var_os("EMOMON_REQUIRE_DATA").is_some_and(|v| !v.is_empty() && v != "0") {
        panic!("{test} cannot run: {why} (EMOMON_REQUIRE_DATA is set)");
    }
    eprintln!("NOTICE: {test} skipped: {why}");
}
