//! The Cranelift JIT for [`LoopSpec`]s: one native function per loop, a loop nest over the
//! coalesced iteration space that starts at any linear position and stops after exactly the
//! requested number of elements.
//!
//! The generated function is `f(inputs, outputs, start_index, count)`: `inputs` are the
//! storage pointers, `outputs` point at the output element of the range's first position,
//! `start_index` is that position's multi-index over the coalesced space. The body walks rows
//! of the last axis: per row it computes each input's pointer, evaluates the nodes that do not
//! change along the row (constants, loads of inputs with inner stride 0 and whatever depends
//! only on those) once, then runs the inner loop over the rest of the program with one load
//! per input and one store per output per element, and carries into the outer axes. All-float
//! programs first run a 128-bit vector loop over the row (see [`super::loop_jit_simd`]).
//!
//! Transcendentals call the eager kernels' own functions, so results are bit-identical to the
//! eager ops (and to the interpreter). The kernel owns its `JITModule`, which keeps the code
//! alive and frees it on drop.

use super::loop_check::{unravel, validate, LoopPlan};
use super::loop_ir::{LoopKernel, LoopNode, LoopSpec};
use super::loop_jit_ops::{emit_const, emit_node, ir_type};
use super::loop_jit_simd::{emit_vector_node, vector_type};
use super::loop_jit_sym::{batch_symbol, binary_symbol, symbols, unary_symbol};
use cranelift_codegen::ir::condcodes::IntCC;
use cranelift_codegen::ir::{
    types, AbiParam, Block, FuncRef, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, Value,
};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use cranelift_jit::{JITBuilder, JITModule};
use cranelift_module::{default_libcall_names, Linkage, Module};
use gt_core::{DType, Error, Result};
use smallvec::SmallVec;
use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

/// The op name in JIT errors.
const OP: &str = "fused loop JIT";

/// The generated function's signature.
type KernelFn = unsafe extern "C" fn(*const *const u8, *const *mut u8, *const usize, usize);

fn jit_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::invalid(OP, format!("{what}: {e}"))
}

/// Validates `spec` and compiles it to native code. An error means the caller should fall back
/// to [`super::loop_interp::interpret`] (or to eager execution).
pub fn jit(spec: &LoopSpec) -> Result<Arc<dyn LoopKernel>> {
    let plan = validate(spec)?;
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| f.set(k, v).map_err(|e| jit_err(k, e));
    set(&mut flags, "opt_level", "speed")?;
    set(&mut flags, "use_colocated_libcalls", "false")?;
    set(&mut flags, "is_pic", "false")?;
    // The verifier costs compile time: on in tests and debug builds only.
    let verify = if cfg!(any(test, debug_assertions)) {
        "true"
    } else {
        "false"
    };
    set(&mut flags, "enable_verifier", verify)?;
    let isa = cranelift_native::builder()
        .map_err(|e| jit_err("no native code generator for this machine", e))?
        .finish(settings::Flags::new(flags))
        .map_err(|e| jit_err("target", e))?;
    let mut builder = JITBuilder::with_isa(isa, default_libcall_names());
    for (name, ptr) in symbols() {
        builder.symbol(name, ptr);
    }
    let mut module = JITModule::new(builder);
    let ptr = module.target_config().pointer_type();
    let mut ctx = module.make_context();
    for _ in 0..3 {
        ctx.func.signature.params.push(AbiParam::new(ptr));
    }
    ctx.func.signature.params.push(AbiParam::new(types::I64));
    let id = module
        .declare_function("gt_fused_loop", Linkage::Export, &ctx.func.signature)
        .map_err(|e| jit_err("declare", e))?;
    let vector = vector_type(spec, &plan);
    // Declare the eager functions the program calls.
    let mut calls: HashMap<&'static str, FuncRef> = HashMap::new();
    let mut fctx = FunctionBuilderContext::new();
    {
        let mut b = FunctionBuilder::new(&mut ctx.func, &mut fctx);
        for (i, node) in spec.nodes.iter().enumerate() {
            let wide = plan.dtypes[i] == DType::F64;
            let (sym, arity) = match node {
                LoopNode::Unary(op, _) => (unary_symbol(*op, wide), 1),
                LoopNode::Binary(op, _, _) => (binary_symbol(*op, wide), 2),
                _ => (None, 0),
            };
            let Some(sym) = sym else { continue };
            if calls.contains_key(sym) {
                continue;
            }
            let ty = ir_type(plan.dtypes[i]);
            let mut sig = module.make_signature();
            sig.params.extend((0..arity).map(|_| AbiParam::new(ty)));
            sig.returns.push(AbiParam::new(ty));
            let fid = module
                .declare_function(sym, Linkage::Import, &sig)
                .map_err(|e| jit_err(sym, e))?;
            calls.insert(sym, module.declare_func_in_func(fid, b.func));
            if vector.is_some() {
                // The batch form: (lanes in/out, [second operand,] lane count).
                let batch = batch_symbol(sym);
                let mut sig = module.make_signature();
                sig.params.extend((0..arity).map(|_| AbiParam::new(ptr)));
                sig.params.push(AbiParam::new(types::I64));
                let fid = module
                    .declare_function(batch, Linkage::Import, &sig)
                    .map_err(|e| jit_err(batch, e))?;
                calls.insert(batch, module.declare_func_in_func(fid, b.func));
            }
        }
        build_nest(&mut b, spec, &plan, &calls, ptr, vector);
        b.seal_all_blocks();
        b.finalize(module.target_config());
    }
    module
        .define_function(id, &mut ctx)
        .map_err(|e| jit_err("compile", e))?;
    module.clear_context(&mut ctx);
    module
        .finalize_definitions()
        .map_err(|e| jit_err("link", e))?;
    let code = module.get_finalized_function(id);
    // SAFETY: the function was just compiled with exactly this signature.
    let func = unsafe { std::mem::transmute::<*const u8, KernelFn>(code) };
    Ok(Arc::new(JitKernel {
        func,
        numel: plan.numel,
        dims: plan.dims.clone(),
        ninputs: spec.inputs.len(),
        out_sizes: spec
            .outputs
            .iter()
            .map(|&o| plan.dtypes[o as usize].size())
            .collect(),
        _module: Owner(Some(module)),
    }))
}

