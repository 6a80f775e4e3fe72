//! Loading Hugging Face safetensors checkpoints into burn tensors by explicit name.
//!
//! Why not a generic "apply the whole file to the module" loader: a silent partial load
//! (a renamed tensor left at its random init, a transposed matrix of the right element
//! count) is the worst failure a fidelity-critical model can have. Every model here asks
//! for each tensor by its HF name and expected shape; the store records every problem
//! instead of stopping at the first, and [`TensorStore::finish`] fails with a list of
//! all missing, mis-shaped and unused tensors.
//!
//! Only the headers are read up front; each tensor is read from its file when asked
//! for and converted to f32 (from f32, f16 or bf16), so a checkpoint is never whole in
//! memory beside the model built from it (a 145 MB f16 Whisper base file used to add
//! 145 MB to the peak while its 290 MB of f32 weights were built). Sharded checkpoints
//! (`model.safetensors.index.json`) are supported.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use half::vec::HalfBitsVecExt;
use safetensors::Dtype;
use safetensors::tensor::Metadata;

/// Largest header accepted (the safetensors crate's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Bytes read from a checkpoint at a time (a multiple of every dtype's width).
const READ_CHUNK: usize = 1 << 20;

/// Errors while reading checkpoints or matching tensors to a model.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// File that failed.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A file is not a valid safetensors file.
    #[error("{path}: not a valid safetensors file: {message}")]
    Format {
        /// File that failed.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A JSON file (config, shard index) is invalid.
    #[error("{path}: {message}")]
    Json {
        /// File that failed.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No checkpoint file found in a model directory.
    #[error("{dir}: no model.safetensors or model.safetensors.index.json")]
    NoWeights {
        /// Directory searched.
        dir: PathBuf,
    },
    /// The same tensor name appears in two shards.
    #[error("tensor `{name}` appears in both {first} and {second}")]
    Duplicate {
        /// Tensor name.
        name: String,
        /// First file.
        first: PathBuf,
        /// Second file.
        second: PathBuf,
    },
    /// The checkpoint does not match the model; every problem is listed.
    #[error("checkpoint {source_desc} does not match the model:\n{report}")]
    Mismatch {
        /// Which files were loaded.
        source_desc: String,
        /// All problems, one per line.
        report: MismatchReport,
    },
}

/// Every way a checkpoint failed to match the model, collected in one pass.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct MismatchReport {
    /// Tensors the model needs that the checkpoint lacks.
    pub missing: Vec<String>,
    /// Tensors present with a different shape: (name, expected, found).
    pub mis_shaped: Vec<(String, Vec<usize>, Vec<usize>)>,
    /// Tensors stored in a dtype we cannot convert: (name, dtype).
    pub bad_dtype: Vec<(String, String)>,
    /// Tensors in the checkpoint the model never asked for.
    pub unused: Vec<String>,
}

impl MismatchReport {
    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.missing.is_empty()
            && self.mis_shaped.is_empty()
            && self.bad_dtype.is_empty()
            && self.unused.is_empty()
    }
}

impl fmt::Display for MismatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for name in &self.missing {
            writeln!(f, "  missing tensor `{name}`")?;
        }
        for (name, want, got) in &self.mis_shaped {
            writeln!(f, "  tensor `{name}` has shape {got:?}, expected {want:?}")?;
        }
        for (name, dtype) in &self.bad_dtype {
            writeln!(
                f,
                "  tensor `{name}` has dtype {dtype}; supported: F32, F16, BF16"
            )?;
        }
        for name in &self.unused {
            writeln!(f, "  unused tensor `{name}`")?;
        }
        Ok(())
    }
}

/// A tensor's values in the half precision it is stored in (see
/// [`TensorStore::take_half`]).
#[derive(Debug, Clone)]
pub enum HalfValues {
    /// IEEE binary16.
    F16(Vec<half::f16>),
    /// bfloat16.
    Bf16(Vec<half::bf16>),
}

impl HalfValues {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Self::F16(v) => v.len(),
            Self::Bf16(v) => v.len(),
        }
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where one tensor lives: shard index, dtype, shape, byte range in that shard's data.
#[derive(Debug, Clone)]
struct Entry {
    shard: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// A safetensors checkpoint (one or more shards) that hands out tensors by name,
/// reading each from its file when asked for.
pub struct TensorStore {
    files: Vec<PathBuf>,
    /// Each shard, open (`Entry` offsets are absolute).
    shards: Vec<File>,
    /// One chunk of a tensor's raw bytes ([`READ_CHUNK`]), reused.
    buffer: Vec<u8>,
    entries: HashMap<String, Entry>,
    used: BTreeSet<String>,
    report: MismatchReport,
}

impl fmt::Debug for TensorStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TensorStore")
            .field("files", &self.files)
            .field("tensors", &self.entries.len())
            .finish_non_exhaustive()
    }
}

