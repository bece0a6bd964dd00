//! The extended op set through the embedded runtime: values against hand-computed results, direct
//! formulas or the float64 reference, and the gradients of the composites against central finite
//! differences.

use gt::{DType, Idx, Tensor};
use gt_ops::reference::{eval, RefTensor};
use gt_ops::{Op, ReduceOp, UnaryOp};

mod common;
use common::*;

fn err_of<T>(r: gt::Result<T>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn comparisons_selection_and_elementwise() {
    let rt = rt();
    let s = rt.session("cmp").unwrap();
    let a = f64t(&s, &[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let b = f64t(&s, &[1.0, 3.0], &[2]);
    let cases: [(&str, Tensor, [f64; 4]); 6] = [
        ("eq", a.eq(&b), [1.0, 0.0, 0.0, 0.0]),
        ("ne", a.ne(&b), [0.0, 1.0, 1.0, 1.0]),
        ("lt", a.lt(&b), [0.0, 1.0, 0.0, 0.0]),
        ("le", a.le(&b), [1.0, 1.0, 0.0, 0.0]),
        ("gt", a.gt(&b), [0.0, 0.0, 1.0, 1.0]),
        ("ge", a.ge(&b), [1.0, 0.0, 1.0, 1.0]),
    ];
    for (what, got, want) in cases {
        assert_eq!(got.dtype(), DType::Bool, "{what}");
        assert_eq!(got.dims(), &[2, 2], "{what}");
        assert_eq!(values(&got), want, "{what}");
    }
    let scalar_cases: [(&str, Tensor, [f64; 4]); 6] = [
        ("eq", a.eq_scalar(2.0), [0.0, 1.0, 0.0, 0.0]),
        ("ne", a.ne_scalar(2.0), [1.0, 0.0, 1.0, 1.0]),
        ("lt", a.lt_scalar(2.0), [1.0, 0.0, 0.0, 0.0]),
        ("le", a.le_scalar(2.0), [1.0, 1.0, 0.0, 0.0]),
        ("gt", a.gt_scalar(2.5), [0.0, 0.0, 1.0, 1.0]),
        ("ge", a.ge_scalar(3.0), [0.0, 0.0, 1.0, 1.0]),
    ];
    for (what, got, want) in scalar_cases {
        assert_eq!(got.dtype(), DType::Bool, "{what}_scalar");
        assert_eq!(values(&got), want, "{what}_scalar");
    }
    // Mixed dtypes compare by value.
    let ints = i64t(&s, &[1, 2], &[2]);
    assert_eq!(values(&ints.eq(&f64t(&s, &[1.0, 2.5], &[2]))), [1.0, 0.0]);
    let e = err_of(a.try_lt(&f64t(&s, &[1.0, 2.0, 3.0], &[3])));
    assert!(
        e.contains("lt") && e.contains("[2, 2]") && e.contains("[3]"),
        "{e}"
    );

    // Selection.
    let cond = a.gt_scalar(2.5);
    let w = gt::where_(&cond, &a, &b);
    assert_eq!(values(&w), [1.0, 3.0, 3.0, 4.0]);
    let mixed = gt::where_(&cond, &a.float(), &b);
    assert_eq!(mixed.dtype(), DType::F64);
    assert_eq!(values(&a.masked_fill(&cond, -1.0)), [1.0, 2.0, -1.0, -1.0]);
    let mask = s.try_tensor_bool(&[true, false], [2]).unwrap();
    assert_eq!(values(&a.masked_fill(&mask, 0.5)), [0.5, 2.0, 0.5, 4.0]);
    let e = err_of(gt::try_where_(&a, &a, &b));
    assert!(e.contains("where") && e.contains("bool"), "{e}");

    // Elementwise math.
    let x = f64t(&s, &[-1.5, 0.0, 2.0], &[3]);
    assert_eq!(values(&x.abs()), [1.5, 0.0, 2.0]);
    assert_eq!(values(&x.sign()), [-1.0, 0.0, 1.0]);
    let erf: Vec<f64> = [-1.5f64, 0.0, 2.0]
        .iter()
        .map(|&v| gt_ops::scalar::unary(UnaryOp::Erf, v))
        .collect();
    close(&values(&x.erf()), &erf, 1e-15, "erf");
    assert_eq!(values(&a.pow(&b)), [1.0, 8.0, 3.0, 64.0]);
    assert_eq!(values(&a.pow_scalar(2.0)), [1.0, 4.0, 9.0, 16.0]);
    close(
        &values(&a.pow_scalar(0.5)),
        &[1.0, 2f64.sqrt(), 3f64.sqrt(), 2.0],
        1e-15,
        "sqrt",
    );
    assert_eq!(values(&a.maximum(&b)), [1.0, 3.0, 3.0, 4.0]);
    assert_eq!(values(&a.minimum(&b)), [1.0, 2.0, 1.0, 3.0]);
    assert_eq!(values(&a.clamp(Some(1.5), Some(3.5))), [1.5, 2.0, 3.0, 3.5]);
    assert_eq!(values(&a.clamp(None, Some(2.0))), [1.0, 2.0, 2.0, 2.0]);
    assert_eq!(values(&a.clamp(Some(3.0), None)), [3.0, 3.0, 3.0, 4.0]);
    assert_eq!(values(&a.clamp(Some(3.0), Some(2.0))), [2.0, 2.0, 2.0, 2.0]);
    let e = err_of(a.try_clamp(None, None));
    assert!(e.contains("clamp"), "{e}");
}

#[test]
fn min_argmax_var_and_std() {
    let rt = rt();
    let s = rt.session("reduce").unwrap();
    let xv = vals(24, 1);
    let x = f64t(&s, &xv, &[2, 3, 4]);
    let rx = RefTensor::new(vec![2, 3, 4], xv.clone());
    let min_all = xv.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(x.min().item().unwrap(), min_all);
    assert_eq!(x.min().dims(), &[] as &[usize]);
    for (axes, norm, keep) in [
        (vec![-1isize], vec![2usize], false),
        (vec![2, 0], vec![0, 2], true),
        (vec![1], vec![1], false),
    ] {
        let got = x.min_dims(&axes, keep);
        let want = eval(
            &Op::Reduce {
                op: ReduceOp::Min,
                axes: norm.into_iter().collect(),
                keepdim: keep,
            },
            &[&rx],
        )
        .unwrap();
        assert_eq!(got.shape(), &want.shape, "min {axes:?}");
        assert_eq!(values(&got), want.data, "min {axes:?}");
    }
    assert!(x.try_min_dims(&[3], false).is_err());

    // Ties go to the first index.
    let t = f64t(&s, &[1.0, 5.0, 5.0, 7.0, 0.0, 7.0], &[2, 3]);
    let am = t.argmax(1, false);
    assert_eq!(am.dtype(), DType::I64);
    assert_eq!(am.dims(), &[2]);
    assert_eq!(values(&am), [1.0, 0.0]);
    assert_eq!(values(&t.argmin(-1, false)), [0.0, 1.0]);
    assert_eq!(values(&t.argmax(0, false)), [1.0, 0.0, 1.0]);
    let k = t.argmin(0, true);
    assert_eq!(k.dims(), &[1, 3]);
    assert_eq!(values(&k), [0.0, 1.0, 0.0]);
    let e = err_of(t.try_argmax(2, false));
    assert!(e.contains("argmax") && e.contains("[2, 3]"), "{e}");

    // Variance against the direct formula.
    let m = f64t(&s, &xv[..12], &[3, 4]);
    let direct = |rows: &[&[f64]], corr: f64| -> Vec<f64> {
        rows.iter()
            .map(|r| {
                let n = r.len() as f64;
                let mean = r.iter().sum::<f64>() / n;
                r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - corr)
            })
            .collect()
    };
    let rows: Vec<&[f64]> = xv[..12].chunks(4).collect();
    let cols: Vec<Vec<f64>> = (0..4)
        .map(|j| (0..3).map(|i| xv[i * 4 + j]).collect())
        .collect();
    let cols: Vec<&[f64]> = cols.iter().map(|c| c.as_slice()).collect();
    close(
        &values(&m.var(&[1], false, None)),
        &direct(&rows, 1.0),
        1e-13,
        "var rows",
    );
    close(
        &values(&m.var(&[-1], false, Some(0.0))),
        &direct(&rows, 0.0),
        1e-13,
        "var rows biased",
    );
    let vc = m.var(&[0], true, None);
    assert_eq!(vc.dims(), &[1, 4]);
    close(&values(&vc), &direct(&cols, 1.0), 1e-13, "var cols");
    let all = m.var(&[], false, None);
    assert_eq!(all.dims(), &[] as &[usize]);
    close(&values(&all), &direct(&[&xv[..12]], 1.0), 1e-13, "var all");
    let sd: Vec<f64> = direct(&rows, 1.0).iter().map(|v| v.sqrt()).collect();
    close(&values(&m.std(&[1], false, None)), &sd, 1e-13, "std");
    let sd2 = m.std(&[0, 1], true, Some(0.0));
    assert_eq!(sd2.dims(), &[1, 1]);
    close(
        &values(&sd2),
        &[direct(&[&xv[..12]], 0.0)[0].sqrt()],
        1e-13,
        "std all",
    );
    let e = err_of(i64t(&s, &[1, 2], &[2]).try_var(&[0], false, None));
    assert!(e.contains("var") && e.contains("int64"), "{e}");
}

#[test]
fn softmax_family_is_stable_and_exact() {
    let rt = rt();
    let s = rt.session("softmax").unwrap();
    let xv = [1.0, 2.0, 3.0, -1.0, 0.0, 5.0];
    let x = f64t(&s, &xv, &[2, 3]);
    let direct = |row: &[f64]| -> Vec<f64> {
        let z: f64 = row.iter().map(|v| v.exp()).sum();
        row.iter().map(|v| v.exp() / z).collect()
    };
    let want: Vec<f64> = xv.chunks(3).flat_map(direct).collect();
    let sm = x.softmax(-1);
    assert_eq!(sm.dims(), &[2, 3]);
    close(&values(&sm), &want, 1e-14, "softmax");
    close(
        &values(&sm.sum_dims(&[1], false)),
        &[1.0, 1.0],
        1e-14,
        "softmax rows",
    );
    let cols = x.softmax(0);
    close(
        &values(&cols.sum_dims(&[0], false)),
        &[1.0; 3],
        1e-14,
        "softmax cols",
    );
    let c0 = direct(&[1.0, -1.0]);
    close(
        &values(&cols.index(&[Idx::All, Idx::At(0)])),
        &c0,
        1e-14,
        "softmax col 0",
    );

    let lsm: Vec<f64> = want.iter().map(|v| v.ln()).collect();
    close(&values(&x.log_softmax(1)), &lsm, 1e-14, "log_softmax");
    let lse: Vec<f64> = xv
        .chunks(3)
        .map(|r| r.iter().map(|v| v.exp()).sum::<f64>().ln())
        .collect();
    let l = x.logsumexp(1, false);
    assert_eq!(l.dims(), &[2]);
    close(&values(&l), &lse, 1e-14, "logsumexp");
    assert_eq!(x.logsumexp(-1, true).dims(), &[2, 1]);

    // Large inputs stay finite and shift-invariant, in both float types.
    for dtype in [DType::F32, DType::F64] {
        let big =
            f64t(&s, &[1000.0, 1001.0, 1002.0, -1000.0, 0.0, 1000.0], &[2, 3]).to_dtype(dtype);
        let small = f64t(&s, &[0.0, 1.0, 2.0, -2000.0, -1000.0, 0.0], &[2, 3]).to_dtype(dtype);
        let tol = if dtype == DType::F32 { 1e-5 } else { 1e-12 };
        let lb = values(&big.log_softmax(-1));
        assert!(
            lb.iter().all(|v| v.is_finite() || *v == f64::NEG_INFINITY),
            "{lb:?}"
        );
        close(
            &lb[..3],
            &values(&small.log_softmax(-1))[..3],
            tol,
            "log_softmax 1000",
        );
        close(
            &values(&big.softmax(-1)),
            &values(&small.softmax(-1)),
            tol,
            "softmax 1000",
        );
        let want = 1002.0 + (1.0 + (-1f64).exp() + (-2f64).exp()).ln();
        close(
            &values(&big.logsumexp(1, false))[..1],
            &[want],
            tol,
            "logsumexp 1000",
        );
    }
    // A slice of -inf: logsumexp is -inf (not NaN), like PyTorch.
    let ninf = f64t(
        &s,
        &[f64::NEG_INFINITY, f64::NEG_INFINITY, 0.0, 0.0],
        &[2, 2],
    );
    let l = values(&ninf.logsumexp(1, false));
    assert_eq!(l[0], f64::NEG_INFINITY);
    close(&l[1..], &[2f64.ln()], 1e-15, "logsumexp finite row");
    let e = err_of(x.try_softmax(2));
    assert!(e.contains("softmax") && e.contains("[2, 3]"), "{e}");
}

#[test]
fn activations_match_their_formulas() {
    let rt = rt();
    let s = rt.session("act").unwrap();
    let xv = [-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0];
    let x = f64t(&s, &xv, &[7]);
    let erf = |v: f64| gt_ops::scalar::unary(UnaryOp::Erf, v);
    let gelu: Vec<f64> = xv
        .iter()
        .map(|&v| 0.5 * v * (1.0 + erf(v / 2f64.sqrt())))
        .collect();
    close(&values(&x.gelu()), &gelu, 1e-14, "gelu");
    let c = (2.0 / std::f64::consts::PI).sqrt();
    let gt: Vec<f64> = xv
        .iter()
        .map(|&v| 0.5 * v * (1.0 + (c * (v + 0.044715 * v * v * v)).tanh()))
        .collect();
    close(&values(&x.gelu_tanh()), &gt, 1e-14, "gelu_tanh");
    let silu: Vec<f64> = xv.iter().map(|&v| v / (1.0 + (-v).exp())).collect();
    close(&values(&x.silu()), &silu, 1e-14, "silu");
    // Known values (PyTorch).
    close(
        &values(&x.gelu())[5..6],
        &[0.841_344_746_068_542_9],
        1e-14,
        "gelu(1)",
    );
    close(
        &values(&x.gelu_tanh())[5..6],
        &[0.841_191_990_608_276_8],
        1e-12,
        "gelu_tanh(1)",
    );
    // float32 too.
    close(&values(&x.float().gelu()), &gelu, 1e-6, "gelu f32");
}

#[test]
fn layer_norm_matches_the_direct_formula() {
    let rt = rt();
    let s = rt.session("ln").unwrap();
    let xv = vals(24, 2);
    let x = f64t(&s, &xv, &[2, 3, 4]);
    let wv = [0.5, -1.0, 2.0, 1.5];
    let bv = [0.1, 0.2, -0.3, 0.0];
    let w = f64t(&s, &wv, &[4]);
    let b = f64t(&s, &bv, &[4]);
    let eps = 1e-5;
    let norm = |g: &[f64]| -> Vec<f64> {
        let n = g.len() as f64;
        let mean = g.iter().sum::<f64>() / n;
        let var = g.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        g.iter().map(|v| (v - mean) / (var + eps).sqrt()).collect()
    };
    let want: Vec<f64> = xv
        .chunks(4)
        .flat_map(norm)
        .enumerate()
        .map(|(i, v)| v * wv[i % 4] + bv[i % 4])
        .collect();
    let got = x.layer_norm(1, Some(&w), Some(&b), eps);
    assert_eq!(got.dims(), &[2, 3, 4]);
    close(&values(&got), &want, 1e-12, "layer_norm last axis");
    let want2: Vec<f64> = xv.chunks(12).flat_map(norm).collect();
    close(
        &values(&x.layer_norm(2, None, None, eps)),
        &want2,
        1e-12,
        "layer_norm 2 axes",
    );
    let only_w: Vec<f64> = xv
        .chunks(4)
        .flat_map(norm)
        .enumerate()
        .map(|(i, v)| v * wv[i % 4])
        .collect();
    close(
        &values(&x.layer_norm(1, Some(&w), None, eps)),
        &only_w,
        1e-12,
        "layer_norm weight",
    );
    let e = err_of(x.try_layer_norm(2, Some(&w), None, eps));
    assert!(
        e.contains("layer_norm") && e.contains("[4]") && e.contains("[3, 4]"),
        "{e}"
    );
    let e = err_of(x.try_layer_norm(4, None, None, eps));
    assert!(e.contains("layer_norm") && e.contains("[2, 3, 4]"), "{e}");
}

#[test]
fn split_chunk_cat_and_stack_round_trip() {
    let rt = rt();
    let s = rt.session("split").unwrap();
    let g = s
        .try_arange(0.0, 14.0, 1.0, DType::F32)
        .unwrap()
        .reshape(&[2, 7]);
    let parts = g.split(3, 1);
    let dims: Vec<Vec<usize>> = parts.iter().map(|p| p.dims().to_vec()).collect();
    assert_eq!(dims, [vec![2, 3], vec![2, 3], vec![2, 1]]);
    assert_eq!(values(&parts[2]), [6.0, 13.0]);
    assert_eq!(values(&gt::cat(&parts, -1)), values(&g));
    let rows = g.split(1, 0);
    assert_eq!(rows.len(), 2);
    assert_eq!(values(&gt::cat(&rows, 0)), values(&g));
    // PyTorch's chunk: pieces of ceil(7 / 3) = 3, and 6 in 4 chunks gives 3 pieces of 2.
    let ch: Vec<usize> = g.chunk(3, -1).iter().map(|p| p.dims()[1]).collect();
    assert_eq!(ch, [3, 3, 1]);
    let six = g.slice(1, 0, 6, 1);
    let ch: Vec<usize> = six.chunk(4, 1).iter().map(|p| p.dims()[1]).collect();
    assert_eq!(ch, [2, 2, 2]);
    assert_eq!(g.chunk(1, 0).len(), 1);
    assert_eq!(values(&gt::cat(&six.chunk(4, 1), 1)), values(&six));

    let a = s
        .try_tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])
        .unwrap();
    let b = s
        .try_tensor(&[10.0, 20.0, 30.0, 40.0, 50.0, 60.0], [2, 3])
        .unwrap();
    let st0 = gt::stack(&[&a, &b], 0);
    assert_eq!(st0.dims(), &[2, 2, 3]);
    assert_eq!(values(&st0.index(&[Idx::At(1)])), values(&b));
    let st = gt::stack(&[a.clone(), b.clone()], -1);
    assert_eq!(st.dims(), &[2, 3, 2]);
    assert_eq!(
        values(&st),
        [1.0, 10.0, 2.0, 20.0, 3.0, 30.0, 4.0, 40.0, 5.0, 50.0, 6.0, 60.0]
    );
    let back: Vec<Tensor> = st.split(1, -1).iter().map(|p| p.squeeze(-1)).collect();
    assert_eq!(values(&back[0]), values(&a));
    assert_eq!(values(&back[1]), values(&b));
    // Dtypes are promoted.
    let c = gt::cat(&[&a, &b.double()], 0);
    assert_eq!((c.dtype(), c.dims()), (DType::F64, &[4usize, 3][..]));

    let e = err_of(gt::try_cat(&[&a, &a.reshape(&[3, 2])], 0));
    assert!(
        e.contains("cat") && e.contains("[3, 2]") && e.contains("[2, 3]"),
        "{e}"
    );
    let e = err_of(gt::try_stack(&[&a, &a.reshape(&[3, 2])], 0));
    assert!(e.contains("stack") && e.contains("[3, 2]"), "{e}");
    let e = err_of(gt::try_cat::<Tensor>(&[], 0));
    assert!(e.contains("cat"), "{e}");
    let e = err_of(gt::try_stack(&[&a], 3));
    assert!(e.contains("stack") && e.contains("axis 3"), "{e}");
    assert!(g.try_split(0, 0).is_err());
    assert!(g.try_chunk(0, 0).is_err());
}

