//! Gradients of the composite ops (softmax, layer_norm, gelu, …) through the embedded runtime,
//! against central finite differences.

use gt::{Idx, Session, Tensor};

mod common;
use common::*;

/// Checks the gradients autograd gives `f` at `inputs` (float64) against central differences of
/// a weighted sum of its output (the weights make every output element matter).
fn gradcheck(
    s: &Session,
    what: &str,
    inputs: &[(Vec<f64>, Vec<usize>)],
    f: &dyn Fn(&[Tensor]) -> Tensor,
) {
    let leaves: Vec<Tensor> = inputs
        .iter()
        .map(|(v, sh)| f64t(s, v, sh).requires_grad_(true).unwrap())
        .collect();
    let y = f(&leaves);
    let wv: Vec<f64> = (0..y.numel())
        .map(|i| ((i * 7 + 3) % 11) as f64 / 11.0 - 0.4)
        .collect();
    let w = f64t(s, &wv, y.dims());
    (&y * &w).sum().backward().unwrap();
    let loss = |vals: &[Vec<f64>]| -> f64 {
        let _g = gt_client::no_grad();
        let ts: Vec<Tensor> = vals
            .iter()
            .zip(inputs)
            .map(|(v, (_, sh))| f64t(s, v, sh))
            .collect();
        (&f(&ts) * &w).sum().item().unwrap()
    };
    let eps = 1e-6;
    for (k, leaf) in leaves.iter().enumerate() {
        let got = values(
            &leaf
                .grad()
                .unwrap_or_else(|| panic!("{what}: input {k} has no grad")),
        );
        for i in 0..got.len() {
            let mut plus: Vec<Vec<f64>> = inputs.iter().map(|(v, _)| v.clone()).collect();
            let mut minus = plus.clone();
            plus[k][i] += eps;
            minus[k][i] -= eps;
            let fd = (loss(&plus) - loss(&minus)) / (2.0 * eps);
            assert!(
                (got[i] - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{what}: d/d input {k}[{i}]: autograd {} vs finite difference {fd}",
                got[i]
            );
        }
    }
}

fn inp(n: usize, shape: &[usize], seed: u64) -> (Vec<f64>, Vec<usize>) {
    (vals(n, seed), shape.to_vec())
}

#[test]
fn composite_gradients_match_finite_differences() {
    let rt = rt();
    let s = rt.session("grad").unwrap();
    let x23 = || inp(6, &[2, 3], 3);
    gradcheck(&s, "softmax", &[x23()], &|t| t[0].softmax(-1));
    gradcheck(&s, "softmax axis 0", &[x23()], &|t| t[0].softmax(0));
    gradcheck(&s, "log_softmax", &[x23()], &|t| t[0].log_softmax(1));
    gradcheck(&s, "logsumexp", &[x23()], &|t| t[0].logsumexp(1, false));
    gradcheck(&s, "logsumexp keepdim", &[x23()], &|t| {
        t[0].logsumexp(0, true)
    });
    gradcheck(
        &s,
        "layer_norm",
        &[inp(8, &[2, 4], 4), inp(4, &[4], 5), inp(4, &[4], 6)],
        &|t| t[0].layer_norm(1, Some(&t[1]), Some(&t[2]), 1e-5),
    );
    gradcheck(&s, "layer_norm 2 axes", &[inp(12, &[2, 2, 3], 7)], &|t| {
        t[0].layer_norm(2, None, None, 1e-5)
    });
    gradcheck(&s, "gelu", &[inp(7, &[7], 8)], &|t| t[0].gelu());
    gradcheck(&s, "gelu_tanh", &[inp(7, &[7], 9)], &|t| t[0].gelu_tanh());
    gradcheck(&s, "silu", &[inp(7, &[7], 10)], &|t| t[0].silu());
    gradcheck(&s, "var", &[x23()], &|t| t[0].var(&[1], false, None));
    gradcheck(&s, "var all biased", &[x23()], &|t| {
        t[0].var(&[], true, Some(0.0))
    });
    gradcheck(&s, "std", &[x23()], &|t| t[0].std(&[0], false, None));
    let away_from_bounds = vec![-1.2, -0.3, 0.1, 0.45, 0.9, 1.3];
    gradcheck(&s, "clamp", &[(away_from_bounds, vec![6])], &|t| {
        t[0].clamp(Some(-0.5), Some(0.7))
    });
    gradcheck(&s, "abs", &[inp(5, &[5], 11)], &|t| t[0].abs());
    gradcheck(
        &s,
        "maximum",
        &[inp(6, &[2, 3], 12), inp(3, &[3], 13)],
        &|t| t[0].maximum(&t[1]),
    );
    gradcheck(
        &s,
        "minimum",
        &[inp(6, &[2, 3], 12), inp(3, &[3], 13)],
        &|t| t[0].minimum(&t[1]),
    );
    let positive = (vals(4, 14).iter().map(|v| v + 2.0).collect(), vec![4]);
    gradcheck(&s, "pow", &[positive.clone(), inp(4, &[4], 15)], &|t| {
        t[0].pow(&t[1])
    });
    gradcheck(&s, "pow_scalar", &[positive], &|t| t[0].pow_scalar(2.5));
    let mask = s
        .try_tensor_bool(&[true, false, false, true, true, false], [2, 3])
        .unwrap();
    gradcheck(&s, "where", &[x23(), inp(3, &[3], 16)], &|t| {
        gt::where_(&mask, &t[0], &t[1])
    });
    gradcheck(&s, "masked_fill", &[x23()], &|t| {
        t[0].masked_fill(&mask, 3.0)
    });
    gradcheck(
        &s,
        "index_put",
        &[inp(12, &[3, 4], 17), inp(4, &[4], 18)],
        &|t| t[0].index_put(&[Idx::At(1)], &t[1]),
    );
    gradcheck(
        &s,
        "index_put broadcast",
        &[inp(12, &[3, 4], 19), inp(3, &[3, 1], 20)],
        &|t| t[0].index_put(&[Idx::All, Idx::step(1..4, 2)], &t[1]),
    );
    gradcheck(&s, "index_fill", &[inp(12, &[3, 4], 21)], &|t| {
        t[0].index_fill(&[Idx::At(-1), (..2).into()], 0.0)
    });
    gradcheck(
        &s,
        "cat",
        &[inp(4, &[2, 2], 22), inp(6, &[2, 3], 23)],
        &|t| gt::cat(t, 1),
    );
    gradcheck(
        &s,
        "stack",
        &[inp(6, &[2, 3], 24), inp(6, &[2, 3], 25)],
        &|t| gt::stack(t, 1),
    );
    gradcheck(&s, "split", &[inp(10, &[2, 5], 26)], &|t| {
        let p = t[0].split(2, 1);
        gt::cat(&[&p[2], &p[0].exp()], 1)
    });
    let ids = i64t(&s, &[1, 3, 1, 0], &[2, 2]);
    gradcheck(&s, "embedding", &[inp(12, &[4, 3], 27)], &|t| {
        gt::embedding(&t[0], &ids)
    });
    let gi = i64t(&s, &[0, 2, 2, 1, 1, 0], &[2, 3]);
    gradcheck(&s, "gather", &[x23()], &|t| t[0].gather(1, &gi));
    gradcheck(&s, "index_select", &[x23()], &|t| {
        t[0].index_select(1, &i64t(&s, &[2, 2, 0], &[3]))
    });
}