/// Reads a JSON file (config.json, an index…) into `T`; errors name the file.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| LoadError::Json {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

impl TensorStore {
    /// Opens the checkpoint of a HF model directory: `model.safetensors`, or the shards
    /// listed in `model.safetensors.index.json`.
    pub fn from_dir(dir: &Path) -> Result<Self, LoadError> {
        let single = dir.join("model.safetensors");
        if single.is_file() {
            return Self::from_files(&[single]);
        }
        let index = dir.join("model.safetensors.index.json");
        if !index.is_file() {
            return Err(LoadError::NoWeights {
                dir: dir.to_path_buf(),
            });
        }
        let json: serde_json::Value = read_json(&index)?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| LoadError::Json {
                path: index.clone(),
                message: "no `weight_map` object".into(),
            })?;
        let mut files = BTreeSet::new();
        for (name, file) in map {
            let file = file.as_str().ok_or_else(|| LoadError::Json {
                path: index.clone(),
                message: format!("weight_map entry for `{name}` is not a file name"),
            })?;
            files.insert(dir.join(file));
        }
        let files: Vec<PathBuf> = files.into_iter().collect();
        Self::from_files(&files)
    }

    /// Opens one or more safetensors files as a single checkpoint.
    pub fn from_files(paths: &[PathBuf]) -> Result<Self, LoadError> {
        let mut shards = Vec::with_capacity(paths.len());
        let mut entries: HashMap<String, Entry> = HashMap::new();
        for (shard, path) in paths.iter().enumerate() {
            let io = |source| LoadError::Io {
                path: path.clone(),
                source,
            };
            let format = |message: String| LoadError::Format {
                path: path.clone(),
                message,
            };
            let mut file = File::open(path).map_err(io)?;
            let file_len = file.metadata().map_err(io)?.len();
            let mut len = [0u8; 8];
            file.read_exact(&mut len)
                .map_err(|_| format("shorter than its 8-byte header length".into()))?;
            let header_len = u64::from_le_bytes(len);
            if header_len > MAX_HEADER || 8 + header_len > file_len {
                return Err(format(format!(
                    "header length {header_len} does not fit the file ({file_len} bytes)"
                )));
            }
            let mut header = vec![0u8; header_len as usize];
            file.read_exact(&mut header).map_err(io)?;
            // Deserialising checks each tensor's byte count against its dtype and shape.
            let metadata: Metadata = serde_json::from_slice(&header)
                .map_err(|e| format(format!("invalid header: {e}")))?;
            let base = 8 + header_len as usize;
            for (name, info) in metadata.tensors() {
                let entry = Entry {
                    shard,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: base + info.data_offsets.0,
                    end: base + info.data_offsets.1,
                };
                if entry.end < entry.start || entry.end as u64 > file_len {
                    return Err(format(format!(
                        "tensor `{name}` extends past the end of the file"
                    )));
                }
                if let Some(prev) = entries.insert(name.clone(), entry) {
                    return Err(LoadError::Duplicate {
                        name,
                        first: paths[prev.shard].clone(),
                        second: path.clone(),
                    });
                }
            }
            shards.push(file);
        }
        Ok(Self {
            files: paths.to_vec(),
            shards,
            buffer: Vec::new(),
            entries,
            used: BTreeSet::new(),
            report: MismatchReport::default(),
        })
    }

    /// Names of all tensors in the checkpoint, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.entries.keys().cloned().collect();
        v.sort();
        v
    }

    /// Whether the checkpoint holds `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Shape of `name`, if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The values of `name` as f32, checked against `shape`. Problems are recorded
    /// (see [`finish`](Self::finish)) and `None` is returned.
    pub fn take_vec(&mut self, name: &str, shape: &[usize]) -> Option<Vec<f32>> {
        let Some(entry) = self.entries.get(name) else {
            self.report.missing.push(name.to_string());
            return None;
        };
        self.used.insert(name.to_string());
        if entry.shape != shape {
            self.report
                .mis_shaped
                .push((name.to_string(), shape.to_vec(), entry.shape.clone()));
            return None;
        }
        if !matches!(entry.dtype, Dtype::F32 | Dtype::F16 | Dtype::BF16) {
            self.report
                .bad_dtype
                .push((name.to_string(), format!("{:?}", entry.dtype)));
            return None;
        }
        let (shard, dtype, start, end) = (entry.shard, entry.dtype, entry.start, entry.end);
        match self.read_f32(shard, dtype, start, end) {
            Ok(values) => Some(values),
            Err(e) => {
                // The file changed or failed under us: as good as a missing tensor.
                tracing::warn!(file = %self.files[shard].display(), "cannot read tensor `{name}`: {e}");
                self.report.missing.push(name.to_string());
                None
            }
        }
    }

    /// Reads bytes `start..end` of shard `shard` as f32 values, converting from `dtype`
    /// (F32, F16 or BF16) one chunk of at most [`READ_CHUNK`] bytes at a time, so the
    /// raw bytes are never whole in memory beside the values (for Whisper's token
    /// embedding that was 53 MB, kept until the store was dropped).
    fn read_f32(
        &mut self,
        shard: usize,
        dtype: Dtype,
        start: usize,
        end: usize,
    ) -> std::io::Result<Vec<f32>> {
        let width = if dtype == Dtype::F32 { 4 } else { 2 };
        let mut values = Vec::with_capacity((end - start) / width);
        self.read_chunks(shard, start, end, |bytes| match dtype {
            Dtype::F32 => values.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            Dtype::F16 => values.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            Dtype::BF16 => values.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            _ => unreachable!("callers check the dtype"),
        })?;
        Ok(values)
    }

    /// Hands bytes `start..end` of shard `shard` to `each`, at most [`READ_CHUNK`]
    /// bytes at a time.
    fn read_chunks(
        &mut self,
        shard: usize,
        start: usize,
        end: usize,
        mut each: impl FnMut(&[u8]),
    ) -> std::io::Result<()> {
        let mut file = &self.shards[shard];
        file.seek(SeekFrom::Start(start as u64))?;
        let mut left = end - start;
        while left > 0 {
            let n = left.min(READ_CHUNK);
            self.buffer.resize(n, 0);
            file.read_exact(&mut self.buffer)?;
            each(&self.buffer);
            left -= n;
        }
        Ok(())
    }

    /// The values of `name` in the half precision they are stored in, when the
    /// checkpoint holds it in f16 or bf16 with shape `shape` (half the memory of f32, and
    /// each value converts to f32 exactly). Otherwise `None`, recording nothing: the
    /// caller then asks [`take`](Self::take) or [`take_vec`](Self::take_vec), which
    /// convert or report the problem.
    pub fn take_half(&mut self, name: &str, shape: &[usize]) -> Option<HalfValues> {
        let entry = self.entries.get(name)?;
        if entry.shape != shape || !matches!(entry.dtype, Dtype::F16 | Dtype::BF16) {
            return None;
        }
        let (shard, dtype, start, end) = (entry.shard, entry.dtype, entry.start, entry.end);
        let mut bits = Vec::with_capacity((end - start) / 2);
        let read = self.read_chunks(shard, start, end, |bytes| {
            bits.extend(
                bytes
                    .chunks_exact(2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]])),
            );
        });
        if let Err(e) = read {
            // Left to `take`, which reads it again and reports what fails.
            tracing::warn!(file = %self.files[shard].display(), "cannot read tensor `{name}`: {e}");
            return None;
        }
        self.used.insert(name.to_string());
        // Reinterpreting the bits in place: no second copy.
        Some(match dtype {
            Dtype::F16 => HalfValues::F16(bits.reinterpret_into()),
            _ => HalfValues::Bf16(bits.reinterpret_into()),
        })
    }

    /// Tensor `name` with shape `shape` on `device`. On any problem the problem is
    /// recorded and a zero tensor of the expected shape is returned, so that a model can
    /// be assembled completely and *all* problems reported by [`finish`](Self::finish).
    pub fn take<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Tensor<D> {
        match self.take_vec(name, &shape) {
            Some(values) => Tensor::from_data(TensorData::new(values, shape), device),
            None => Tensor::zeros(shape, device),
        }
    }

    /// Marks `name` as deliberately ignored (e.g. buffers the reference recomputes).
    pub fn ignore(&mut self, name: &str) {
        if self.entries.contains_key(name) {
            self.used.insert(name.to_string());
        }
    }

    /// Ends loading: `Ok` only if every requested tensor was found with the right shape
    /// and dtype and every tensor in the checkpoint was used.
    pub fn finish(mut self) -> Result<(), LoadError> {
        let mut unused: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !self.used.contains(*k))
            .cloned()
            .collect();
        unused.sort();
        self.report.unused = unused;
        if self.report.is_empty() {
            return Ok(());
        }
        let source_desc = self
            .files
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        Err(LoadError::Mismatch {
            source_desc,
            report: self.report,
        })
    }
}
