//! GT in one screen: eager tensor code on the embedded runtime (or on a cluster when `GT_ADDR` is
//! set). Run with `cargo run --release --example quickstart`.

fn main() -> gt::Result<()> {
    gt::manual_seed(0);

    // Creation: from data, constants, ranges and the seeded counter-based generator.
    let x = gt::tensor(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3]);
    let w = gt::randn([3, 4]);
    let b = gt::arange(0.0, 4.0, 1.0);

    // Ops are sent asynchronously; nothing waits until a value is read.
    let h = (x.matmul(&w) + &b).relu();
    let y = (2.0 * &h - 1.0).sigmoid();
    let pooled = y.mean_dims(&[1], true);
    println!("x =\n{x}");
    println!("h = relu(x @ w + b) =\n{h}");
    println!("row means of sigmoid(2h - 1) =\n{pooled}");

    // Views are free on the worker: transpose, slicing with steps, reshape.
    let grid = gt::arange(0.0, 24.0, 1.0).reshape(&[2, 3, 4]);
    let every_other = grid.index(&[gt::Idx::All, (0..3).into(), gt::Idx::step(0..4, 2)]);
    println!("grid[:, 0:3, 0:4:2] =\n{every_other}");
    println!("grid.sum() = {}", grid.sum().item()?);

    // Errors are raised at the call site, with op and shapes.
    match x.try_matmul(&x) {
        Ok(_) => unreachable!("[2, 3] @ [2, 3] cannot work"),
        Err(e) => println!("as expected: {e}"),
    }

    // A loop that allocates nothing new after warm-up (the workers' buffer pool).
    let mut a = gt::zeros([16, 16]);
    let one = gt::ones([16, 16]);
    for _ in 0..1000 {
        a = &a + &one;
    }
    println!("after 1000 adds every element is {}", a.max().item()?);
    gt::sync()?;
    let stats = gt::debug::worker_stats()?;
    print!("{}", gt::debug::format_worker_stats(&stats));
    Ok(())
}
