//! A change to a zone through one instance of a set. It is worked out and validated on the
//! zone as this instance serves it, then written to etcd as the pieces it changes (see
//! `store::pieces`) and the zone's metadata (its serial), in one transaction that holds only
//! if the metadata is still at the revision the change was worked out on. A change that loses
//! that race to another instance's waits until this instance serves the other one and is
//! worked out again; a refusal (404, 412, 422) is checked against etcd's latest revision the
//! same way, so that no refusal comes from a stale copy. This instance's changes to one zone
//! are made one at a time. What etcd commits, every instance applies from its watch
//! (`replica`), the writer included; the change is acknowledged once it is served here.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::cluster::{Cluster, unavailable};
use super::{Control, Edited, UpdateError};
use crate::store::Doc;
use crate::store::change::Edit;
use crate::store::edit::EditError;
use crate::store::etcd::{MAX_TXN_OPS, Marker, Op, Written};
use crate::store::pieces::{self, Changed, Meta, Piece};
use crate::zone::spec::ZoneSpec;
use crate::zone::{self, Name};

/// A change that keeps losing races is given up after this long.
const GIVE_UP: Duration = Duration::from_secs(10);
/// A whole-zone change of more pieces than this is written as a new generation (etcd limits
/// the operations of one transaction).
const MAX_PIECES: usize = MAX_TXN_OPS - 8;

/// What a change writes to etcd.
enum Plan {
    /// Pieces of the zone's generation and its metadata.
    Pieces {
        meta: Box<Meta>,
        changed: Changed,
    },
    /// The whole zone, as a new generation (`old`: the one it replaces).
    Generation {
        zone: Box<ZoneSpec>,
        values: BTreeMap<Piece, Vec<u8>>,
        old: Option<String>,
    },
    Delete {
        generation: String,
    },
}

/// A change worked out: the revision it builds on and what to write, or nothing to write.
enum Worked<T> {
    Write(i64, Plan, T),
    Unchanged(T),
}

