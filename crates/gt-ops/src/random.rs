//! Counter-based random numbers (Philox4x32-10). Element `i` of a random tensor created with
//! `(seed, stream)` is a pure function of those three numbers, so the same program gives the same
//! values eagerly, compiled, on one worker or sharded over many.

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

/// One Philox4x32 block with 10 rounds.
pub fn philox4x32(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for round in 0..10 {
        if round > 0 {
            k[0] = k[0].wrapping_add(W0);
            k[1] = k[1].wrapping_add(W1);
        }
        let p0 = (M0 as u64) * (c[0] as u64);
        let p1 = (M1 as u64) * (c[2] as u64);
        c = [
            ((p1 >> 32) as u32) ^ c[1] ^ k[0],
            p1 as u32,
            ((p0 >> 32) as u32) ^ c[3] ^ k[1],
            p0 as u32,
        ];
    }
    c
}

fn block(seed: u64, stream: u64, index: u64) -> [u32; 4] {
    philox4x32(
        [
            index as u32,
            (index >> 32) as u32,
            stream as u32,
            (stream >> 32) as u32,
        ],
        [seed as u32, (seed >> 32) as u32],
    )
}

/// Uniform on `[0, 1)` with 53 random bits.
pub fn uniform(seed: u64, stream: u64, index: u64) -> f64 {
    let w = block(seed, stream, index);
    let bits = ((w[0] as u64) << 21) ^ (w[1] as u64 >> 11);
    (bits & ((1 << 53) - 1)) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal by Box–Muller on the block's words (one normal per index, so any element can
/// be computed alone).
pub fn normal(seed: u64, stream: u64, index: u64) -> f64 {
    let w = block(seed, stream, index);
    let u1 = (((w[0] as u64) << 21 ^ (w[1] as u64 >> 11)) & ((1 << 53) - 1)) as f64 + 1.0;
    let u1 = u1 * (1.0 / ((1u64 << 53) as f64 + 1.0)); // (0, 1]
    let u2 = (((w[2] as u64) << 21 ^ (w[3] as u64 >> 11)) & ((1 << 53) - 1)) as f64
        * (1.0 / (1u64 << 53) as f64);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_distinct() {
        assert_eq!(uniform(1, 2, 3), uniform(1, 2, 3));
        assert_ne!(uniform(1, 2, 3), uniform(1, 2, 4));
        assert_ne!(uniform(1, 2, 3), uniform(1, 3, 3));
        assert_ne!(uniform(1, 2, 3), uniform(2, 2, 3));
    }

    #[test]
    fn moments_look_right() {
        let n = 20_000;
        let u: Vec<f64> = (0..n).map(|i| uniform(7, 0, i)).collect();
        let z: Vec<f64> = (0..n).map(|i| normal(7, 0, i)).collect();
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        assert!(u.iter().all(|&x| (0.0..1.0).contains(&x)));
        assert!((mean(&u) - 0.5).abs() < 0.01);
        assert!(mean(&z).abs() < 0.03);
        let var = z.iter().map(|x| x * x).sum::<f64>() / n as f64;
        assert!((var - 1.0).abs() < 0.05, "{var}");
        assert!(z.iter().all(|x| x.is_finite()));
    }
}