#[test]
fn index_select_gather_and_embedding() {
    let rt = rt();
    let s = rt.session("gather").unwrap();
    let w = s
        .try_arange(0.0, 12.0, 1.0, DType::F32)
        .unwrap()
        .reshape(&[4, 3]);
    let ids = i64t(&s, &[3, 0, 3], &[3]);
    let r = w.index_select(0, &ids);
    assert_eq!(r.dims(), &[3, 3]);
    assert_eq!(
        values(&r),
        [9.0, 10.0, 11.0, 0.0, 1.0, 2.0, 9.0, 10.0, 11.0]
    );
    let c = w.index_select(-1, &i64t(&s, &[2, 0], &[2]));
    assert_eq!(c.dims(), &[4, 2]);
    assert_eq!(values(&c), [2.0, 0.0, 5.0, 3.0, 8.0, 6.0, 11.0, 9.0]);
    let one = w.index_select(0, &s.try_tensor_i64(&[1], Vec::<usize>::new()).unwrap());
    assert_eq!(
        (one.dims(), values(&one)),
        (&[1usize, 3][..], vec![3.0, 4.0, 5.0])
    );
    let e = err_of(w.try_index_select(0, &f64t(&s, &[1.0], &[1])));
    assert!(e.contains("index_select") && e.contains("int64"), "{e}");

    // PyTorch's gather example.
    let t = s.try_tensor(&[1.0, 2.0, 3.0, 4.0], [2, 2]).unwrap();
    let g = t.gather(1, &i64t(&s, &[0, 0, 1, 0], &[2, 2]));
    assert_eq!(values(&g), [1.0, 1.0, 4.0, 3.0]);
    let g0 = t.gather(0, &i64t(&s, &[1, 0], &[1, 2]));
    assert_eq!(values(&g0), [3.0, 2.0]);

    let e2 = gt::embedding(&w, &i64t(&s, &[1, 2, 3, 0], &[2, 2]));
    assert_eq!(e2.dims(), &[2, 2, 3]);
    assert_eq!(
        values(&e2),
        [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 0.0, 1.0, 2.0]
    );
    let e1 = gt::embedding(&w, &i64t(&s, &[2], &[1]));
    assert_eq!(
        (e1.dims(), values(&e1)),
        (&[1usize, 3][..], vec![6.0, 7.0, 8.0])
    );
    let e = err_of(gt::try_embedding(&w, &f64t(&s, &[1.0], &[1])));
    assert!(e.contains("embedding") && e.contains("int64"), "{e}");
    let e = err_of(gt::try_embedding(&w.flatten(), &ids));
    assert!(e.contains("embedding") && e.contains("[12]"), "{e}");
}