impl Control {
    /// [`Control::edit_zone`] in a set: the pieces the edit changes, with the serial bumped.
    pub(super) fn edit_shared<E>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        edit: Edit,
        check: &mut dyn FnMut(Option<&str>) -> Result<(), E>,
    ) -> Result<Edited, E>
    where
        E: From<UpdateError> + From<EditError>,
    {
        let (serial, etag) = self.write_shared(cluster, origin, &mut |control| {
            control.work_out_edit(cluster, origin, &edit, check)
        })?;
        Ok(Edited {
            serial,
            etag: etag.unwrap_or_default(),
        })
    }

    /// [`Control::update_zone`] in a set: the new text's pieces that differ, or a new
    /// generation; the new text and its ETag.
    pub(super) fn update_shared<E: From<UpdateError>>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        change: &mut dyn FnMut(Option<Doc>) -> Result<Option<String>, E>,
    ) -> Result<(Option<String>, Option<String>), E> {
        let (text, tag) = self.write_shared(cluster, origin, &mut |control| {
            control.work_out_update(cluster, origin, change)
        })?;
        Ok((text, tag))
    }

    /// Works a change out (`work`) and writes it, again until it is not refused by a newer
    /// revision nor lost to another write; what `work` said and the zone's new ETag.
    fn write_shared<T, E: From<UpdateError>>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        work: &mut dyn FnMut(&Self) -> Result<Worked<T>, E>,
    ) -> Result<(T, Option<String>), E> {
        cluster.ensure_connected()?;
        let origin = origin.to_lowercase();
        let writes = cluster.writes(&origin);
        let _one_at_a_time = writes.lock().unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + GIVE_UP;
        loop {
            let base = cluster.zone(&origin).map_or(0, |z| z.revision);
            let (base, plan, said) = match work(self) {
                Ok(Worked::Write(base, plan, said)) => (base, plan, said),
                Ok(Worked::Unchanged(said)) => {
                    let tag = cluster
                        .zone(&origin)
                        .map(|z| Cluster::tag(&origin, z.revision));
                    return Ok((said, tag));
                }
                // Decided on etcd's latest state, not on a copy yet to apply a change committed
                // through another instance.
                Err(refused) => match self.newer_in_etcd(cluster, &origin, base, deadline)? {
                    true => continue,
                    false => return Err(refused),
                },
            };
            let deleted = matches!(plan, Plan::Delete { .. });
            match self.write_plan(cluster, &origin, base, plan)? {
                Written::At(revision) => {
                    if !cluster.wait_applied(revision) {
                        tracing::warn!(
                            "{origin}: committed at revision {revision}, not yet served here"
                        );
                    }
                    let tag = (!deleted).then(|| Cluster::tag(&origin, revision));
                    return Ok((said, tag));
                }
                Written::Conflict(now) => {
                    if Instant::now() > deadline {
                        let message =
                            format!("{origin} kept changing under this change; try again");
                        return Err(unavailable(message).into());
                    }
                    // Another instance changed the zone first: serve what it did, try again.
                    cluster.wait_applied(now);
                }
            }
        }
    }

    /// Whether etcd holds a newer version of `origin` than `base` (then served here once this
    /// returns, to work the change out again).
    fn newer_in_etcd(
        &self,
        cluster: &Cluster,
        origin: &Name,
        base: i64,
        deadline: Instant,
    ) -> Result<bool, UpdateError> {
        let (meta, now) = cluster.block_on(cluster.etcd.get(&cluster.keys.meta(origin)))?;
        let at = meta.map_or(0, |kv| kv.mod_revision);
        if at == base || Instant::now() > deadline {
            return Ok(false);
        }
        cluster.wait_applied(now);
        Ok(true)
    }

    /// `edit` worked out on the model of `origin` as served (and taken back out: the watch
    /// brings it in once committed): the pieces it changes, the serial and nothing else.
    fn work_out_edit<E>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        edit: &Edit,
        check: &mut dyn FnMut(Option<&str>) -> Result<(), E>,
    ) -> Result<Worked<Option<u32>>, E>
    where
        E: From<UpdateError> + From<EditError>,
    {
        let _writer = self.writer();
        let base = cluster.zone(origin);
        check(
            base.as_ref()
                .map(|z| Cluster::tag(origin, z.revision))
                .as_deref(),
        )?;
        let Some(base) = base else {
            return Err(EditError::NotFound(format!("zone {origin}")).into());
        };
        let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        if !specs.contains_key(origin) {
            specs.insert(origin.clone(), self.read_spec(origin)?);
        }
        let model = specs.get_mut(origin).expect("inserted above");
        let undo = model.apply(edit)?;
        let before = model.serial();
        let serial = base.meta.serial().map(|s| s.saturating_add(1));
        model.set_serial(serial);
        let worked = self
            .build_edit(origin, model, edit, serial)
            .map_err(UpdateError::from)
            .and_then(|_| pieces::changed_by(origin, model, edit).map_err(invalid));
        model.revert(undo);
        model.set_serial(before);
        let changed = worked?;
        let meta = Box::new(base.meta.with_serial(serial));
        Ok(Worked::Write(
            base.revision,
            Plan::Pieces { meta, changed },
            serial,
        ))
    }

    /// The change of `origin`'s whole text worked out: `change` given the text as served
    /// (with the set's ETag), the new text validated by the start-up build, and the pieces
    /// that differ (or a new generation when many do).
    fn work_out_update<E: From<UpdateError>>(
        &self,
        cluster: &Cluster,
        origin: &Name,
        change: &mut dyn FnMut(Option<Doc>) -> Result<Option<String>, E>,
    ) -> Result<Worked<Option<String>>, E> {
        let _writer = self.writer();
        let base = cluster.zone(origin);
        let current = match &base {
            Some(_) => self.store.read(origin).map_err(UpdateError::from)?,
            None => None,
        };
        let current = current.map(|doc| Doc {
            etag: base
                .as_ref()
                .map_or_else(String::new, |z| Cluster::tag(origin, z.revision)),
            text: doc.text,
        });
        let before = current.as_ref().map(|d| d.text.clone());
        let next = change(current)?;
        if next == before {
            return Ok(Worked::Unchanged(next));
        }
        let registered = self.store.registered(origin);
        self.store
            .load_one(origin, next.as_deref(), &registered)
            .map_err(UpdateError::from)?;
        let Some(text) = &next else {
            let Some(base) = base else {
                return Ok(Worked::Unchanged(next));
            };
            let generation = base.meta.generation;
            return Ok(Worked::Write(
                base.revision,
                Plan::Delete { generation },
                next,
            ));
        };
        let spec = zone::zone_spec(text).map_err(invalid)?;
        let new = pieces::split(origin, &spec).map_err(invalid)?;
        let Some(base) = base else {
            let plan = Plan::Generation {
                zone: Box::new(new.meta),
                values: new.values,
                old: None,
            };
            return Ok(Worked::Write(0, plan, next));
        };
        let old = match before.as_deref().map(zone::zone_spec) {
            Some(Ok(spec)) => pieces::split(origin, &spec).map_err(invalid)?,
            _ => return Err(invalid("the served document does not parse").into()),
        };
        let changed = pieces::diff(&old, &new);
        let plan = match changed.len() <= MAX_PIECES {
            true => Plan::Pieces {
                meta: Box::new(Meta {
                    generation: base.meta.generation,
                    zone: new.meta,
                }),
                changed,
            },
            false => Plan::Generation {
                zone: Box::new(new.meta),
                values: new.values,
                old: Some(base.meta.generation),
            },
        };
        Ok(Worked::Write(base.revision, plan, next))
    }

    /// Writes `plan`, if `origin`'s metadata is still at `base`, exactly once.
    fn write_plan(
        &self,
        cluster: &Cluster,
        origin: &Name,
        base: i64,
        plan: Plan,
    ) -> Result<Written, UpdateError> {
        let meta_key = cluster.keys.meta(origin);
        let (_, marker) = cluster.new_write();
        let marker = Some(cluster.marker(&marker));
        let guards = [(meta_key.as_str(), base)];
        match plan {
            Plan::Pieces { meta, changed } => {
                // The metadata first: an instance reads it before the pieces that follow.
                let mut ops = vec![Op::Put(meta_key.clone(), meta.to_bytes())];
                for (piece, value) in changed {
                    let key = cluster.keys.piece(origin, &meta.generation, &piece);
                    ops.push(match value {
                        Some(value) => Op::Put(key, value),
                        None => Op::Delete(key),
                    });
                }
                cluster.block_on(cluster.etcd.write_all_if(&guards, &ops, marker))
            }
            Plan::Delete { generation } => {
                let ops = [
                    Op::Delete(meta_key.clone()),
                    Op::DeletePrefix(cluster.keys.generation(origin, &generation)),
                ];
                cluster.block_on(cluster.etcd.write_all_if(&guards, &ops, marker))
            }
            Plan::Generation { zone, values, old } => {
                let generation = Generation {
                    origin,
                    zone: *zone,
                    values: &values,
                    old: old.as_deref(),
                };
                cluster.block_on(cluster.write_generation(generation, &guards, &[], marker))
            }
        }
    }
}

