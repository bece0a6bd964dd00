//! Autograd, nn, optim and checkpoints through the embedded runtime.

use gt::nn::{cross_entropy, mse_loss, Linear, Module, Sequential};
use gt::optim::{Adam, CosineLr, Optimizer, Sgd, StepLr};
use gt::{DType, Idx, Tensor};

fn vals(t: &Tensor) -> Vec<f64> {
    t.to_vec_f64().unwrap()
}

fn leaf(values: &[f64], shape: &[usize]) -> Tensor {
    let t = gt::tensor_f64(values, shape.to_vec());
    t.requires_grad_(true).unwrap()
}

#[test]
fn gradients_accumulate_and_reduce_over_broadcasting() {
    let x = leaf(&[1.0, 2.0, 3.0], &[3, 1]);
    let b = leaf(&[10.0, 20.0], &[2]);
    let y = (&x * &x + &b).sum(); // [3, 2] broadcast
    y.backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![4.0, 8.0, 12.0]); // 2x summed over 2 columns
    assert_eq!(vals(&b.grad().unwrap()), vec![3.0, 3.0]);
    assert_eq!(x.grad().unwrap().dims(), &[3, 1]);
    // A second backward accumulates, like PyTorch.
    let y2 = (&x * &x + &b).sum();
    y2.backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![8.0, 16.0, 24.0]);
    x.zero_grad();
    assert!(x.grad().is_none());
}

#[test]
fn slicing_matmul_and_reductions_backpropagate() {
    let x = leaf(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]);
    let w = leaf(&[1.0, -1.0, 0.5, 2.0, 0.0, 1.0], &[3, 2]);
    let h = x.matmul(&w).relu(); // [2, 2]
    let part = h.index(&[Idx::All, (0..1).into()]).sum()
        + x.index(&[1.into(), Idx::step(0..3, 2)]).mean() * 2.0;
    part.backward().unwrap();
    // d/dx of sum(relu(xw)[:, 0]) = w[:, 0] where (xw)[:, 0] > 0; plus x[1, ::2] terms.
    // xw[:, 0] = [1*1+2*0.5+3*0, 4*1+5*0.5+6*0] = [2, 6.5] > 0.
    let gx = vals(&x.grad().unwrap());
    assert_eq!(gx, vec![1.0, 0.5, 0.0, 1.0 + 1.0, 0.5, 0.0 + 1.0]);
    let gw = vals(&w.grad().unwrap());
    assert_eq!(gw, vec![5.0, 0.0, 7.0, 0.0, 9.0, 0.0]);
}

#[test]
fn no_grad_detach_and_errors() {
    let x = leaf(&[1.0, 2.0], &[2]);
    {
        let _g = gt::no_grad();
        let y = &x * 2.0;
        assert!(!y.requires_grad());
    }
    let d = x.detach();
    assert!(!d.requires_grad());
    assert!(
        (&d * 3.0).sum().backward().is_err(),
        "nothing to differentiate"
    );
    let v = &x * 3.0;
    let e = v.backward().unwrap_err().to_string();
    assert!(e.contains("scalar"), "{e}");
    v.backward_with(&gt::tensor_f64(&[1.0, 0.5], [2])).unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![3.0, 1.5]);
}

#[test]
fn tape_lists_ops_ids_and_shapes() {
    let s = gt::session();
    let x = leaf(&[1.0, 2.0, 3.0], &[3]);
    let y = x.exp().sum();
    // The default session is shared by the tests running beside this one, so the tape may hold
    // their ops too: follow this test's chain by ids rather than by position.
    let tape = gt_client::autograd::tape(&s);
    let exp = tape.iter().find(|e| e.inputs == [x.id()]).unwrap();
    assert_eq!(exp.op, "exp");
    assert_eq!(exp.meta.shape.dims(), &[3]);
    let sum = tape.iter().find(|e| e.output == y.id()).unwrap();
    assert_eq!((sum.op, sum.inputs.as_slice()), ("sum", &[exp.output][..]));
    assert_eq!(sum.meta.shape.rank(), 0);
    let exp_at = tape.iter().position(|e| e == exp).unwrap();
    let sum_at = tape.iter().position(|e| e == sum).unwrap();
    assert!(exp_at < sum_at, "the tape is oldest first");
    let printed = gt_client::autograd::format_tape(&tape);
    assert!(
        printed.contains("exp") && printed.contains("[3]"),
        "{printed}"
    );
}

#[test]
fn modules_have_pytorch_names_layouts_and_init() {
    let m = Sequential::new()
        .append(Linear::new(4, 8))
        .append(gt::nn::layers::relu())
        .append(Linear::new(8, 2));
    let names: Vec<String> = m.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
    let w = m.named_parameters()[0].1.get();
    assert_eq!(w.dims(), &[8, 4]);
    let bound = 1.0 / 2.0; // 1/sqrt(4)
    assert!(vals(&w).iter().all(|v| v.abs() <= bound));
    let y = m.forward(&gt::randn([5, 4]));
    assert_eq!(y.dims(), &[5, 2]);
}

