//! Rewriting one client instruction into worker instructions: id translation to session-tagged
//! keys, choosing the executing worker, and injecting worker-to-worker moves when an op's inputs
//! live on different workers (the dispatcher never carries those bytes itself).

use crate::core::{Agg, Core, Pending, Place, Session, Tracked, HAND_OVER};
use crate::shard::ShardConfig;
use gt_core::{Error, Key, ReqId, SessionId, TensorId, WorkerId};
use gt_ops::Meta;
use gt_proto::{ClientMsg, ClientReply, DispatcherStats, WorkerMsg};
use gt_transport::Hunger;
use smallvec::SmallVec;
use std::sync::Arc;

impl Core {
    pub(crate) fn client_batch(&mut self, sid: SessionId, mut batch: Vec<ClientMsg>) {
        let Some(mut s) = self.sessions.remove(&sid) else {
            return;
        };
        s.instructions += batch.len() as u64;
        for (i, msg) in batch.drain(..).enumerate() {
            if let Some(log) = &mut self.log {
                log.client_msg(s.id, &s.name, &msg);
            }
            self.client_msg(&mut s, msg);
            // A waiting worker gets what is routed so far instead of waiting for the whole
            // batch (see `CoreConfig::hunger`). The session goes back into the table first, so
            // that a worker found dead by this hand-over poisons its tensors too.
            let waiting = || self.cfg.hunger.as_ref().is_some_and(Hunger::any);
            if i % HAND_OVER == HAND_OVER - 1 && waiting() {
                self.sessions.insert(sid, s);
                self.flush();
                let Some(back) = self.sessions.remove(&sid) else {
                    return;
                };
                s = back;
            }
        }
        if let Some(spares) = &s.spares {
            spares.give(batch);
        }
        self.sessions.insert(sid, s);
    }