/// Keeps the compiled code alive and frees it when the kernel drops.
struct Owner(Option<JITModule>);

// SAFETY: the module is never used after compilation except to free its memory on drop, which
// happens once, when the last reference to the kernel is gone (so no call is running).
unsafe impl Send for Owner {}
unsafe impl Sync for Owner {}

impl Drop for Owner {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            // SAFETY: the kernel owning this module is being dropped: nothing can call its code.
            unsafe { m.free_memory() };
        }
    }
}

/// A compiled loop.
struct JitKernel {
    func: KernelFn,
    numel: usize,
    dims: SmallVec<[usize; 6]>,
    ninputs: usize,
    out_sizes: SmallVec<[usize; 4]>,
    _module: Owner,
}

impl LoopKernel for JitKernel {
    unsafe fn run(&self, inputs: &[*const u8], outputs: &[*mut u8], range: Range<usize>) {
        assert!(
            range.start <= range.end && range.end <= self.numel,
            "fused loop range {range:?} outside its {} elements",
            self.numel
        );
        assert_eq!(inputs.len(), self.ninputs, "fused loop: input count");
        assert_eq!(
            outputs.len(),
            self.out_sizes.len(),
            "fused loop: output count"
        );
        if range.is_empty() {
            return;
        }
        let outs: SmallVec<[*mut u8; 4]> = outputs
            .iter()
            .zip(&self.out_sizes)
            .map(|(&p, &size)| p.add(range.start * size))
            .collect();
        let idx = unravel(&self.dims, range.start);
        (self.func)(inputs.as_ptr(), outs.as_ptr(), idx.as_ptr(), range.len());
    }
}

