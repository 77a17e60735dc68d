//! Choosing a burn backend by name, for programs that take it as a flag.
//!
//! The names are those of this crate's backend features: `flex`, `ndarray`, `wgpu`, `cuda`.
//! A name is available when its feature is compiled in.
//!
//! ```
//! let names = burn_senn::backends::available();
//! # #[cfg(feature = "flex")]
//! assert!(names.contains(&"flex"));
//! assert!(burn_senn::backends::device("abacus").is_err());
//! ```

use burn::tensor::Device;

/// A backend name that is unknown or not compiled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend `{name}` is not available; this build has: {}", available().join(", "))]
pub struct UnknownBackend {
    /// The name asked for.
    pub name: String,
}

/// The backend names compiled into this build, in the order `flex`, `ndarray`, `wgpu`, `cuda`.
pub fn available() -> Vec<&'static str> {
    let mut names = Vec::new();
    if cfg!(feature = "flex") {
        names.push("flex");
    }
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// The backend a program should use when the user names none: the one in the `BURN_DEVICE`
/// environment variable when it is set and compiled in, else the first of [`available`].
pub fn default_name() -> &'static str {
    let names = available();
    let chosen = std::env::var("BURN_DEVICE")
        .ok()
        .and_then(|wanted| names.iter().copied().find(|name| *name == wanted));
    chosen.or_else(|| names.first().copied()).unwrap_or("flex")
}

/// The default device of the backend called `name` (`wgpu`: the best adapter, Mesa's
/// lavapipe where there is no GPU; `cuda`: GPU 0). Not yet differentiable: call
/// `.autodiff()` on it for training.
pub fn device(name: &str) -> Result<Device, UnknownBackend> {
    let unknown = || UnknownBackend {
        name: name.to_string(),
    };
    match name {
        #[cfg(feature = "flex")]
        "flex" => Ok(Device::flex()),
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0)),
        _ => Err(unknown()),
    }
}