    fn client_msg(&mut self, s: &mut Session, msg: ClientMsg) {
        match msg {
            ClientMsg::Exec { out, op, inputs } => {
                if let Err(e) = check_id(out) {
                    return self.protocol_error(s, e);
                }
                // Inputs' places and metas, in one lookup each; a poisoned or unknown input
                // poisons the result before anything else is checked.
                let mut places: SmallVec<[Place; 2]> = SmallVec::new();
                let mut metas: SmallVec<[&Meta; 2]> = SmallVec::new();
                let (mut bad, mut shapes_known) = (None, true);
                for id in &inputs {
                    match s.tensors.get(id) {
                        Some(Tracked {
                            place: Place::Poisoned(e),
                            ..
                        }) => {
                            bad = Some(e.clone());
                            break;
                        }
                        Some(t) => {
                            places.push(t.place.clone());
                            match &t.meta {
                                Some(m) => metas.push(m),
                                None => shapes_known = false,
                            }
                        }
                        None => {
                            bad = Some(unknown(*id, op.name()));
                            break;
                        }
                    }
                }
                // Shapes are tracked so that sharding rules can be applied to any tensor.
                let meta = match bad {
                    Some(e) => Err(e),
                    None if shapes_known => gt_ops::infer(&op, &metas).map(Some),
                    None => Ok(None),
                };
                drop(metas);
                let meta = match meta {
                    Ok(m) => m,
                    Err(e) => return self.place(s, out, Place::Poisoned(e)),
                };
                if let Some(m) = &meta {
                    if inputs.is_empty() {
                        match self.creation_dist(s, m) {
                            Err(e) => return self.place(s, out, Place::Poisoned(e)),
                            Ok(Some(d)) => return self.create_dist(s, out, op, m.clone(), d),
                            Ok(None) => {}
                        }
                    }
                    if places.iter().any(|p| matches!(p, Place::Dist(_))) {
                        return self.exec_dist(s, out, op, &inputs, &places, m.clone());
                    }
                }
                let mut on: SmallVec<[WorkerId; 2]> = SmallVec::new();
                for p in &places {
                    match p {
                        Place::On(w) => on.push(*w),
                        _ => {
                            let e = Error::Protocol(format!(
                                "{} has a distributed input of unknown shape",
                                op.name()
                            ));
                            return self.place(s, out, Place::Poisoned(e));
                        }
                    }
                }
                let Some(target) = on.first().copied().or_else(|| self.home(s)) else {
                    return self.place(s, out, Place::Poisoned(no_workers()));
                };
                let mut keys: SmallVec<[Key; 2]> = SmallVec::new();
                let mut temps: SmallVec<[Key; 2]> = SmallVec::new();
                for (id, w) in inputs.iter().zip(&on) {
                    let key = Key::new(s.id, id.0);
                    if *w == target {
                        keys.push(key);
                    } else {
                        let temp = self.temp_key();
                        self.transfer(key, *w, temp, target);
                        keys.push(temp);
                        temps.push(temp);
                    }
                }
                let logging = self.log.is_some();
                let slot = &mut self.workers[target.0 as usize];
                slot.outbox.push(WorkerMsg::Exec {
                    out: Key::new(s.id, out.0),
                    op,
                    inputs: keys,
                });
                for key in temps {
                    if logging {
                        slot.injected.push(slot.outbox.len());
                    }
                    slot.outbox.push(WorkerMsg::Free { key });
                }
                self.track(s, out, Place::On(target), meta);
            }
            ClientMsg::Upload { out, data } => {
                if let Err(e) = check_id(out) {
                    return self.protocol_error(s, e);
                }
                if let Err(e) = data.validate() {
                    return self.place(s, out, Place::Poisoned(e));
                }
                let meta = Meta::new(data.shape.clone(), data.dtype);
                match self.creation_dist(s, &meta) {
                    Err(e) => return self.place(s, out, Place::Poisoned(e)),
                    Ok(Some(d)) => return self.upload_dist(s, out, data, d),
                    Ok(None) => {}
                }
                let Some(target) = self.home(s) else {
                    return self.place(s, out, Place::Poisoned(no_workers()));
                };
                self.workers[target.0 as usize]
                    .outbox
                    .push(WorkerMsg::Upload {
                        out: Key::new(s.id, out.0),
                        data,
                    });
                self.track(s, out, Place::On(target), Some(meta));
            }
            ClientMsg::Free { id } => {
                if let Some(t) = s.tensors.remove(&id) {
                    self.free_place(Key::new(s.id, id.0), &t.place);
                }
            }
            ClientMsg::ToWorker { out, src, worker } => {
                if let Err(e) = check_id(out) {
                    return self.protocol_error(s, e);
                }
                // One lookup: the source's place (a distributed one moves through
                // `move_dist`, which needs its meta) and the meta the copy inherits.
                let (from, meta) = match s.tensors.get(&src) {
                    Some(Tracked {
                        place: Place::Poisoned(e),
                        ..
                    }) => return self.place(s, out, Place::Poisoned(e.clone())),
                    Some(Tracked {
                        place: Place::Dist(_),
                        meta: None,
                    }) => {
                        let e = Error::Protocol(format!("{src} has no known shape"));
                        return self.place(s, out, Place::Poisoned(e));
                    }
                    Some(t) => (t.place.clone(), t.meta.clone()),
                    None => return self.place(s, out, Place::Poisoned(unknown(src, "to_worker"))),
                };
                match self.workers.get(worker.0 as usize) {
                    Some(w) if w.alive => {}
                    Some(_) => {
                        let e = Error::WorkerLost {
                            worker: worker.0,
                            reason: "it is no longer connected".into(),
                        };
                        return self.place(s, out, Place::Poisoned(e));
                    }
                    None => {
                        let e = Error::invalid(
                            "to_worker",
                            format!(
                                "there is no worker {} ({} workers joined)",
                                worker.0,
                                self.workers.len()
                            ),
                        );
                        return self.place(s, out, Place::Poisoned(e));
                    }
                }
                let (from, meta) = match (from, meta) {
                    (Place::On(w), m) => (w, m),
                    (Place::Dist(d), Some(m)) => return self.move_dist(s, out, src, &d, m, worker),
                    _ => unreachable!("poisoned and shapeless sources are handled above"),
                };
                let (src_key, out_key) = (Key::new(s.id, src.0), Key::new(s.id, out.0));
                if from == worker {
                    self.workers[worker.0 as usize]
                        .outbox
                        .push(WorkerMsg::Alias {
                            out: out_key,
                            src: src_key,
                        });
                } else {
                    self.transfer(src_key, from, out_key, worker);
                }
                self.track(s, out, Place::On(worker), meta);
            }
            ClientMsg::Read { req, id } => match s.tensors.get(&id).map(|t| &t.place) {
                Some(Place::On(w)) => {
                    let w = *w;
                    let r = self.new_req(w, Pending::Read { session: s.id, req });
                    self.workers[w.0 as usize].outbox.push(WorkerMsg::Read {
                        req: r,
                        key: Key::new(s.id, id.0),
                    });
                }
                Some(Place::Dist(d)) => {
                    let d = d.clone();
                    self.read_dist(s, req, id, &d)
                }
                Some(Place::Poisoned(e)) => s.outbox.push(ClientReply::Data {
                    req,
                    result: Err(e.clone()),
                }),
                None => s.outbox.push(ClientReply::Data {
                    req,
                    result: Err(unknown(id, "read")),
                }),
            },
            ClientMsg::Stats { req } => self.fan_out(s, req, true),
            ClientMsg::Sync { req } => self.fan_out(s, req, false),
            ClientMsg::ScopeEnter { name } => {
                if s.config
                    .signals
                    .get(&name)
                    .is_some_and(|c| c.backward.is_some())
                {
                    s.last_region = Some(name.clone());
                }
                if s.config.signals.get(&name).is_some_and(|c| c.compile) {
                    self.compile_region(s.id, true);
                }
                s.scopes.push(name)
            }
            ClientMsg::ScopeExit => match s.scopes.pop() {
                None => {
                    let e = Error::Protocol("signal scope exit without a matching enter".into());
                    self.protocol_error(s, e);
                }
                Some(name) => {
                    if s.config.signals.get(&name).is_some_and(|c| c.compile) {
                        self.compile_region(s.id, false);
                    }
                }
            },
            ClientMsg::Configure { req, yaml } => {
                let result = ShardConfig::from_yaml(&yaml).and_then(|c| {
                    c.validate(Some(self.workers.len()))?;
                    Ok(c)
                });
                let result = result.map(|c| {
                    tracing::info!(target: "gt::dispatcher", "{}: {} signals configured", s.name, c.signals.len());
                    s.config = Arc::new(c);
                });
                s.outbox.push(ClientReply::Synced { req, result });
            }
            ClientMsg::DispatcherStats { req } => {
                let stats = DispatcherStats {
                    workers: self.alive_workers() as u64,
                    sessions: self.sessions.len() as u64 + 1,
                    shard: s.shard_stats.clone(),
                    shard_total: self.shard_total.clone(),
                };
                s.outbox.push(ClientReply::DispatcherStats {
                    req,
                    result: Ok(stats),
                });
            }
        }
    }