/// Emits the whole function body: prologue, outer row loop with its per-row values, inner
/// element loop, and the carry through the outer axes.
fn build_nest(
    b: &mut FunctionBuilder,
    spec: &LoopSpec,
    plan: &LoopPlan,
    calls: &HashMap<&'static str, FuncRef>,
    ptr: types::Type,
    vector: Option<(types::Type, usize)>,
) {
    let rank = plan.dims.len();
    let last = rank - 1;
    let inner_len = plan.dims[last] as i64;
    let sizes: Vec<i64> = spec.inputs.iter().map(|x| x.dtype.size() as i64).collect();
    // Byte stride of input k along axis a.
    let stride = |k: usize, a: usize| plan.strides[k][a] * sizes[k] as isize;
    let invariant = invariant_nodes(spec, plan);
    let mem = MemFlagsData::trusted();

    let entry = b.create_block();
    let outer = b.create_block();
    let inner = b.create_block();
    let after = b.create_block();
    let reset = b.create_block();
    let exit = b.create_block();
    // carry[a] increments axis a; wrap[a] resets it and carries into a - 1.
    let carry: Vec<Block> = (0..last).map(|_| b.create_block()).collect();
    let wrap: Vec<Block> = (0..last).map(|_| b.create_block()).collect();

    let var = |b: &mut FunctionBuilder, ty| -> Variable { b.declare_var(ty) };
    let rem = var(b, types::I64);
    let col = var(b, types::I64);
    let i = var(b, types::I64);
    let idx: Vec<Variable> = (0..last).map(|_| var(b, types::I64)).collect();
    let row: Vec<Variable> = spec.inputs.iter().map(|_| var(b, ptr)).collect();
    let p: Vec<Variable> = spec.inputs.iter().map(|_| var(b, ptr)).collect();
    let out: Vec<Variable> = spec.outputs.iter().map(|_| var(b, ptr)).collect();

    // Prologue: read the pointers and the starting multi-index, compute each input's row start.
    b.append_block_params_for_function_params(entry);
    b.switch_to_block(entry);
    let params = b.block_params(entry).to_vec();
    let (ins_p, outs_p, idx_p, count) = (params[0], params[1], params[2], params[3]);
    b.def_var(rem, count);
    let c0 = b.ins().load(types::I64, mem, idx_p, (8 * last) as i32);
    b.def_var(col, c0);
    let start: Vec<Value> = (0..last)
        .map(|a| b.ins().load(types::I64, mem, idx_p, (8 * a) as i32))
        .collect();
    for (a, &v) in start.iter().enumerate() {
        b.def_var(idx[a], v);
    }
    for (k, input) in spec.inputs.iter().enumerate() {
        let base = b.ins().load(ptr, mem, ins_p, (8 * k) as i32);
        let mut r = b.ins().iadd_imm_s(base, input.offset as i64 * sizes[k]);
        for (a, &v) in start.iter().enumerate() {
            let off = b.ins().imul_imm_s(v, stride(k, a) as i64);
            r = b.ins().iadd(r, off);
        }
        b.def_var(row[k], r);
    }
    for (j, &o) in out.iter().enumerate() {
        let base = b.ins().load(ptr, mem, outs_p, (8 * j) as i32);
        b.def_var(o, base);
    }
    b.ins().jump(outer, &[]);

    // Outer: one row segment of `run` elements starting at column `col`.
    b.switch_to_block(outer);
    let c = b.use_var(col);
    let left = b.use_var(rem);
    let avail = b.ins().iconst(types::I64, inner_len);
    let avail = b.ins().isub(avail, c);
    let run = b.ins().umin(avail, left);
    for k in 0..spec.inputs.len() {
        let r = b.use_var(row[k]);
        let off = b.ins().imul_imm_s(c, stride(k, last) as i64);
        let start = b.ins().iadd(r, off);
        b.def_var(p[k], start);
    }
    let mut vals: Vec<Option<Value>> = vec![None; spec.nodes.len()];
    for (n, node) in spec.nodes.iter().enumerate() {
        if invariant[n] {
            vals[n] = Some(emit_value(b, n, node, &vals, &plan.dtypes, calls, &p, mem));
        }
    }
    let zero = b.ins().iconst(types::I64, 0);
    b.def_var(i, zero);
    match vector {
        Some((vty, lanes)) => {
            build_vector_loop(
                b,
                spec,
                plan,
                &invariant,
                &vals,
                vty,
                lanes,
                run,
                &V {
                    calls,
                    ptr,
                    i,
                    p: &p,
                    out: &out,
                    inner,
                    after,
                },
            );
        }
        None => {
            b.ins().jump(inner, &[]);
        }
    }

    // Inner: the elements of the row segment.
    b.switch_to_block(inner);
    for (n, node) in spec.nodes.iter().enumerate() {
        if !invariant[n] {
            vals[n] = Some(emit_value(b, n, node, &vals, &plan.dtypes, calls, &p, mem));
        }
    }
    for (j, &o) in spec.outputs.iter().enumerate() {
        let dst = b.use_var(out[j]);
        let v = vals[o as usize].expect("every node is emitted");
        b.ins().store(mem, v, dst, 0);
        let next = b
            .ins()
            .iadd_imm_s(dst, plan.dtypes[o as usize].size() as i64);
        b.def_var(out[j], next);
    }
    for (k, &pk) in p.iter().enumerate() {
        let s = stride(k, last) as i64;
        if s != 0 {
            let cur = b.use_var(pk);
            let next = b.ins().iadd_imm_s(cur, s);
            b.def_var(pk, next);
        }
    }
    let n = b.use_var(i);
    let n = b.ins().iadd_imm_s(n, 1);
    b.def_var(i, n);
    let more = b.ins().icmp(IntCC::UnsignedLessThan, n, run);
    b.ins().brif(more, inner, &[], after, &[]);

    // After a row segment: stop when the range is done, else carry into the outer axes.
    b.switch_to_block(after);
    let left = b.use_var(rem);
    let left = b.ins().isub(left, run);
    b.def_var(rem, left);
    let done = b.ins().icmp_imm_s(IntCC::Equal, left, 0);
    let next = if last > 0 { carry[last - 1] } else { exit };
    b.ins().brif(done, exit, &[], next, &[]);

    for a in (0..last).rev() {
        b.switch_to_block(carry[a]);
        let v = b.use_var(idx[a]);
        let v = b.ins().iadd_imm_s(v, 1);
        b.def_var(idx[a], v);
        for (k, &rk) in row.iter().enumerate() {
            let s = stride(k, a) as i64;
            if s != 0 {
                let r = b.use_var(rk);
                let r = b.ins().iadd_imm_s(r, s);
                b.def_var(rk, r);
            }
        }
        let inside = b
            .ins()
            .icmp_imm_s(IntCC::SignedLessThan, v, plan.dims[a] as i64);
        b.ins().brif(inside, reset, &[], wrap[a], &[]);

        b.switch_to_block(wrap[a]);
        for (k, &rk) in row.iter().enumerate() {
            let s = stride(k, a) as i64;
            if s != 0 {
                let r = b.use_var(rk);
                let r = b.ins().iadd_imm_s(r, -s * plan.dims[a] as i64);
                b.def_var(rk, r);
            }
        }
        let z = b.ins().iconst(types::I64, 0);
        b.def_var(idx[a], z);
        // Carrying out of axis 0 means the space is exhausted (the count ends first).
        let up = if a > 0 { carry[a - 1] } else { exit };
        b.ins().jump(up, &[]);
    }

    b.switch_to_block(reset);
    let z = b.ins().iconst(types::I64, 0);
    b.def_var(col, z);
    b.ins().jump(outer, &[]);

    b.switch_to_block(exit);
    b.ins().return_(&[]);
}