#[test]
fn index_put_is_functional_and_broadcasts() {
    let rt = rt();
    let s = rt.session("put").unwrap();
    let x = s.try_full([3, 4], 0.0, DType::F64).unwrap();
    let row = s.try_tensor(&[1.0, 2.0, 3.0, 4.0], [4]).unwrap();
    let y = x.index_put(&[Idx::At(1)], &row);
    assert_eq!(y.dtype(), DType::F64);
    assert_eq!(
        values(&y),
        [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 0.0, 0.0]
    );
    assert_eq!(values(&x), [0.0; 12], "the input is unchanged");
    // A 0-d value into a strided slice.
    let seven = s.try_full(Vec::<usize>::new(), 7.0, DType::F32).unwrap();
    let y = x.index_put(&[Idx::All, Idx::step(0..4, 2)], &seven);
    assert_eq!(
        values(&y),
        [7.0, 0.0, 7.0, 0.0, 7.0, 0.0, 7.0, 0.0, 7.0, 0.0, 7.0, 0.0]
    );
    // A column broadcast across a range.
    let col = f64t(&s, &[10.0, 20.0, 30.0], &[3, 1]);
    let y = x.index_put(&[Idx::All, (1..3).into()], &col);
    assert_eq!(
        values(&y),
        [0.0, 10.0, 10.0, 0.0, 0.0, 20.0, 20.0, 0.0, 0.0, 30.0, 30.0, 0.0]
    );
    // Negative positions, a single element, and a new axis.
    let y = x.index_fill(&[Idx::At(-1), Idx::At(-2)], 5.0);
    assert_eq!(values(&y)[10], 5.0);
    assert_eq!(values(&y).iter().sum::<f64>(), 5.0);
    let y = x.index_put(&[Idx::NewAxis, Idx::At(0)], &row.reshape(&[1, 4]));
    assert_eq!(values(&y)[..4], [1.0, 2.0, 3.0, 4.0]);
    let y = x.index_fill(&[(1..).into()], -2.0);
    assert_eq!(values(&y)[3..5], [0.0, -2.0]);
    assert_eq!(values(&y).iter().sum::<f64>(), -16.0);

    let e = err_of(x.try_index_put(&[Idx::At(0)], &f64t(&s, &[1.0; 5], &[5])));
    assert!(
        e.contains("index_put") && e.contains("[5]") && e.contains("[4]"),
        "{e}"
    );
    let e = err_of(x.try_index_fill(&[Idx::At(3)], 1.0));
    assert!(
        e.contains("index_put") && e.contains("out of bounds"),
        "{e}"
    );
}

