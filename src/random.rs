//! A small deterministic random generator for the crate's own draws.

/// A deterministic generator (SplitMix64) for the crate's own draws (candidates, toy data
/// sets), so that a seeded run does the same thing whatever else draws from the device's
/// generator.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub(crate) fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// `count` draws from N(0, std²) (Box–Muller).
    pub(crate) fn normals(&mut self, count: usize, std: f64) -> Vec<f32> {
        (0..count)
            .map(|_| {
                let radius = (-2.0 * self.uniform().ln()).sqrt();
                let angle = std::f64::consts::TAU * self.uniform();
                (std * radius * angle.cos()) as f32
            })
            .collect()
    }
}
