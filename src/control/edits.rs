//! Edits of one zone through the API, in milliseconds whatever the zone's size: the edit is
//! applied to the zone's model (parsed once, on the zone's first edit, and kept), the changed
//! pool is built alone and put into a copy of the served zone that shares everything else,
//! and the edit (not the zone) is appended to the journal. A zone whose slots the change would
//! renumber, and a change of record sets, is built whole from the model instead (no text is
//! parsed either way).

use super::{Control, UpdateError};
use crate::store::change::{self, Edit, ZoneEdit};
use crate::store::edit::EditError;
use crate::store::model::ZoneModel;
use crate::zone::spec::Registered;
use crate::zone::{self, Name, Zone, ZoneError};

/// What an acknowledged edit left: the zone's SOA serial and entity tag.
#[derive(Debug, Clone)]
pub struct Edited {
    pub serial: Option<u32>,
    pub etag: String,
}

impl Control {
    /// Edits the existing TOML zone `origin`, all or nothing, like [`Control::update_zone`]:
    /// `check` is given the zone's entity tag first (`None`: no TOML document) and may refuse
    /// (If-Match). The SOA serial is bumped.
    pub fn edit_zone<E>(
        &self,
        origin: &Name,
        edit: Edit,
        mut check: impl FnMut(Option<&str>) -> Result<(), E>,
    ) -> Result<Edited, E>
    where
        E: From<UpdateError> + From<EditError>,
    {
        if let Some(cluster) = &self.cluster {
            return self.edit_shared(cluster, origin, edit, &mut check);
        }
        let origin = origin.to_lowercase();
        let writer = self.writer();
        let tag = self.store.tag(&origin).map_err(UpdateError::from)?;
        check(tag.as_deref())?;
        if tag.is_none() {
            return Err(EditError::NotFound(format!("zone {origin}")).into());
        }
        let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        if !specs.contains_key(&origin) {
            specs.insert(origin.clone(), self.read_spec(&origin)?);
        }
        let model = specs.get_mut(&origin).expect("inserted above");
        let undo = model.apply(&edit)?;
        let serial = model.serial();
        let bumped = serial.map(|s| s.saturating_add(1));
        model.set_serial(bumped);
        let built = self
            .build_edit(&origin, model, &edit, bumped)
            .map_err(UpdateError::from);
        let appended = built.and_then(|zone| {
            let edit = ZoneEdit {
                edit,
                serial: bumped,
            };
            let ticket = self.store.append_edit(&origin, &edit)?;
            Ok((zone, ticket))
        });
        let ((zone, whole), ticket) = match appended {
            Ok(done) => done,
            Err(error) => {
                model.revert(undo);
                model.set_serial(serial);
                return Err(error.into());
            }
        };
        drop(specs);
        let etag = self.store.tag(&origin).map_err(UpdateError::from)?;
        self.commit(writer, &origin, Some(Some(zone)), ticket, whole)?;
        Ok(Edited {
            serial: bumped,
            etag: etag.unwrap_or_default(),
        })
    }

    /// Applies `edits` to zone `origin` as the set committed them, with their `serial` (none
    /// is bumped), each through the same incremental path as a local edit; the ticket to sync.
    /// A removal of what is not here is already done.
    pub(super) fn apply_edits(
        &self,
        origin: &Name,
        edits: &[Edit],
        serial: Option<u32>,
    ) -> Result<crate::store::Ticket, String> {
        let mut last = None;
        for edit in edits {
            let writer = self.writer();
            let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
            if !specs.contains_key(origin) {
                let model = self.read_spec(origin).map_err(|e| e.to_string())?;
                specs.insert(origin.clone(), model);
            }
            let model = specs.get_mut(origin).expect("inserted above");
            let removal = matches!(edit, Edit::RemoveRecords { .. } | Edit::RemovePool { .. });
            let undo = match model.apply(edit) {
                Ok(undo) => undo,
                Err(EditError::NotFound(_)) if removal => continue,
                Err(error) => return Err(error.to_string()),
            };
            let before = model.serial();
            model.set_serial(serial);
            let built = self.build_edit(origin, model, edit, serial);
            let appended = built.map_err(|e| e.to_string()).and_then(|(zone, _)| {
                let edit = ZoneEdit {
                    edit: edit.clone(),
                    serial,
                };
                let ticket = self.store.append_edit(origin, &edit);
                ticket.map(|t| (zone, t)).map_err(|e| e.to_string())
            });
            let (zone, ticket) = match appended {
                Ok(done) => done,
                Err(error) => {
                    model.revert(undo);
                    model.set_serial(before);
                    return Err(error);
                }
            };
            drop(specs);
            self.serve_appended(writer, origin, Some(Some(zone)));
            if ticket.is_some() {
                last = ticket;
            }
        }
        Ok(last)
    }

