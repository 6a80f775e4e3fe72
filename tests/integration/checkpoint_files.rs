//! The safetensors loader reads each tensor from its file when asked for (it no longer
//! holds the whole checkpoint in memory), so it checks the header against the file
//! itself: a truncated or inconsistent file is a clear error naming the file.

use std::path::{Path, PathBuf};

use emomon_models::safetensors_load::TensorStore;

/// A one-tensor safetensors file (`w`, f32, shape [2, 3]) whose header claims
/// `claimed` data bytes, followed by `data`.
fn file_with(dir: &Path, claimed: usize, data: &[u8]) -> PathBuf {
    let header = format!(r#"{{"w":{{"dtype":"F32","shape":[2,3],"data_offsets":[0,{claimed}]}}}}"#);
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    let path = dir.join(format!("w-{claimed}-{}.safetensors", data.len()));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn tensors_are_read_from_the_file_when_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let values: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    let path = file_with(dir.path(), 24, &data);
    let mut store = TensorStore::from_files(&[path]).unwrap();
    assert_eq!(store.take_vec("w", &[2, 3]), Some(values));
    store.finish().unwrap();
}

#[test]
fn a_truncated_or_inconsistent_file_is_an_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let path = file_with(dir.path(), 24, &[0u8; 20]);
    let err = TensorStore::from_files(&[path]).unwrap_err().to_string();
    assert!(
        err.contains("tensor `w` extends past the end of the file"),
        "{err}"
    );
    // 20 bytes cannot hold 6 f32 values.
    let path = file_with(dir.path(), 20, &[0u8; 20]);
    let err = TensorStore::from_files(&[path]).unwrap_err().to_string();
    assert!(
        err.contains("not a valid safetensors file: invalid header"),
        "{err}"
    );
    let path = dir.path().join("tiny.safetensors");
    std::fs::write(&path, [1u8, 2]).unwrap();
    let err = TensorStore::from_files(&[path]).unwrap_err().to_string();
    assert!(err.contains("not a valid safetensors file"), "{err}");
}
