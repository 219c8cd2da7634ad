//! The writer path when the store fails: a change the store cannot take or cannot make durable
//! is refused, and what is served is what is durable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::snapshot::Snapshot;
use crate::store::change::{Edit, ZoneEdit};
use crate::store::edit::EditError;
use crate::store::registry::{Change, Registration};
use crate::store::{Doc, FileStore, Ticket};
use crate::zone::Zone;
use crate::zone::spec::{Registered, ZoneSpec};

/// A journaled folder whose appends or syncs fail on demand (a full or failing disk).
#[derive(Debug)]
struct Failing {
    inner: FileStore,
    switches: Arc<Switches>,
}

#[derive(Debug, Default)]
struct Switches {
    fail_append: AtomicBool,
    fail_sync: AtomicBool,
}

impl Store for Failing {
    fn load(&self, served: Option<&ZoneSet>) -> Result<ZoneSet, ZoneError> {
        self.inner.load(served)
    }
    fn read(&self, origin: &Name) -> std::io::Result<Option<Doc>> {
        self.inner.read(origin)
    }
    fn tag(&self, origin: &Name) -> std::io::Result<Option<String>> {
        self.inner.tag(origin)
    }
    fn build(
        &self,
        origin: &Name,
        spec: &ZoneSpec,
        registered: &[Registered],
    ) -> Result<Zone, ZoneError> {
        self.inner.build(origin, spec, registered)
    }
    fn append_edit(&self, origin: &Name, edit: &ZoneEdit) -> std::io::Result<Ticket> {
        if self.switches.fail_append.load(Ordering::Relaxed) {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.append_edit(origin, edit)
    }
    fn load_one(
        &self,
        origin: &Name,
        text: Option<&str>,
        registered: &[Registered],
    ) -> Result<Option<Zone>, ZoneError> {
        self.inner.load_one(origin, text, registered)
    }
    fn registrations(&self) -> Vec<Registration> {
        self.inner.registrations()
    }
    fn append_registry(&self, change: Change) -> std::io::Result<Ticket> {
        self.inner.append_registry(change)
    }
    fn append(&self, origin: &Name, text: Option<&str>) -> std::io::Result<Ticket> {
        if self.switches.fail_append.load(Ordering::Relaxed) {
            return Err(std::io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.inner.append(origin, text)
    }
    fn sync(&self, ticket: Ticket) -> std::io::Result<()> {
        match self.switches.fail_sync.load(Ordering::Relaxed) {
            true => Err(std::io::Error::from_raw_os_error(5)), // EIO
            false => self.inner.sync(ticket),
        }
    }
    fn recover(&self) -> std::io::Result<()> {
        self.inner.recover()
    }
    fn compact(&self, force: bool) -> std::io::Result<()> {
        self.inner.compact(force)
    }
    fn read_only(&self, origin: &Name) -> bool {
        self.inner.read_only(origin)
    }
}

/// A control over a fresh folder with the zone `t.`, the store's failure switches, and the
/// folder.
fn control() -> (Control, Arc<Switches>, PathBuf) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("meridian-control-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.toml"), crate::fixture::ZONE_HEAD).unwrap();
    let switches = Arc::new(Switches::default());
    let store = Failing {
        inner: FileStore::open(dir.clone()).unwrap(),
        switches: switches.clone(),
    };
    let zones = store.load(None).unwrap();
    let sources = Sources {
        zones_dir: dir.clone(),
        ..Sources::default()
    };
    (
        Control::new(Box::new(store), sources, zones, None),
        switches,
        dir,
    )
}

/// Whether zone `t.`'s text (as the store has it) holds the change.
fn stored_x(control: &Control) -> bool {
    let origin = Name::from_ascii("t.").unwrap();
    control
        .store()
        .read(&origin)
        .unwrap()
        .unwrap()
        .text
        .contains("192.0.2.7")
}

/// Adds `x.t. A 192.0.2.7` to the zone's text.
fn add_x(control: &Control) -> Result<Option<String>, UpdateError> {
    let origin = Name::from_ascii("t.").unwrap();
    control
        .update_zone(&origin, |doc: Option<Doc>| {
            let text = doc.map(|d| d.text).unwrap_or_default();
            Ok::<_, UpdateError>(Some(format!(
                "{text}\n[[records]]\nname = \"x\"\ntype = \"A\"\ndata = [\"192.0.2.7\"]\n"
            )))
        })
        .map(|updated| updated.text)
}

fn served_x(control: &Control) -> bool {
    let snapshot = control.snapshot();
    let name = Name::from_ascii("x.t.").unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let client = "192.0.2.1".parse().unwrap();
    let answer = crate::resolve::resolve(&snapshot, &name, RecordType::A, client, &mut rng);
    answer.answer_count() > 0
}

#[test]
fn a_change_the_disk_cannot_take_is_refused_and_changes_nothing() {
    let (control, switches, _) = control();
    let before = control.snapshot().generation;
    switches.fail_append.store(true, Ordering::Relaxed);
    let error = add_x(&control).unwrap_err();
    assert!(error.to_string().contains("os error 28"), "{error}");
    assert_eq!(
        control.snapshot().generation,
        before,
        "nothing was published"
    );
    assert!(!served_x(&control));
    assert!(!stored_x(&control));
    // The disk has room again: the same change goes through.
    switches.fail_append.store(false, Ordering::Relaxed);
    add_x(&control).unwrap();
    assert!(served_x(&control));
}

#[test]
fn a_change_that_cannot_be_made_durable_is_refused_and_unserved() {
    let (control, switches, dir) = control();
    switches.fail_sync.store(true, Ordering::Relaxed);
    let error = add_x(&control).unwrap_err();
    assert!(error.to_string().contains("os error 5"), "{error}");
    assert!(!served_x(&control), "served what is durable again");
    assert!(!stored_x(&control));
    switches.fail_sync.store(false, Ordering::Relaxed);
    add_x(&control).unwrap();
    assert!(served_x(&control));
    // And a restart (the journal replayed) has it.
    let origin = Name::from_ascii("t.").unwrap();
    let again = FileStore::open(dir).unwrap();
    let text = again.read(&origin).unwrap().unwrap().text;
    assert!(text.contains("192.0.2.7"));
}

/// What an edit's error says.
#[derive(Debug)]
struct Refused(String);

impl From<UpdateError> for Refused {
    fn from(e: UpdateError) -> Self {
        Refused(e.to_string())
    }
}

impl From<EditError> for Refused {
    fn from(e: EditError) -> Self {
        Refused(e.to_string())
    }
}

/// An edit of zone `t.` (pool `www` made of `count` endpoints, or an endpoint patched).
fn edit(control: &Control, edit: Edit) -> Result<Edited, Refused> {
    let origin = Name::from_ascii("t.").unwrap();
    control.edit_zone(&origin, edit, |_| Ok::<_, Refused>(()))
}

fn set_www(count: u8) -> Edit {
    let endpoints: Vec<String> = (1..=count).map(|i| format!("\"192.0.2.{i}\"")).collect();
    let json = format!(r#"{{"endpoints": [{}]}}"#, endpoints.join(","));
    Edit::SetPool {
        name: "www".into(),
        pool: serde_json::from_str(&json).unwrap(),
    }
}

fn drain(address: &str) -> Edit {
    Edit::PatchEndpoint {
        pool: "www".into(),
        address: address.parse().unwrap(),
        patch: serde_json::from_str(r#"{"drain": true}"#).unwrap(),
    }
}

/// The addresses `www.t.` answers, sorted.
fn www(control: &Control) -> Vec<String> {
    let snapshot = control.snapshot();
    let name = Name::from_ascii("www.t.").unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let client = "192.0.2.1".parse().unwrap();
    let answer = crate::resolve::resolve(&snapshot, &name, RecordType::A, client, &mut rng);
    let mut seen: Vec<String> = answer
        .answer_records()
        .map(|r| crate::presentation::record_text(&r))
        .collect();
    seen.sort();
    seen
}

#[test]
fn an_edited_pool_is_rebuilt_alone_and_served_as_a_whole_build_would() {
    let (control, _, dir) = control();
    edit(&control, set_www(3)).unwrap();
    let before = control.snapshot();
    let edited = edit(&control, drain("192.0.2.2")).unwrap();
    assert_eq!(edited.serial, Some(3), "each edit bumps the serial");
    let after = control.snapshot();
    let zone = |s: &Snapshot| s.zones.shared()[0].clone();
    assert!(
        Arc::ptr_eq(&zone(&before).slots, &zone(&after).slots),
        "the pool was rebuilt alone (the zone's slots are shared)"
    );
    assert_eq!(www(&control), ["192.0.2.1", "192.0.2.3"]);
    assert_eq!(after.zones.shared()[0].serial(), 3);
    // A record set at a new name, then at a wildcard: built alone too.
    for name in ["x", "*.x"] {
        let set = format!(r#"{{"name": "{name}", "type": "A", "data": ["192.0.2.7"]}}"#);
        edit(
            &control,
            Edit::SetRecords(serde_json::from_str(&set).unwrap()),
        )
        .unwrap();
        let shared = Arc::ptr_eq(&zone(&before).slots, &zone(&control.snapshot()).slots);
        assert!(shared, "{name} was added alone");
    }
    assert!(served_x(&control));
    let snapshot = control.snapshot();
    let below = Name::from_ascii("a.x.t.").unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let client = "192.0.2.1".parse().unwrap();
    let answer = crate::resolve::resolve(&snapshot, &below, RecordType::A, client, &mut rng);
    assert_eq!(answer.answer_count(), 1, "the new wildcard answers");
    drop(answer);
    drop(snapshot);
    // A restart (the journal's edits replayed over the file) serves the same.
    drop((before, after));
    let again = FileStore::open(dir).unwrap();
    let restarted = Control::from_zones(again.load(None).unwrap());
    assert_eq!(www(&restarted), ["192.0.2.1", "192.0.2.3"]);
    assert_eq!(restarted.snapshot().zones.shared()[0].serial(), 5);
    assert!(served_x(&restarted));
}

#[test]
fn a_refused_edit_changes_nothing_and_the_next_one_starts_from_what_was() {
    let (control, switches, _) = control();
    edit(&control, set_www(2)).unwrap();
    let tag = control
        .store()
        .tag(&Name::from_ascii("t.").unwrap())
        .unwrap();
    switches.fail_append.store(true, Ordering::Relaxed);
    let error = edit(&control, drain("192.0.2.1")).unwrap_err();
    assert!(error.0.contains("os error 28"), "{error:?}");
    switches.fail_append.store(false, Ordering::Relaxed);
    let invalid = edit(&control, set_www(0)).unwrap_err();
    assert!(invalid.0.contains("pools.www"), "{invalid:?}");
    let missing = edit(&control, drain("198.51.100.1")).unwrap_err();
    assert!(missing.0.contains("not found"), "{missing:?}");
    assert_eq!(www(&control), ["192.0.2.1", "192.0.2.2"]);
    let origin = Name::from_ascii("t.").unwrap();
    assert_eq!(control.store().tag(&origin).unwrap(), tag, "unchanged tag");
    // The kept model was put back: the next edit is made on the zone as it is.
    let edited = edit(&control, drain("192.0.2.2")).unwrap();
    assert_eq!(edited.serial, Some(3));
    assert_eq!(www(&control), ["192.0.2.1"]);
    let text = control.store().read(&origin).unwrap().unwrap();
    assert_eq!(text.etag, edited.etag, "the tag read whole is the edit's");
    assert!(text.text.contains("drain = true"), "{}", text.text);
    assert!(!text.text.contains("198.51.100.1"));
}

#[test]
fn a_reload_builds_again_only_the_zones_whose_files_changed() {
    let (control, _, dir) = control();
    std::fs::write(dir.join("u.toml"), crate::fixture::ZONE_HEAD).unwrap();
    control.reload().unwrap();
    let zone = |origin: &str| {
        let snapshot = control.snapshot();
        snapshot
            .zones
            .get(&Name::from_ascii(origin).unwrap())
            .unwrap()
            .clone()
    };
    let (t, u) = (zone("t."), zone("u."));
    control.reload().unwrap();
    assert!(Arc::ptr_eq(&t, &zone("t.")) && Arc::ptr_eq(&u, &zone("u.")));
    std::fs::write(
        dir.join("u.toml"),
        crate::fixture::ZONE_HEAD.replace("serial = 1", "serial = 2"),
    )
    .unwrap();
    control.reload().unwrap();
    assert!(Arc::ptr_eq(&t, &zone("t.")), "t. kept");
    assert_eq!(zone("u.").serial(), 2, "u. read again");
    // A master file that appears beside a zone is read (and here refused), not overlooked.
    std::fs::write(dir.join("t.zone"), "").unwrap();
    let refused = control.reload().unwrap_err().to_string();
    assert!(refused.contains("beside"), "{refused}");
}

#[test]
fn a_heartbeat_renews_without_a_blocking_task_and_fails_like_any_change() {
    let (control, switches, _) = control();
    edit(&control, set_www(1)).unwrap();
    let origin = Name::from_ascii("t.").unwrap();
    let endpoint = Registered {
        pool: "www".into(),
        datacenter: None,
        address: "192.0.2.50".parse().unwrap(),
        weight: 1,
    };
    let ttl = std::time::Duration::from_secs(60);
    assert!(
        control.try_renew(&origin, &endpoint, ttl).is_none(),
        "not registered yet"
    );
    control.register(&origin, endpoint.clone(), ttl).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let ticket = control.try_renew(&origin, &endpoint, ttl).unwrap().unwrap();
    runtime.block_on(control.store().wait(ticket)).unwrap();
    switches.fail_sync.store(true, Ordering::Relaxed);
    let ticket = control.try_renew(&origin, &endpoint, ttl).unwrap().unwrap();
    let error = runtime.block_on(control.store().wait(ticket)).unwrap_err();
    assert!(error.to_string().contains("os error 5"), "{error}");
    control.after_failed_sync();
    switches.fail_sync.store(false, Ordering::Relaxed);
    assert_eq!(
        www(&control),
        ["192.0.2.1", "192.0.2.50"],
        "still registered"
    );
    let ticket = control.try_renew(&origin, &endpoint, ttl).unwrap().unwrap();
    runtime.block_on(control.store().wait(ticket)).unwrap();
}