    /// Zone `origin` rebuilt with `registered` as its registered endpoints, only `pool`'s node
    /// where it can be (a registration changed in that pool); whether it was built whole.
    pub(super) fn build_registered(
        &self,
        origin: &Name,
        pool: &str,
        registered: &[Registered],
    ) -> Result<(Zone, bool), UpdateError> {
        let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        if !specs.contains_key(origin) {
            specs.insert(origin.clone(), self.read_spec(origin)?);
        }
        let model = &specs[origin];
        if let Some(key) = model.pool_key(pool) {
            let spec = &model.spec().pools[key];
            let (owner, built) = zone::load_pool(origin, key, spec, registered)?;
            if let Some(zone) = self.rebuilt_alone(origin, &owner, built, None) {
                return Ok((zone, false));
            }
        }
        Ok((self.store.build(origin, model.spec(), registered)?, true))
    }

    /// The model of `origin`'s TOML document, parsed from the store.
    pub(super) fn read_spec(&self, origin: &Name) -> Result<ZoneModel, UpdateError> {
        let doc = self.store.read(origin)?;
        let doc = doc.ok_or_else(|| UpdateError::from(missing(origin)))?;
        let spec = zone::zone_spec(&doc.text).map_err(|e| {
            let message = format!("the stored document does not parse: {e}");
            UpdateError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                message,
            ))
        })?;
        Ok(ZoneModel::new(origin, spec))
    }

    /// What `read` makes of zone `origin`'s document model and its entity tag, read under the
    /// writer path's lock so that the two agree (`Ok(None)`: no TOML document). The model is
    /// parsed on the zone's first read or edit and kept, so that a read of one record set
    /// costs the same in a zone of any size.
    pub fn read_model<T>(
        &self,
        origin: &Name,
        read: impl FnOnce(&ZoneModel, String) -> T,
    ) -> Result<Option<T>, UpdateError> {
        let origin = origin.to_lowercase();
        // In a set, the tag is read before the model: a change applied in between gives an
        // older tag with the newer model (an If-Match that fails), never the reverse.
        let shared = self.cluster.as_ref().map(|cluster| {
            let zone = cluster.zone(&origin);
            zone.map(|z| super::Cluster::tag(&origin, z.revision))
        });
        let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        let tag = match shared {
            Some(tag) => tag,
            None => self.store.tag(&origin)?,
        };
        let Some(tag) = tag else {
            return Ok(None);
        };
        if !specs.contains_key(&origin) {
            specs.insert(origin.clone(), self.read_spec(&origin)?);
        }
        Ok(Some(read(&specs[&origin], tag)))
    }

    /// Zone `origin` as `spec` (already edited by `edit`) builds it: the edited pool or name
    /// alone where it can be, else the whole zone; whether it was built whole.
    pub(super) fn build_edit(
        &self,
        origin: &Name,
        model: &ZoneModel,
        edit: &Edit,
        serial: Option<u32>,
    ) -> Result<(Zone, bool), ZoneError> {
        let registered = self.store.registered(origin);
        if let Some(name) = change::pool_changed(edit)
            && let Some(key) = model.pool_key(name)
        {
            let pool = &model.spec().pools[key];
            let (owner, pool) = zone::load_pool(origin, key, pool, &registered)?;
            if let Some(zone) = self.rebuilt_alone(origin, &owner, pool, serial) {
                return Ok((zone, false));
            }
        }
        if let Some(name) = change::records_changed(edit)
            && let Ok(owner) = zone::parse_owner(origin, name)
            && let Some(zone) = self.served(origin, |zone| {
                let records = model.records_at(&owner).cloned().collect();
                zone.with_records(model.spec(), records, &owner)
            })
            && let Some(zone) = with_serial(zone, serial)
        {
            return Ok((zone, false));
        }
        Ok((self.store.build(origin, model.spec(), &registered)?, true))
    }

    /// The served zone `origin` with the pool at `owner` replaced (and the serial set), if that
    /// can be done without building it whole.
    pub(super) fn rebuilt_alone(
        &self,
        origin: &Name,
        owner: &Name,
        pool: zone::Pool,
        serial: Option<u32>,
    ) -> Option<Zone> {
        let zone = self.served(origin, |zone| zone.with_pool(owner, pool))?;
        with_serial(zone, serial)
    }

    /// What `f` makes of the served zone `origin`, if it is served.
    fn served(&self, origin: &Name, f: impl FnOnce(&Zone) -> Option<Zone>) -> Option<Zone> {
        let served = self.current.load();
        let at = served.zones.index_of(origin)?;
        f(&served.zones.shared()[at])
    }

    /// Forgets the kept models (the zones were read again, or a change went back).
    pub(super) fn forget_specs(&self, origin: Option<&Name>) {
        let mut specs = self.specs.lock().unwrap_or_else(|e| e.into_inner());
        match origin {
            Some(origin) => specs.remove(&origin.to_lowercase()),
            None => {
                specs.clear();
                None
            }
        };
    }
}

/// `zone` with its SOA serial set to `serial`, if one is given (see `Zone::with_serial`).
fn with_serial(zone: Zone, serial: Option<u32>) -> Option<Zone> {
    match serial {
        Some(serial) => zone.with_serial(serial),
        None => Some(zone),
    }
}

fn missing(origin: &Name) -> ZoneError {
    ZoneError::Name {
        path: std::path::PathBuf::from(origin.to_ascii()),
        message: "the zone has no TOML document".into(),
    }
}
