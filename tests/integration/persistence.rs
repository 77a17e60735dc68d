//! Grown networks save and load without the caller knowing their shape.

use std::fs;

use burn::module::Module;
use burn::nn::LinearConfig;
use burn_senn::{ExpandableMlp, ExpandableMlpConfig, PersistenceError, SavedArchitecture};
use proptest::prelude::*;

use crate::common::{apply, cpu_device, normal, rng, Growth};

fn grown(seed: u64, growths: &[Growth]) -> ExpandableMlp {
    let device = cpu_device();
    let mut rng = rng(seed);
    growths.iter().fold(
        ExpandableMlpConfig::new(3, 2)
            .with_hidden(vec![2])
            .with_max_width(Some(64))
            .init(&device),
        |network, &growth| match apply(&network, growth, &mut rng, &device) {
            Some(result) => result.expect("growth within limits"),
            None => network,
        },
    )
}

fn round_trip(network: &ExpandableMlp, seed: u64) -> Result<(), TestCaseError> {
    let device = cpu_device();
    let directory = tempfile::tempdir().unwrap();
    let files = network.save(directory.path().join("model")).unwrap();
    prop_assert!(files.weights.exists() && files.architecture.exists());

    let loaded = ExpandableMlp::load(directory.path().join("model"), &device).unwrap();
    prop_assert_eq!(loaded.architecture(), network.architecture());
    prop_assert_eq!(loaded.config(), network.config());
    let ids = |n: &ExpandableMlp| n.layers().iter().map(|l| l.weight.id).collect::<Vec<_>>();
    prop_assert_eq!(ids(&loaded), ids(network));

    let input = normal(&mut rng(seed), [8, 3], 1.0, &device);
    let before = network.forward(input.clone()).into_data();
    let after = loaded.forward(input).into_data();
    prop_assert_eq!(before, after);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn grown_networks_round_trip_with_identical_outputs(
        seed in any::<u64>(),
        growths in prop::collection::vec(
            prop_oneof![
                (0usize..4, 1usize..4).prop_map(|(layer, k)| Growth::Widen { layer, k }),
                (0usize..4, any::<bool>()).prop_map(|(position, random_basis)| {
                    Growth::Insert { position, random_basis }
                }),
            ],
            0..5,
        ),
    ) {
        round_trip(&grown(seed, &growths), seed)?;
    }
}

#[test]
fn architecture_json_describes_the_grown_network() {
    let network = grown(1, &[Growth::Widen { layer: 0, k: 3 }]);
    let directory = tempfile::tempdir().unwrap();
    let files = network.save(directory.path().join("grown.bpk")).unwrap();
    assert_eq!(files.weights, directory.path().join("grown.bpk"));
    let saved: SavedArchitecture =
        serde_json::from_str(&fs::read_to_string(&files.architecture).unwrap()).unwrap();
    assert_eq!(saved.architecture.hidden, vec![5]);
    assert_eq!(saved.config.hidden, vec![5]);
    assert_eq!(saved.config.max_width, Some(64));
    assert_eq!(saved.architecture, network.architecture());
}

#[test]
fn saving_again_replaces_the_previous_model() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("model");
    grown(2, &[]).save(&path).unwrap();
    let bigger = grown(
        2,
        &[Growth::Insert {
            position: 1,
            random_basis: false,
        }],
    );
    bigger.save(&path).unwrap();
    let loaded = ExpandableMlp::load(&path, &cpu_device()).unwrap();
    assert_eq!(loaded.architecture().hidden, vec![2, 2]);
    let leftovers: Vec<_> = fs::read_dir(directory.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.contains("tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

fn load_error(path: &std::path::Path) -> PersistenceError {
    ExpandableMlp::load(path, &cpu_device()).expect_err("loading must fail")
}

#[test]
fn bad_files_give_errors_that_say_what_is_wrong() {
    let directory = tempfile::tempdir().unwrap();
    let saved = grown(3, &[Growth::Widen { layer: 0, k: 1 }]);
    let files = saved.save(directory.path().join("good")).unwrap();
    let bytes = fs::read(&files.weights).unwrap();

    let missing = load_error(&directory.path().join("absent"));
    assert!(
        matches!(missing, PersistenceError::Io { action: "read", .. }),
        "{missing}"
    );

    let random = directory.path().join("random.bpk");
    fs::write(
        &random,
        (0..200u32)
            .map(|i| (i * 97 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let error = load_error(&random);
    assert!(
        matches!(error, PersistenceError::NotAModel { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("is not a saved model"));

    let empty = directory.path().join("empty.bpk");
    fs::write(&empty, b"").unwrap();
    assert!(matches!(
        load_error(&empty),
        PersistenceError::NotAModel { .. }
    ));

    for cut in [6, 20, bytes.len() / 2, bytes.len() - 1] {
        let truncated = directory.path().join(format!("truncated{cut}.bpk"));
        fs::write(&truncated, &bytes[..cut]).unwrap();
        let error = load_error(&truncated);
        assert!(
            matches!(error, PersistenceError::Corrupt { .. }),
            "cut at {cut}: {error}"
        );
        assert!(error.to_string().contains("truncated or corrupt"));
    }

    let linear = directory.path().join("linear.bpk");
    LinearConfig::new(2, 2)
        .init(&cpu_device())
        .save_file(&linear)
        .unwrap();
    let error = load_error(&linear);
    assert!(
        matches!(error, PersistenceError::NotAnExpandableMlp { .. }),
        "{error}"
    );
}

#[test]
fn a_json_that_disagrees_with_the_weights_is_reported() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("model");
    let files = grown(4, &[Growth::Widen { layer: 0, k: 2 }])
        .save(&path)
        .unwrap();

    let mut saved: SavedArchitecture =
        serde_json::from_str(&fs::read_to_string(&files.architecture).unwrap()).unwrap();
    saved.architecture.hidden = vec![9];
    fs::write(&files.architecture, serde_json::to_string(&saved).unwrap()).unwrap();
    let error = load_error(&path);
    assert!(
        matches!(error, PersistenceError::ArchitectureMismatch { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("the JSON says 3-9-2"), "{error}");

    fs::write(&files.architecture, "{ not json").unwrap();
    assert!(matches!(
        load_error(&path),
        PersistenceError::InvalidArchitecture { .. }
    ));

    fs::remove_file(&files.architecture).unwrap();
    let loaded = ExpandableMlp::load(&path, &cpu_device()).unwrap();
    assert_eq!(loaded.architecture().hidden, vec![4]);
}
