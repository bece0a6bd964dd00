//! GT against fixtures produced by PyTorch (`scripts/make_fixtures.py`): every op's forward values
//! and input gradients, a PyTorch state dict loaded through safetensors, 50 Adam steps of an MLP
//! and 20 AdamW steps of a one-block transformer, loss for loss.

use gt::nn::{
    binary_cross_entropy, binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss,
};
use gt::nn::{Gpt, GptConfig, Linear, Module, Sequential};
use gt::optim::{Adam, Optimizer};
use gt::{DType, Idx, Tensor};
use serde_json::Value;

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn load_json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture(name)).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn shape(v: &Value) -> Vec<usize> {
    v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

fn tensor(v: &Value) -> Tensor {
    let data = floats(&v["data"]);
    match v["dtype"].as_str().unwrap() {
        "float64" => gt::tensor_f64(&data, shape(v))
            .requires_grad_(true)
            .unwrap(),
        "int64" => gt::tensor_i64(
            &data.iter().map(|&x| x as i64).collect::<Vec<_>>(),
            shape(v),
        ),
        "bool" => gt::tensor_bool(
            &data.iter().map(|&x| x != 0.0).collect::<Vec<_>>(),
            shape(v),
        ),
        other => panic!("unexpected dtype {other}"),
    }
}

/// The GT spelling of each PyTorch case in the fixture (test-only name dispatch).
fn apply(name: &str, x: &[Tensor]) -> Tensor {
    let ce = |ig| cross_entropy(&x[0], &x[1], ig).unwrap();
    match name {
        "neg" => -&x[0],
        "exp" => x[0].exp(),
        "log" => x[0].log(),
        "sqrt" => x[0].sqrt(),
        "relu" => x[0].relu(),
        "sigmoid" => x[0].sigmoid(),
        "tanh" => x[0].tanh(),
        "abs" => x[0].abs(),
        "add" => &x[0] + &x[1],
        "sub" => &x[0] - &x[1],
        "mul" => &x[0] * &x[1],
        "div" => &x[0] / &x[1],
        "pow" => x[0].pow(&x[1]),
        "pow_scalar" => x[0].pow_scalar(2.5),
        "rsub_scalar" => 1.5 - &x[0],
        "rdiv_scalar" => 2.0 / &x[0],
        "maximum" => x[0].maximum(&x[1]),
        "minimum" => x[0].minimum(&x[1]),
        "matmul" | "matmul_vec" => x[0].matmul(&x[1]),
        "sum_dims" => x[0].sum_dims(&[0, 2], false),
        "mean_keepdim" => x[0].mean_dims(&[1], true),
        "amax" => x[0].max_dims(&[-1], false),
        "amin" => x[0].min_dims(&[0, 1], false),
        "sum_all" => x[0].sum(),
        "var" => x[0].var(&[1], false, None),
        "std" => x[0].std(&[0], true, None),
        "logsumexp" => x[0].logsumexp(1, false),
        "softmax" => x[0].softmax(-1),
        "log_softmax" => x[0].log_softmax(0),
        "gelu" => x[0].gelu(),
        "gelu_tanh" => x[0].gelu_tanh(),
        "silu" => x[0].silu(),
        "layer_norm" => x[0].layer_norm(1, Some(&x[1]), Some(&x[2]), 1e-5),
        "clamp" => x[0].clamp(Some(-0.5), Some(0.7)),
        "where" => gt::where_(&x[0], &x[1], &x[2]),
        "masked_fill" => x[0].masked_fill(&x[1], -2.0),
        "cat" => gt::cat(&[&x[0], &x[1], &x[2]], 1),
        "stack" => gt::stack(&[&x[0], &x[1]], 1),
        "transpose" => x[0].transpose(0, 2),
        "reshape" => x[0].reshape(&[4, -1]),
        "slice" => x[0].index(&[
            Idx::step(1..4, 2),
            Idx::Range {
                start: None,
                end: None,
                step: 3,
            },
        ]),
        "index_select" => x[0].index_select(0, &x[1]),
        "gather" => x[0].gather(1, &x[1]),
        "embedding" => gt::embedding(&x[0], &x[1]),
        "index_put" => x[0].index_put(&[(1..3).into()], &x[1]),
        "mse_loss" => mse_loss(&x[0], &x[1]),
        "cross_entropy" => ce(None),
        "cross_entropy_ignore" => ce(Some(-100)),
        "nll_loss" => nll_loss(&x[0].log_softmax(1), &x[1], None).unwrap(),
        "bce" => binary_cross_entropy(&x[0], &x[1]),
        "bce_with_logits" => binary_cross_entropy_with_logits(&x[0], &x[1]),
        other => panic!("fixture case {other} has no GT spelling"),
    }
}

fn assert_close(got: &[f64], want: &[f64], rel: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= rel * (1.0 + w.abs()),
            "{what}[{i}]: GT {g}, PyTorch {w}"
        );
    }
}