/// The loop variables and blocks the vector loop shares with the scalar one.
struct V<'a> {
    calls: &'a HashMap<&'static str, FuncRef>,
    ptr: types::Type,
    i: Variable,
    p: &'a [Variable],
    out: &'a [Variable],
    inner: Block,
    after: Block,
}

/// From the end of the outer block: the vector loop over whole groups of `lanes` elements of
/// the row segment, then the scalar loop (`inner`) for the tail, or straight to `after`.
#[allow(clippy::too_many_arguments)]
fn build_vector_loop(
    b: &mut FunctionBuilder,
    spec: &LoopSpec,
    plan: &LoopPlan,
    invariant: &[bool],
    vals: &[Option<Value>],
    vty: types::Type,
    lanes: usize,
    run: Value,
    v: &V,
) {
    let last = plan.dims.len() - 1;
    let size = plan.dtypes[0].size() as i64;
    let step = lanes as i64 * size;
    // Invariant values, splat in the outer block.
    let mut vv: Vec<Option<Value>> = vec![None; spec.nodes.len()];
    for (n, val) in vals.iter().enumerate() {
        if invariant[n] {
            let x = val.expect("invariant nodes are emitted in the outer block");
            vv[n] = Some(b.ins().splat(vty, x));
        }
    }
    let vloop = b.create_block();
    let tail = b.create_block();
    let enough = b
        .ins()
        .icmp_imm_s(IntCC::SignedGreaterThanOrEqual, run, lanes as i64);
    b.ins().brif(enough, vloop, &[], tail, &[]);

    b.switch_to_block(vloop);
    // Unaligned-safe: rows may start anywhere.
    let mem = MemFlagsData::new().with_notrap();
    let wide = plan.dtypes[0] == DType::F64;
    // Lanes passed to the batch calls: operand a (in/out) and b.
    let slot = |b: &mut FunctionBuilder| {
        b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, 16, 4))
    };
    let (slot_a, slot_b) = (slot(b), slot(b));
    for (n, node) in spec.nodes.iter().enumerate() {
        if invariant[n] {
            continue;
        }
        let operand = |i: &u32| vv[*i as usize].expect("operands come first");
        let call = match node {
            LoopNode::Unary(op, a) => unary_symbol(*op, wide).map(|s| (s, operand(a), None)),
            LoopNode::Binary(op, a, c) => {
                binary_symbol(*op, wide).map(|s| (s, operand(a), Some(operand(c))))
            }
            _ => None,
        };
        vv[n] = Some(match (node, call) {
            (_, Some((sym, x, y))) => {
                let a = b.ins().stack_addr(v.ptr, slot_a, 0);
                b.ins().store(mem, x, a, 0);
                let mut args = vec![a];
                if let Some(y) = y {
                    let at = b.ins().stack_addr(v.ptr, slot_b, 0);
                    b.ins().store(mem, y, at, 0);
                    args.push(at);
                }
                args.push(b.ins().iconst(types::I64, lanes as i64));
                b.ins().call(v.calls[batch_symbol(sym)], &args);
                b.ins().load(vty, mem, a, 0)
            }
            (LoopNode::Load(k), None) => {
                let at = b.use_var(v.p[*k as usize]);
                b.ins().load(vty, mem, at, 0)
            }
            (_, None) => emit_vector_node(b, vty, node, &vv),
        });
    }
    for (j, &o) in spec.outputs.iter().enumerate() {
        let dst = b.use_var(v.out[j]);
        let x = vv[o as usize].expect("every node is emitted");
        b.ins().store(mem, x, dst, 0);
        let next = b.ins().iadd_imm_s(dst, step);
        b.def_var(v.out[j], next);
    }
    for (k, &pk) in v.p.iter().enumerate() {
        // Validated: every last-axis stride is 0 or 1 here.
        if plan.strides[k][last] == 1 {
            let cur = b.use_var(pk);
            let next = b.ins().iadd_imm_s(cur, step);
            b.def_var(pk, next);
        }
    }
    let n = b.use_var(v.i);
    let n = b.ins().iadd_imm_s(n, lanes as i64);
    b.def_var(v.i, n);
    let end = b.ins().iadd_imm_s(n, lanes as i64);
    let more = b.ins().icmp(IntCC::SignedLessThanOrEqual, end, run);
    b.ins().brif(more, vloop, &[], tail, &[]);

    b.switch_to_block(tail);
    let n = b.use_var(v.i);
    let left = b.ins().icmp(IntCC::SignedLessThan, n, run);
    b.ins().brif(left, v.inner, &[], v.after, &[]);
}