    fn protocol_error(&mut self, s: &Session, e: Error) {
        tracing::warn!(target: "gt::dispatcher", "{}: {e}", s.name);
        if let Some(log) = &mut self.log {
            log.note(
                crate::log::Kind::Error,
                crate::log::Source::Client(s.id, &s.name),
                format_args!("{e}"),
            );
        }
    }

    /// Sends a stats or barrier request to every worker and aggregates the answers.
    /// Tells every live worker that session `sid` enters or leaves a `compile: true` scope (in
    /// stream order with its instructions).
    fn compile_region(&mut self, sid: SessionId, enter: bool) {
        for w in self.workers.iter_mut().filter(|w| w.alive) {
            w.outbox.push(WorkerMsg::CompileRegion {
                session: sid,
                enter,
            });
        }
    }

    fn fan_out(&mut self, s: &mut Session, req: ReqId, stats: bool) {
        let alive: Vec<WorkerId> = (0..self.workers.len())
            .filter(|&i| self.workers[i].alive)
            .map(|i| WorkerId(i as u32))
            .collect();
        let mut dead = Vec::new();
        if stats {
            for (i, w) in self.workers.iter().enumerate() {
                if !w.alive {
                    dead.push(gt_proto::WorkerStats {
                        worker: i as u32,
                        alive: false,
                        ..Default::default()
                    });
                }
            }
        }
        if alive.is_empty() {
            let reply = match stats {
                true => ClientReply::Stats {
                    req,
                    result: Ok(dead),
                },
                false => ClientReply::Synced {
                    req,
                    result: if s.lost.is_empty() {
                        Err(no_workers())
                    } else {
                        Err(s.lost.remove(0))
                    },
                },
            };
            s.lost.clear();
            return s.outbox.push(reply);
        }
        let agg = self.new_agg(Agg {
            session: s.id,
            req,
            remaining: alive.len(),
            stats: stats.then_some(dead),
        });
        for w in alive {
            let r = self.new_req(w, Pending::Part { agg });
            let msg = if stats {
                WorkerMsg::Stats { req: r }
            } else {
                WorkerMsg::Barrier { req: r }
            };
            self.workers[w.0 as usize].outbox.push(msg);
        }
    }

