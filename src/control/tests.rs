//! The writer path when the store fails: a change the store cannot take or cannot make durable
//! is refused, and what is served is what is durable.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use hickory_proto::rr::{Name, RecordType};

use super::*;
use crate::store::registry::{Change, Registration};
use crate::store::{FileStore, Ticket};
use crate::zone::Zone;
use crate::zone::spec::Registered;

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
    fn load(&self) -> Result<ZoneSet, ZoneError> {
        self.inner.load()
    }
    fn read(&self, origin: &Name) -> std::io::Result<Option<String>> {
        self.inner.read(origin)
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
    let zones = store.load().unwrap();
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
        .contains("192.0.2.7")
}

/// Adds `x.t. A 192.0.2.7` to the zone's text.
fn add_x(control: &Control) -> Result<Option<String>, UpdateError> {
    let origin = Name::from_ascii("t.").unwrap();
    control.update_zone(&origin, |text: Option<String>| {
        let text = text.unwrap_or_default();
        Ok::<_, UpdateError>(Some(format!(
            "{text}\n[[records]]\nname = \"x\"\ntype = \"A\"\ndata = [\"192.0.2.7\"]\n"
        )))
    })
}

fn served_x(control: &Control) -> bool {
    let snapshot = control.snapshot();
    let name = Name::from_ascii("x.t.").unwrap();
    let mut rng = fastrand::Rng::with_seed(1);
    let client = "192.0.2.1".parse().unwrap();
    let answer = crate::resolve::resolve(&snapshot, &name, RecordType::A, client, &mut rng);
    !answer.answers.is_empty()
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
    assert!(again.read(&origin).unwrap().unwrap().contains("192.0.2.7"));
}