#[test]
fn dtype_shorthands_views_and_creation() {
    let rt = rt();
    let s = rt.session("misc").unwrap();
    let a = s.try_tensor(&[1.7, -0.0, 2.0, -2.7], [2, 2]).unwrap();
    let l = a.long();
    assert_eq!(l.dtype(), DType::I64);
    assert_eq!(values(&l), [1.0, 0.0, 2.0, -2.0]);
    let b = a.bool();
    assert_eq!(
        (b.dtype(), values(&b)),
        (DType::Bool, vec![1.0, 0.0, 1.0, 1.0])
    );
    assert_eq!(a.double().dtype(), DType::F64);
    assert_eq!(a.double().float().dtype(), DType::F32);
    assert_eq!(l.float().dtype(), DType::F32);
    let f = a.flatten();
    assert_eq!(f.dims(), &[4]);
    assert_eq!(f.flatten().id(), f.id());
    assert_eq!(
        s.try_full(Vec::<usize>::new(), 3.0, DType::F32)
            .unwrap()
            .flatten()
            .dims(),
        &[1]
    );

    let r = s.try_tensor(&[1.0, 2.0], [1, 2]).unwrap();
    let e = r.expand([3, 2]);
    assert_eq!(
        (e.dims(), values(&e)),
        (&[3usize, 2][..], vec![1.0, 2.0, 1.0, 2.0, 1.0, 2.0])
    );
    assert_eq!(values(&r.broadcast_to([2, 3, 2])), [1.0, 2.0].repeat(6));
    assert_eq!(r.broadcast_to([1, 2]).id(), r.id());
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| r.expand([3, 3])));
    let msg = caught.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("expand") && msg.contains("[3, 3]"), "{msg}");

    let z = gt::zeros_like(&l);
    assert_eq!(
        (z.dims(), z.dtype(), values(&z)),
        (&[2usize, 2][..], DType::I64, vec![0.0; 4])
    );
    assert!(z.session().same(&s));
    assert_eq!(values(&gt::ones_like(&a)), [1.0; 4]);
    let f = gt::full_like(&a.double(), 2.5);
    assert_eq!((f.dtype(), values(&f)), (DType::F64, vec![2.5; 4]));

    let ids = s.try_tensor_i64(&[-3, 0, 1 << 40], [3]).unwrap();
    assert_eq!(ids.dtype(), DType::I64);
    assert_eq!(values(&ids), [-3.0, 0.0, (1u64 << 40) as f64]);
    let m = s.try_tensor_bool(&[true, false, true], [3]).unwrap();
    assert_eq!((m.dtype(), values(&m)), (DType::Bool, vec![1.0, 0.0, 1.0]));
    assert!(s.try_tensor_i64(&[1, 2], [3]).is_err());
    // The module-level forms use the default session.
    let d = gt::tensor_i64(&[4, 5], [2]);
    assert_eq!((d.dtype(), values(&d)), (DType::I64, vec![4.0, 5.0]));
    let d = gt::tensor_bool(&[false, true], [2]);
    assert_eq!((d.dtype(), values(&d)), (DType::Bool, vec![0.0, 1.0]));
}

