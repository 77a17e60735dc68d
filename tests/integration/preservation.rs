//! Growth never changes the network's outputs.

use burn::tensor::Device;
use burn_senn::{ExpandableMlpConfig, GrowthError};
use proptest::prelude::*;

use crate::common::{apply, cpu_device, normal, relative_change, rng, Growth};

/// f32 tolerance for widening: the new neurons' outgoing weights are exactly zero.
const WIDEN_TOLERANCE: f32 = 1e-5;
/// f32 tolerance for inserting a layer: B⁻¹ is rounded to f32 before it is folded in.
const INSERT_TOLERANCE: f32 = 1e-4;

fn growth_strategy() -> impl Strategy<Value = Growth> {
    prop_oneof![
        (0usize..8, 1usize..5).prop_map(|(layer, k)| Growth::Widen { layer, k }),
        (0usize..8, any::<bool>()).prop_map(|(position, random_basis)| Growth::Insert {
            position,
            random_basis
        }),
    ]
}

/// Builds a random network, applies `growths` one by one and checks the outputs after each.
fn check_growth_sequence(
    device: &Device,
    seed: u64,
    sizes: (usize, usize, Vec<usize>),
    growths: &[Growth],
) -> Result<(), TestCaseError> {
    let (d_input, d_output, hidden) = sizes;
    let mut rng = rng(seed);
    let mut network = ExpandableMlpConfig::new(d_input, d_output)
        .with_hidden(hidden)
        .init(device);
    let input = normal(&mut rng, [16, d_input], 2.0, device);
    let mut before = network.forward(input.clone());

    for &growth in growths {
        let Some(grown) = apply(&network, growth, &mut rng, device) else {
            continue;
        };
        let grown = grown.map_err(|e| TestCaseError::fail(e.to_string()))?;
        let after = grown.forward(input.clone());
        let tolerance = match growth {
            Growth::Widen { .. } => WIDEN_TOLERANCE,
            Growth::Insert { .. } => INSERT_TOLERANCE,
        };
        let change = relative_change(&before, &after);
        prop_assert!(
            change <= tolerance,
            "{growth:?} on {} changed the output by {change:e} (relative)",
            network.architecture()
        );
        network = grown;
        before = after;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_growth_sequences_preserve_outputs(
        seed in any::<u64>(),
        d_input in 1usize..6,
        d_output in 1usize..4,
        hidden in prop::collection::vec(1usize..6, 0..3),
        growths in prop::collection::vec(growth_strategy(), 1..6),
    ) {
        check_growth_sequence(&cpu_device(), seed, (d_input, d_output, hidden), &growths)?;
    }
}

/// A fixed, smaller sweep for backends other than the default one.
#[cfg(any(feature = "ndarray", feature = "wgpu"))]
fn sweep_on(device: &Device, cases: u64) {
    for seed in 0..cases {
        let hidden = vec![1 + (seed as usize % 3); (seed % 3) as usize];
        let growths = [
            Growth::Widen {
                layer: seed as usize,
                k: 2,
            },
            Growth::Insert {
                position: seed as usize,
                random_basis: true,
            },
            Growth::Widen { layer: 1, k: 1 },
            Growth::Insert {
                position: 0,
                random_basis: false,
            },
        ];
        let sizes = (1 + seed as usize % 4, 1 + seed as usize % 2, hidden);
        check_growth_sequence(device, seed, sizes, &growths)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[cfg(feature = "ndarray")]
#[test]
#[allow(deprecated)]
fn growth_preserves_outputs_on_ndarray() {
    sweep_on(&Device::ndarray(), 12);
}

#[cfg(feature = "wgpu")]
#[test]
fn growth_preserves_outputs_on_wgpu() {
    sweep_on(&Device::wgpu(burn::tensor::DeviceKind::DefaultDevice), 6);
}

#[test]
fn growth_errors_leave_the_network_usable() {
    let device = cpu_device();
    let network = ExpandableMlpConfig::new(2, 1)
        .with_hidden(vec![3])
        .with_max_width(Some(4))
        .with_max_depth(Some(1))
        .init(&device);
    let mut rng = rng(7);

    let too_wide = network.widen(0, crate::common::random_neurons(&mut rng, 2, 2, &device));
    assert_eq!(
        too_wide.unwrap_err(),
        GrowthError::WidthLimit {
            layer: 0,
            width: 5,
            max_width: 4
        }
    );
    assert_eq!(
        network.insert_identity_layer(0).unwrap_err(),
        GrowthError::DepthLimit {
            depth: 2,
            max_depth: 1
        }
    );
    assert_eq!(
        network.widen_random(1, 1).unwrap_err(),
        GrowthError::LayerOutOfRange { layer: 1, depth: 1 }
    );
    assert_eq!(
        network.insert_identity_layer(2).unwrap_err(),
        GrowthError::PositionOutOfRange {
            position: 2,
            depth: 1
        }
    );
    let wrong_shape = crate::common::random_neurons(&mut rng, 3, 1, &device);
    assert_eq!(
        network.widen(0, wrong_shape).unwrap_err(),
        GrowthError::ShapeMismatch {
            what: "weight of the new neurons",
            expected: vec![2, 1],
            actual: vec![3, 1]
        }
    );
    // The network is untouched and still grows where the limits allow.
    assert_eq!(network.architecture().hidden, vec![3]);
    assert_eq!(
        network.widen_random(0, 1).unwrap().architecture().hidden,
        vec![4]
    );
}

#[test]
fn singular_and_non_finite_layers_are_rejected() {
    let device = cpu_device();
    let network = ExpandableMlpConfig::new(2, 1)
        .with_hidden(vec![2])
        .init(&device);
    let singular = burn_senn::NewLayer {
        basis: burn::tensor::Tensor::from_floats([[1.0, 2.0], [2.0, 4.0]], &device),
        bias: burn::tensor::Tensor::zeros([2], &device),
    };
    assert!(matches!(
        network.insert_layer(1, singular),
        Err(GrowthError::SingularBasis { position: 1, .. })
    ));
    let mut rng = rng(3);
    let mut neurons = crate::common::random_neurons(&mut rng, 2, 1, &device);
    neurons.bias = burn::tensor::Tensor::from_floats([f32::NAN], &device);
    assert_eq!(
        network.widen(0, neurons).unwrap_err(),
        GrowthError::NonFinite {
            what: "new neurons"
        }
    );
}

#[test]
fn widening_by_zero_neurons_changes_nothing() {
    let device = cpu_device();
    let network = ExpandableMlpConfig::new(2, 1)
        .with_hidden(vec![2])
        .init(&device);
    let grown = network.widen_random(0, 0).unwrap();
    assert_eq!(grown.architecture(), network.architecture());
    assert_eq!(grown.layers()[0].weight.id, network.layers()[0].weight.id);
}

#[test]
fn resized_parameters_get_fresh_ids_and_untouched_ones_keep_theirs() {
    let device = cpu_device();
    let network = ExpandableMlpConfig::new(2, 1)
        .with_hidden(vec![2, 2])
        .init(&device);
    let widened = network.widen_random(0, 1).unwrap();
    assert_ne!(widened.layers()[0].weight.id, network.layers()[0].weight.id);
    assert_ne!(widened.layers()[0].bias.id, network.layers()[0].bias.id);
    assert_ne!(widened.layers()[1].weight.id, network.layers()[1].weight.id);
    assert_eq!(widened.layers()[1].bias.id, network.layers()[1].bias.id);
    assert_eq!(widened.layers()[2].weight.id, network.layers()[2].weight.id);

    // An identity layer leaves its consumer untouched; a general basis rewrites it.
    let identity = network.insert_identity_layer(1).unwrap();
    assert_eq!(
        identity.layers()[2].weight.id,
        network.layers()[1].weight.id
    );
    let general = network
        .insert_layer(1, crate::common::random_layer(&mut rng(1), 2, &device))
        .unwrap();
    assert_ne!(general.layers()[2].weight.id, network.layers()[1].weight.id);
    assert_eq!(general.architecture().hidden, vec![2, 2, 2]);
}
