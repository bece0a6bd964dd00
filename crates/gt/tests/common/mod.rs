//! Helpers shared by the extended-op test files (each test file uses a subset).

#![allow(dead_code)]

use gt::runtime::Embedded;
use gt::{Session, Tensor};

pub fn rt() -> Embedded {
    Embedded::start(1, 1, &gt::config::Config::default()).unwrap()
}

pub fn values(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

pub fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let ok = (g.is_nan() && w.is_nan()) || g == w || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(
            ok,
            "{what}: element {i}: got {g}, want {w}\n got {got:?}\nwant {want:?}"
        );
    }
}

pub fn f64t(s: &Session, v: &[f64], shape: &[usize]) -> Tensor {
    s.try_tensor_f64(v, shape.to_vec()).unwrap()
}

pub fn i64t(s: &Session, v: &[i64], shape: &[usize]) -> Tensor {
    s.try_tensor_i64(v, shape.to_vec()).unwrap()
}

/// Deterministic values in `[-1.5, 1.5)`.
pub fn vals(n: usize, seed: u64) -> Vec<f64> {
    let mut x = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((x >> 11) as f64 / (1u64 << 53) as f64) * 3.0 - 1.5
        })
        .collect()
}
