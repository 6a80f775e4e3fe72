//! Device selection: which burn backend a model runs on. Kept apart from the models
//! so that the CLI can name and log a device without knowing any model family.

use burn::prelude::Device;

/// Where the model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// burn's `flex` CPU backend (SIMD, rayon threads).
    Cpu,
    /// burn's wgpu backend (GPU, or lavapipe in CI); needs the `wgpu` feature.
    Wgpu,
}

impl DeviceKind {
    /// `cpu` or `wgpu`, as logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Wgpu => "wgpu",
        }
    }
}

/// The device asked for is not in this build.
#[derive(Debug, thiserror::Error)]
#[error(
    "this emomon was built without GPU support (the `wgpu` cargo feature); use --device cpu \
     or rebuild with `--features wgpu`"
)]
pub struct DeviceError;

/// The burn device for `kind`; `wgpu` fails with a clear message when this build lacks
/// the `wgpu` feature.
pub fn open_device(kind: DeviceKind) -> Result<Device, DeviceError> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => Ok(Device::wgpu(Default::default())),
        #[cfg(not(feature = "wgpu"))]
        DeviceKind::Wgpu => Err(DeviceError),
    }
}