#[test]
fn sgd_and_adam_follow_pytorch_formulas() {
    let lin = Linear::with_options(2, 1, false, DType::F64);
    lin.weight.set(gt::tensor_f64(&[0.5, -1.0], [1, 2]));
    let x = gt::tensor_f64(&[1.0, 2.0], [1, 2]);
    let grad_at = |lin: &Linear| {
        lin.weight.zero_grad();
        lin.forward(&x).sum().backward().unwrap(); // d/dw = x
    };
    let mut sgd = Sgd::new(lin.parameters(), 0.1).momentum(0.9, false);
    grad_at(&lin);
    sgd.step().unwrap();
    assert_eq!(vals(&lin.weight.get()), vec![0.5 - 0.1, -1.0 - 0.2]);
    grad_at(&lin);
    sgd.step().unwrap(); // buf = 0.9 * x + x = 1.9x
    let w = vals(&lin.weight.get());
    assert!(
        (w[0] - (0.4 - 0.19)).abs() < 1e-12 && (w[1] - (-1.2 - 0.38)).abs() < 1e-12,
        "{w:?}"
    );

    lin.weight.set(gt::tensor_f64(&[0.5, -1.0], [1, 2]));
    let mut adam = Adam::new(lin.parameters(), 0.01);
    grad_at(&lin);
    adam.step().unwrap();
    // First Adam step moves each weight by lr * g / (|g| + eps·…) ≈ lr.
    let w = vals(&lin.weight.get());
    assert!(
        (w[0] - 0.49).abs() < 1e-6 && (w[1] + 1.01).abs() < 1e-6,
        "{w:?}"
    );
    let mut cos = CosineLr::new(&adam, 10, 0.0);
    for _ in 0..5 {
        cos.step(&mut adam);
    }
    assert!((adam.lr() - 0.005).abs() < 1e-12);
    let mut sched = StepLr::new(&sgd, 2, 0.5);
    sched.step(&mut sgd);
    sched.step(&mut sgd);
    assert!((sgd.lr() - 0.05).abs() < 1e-12);
}

#[test]
fn mse_and_cross_entropy_values() {
    let p = gt::tensor_f64(&[1.0, 2.0], [2]);
    let t = gt::tensor_f64(&[0.0, 4.0], [2]);
    assert_eq!(mse_loss(&p, &t).item().unwrap(), 2.5);
    let logits = gt::tensor_f64(&[1.0, 2.0, 3.0, 1.0, 1.0, 1.0], [2, 3]);
    let targets = gt::tensor_i64(&[2, 0], [2]);
    let lse0 = (1f64.exp() + 2f64.exp() + 3f64.exp()).ln();
    let want = ((lse0 - 3.0) + 3f64.ln()) / 2.0;
    let got = cross_entropy(&logits, &targets, None)
        .unwrap()
        .item()
        .unwrap();
    assert!((got - want).abs() < 1e-12, "{got} vs {want}");
    let ignored = cross_entropy(&logits, &gt::tensor_i64(&[2, -100], [2]), Some(-100))
        .unwrap()
        .item()
        .unwrap();
    assert!((ignored - (lse0 - 3.0)).abs() < 1e-12);
}

#[test]
fn checkpoints_round_trip_and_reject_mismatches() {
    let dir = std::env::temp_dir().join(format!("gt-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("mlp.safetensors");
    let a = Sequential::new()
        .append(Linear::new(3, 4))
        .append(gt::nn::layers::tanh())
        .append(Linear::new(4, 1));
    gt::checkpoint::save(&path, &a).unwrap();
    let b = Sequential::new()
        .append(Linear::new(3, 4))
        .append(gt::nn::layers::tanh())
        .append(Linear::new(4, 1));
    gt::checkpoint::load(&path, &b).unwrap();
    let x = gt::randn([2, 3]);
    assert_eq!(
        a.forward(&x).to_vec().unwrap(),
        b.forward(&x).to_vec().unwrap()
    );
    let wrong = Sequential::new().append(Linear::new(3, 5));
    let e = gt::checkpoint::load(&path, &wrong).unwrap_err().to_string();
    assert!(
        e.contains("0.weight") && e.contains("unexpected '2.bias'"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn clamp_passes_the_whole_gradient_at_its_bounds_like_pytorch() {
    let x = leaf(&[-1.0, 0.5, 2.0, 3.0], &[4]);
    x.clamp(Some(-1.0), Some(2.0)).sum().backward().unwrap();
    assert_eq!(vals(&x.grad().unwrap()), vec![1.0, 1.0, 1.0, 0.0]);
}

#[test]
fn backward_computes_no_gradient_for_inputs_that_do_not_need_one() {
    // A fresh runtime so the worker's op counts are this test's alone.
    let rt = gt::runtime::Embedded::start(1, 1, &gt::config::Config::default()).unwrap();
    let s = rt.session("no-wasted-grads").unwrap();
    let x = s
        .try_tensor_f64(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3])
        .unwrap();
    let w = s
        .try_tensor_f64(&[1.0, -1.0, 0.5, 2.0, 0.0, 1.0], [3, 2])
        .unwrap()
        .requires_grad_(true)
        .unwrap();
    let loss = (x.matmul(&w) * &x.sum_dims(&[1], true)).sum();
    loss.backward().unwrap();
    // dL/dw = xᵀ · (rowsum(x) broadcast over columns): rowsums 6 and 15.
    assert_eq!(
        vals(&w.grad().unwrap()),
        vec![66.0, 66.0, 87.0, 87.0, 108.0, 108.0]
    );
    let stats = s.worker_stats().unwrap().remove(0);
    let count = |name: &str| {
        stats
            .ops_by_name
            .iter()
            .find(|(n, _)| n == name)
            .map_or(0, |x| x.1)
    };
    // The forward product and dL/dw; dL/dx (a constant) is never computed.
    assert_eq!(count("matmul"), 2, "{:?}", stats.ops_by_name);
}
