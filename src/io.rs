//! Saving and loading grown [`ExpandableMlp`]s.
//!
//! A model is saved as two files side by side:
//! - `NAME.bpk`, a burnpack record of the weights whose metadata also holds the network's
//!   configuration, so the file alone is enough to rebuild a network of the right shape;
//! - `NAME.json`, the same configuration and the [`Architecture`], for people and tools.

use std::fs;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use burn_pack::{Reader, Writer};
use serde::{Deserialize, Serialize};

use crate::error::PersistenceError;
use crate::mlp::{Architecture, ExpandableMlp, ExpandableMlpConfig};

/// The burnpack metadata key under which the configuration is stored.
pub const CONFIG_METADATA_KEY: &str = "burn-senn.expandable-mlp.config";

/// The contents of the architecture JSON written beside a saved model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedArchitecture {
    /// The configuration that rebuilds a network of the saved shape.
    pub config: ExpandableMlpConfig,
    /// The saved network's shape.
    pub architecture: Architecture,
}

/// Where [`ExpandableMlp::save`] wrote a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedFiles {
    /// The weights (burnpack).
    pub weights: PathBuf,
    /// The architecture (JSON).
    pub architecture: PathBuf,
}

impl SavedFiles {
    /// The two file names for a model saved under `path`: its extension, if any, is replaced
    /// by `bpk` and `json`.
    pub fn for_path(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        Self {
            weights: path.with_extension("bpk"),
            architecture: path.with_extension("json"),
        }
    }
}

impl ExpandableMlp {
    /// Saves the network's weights to `PATH.bpk` and its architecture to `PATH.json`.
    ///
    /// Each file is written to a temporary file beside it and then renamed into place, so a
    /// failed save leaves the previous file intact.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<SavedFiles, PersistenceError> {
        let files = SavedFiles::for_path(path);
        let saved = SavedArchitecture {
            config: self.config(),
            architecture: self.architecture(),
        };
        let config_json = serde_json::to_string(&saved.config).expect("configs serialise");
        let architecture_json =
            serde_json::to_string_pretty(&saved).expect("architectures serialise");

        let write_error = |reason: String| PersistenceError::Io {
            action: "write",
            path: files.weights.clone(),
            source: std::io::Error::other(reason),
        };
        let bytes = self
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| write_error(e.to_string()))?;
        let tensors = Reader::from_bytes(bytes)
            .and_then(Reader::into_tensors)
            .map_err(|e| write_error(e.to_string()))?;
        let weights = Writer::new(tensors)
            .with_metadata(CONFIG_METADATA_KEY, &config_json)
            .into_bytes()
            .map_err(|e| write_error(e.to_string()))?;
        let io_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| PersistenceError::Io {
                action: "write",
                path,
                source,
            }
        };
        // Both files are staged first, so a failure leaves the previous pair as it was.
        let staged_weights = stage(&files.weights, &weights).map_err(io_error(&files.weights))?;
        let staged_json = stage(&files.architecture, architecture_json.as_bytes())
            .inspect_err(|_| discard(&staged_weights))
            .map_err(io_error(&files.architecture))?;
        fs::rename(&staged_weights, &files.weights)
            .inspect_err(|_| {
                discard(&staged_weights);
                discard(&staged_json);
            })
            .map_err(io_error(&files.weights))?;
        fs::rename(&staged_json, &files.architecture)
            .inspect_err(|_| {
                // The new weights are in place and load on their own; an old JSON beside
                // them would contradict them.
                discard(&staged_json);
                discard(&files.architecture);
            })
            .map_err(io_error(&files.architecture))?;
        Ok(files)
    }

    /// Loads a network saved by [`save`](Self::save) onto `device`, whatever shape it had
    /// grown to.
    ///
    /// The weights file alone is enough. When the architecture JSON is there too, it must
    /// describe the same network.
    ///
    /// # Returns
    ///
    /// The network with its saved weights and parameter ids, or an error that says whether
    /// the file is missing, not a model at all, truncated or corrupt, not an `ExpandableMlp`,
    /// or at odds with its JSON.
    pub fn load(path: impl AsRef<Path>, device: &Device) -> Result<Self, PersistenceError> {
        let files = SavedFiles::for_path(path);
        let bytes = fs::read(&files.weights).map_err(|source| PersistenceError::Io {
            action: "read",
            path: files.weights.clone(),
            source,
        })?;
        let config = read_config(&files.weights, &bytes)?;
        let not_ours = |reason: String| PersistenceError::NotAnExpandableMlp {
            path: files.weights.clone(),
            reason,
        };
        let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| corrupt(&files.weights, e.to_string()))?;
        let network = config
            .try_init(device)
            .map_err(|e| not_ours(format!("its configuration is invalid: {e}")))?
            .try_load_record(record)
            .map_err(|e| not_ours(e.to_string()))?;

        if files.architecture.exists() {
            check_architecture_file(&files, &network)?;
        }
        Ok(network)
    }
}