#[test]
fn dropout_zeroes_p_and_scales_survivors_reproducibly() {
    let rt = rt();
    let s = rt.session("dropout").unwrap();
    let n = 10_000;
    let p = 0.3;
    let x = s.try_full([n], 2.0, DType::F32).unwrap();
    s.manual_seed(7);
    let y = values(&x.dropout(p, true));
    let zeros = y.iter().filter(|&&v| v == 0.0).count() as f64 / n as f64;
    assert!((zeros - p).abs() < 0.02, "zero fraction {zeros}");
    let scaled = (2.0f32 / 0.7f32) as f64;
    assert!(
        y.iter().all(|&v| v == 0.0 || (v - scaled).abs() < 1e-6),
        "survivors are x / (1 - p)"
    );
    // The mask is the session's uniform stream: dropped exactly where rand < p.
    s.manual_seed(7);
    let u = values(&s.try_rand([n], DType::F32).unwrap());
    assert!(u.iter().zip(&y).all(|(u, y)| (*u < p) == (*y == 0.0)));
    s.manual_seed(7);
    assert_eq!(values(&x.dropout(p, true)), y, "same seed, same mask");
    s.manual_seed(8);
    assert_ne!(values(&x.dropout(p, true)), y, "another seed, another mask");
    // Evaluation mode and p = 0 are the identity.
    let ev = x.dropout(p, false);
    assert_eq!(ev.id(), x.id());
    assert_eq!(x.dropout(0.0, true).id(), x.id());
    for bad in [1.0, -0.1, f64::NAN] {
        let e = err_of(x.try_dropout(bad, true));
        assert!(e.contains("dropout"), "{e}");
    }
    // Gradient: 1 / (1 - p) where kept, 0 where dropped.
    let leaf = s
        .try_full([64], 1.0, DType::F64)
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let out = leaf.dropout(0.5, true);
    out.sum().backward().unwrap();
    let (o, g) = (values(&out), values(&leaf.grad().unwrap()));
    assert!(o.iter().zip(&g).all(|(o, g)| *g == *o), "{o:?} {g:?}");
    assert!(o.contains(&0.0) && o.contains(&2.0));
}