/// A whole zone to write as a new generation.
pub(super) struct Generation<'a> {
    pub origin: &'a Name,
    pub zone: ZoneSpec,
    pub values: &'a BTreeMap<Piece, Vec<u8>>,
    /// The generation it replaces, deleted with the switch.
    pub old: Option<&'a str>,
}

impl Cluster {
    /// Writes a zone whole: its pieces under a new generation (no instance reads them yet),
    /// then, in one transaction if `guards` hold, the metadata that switches to it, with
    /// `also`. A generation that does not commit is deleted.
    pub(super) async fn write_generation(
        &self,
        generation: Generation<'_>,
        guards: &[(&str, i64)],
        also: &[Op],
        marker: Option<Marker<'_>>,
    ) -> Result<Written, crate::store::etcd::EtcdError> {
        let Generation {
            origin,
            zone,
            values,
            old,
        } = generation;
        let name = format!("{:016x}", fastrand::u64(..));
        let puts: Vec<(String, Vec<u8>)> = values
            .iter()
            .map(|(piece, value)| (self.keys.piece(origin, &name, piece), value.clone()))
            .collect();
        let prefix = self.keys.generation(origin, &name);
        for chunk in puts.chunks(MAX_TXN_OPS) {
            if let Err(error) = self.etcd.put_all(chunk, 0).await {
                let _ = self
                    .etcd
                    .write_all_if(&[], &[Op::DeletePrefix(prefix)], None)
                    .await;
                return Err(error);
            }
        }
        let meta = Meta {
            generation: name,
            zone,
        };
        let mut ops = vec![Op::Put(self.keys.meta(origin), meta.to_bytes())];
        if let Some(old) = old {
            ops.push(Op::DeletePrefix(self.keys.generation(origin, old)));
        }
        ops.extend(also.iter().cloned());
        let written = self.etcd.write_all_if(guards, &ops, marker).await;
        if let Ok(Written::Conflict(_)) = written {
            let _ = self
                .etcd
                .write_all_if(&[], &[Op::DeletePrefix(prefix)], None)
                .await;
        }
        written
    }
}

/// A document that cannot be cut into pieces (its build accepted it: not expected).
fn invalid(error: impl std::fmt::Display) -> UpdateError {
    UpdateError::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        error.to_string(),
    ))
}