impl ExpandableMlpConfig {
    /// This configuration with its sizes (`d_input`, `hidden`, `d_output`) read from the
    /// weight shapes of the [`ExpandableMlp`] stored under `prefix` in a burnpack record,
    /// such as a Learner checkpoint of a model whose field `network` is an `ExpandableMlp`
    /// (`prefix = "network."`). Build the model from it before loading the record: a record
    /// loads only into a module of the same shape.
    ///
    /// # Returns
    ///
    /// The configuration, or an error if the file cannot be read or holds no
    /// `{prefix}layers.{i}.weight` tensors.
    pub fn with_shapes_from_record(
        &self,
        path: impl AsRef<Path>,
        prefix: &str,
    ) -> Result<Self, PersistenceError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| PersistenceError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        check_magic(path, &bytes)?;
        let tensors = Reader::from_bytes(Bytes::from_bytes_vec(bytes))
            .and_then(Reader::into_tensors)
            .map_err(|e| corrupt(path, e.to_string()))?;
        let mut weights: Vec<(usize, [usize; 2])> = tensors
            .iter()
            .filter_map(|t| layer_weight_shape(&t.name, &t.shape, prefix))
            .collect();
        weights.sort_unstable();
        let consecutive = weights
            .iter()
            .enumerate()
            .all(|(i, (index, _))| i == *index);
        let chained = weights.windows(2).all(|w| w[0].1[1] == w[1].1[0]);
        match (weights.first(), weights.last()) {
            (Some((_, first)), Some((_, last))) if consecutive && chained => {
                let mut config = self.clone();
                config.d_input = first[0];
                config.d_output = last[1];
                config.hidden = weights[..weights.len() - 1]
                    .iter()
                    .map(|(_, s)| s[1])
                    .collect();
                Ok(config)
            }
            _ => Err(PersistenceError::NotAnExpandableMlp {
                path: path.to_path_buf(),
                reason: format!("no chain of `{prefix}layers.<i>.weight` matrices"),
            }),
        }
    }
}

/// `(i, [rows, columns])` for a tensor named `{prefix}layers.{i}.weight` of rank 2.
fn layer_weight_shape(name: &str, shape: &[usize], prefix: &str) -> Option<(usize, [usize; 2])> {
    let index = name
        .strip_prefix(prefix)?
        .strip_prefix("layers.")?
        .strip_suffix(".weight")?
        .parse()
        .ok()?;
    match shape {
        [rows, columns] => Some((index, [*rows, *columns])),
        _ => None,
    }
}

fn check_magic(path: &Path, bytes: &[u8]) -> Result<(), PersistenceError> {
    let magic = burn_pack::MAGIC_NUMBER.to_le_bytes();
    if bytes.len() < magic.len() || bytes[..magic.len()] != magic {
        return Err(PersistenceError::NotAModel {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Parses the burnpack header and reads the stored configuration; the tensor data is
/// checked when the record itself is parsed.
fn read_config(path: &Path, bytes: &[u8]) -> Result<ExpandableMlpConfig, PersistenceError> {
    check_magic(path, bytes)?;
    let reader = Reader::from_bytes(Bytes::from_bytes_vec(bytes.to_vec()))
        .map_err(|e| corrupt(path, e.to_string()))?;
    let config = reader.metadata().get(CONFIG_METADATA_KEY).cloned();
    let config = config.ok_or_else(|| PersistenceError::NotAnExpandableMlp {
        path: path.to_path_buf(),
        reason: format!("its metadata has no `{CONFIG_METADATA_KEY}` entry"),
    })?;
    serde_json::from_str(&config).map_err(|e| PersistenceError::NotAnExpandableMlp {
        path: path.to_path_buf(),
        reason: format!("its stored configuration does not parse: {e}"),
    })
}

fn corrupt(path: &Path, reason: String) -> PersistenceError {
    PersistenceError::Corrupt {
        path: path.to_path_buf(),
        reason,
    }
}

/// Checks that the JSON beside the weights describes the loaded network.
fn check_architecture_file(
    files: &SavedFiles,
    network: &ExpandableMlp,
) -> Result<(), PersistenceError> {
    let text = fs::read_to_string(&files.architecture).map_err(|source| PersistenceError::Io {
        action: "read",
        path: files.architecture.clone(),
        source,
    })?;
    let saved: SavedArchitecture =
        serde_json::from_str(&text).map_err(|e| PersistenceError::InvalidArchitecture {
            path: files.architecture.clone(),
            reason: e.to_string(),
        })?;
    let actual = network.architecture();
    let mismatch = |reason: String| PersistenceError::ArchitectureMismatch {
        path: files.weights.clone(),
        json: files.architecture.clone(),
        reason,
    };
    if saved.architecture != actual {
        return Err(mismatch(format!(
            "the JSON says {}, the weights say {}",
            saved.architecture, actual
        )));
    }
    if saved.config != network.config() {
        return Err(mismatch(
            "the configuration in the JSON differs from the one stored with the weights".into(),
        ));
    }
    Ok(())
}

/// The temporary file beside `path` that a write goes to before it is renamed into place.
fn staging_path(path: &Path) -> PathBuf {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(format!(".{}.tmp", std::process::id()));
    PathBuf::from(temporary)
}

/// Writes `contents` to the staging file of `path` and returns that file's path (nothing is
/// left behind if the write fails).
fn stage(path: &Path, contents: &[u8]) -> std::io::Result<PathBuf> {
    let temporary = staging_path(path);
    fs::write(&temporary, contents)
        .inspect_err(|_| discard(&temporary))
        .map(|()| temporary)
}

/// Removes a file if it is there (a clean-up whose failure changes nothing for the caller).
fn discard(path: &Path) {
    if path.is_file() {
        let _ = fs::remove_file(path);
    }
}

/// Writes `contents` to a temporary file beside `path`, then renames it over `path`, so a
/// failed write leaves any previous file intact.
pub(crate) fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let temporary = stage(path, contents)?;
    fs::rename(&temporary, path).inspect_err(|_| discard(&temporary))
}