    /// Records where `out` lives, with no known meta (a poisoned result), freeing a previous
    /// tensor of the same id elsewhere.
    pub(crate) fn place(&mut self, s: &mut Session, out: TensorId, place: Place) {
        self.track(s, out, place, None)
    }

    /// Records where `out` lives and its meta, freeing a previous tensor of the same id
    /// elsewhere.
    pub(crate) fn track(
        &mut self,
        s: &mut Session,
        out: TensorId,
        place: Place,
        meta: Option<Meta>,
    ) {
        let t = Tracked { place, meta };
        // No clone of `place` in the common case (a new id): it is moved into the map.
        let old = match s.tensors.entry(out) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(t);
                None
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let old = std::mem::replace(e.get_mut(), t);
                Some((old.place, e.get().place.clone()))
            }
        };
        if let Some((old, place)) = old {
            // The new value already overwrote the key on the workers it lives on.
            let keep: Vec<WorkerId> = match &place {
                Place::On(w) => vec![*w],
                Place::Dist(d) => d.workers.clone(),
                Place::Poisoned(_) => Vec::new(),
            };
            let gone = match old {
                Place::On(w) => vec![w],
                Place::Dist(d) => d.workers.clone(),
                Place::Poisoned(_) => Vec::new(),
            };
            for w in gone.into_iter().filter(|w| !keep.contains(w)) {
                self.workers[w.0 as usize].outbox.push(WorkerMsg::Free {
                    key: Key::new(s.id, out.0),
                });
            }
        }
    }

    /// Frees `key` wherever `place` keeps it (every part of a distributed tensor).
    fn free_place(&mut self, key: Key, place: &Place) {
        let ws: &[WorkerId] = match place {
            Place::On(w) => std::slice::from_ref(w),
            Place::Dist(d) => &d.workers,
            Place::Poisoned(_) => &[],
        };
        for w in ws {
            self.workers[w.0 as usize]
                .outbox
                .push(WorkerMsg::Free { key });
        }
    }

    /// The session's home worker, re-homing it if needed.
    fn home(&mut self, s: &mut Session) -> Option<WorkerId> {
        match s.home {
            Some(h) if self.workers[h.0 as usize].alive => Some(h),
            _ => {
                s.home = self.least_loaded();
                if let Some(h) = s.home {
                    self.workers[h.0 as usize].homed += 1;
                }
                s.home
            }
        }
    }

    pub(crate) fn temp_key(&mut self) -> Key {
        let k = Key::new(SessionId(0), self.next_temp);
        self.next_temp = (self.next_temp + 1) & Key::MAX_LOCAL;
        k
    }

    /// Tells `from` to send `key` to `to`, which stores it as `out`.
    pub(crate) fn transfer(&mut self, key: Key, from: WorkerId, out: Key, to: WorkerId) {
        let xfer = self.next_xfer;
        self.next_xfer += 1;
        let logging = self.log.is_some();
        for (w, msg) in [
            (from, WorkerMsg::Send { key, to, xfer }),
            (to, WorkerMsg::Recv { out, from, xfer }),
        ] {
            let slot = &mut self.workers[w.0 as usize];
            if logging {
                slot.injected.push(slot.outbox.len());
            }
            slot.outbox.push(msg);
        }
    }
}

fn check_id(id: TensorId) -> Result<(), Error> {
    if id.0 == 0 || id.0 > Key::MAX_LOCAL {
        return Err(Error::Protocol(format!(
            "tensor id {} is out of range",
            id.0
        )));
    }
    Ok(())
}

fn unknown(id: TensorId, op: &str) -> Error {
    Error::UnknownTensor(format!("{id} (input of {op}) in this session"))
}

fn no_workers() -> Error {
    Error::Connection("no live worker is connected to the dispatcher".into())
}