/// Node `n`'s value: loads read input k at its current pointer `p[k]`.
#[allow(clippy::too_many_arguments)]
fn emit_value(
    b: &mut FunctionBuilder,
    n: usize,
    node: &LoopNode,
    vals: &[Option<Value>],
    dtypes: &[DType],
    calls: &HashMap<&'static str, FuncRef>,
    p: &[Variable],
    mem: MemFlagsData,
) -> Value {
    match node {
        LoopNode::Load(k) => {
            let at = b.use_var(p[*k as usize]);
            // The node's dtype is the input's (a bool is one byte).
            b.ins().load(ir_type(dtypes[n]), mem, at, 0)
        }
        LoopNode::Const { value, dtype } => emit_const(b, *value, *dtype),
        _ => emit_node(b, node, vals, dtypes, calls),
    }
}

/// Which nodes keep one value along a row: constants, loads of inputs whose last-axis stride is
/// 0, and nodes all of whose operands are such.
fn invariant_nodes(spec: &LoopSpec, plan: &LoopPlan) -> Vec<bool> {
    let last = plan.dims.len() - 1;
    let mut inv: Vec<bool> = Vec::with_capacity(spec.nodes.len());
    for node in &spec.nodes {
        let v = match node {
            LoopNode::Load(k) => plan.strides[*k as usize][last] == 0,
            LoopNode::Const { .. } => true,
            LoopNode::Unary(_, a) | LoopNode::Cast(_, a) => inv[*a as usize],
            LoopNode::Binary(_, a, b) | LoopNode::Compare(_, a, b) => {
                inv[*a as usize] && inv[*b as usize]
            }
            LoopNode::Where(c, a, b) => inv[*c as usize] && inv[*a as usize] && inv[*b as usize],
        };
        inv.push(v);
    }
    inv
}