#[test]
fn every_op_matches_pytorch_values_and_gradients() {
    let ops = load_json("ops.json");
    let cases = ops.as_object().unwrap();
    assert!(cases.len() >= 50, "fixture has {} cases", cases.len());
    for (name, case) in cases {
        let inputs: Vec<Tensor> = case["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(tensor)
            .collect();
        let y = apply(name, &inputs);
        let want = &case["output"];
        assert_eq!(y.dims(), shape(want).as_slice(), "{name}: shape");
        assert_close(
            &y.to_vec_f64().unwrap(),
            &floats(&want["data"]),
            1e-10,
            name,
        );
        let w = gt::tensor_f64(&floats(&case["weight"]["data"]), shape(&case["weight"]));
        (&y.to_dtype(DType::F64) * &w).sum().backward().unwrap();
        for (i, g) in case["grads"].as_array().unwrap().iter().enumerate() {
            if g.is_null() {
                continue;
            }
            let got = inputs[i]
                .grad()
                .unwrap_or_else(|| panic!("{name}: no gradient for input {i}"));
            assert_close(
                &got.to_vec_f64().unwrap(),
                &floats(&g["data"]),
                1e-9,
                &format!("{name} grad {i}"),
            );
        }
    }
}

fn mlp() -> Sequential {
    Sequential::new()
        .append(Linear::new(4, 16))
        .append(gt::nn::layers::relu())
        .append(Linear::new(16, 8))
        .append(gt::nn::layers::tanh())
        .append(Linear::new(8, 1))
}

#[test]
fn pytorch_state_dict_loads_and_adam_losses_match() {
    let model = mlp();
    gt::checkpoint::load(fixture("mlp_init.safetensors"), &model).unwrap();
    let data: std::collections::HashMap<String, Tensor> =
        gt::checkpoint::load_tensors(fixture("mlp_data.safetensors"))
            .unwrap()
            .into_iter()
            .collect();
    let (x, y) = (&data["x"], &data["y"]);
    let ref_json = load_json("mlp.json");
    let out = gt::no_grad_eval(|| model.forward(x));
    assert_close(
        &out.to_vec_f64().unwrap(),
        &floats(&ref_json["initial_output"]),
        1e-5,
        "initial output",
    );
    let mut opt = Adam::new(model.parameters(), 0.01);
    for (step, want) in floats(&ref_json["losses"]).iter().enumerate() {
        opt.zero_grad();
        let loss = binary_cross_entropy_with_logits(&model.forward(x), y);
        loss.backward().unwrap();
        opt.step().unwrap();
        let got = loss.item().unwrap();
        assert!(
            (got - want).abs() <= 1e-4 * want.abs(),
            "step {step}: GT {got}, PyTorch {want}"
        );
    }
}

/// The fixture's record, the one-block GPT with PyTorch's initial weights, and the batch size.
fn pytorch_gpt() -> (Value, Gpt, usize) {
    let r = load_json("gpt.json");
    let get = |k: &str| r["config"][k].as_u64().unwrap() as usize;
    let cfg = GptConfig {
        vocab: get("vocab"),
        context: get("context"),
        dim: get("dim"),
        heads: get("heads"),
        layers: 1,
    };
    let model = Gpt::new(cfg);
    gt::checkpoint::load(fixture("gpt_init.safetensors"), &model).unwrap();
    let batch = get("batch");
    (r, model, batch)
}

#[test]
fn one_block_transformer_follows_pytorch_for_20_adamw_steps() {
    let (r, model, batch) = pytorch_gpt();
    let cfg = model.config;
    let mut opt = Adam::adamw(model.parameters(), 3e-3);
    let t = cfg.context;
    for (step, (ids, want)) in r["batches"]
        .as_array()
        .unwrap()
        .iter()
        .zip(floats(&r["losses"]))
        .enumerate()
    {
        let ids: Vec<i64> = floats(ids).iter().map(|&v| v as i64).collect();
        let all = gt::tensor_i64(&ids, [batch, t + 1]);
        let inputs = all.index(&[Idx::All, (0..t as isize).into()]);
        let targets = all
            .index(&[Idx::All, (1..(t + 1) as isize).into()])
            .reshape(&[-1]);
        opt.zero_grad();
        let logits = model.forward(&inputs).reshape(&[(batch * t) as isize, -1]);
        let loss = cross_entropy(&logits, &targets, None).unwrap();
        loss.backward().unwrap();
        opt.step().unwrap();
        let got = loss.item().unwrap();
        assert!(
            (got - want).abs() <= 1e-4 * want.abs(),
            "step {step}: GT {got}, PyTorch {want}"
        );
    }
}

#[test]
fn gt_writes_back_the_state_dict_pytorch_wrote() {
    let (_, model, _) = pytorch_gpt();
    let path = std::env::temp_dir().join(format!("gt-gpt-{}.safetensors", std::process::id()));
    gt::checkpoint::save(&path, &model).unwrap();
    let ours = gt::checkpoint::load_tensors(&path).unwrap();
    let theirs = gt::checkpoint::load_tensors(fixture("gpt_init.safetensors")).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(ours.len(), theirs.len());
    for ((n1, t1), (n2, t2)) in ours.iter().zip(&theirs) {
        assert_eq!(n1, n2, "same PyTorch names");
        assert_eq!((t1.shape(), t1.dtype()), (t2.shape(), t2.dtype()), "{n1}");
        assert_eq!(t1.to_vec().unwrap(), t2.to_vec().unwrap(), "{n1}");
    }
}
