//! Reads the zones folder: one zone per `<origin>.toml` and/or `<origin>.zone`, all or nothing.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use hickory_proto::rr::Name;

use super::build::{FieldPath, build_zone};
use super::spec::{EndpointSpec, PoolSpec, Registered, ZoneSpec};
use super::{Stamp, ZoneSet, master, source};
use crate::policy::PolicyKind;

/// Why the zone set was refused. Every variant names the file; parse and validation errors
/// name the line and field too.
#[derive(Debug, thiserror::Error)]
pub enum ZoneError {
    #[error("{}: cannot read: {cause}", path.display())]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Name { path: PathBuf, message: String },
    #[error("{at}: {field}{sep}{message}", sep = if field.is_empty() { "" } else { ": " })]
    Invalid {
        at: Location,
        field: String,
        message: String,
    },
}

/// `file:line`, or just `file` where no line can be given.
#[derive(Debug)]
pub struct Location {
    pub file: PathBuf,
    pub line: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// The files that make up one zone.
#[derive(Debug, Default)]
pub struct ZoneFiles {
    pub toml: Option<PathBuf>,
    pub master: Option<PathBuf>,
}

/// Lists the zones in `dir` by origin. Hidden files and other extensions are ignored, so
/// editors' temporary files and READMEs can sit beside the zones.
pub fn zone_files(dir: &Path) -> Result<BTreeMap<Name, ZoneFiles>, ZoneError> {
    let read_err = |cause| ZoneError::Read {
        path: dir.to_owned(),
        cause,
    };
    let mut zones: BTreeMap<Name, ZoneFiles> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let (stem, is_toml) = match (
            file_name.strip_suffix(".toml"),
            file_name.strip_suffix(".zone"),
        ) {
            (Some(stem), _) => (stem, true),
            (_, Some(stem)) => (stem, false),
            _ => continue,
        };
        let origin = Name::from_ascii(format!("{}.", stem.trim_end_matches('.')))
            .map_err(|e| ZoneError::Name {
                path: path.clone(),
                message: format!("the file name is not a zone origin: {e}"),
            })?
            .to_lowercase();
        let files = zones.entry(origin).or_default();
        match is_toml {
            true => files.toml = Some(path),
            false => files.master = Some(path),
        }
    }
    Ok(zones)
}

/// Changes the model of a zone's document once it is read.
pub type EditSpec<'e> = &'e dyn Fn(&Name, &mut ZoneSpec) -> Result<(), String>;

/// What the journal adds to the zones folder.
#[derive(Default)]
pub struct Journaled<'e> {
    /// Zones' TOML text to use instead of their files' (`None`: no TOML document).
    pub texts: HashMap<Name, Option<String>>,
    /// Endpoints registered through the API, by zone.
    pub registered: HashMap<Name, Vec<Registered>>,
    /// Changes the model of a zone in `texts` once it is read (its edits since that text).
    pub edit: Option<EditSpec<'e>>,
}

/// Loads and builds every zone in `dir`. The first error refuses the whole set.
pub fn load_dir(dir: &Path) -> Result<ZoneSet, ZoneError> {
    load_dir_with(dir, &Journaled::default(), None)
}

/// Like [`load_dir`], with what the journal adds: the folder as the journal's changes leave
/// it. The zones of `served` whose files did not change since they were read (and that the
/// journal does not change) are kept as they are, not built again (a reload).
pub fn load_dir_with(
    dir: &Path,
    journaled: &Journaled<'_>,
    served: Option<&ZoneSet>,
) -> Result<ZoneSet, ZoneError> {
    let (texts, registered) = (&journaled.texts, &journaled.registered);
    let mut files = zone_files(dir)?;
    for (origin, text) in texts {
        let entry = files.entry(origin.to_lowercase()).or_default();
        entry.toml = text.as_ref().map(|_| toml_path(dir, origin));
    }
    let mut zones = Vec::new();
    for (origin, files) in files {
        if files.toml.is_none() && files.master.is_none() {
            continue;
        }
        let unchanged = served
            .filter(|_| !texts.contains_key(&origin))
            .and_then(|set| set.get(&origin))
            .filter(|zone| unchanged_since(zone, &files));
        if let Some(zone) = unchanged {
            zones.push(zone.clone());
            continue;
        }
        let text = texts.get(&origin).cloned().flatten();
        let registered = registered.get(&origin).map_or(&[][..], Vec::as_slice);
        let from_files = !texts.contains_key(&origin);
        let mut stamps = stamp_of(files.toml.iter().chain(&files.master));
        let edit = journaled.edit.filter(|_| !from_files);
        let mut zone = load_zone(dir, &origin, &files, text, registered, edit)?;
        if let Some(named) = &zone.master_file {
            stamps.extend(stamp_of([named]));
        }
        if from_files {
            let modified = stamps.iter().filter_map(|(p, _)| std::fs::metadata(p).ok());
            if let Some(newest) = modified.filter_map(|m| m.modified().ok()).max() {
                zone.changed = newest;
            }
        }
        zone.read_from = from_files.then(|| stamps.into());
        zones.push(std::sync::Arc::new(zone));
    }
    Ok(ZoneSet::of(zones))
}

/// Each file's digest (`None`: it is not there). A digest, not a modification time: a file
/// rewritten within the clock's tick at the same size would keep its time.
fn stamp_of<'p>(paths: impl IntoIterator<Item = &'p PathBuf>) -> Vec<(PathBuf, Stamp)> {
    let stamp = |p: &PathBuf| Some(crate::digest::sha256(&[&std::fs::read(p).ok()?]));
    paths.into_iter().map(|p| (p.clone(), stamp(p))).collect()
}

/// Whether `zone` was read from exactly `files` (and its master file), unchanged since.
fn unchanged_since(zone: &super::Zone, files: &ZoneFiles) -> bool {
    let Some(read_from) = &zone.read_from else {
        return false;
    };
    let paths: Vec<&PathBuf> = read_from.iter().map(|(p, _)| p).collect();
    let now = stamp_of(paths.iter().copied());
    let listed = files.toml.iter().chain(&files.master);
    now[..] == read_from[..] && listed.into_iter().all(|p| paths.contains(&p))
}

/// `dir/<origin>.toml`.
fn toml_path(dir: &Path, origin: &Name) -> std::path::PathBuf {
    let name = origin.to_ascii();
    dir.join(format!("{}.toml", name.trim_end_matches('.')))
}

/// Zone `origin` of the folder as it would be with its TOML document replaced by `text`
/// (`None`: no TOML document; a master file alone is then still a zone): how a change is
/// built and validated before it is written. `registered`: its endpoints registered through
/// the API. `Ok(None)`: no zone would be left.
pub fn load_one(
    dir: &Path,
    origin: &Name,
    text: Option<&str>,
    registered: &[Registered],
) -> Result<Option<super::Zone>, ZoneError> {
    let mut files = zone_files(dir)?.remove(origin).unwrap_or_default();
    files.toml = text.map(|_| toml_path(dir, origin));
    if files.toml.is_none() && files.master.is_none() {
        return Ok(None);
    }
    load_zone(
        dir,
        origin,
        &files,
        text.map(str::to_owned),
        registered,
        None,
    )
    .map(Some)
}

fn read(path: &Path) -> Result<String, ZoneError> {
    std::fs::read_to_string(path).map_err(|cause| ZoneError::Read {
        path: path.to_owned(),
        cause,
    })
}

fn load_zone(
    dir: &Path,
    origin: &Name,
    files: &ZoneFiles,
    text: Option<String>,
    registered: &[Registered],
    edit: Option<EditSpec<'_>>,
) -> Result<super::Zone, ZoneError> {
    let Some(toml_path) = &files.toml else {
        // A master file alone is a whole zone, served as written.
        let path = files.master.as_ref().expect("a zone has at least one file");
        let records = load_master(path, origin)?;
        return build_zone(origin, &ZoneSpec::default(), Some(records)).map_err(|e| {
            ZoneError::Invalid {
                at: Location {
                    file: path.clone(),
                    line: None,
                },
                field: String::new(),
                message: e.message,
            }
        });
    };

    let text = match text {
        Some(t) => t,
        None => read(toml_path)?,
    };
    let mut spec: ZoneSpec = super::parse::zone_spec(&text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        ZoneError::Invalid {
            at: Location {
                file: toml_path.clone(),
                line: e.span().map(|_| source::line_of(&text, offset)),
            },
            field: source::path_at(&text, offset).to_string(),
            message: e.message().trim().to_owned(),
        }
    })?;

    let invalid = |field: FieldPath, message: String| ZoneError::Invalid {
        at: Location {
            file: toml_path.clone(),
            line: source::line_of_path(&text, &field),
        },
        field: field.to_string(),
        message,
    };
    if let Some(edit) = edit {
        edit(origin, &mut spec).map_err(|m| invalid(FieldPath::default(), m))?;
    }
    build_spec(dir, origin, files, spec, registered, &invalid)
}

/// Builds a zone from the model of its TOML document; `invalid` places an error in it.
fn build_spec(
    dir: &Path,
    origin: &Name,
    files: &ZoneFiles,
    mut spec: ZoneSpec,
    registered: &[Registered],
    invalid: &dyn Fn(FieldPath, String) -> ZoneError,
) -> Result<super::Zone, ZoneError> {
    add_registered(&mut spec, origin, registered)
        .map_err(|message| invalid(FieldPath::default().key("registrations"), message))?;

    let master_path = match (&spec.master_file, &files.master) {
        (Some(named), _) => Some(dir.join(named)),
        (None, Some(beside)) => {
            return Err(invalid(
                FieldPath::default(),
                format!(
                    "{} lies beside this file but is not named by it: add master_file = \"{}\"",
                    beside.display(),
                    beside.file_name().unwrap_or_default().to_string_lossy()
                ),
            ));
        }
        (None, None) => None,
    };
    let mut master = master_path
        .as_ref()
        .map(|p| load_master(p, origin))
        .transpose()?;
    let mut signer = None;
    if let Some(dnssec) = &spec.dnssec {
        refuse_signer_records(&spec, master.as_deref(), invalid)?;
        let (keys, records) = super::keys::records(dir, origin, spec.ttl, dnssec)
            .map_err(|message| invalid(FieldPath::default().key("dnssec").key("keys"), message))?;
        let timing = super::keys::timing(dnssec)
            .map_err(|message| invalid(FieldPath::default().key("dnssec"), message))?;
        master.get_or_insert_with(Vec::new).extend(records);
        let zone_signer = crate::dnssec::ZoneSigner::new(keys, timing);
        signer = Some(std::sync::Arc::new(zone_signer));
    }
    let mut zone = build_zone(origin, &spec, master).map_err(|e| invalid(e.field, e.message))?;
    zone.signer = signer;
    zone.master_file = master_path;
    Ok(zone)
}

/// A zone Meridian signs itself has no RRSIG, NSEC, NSEC3 or NSEC3PARAM of its own: the signer
/// makes what answers need (compact denial, RFC 9824), and stale records from another signer
/// would contradict them.
fn refuse_signer_records(
    spec: &ZoneSpec,
    master: Option<&[hickory_proto::rr::Record]>,
    invalid: &dyn Fn(FieldPath, String) -> ZoneError,
) -> Result<(), ZoneError> {
    let made_by_signer = |code: u16| matches!(code, 46 | 47 | 50 | 51);
    let why = "is made by the signer: a zone with [dnssec] is signed by Meridian, so remove it";
    if let Some(record) = master
        .into_iter()
        .flatten()
        .find(|r| made_by_signer(u16::from(r.record_type())))
    {
        let shown = crate::presentation::record_type_text(record.record_type());
        let message = format!("{} {shown} {why}", record.name);
        return Err(invalid(FieldPath::default().key("master_file"), message));
    }
    for (i, r) in spec.records.iter().enumerate() {
        if crate::presentation::type_code(&r.rtype).is_some_and(made_by_signer) {
            let at = FieldPath::default().key("records").index(i).key("type");
            return Err(invalid(at, format!("{} {why}", r.rtype)));
        }
    }
    Ok(())
}

/// Zone `origin` of the folder built from `spec`, the model of its TOML document (an edit's),
/// with `registered` added. Errors name the field, not a line: there is no text.
pub fn load_spec(
    dir: &Path,
    origin: &Name,
    spec: &ZoneSpec,
    registered: &[Registered],
) -> Result<super::Zone, ZoneError> {
    let mut files = zone_files(dir)
        .unwrap_or_default()
        .remove(origin)
        .unwrap_or_default();
    let path = toml_path(dir, origin);
    files.toml = Some(path.clone());
    let invalid = |field: FieldPath, message: String| field_error(&path, field, message);
    build_spec(dir, origin, &files, spec.clone(), registered, &invalid)
}

/// Pool `key` of zone `origin` built alone from `spec`, with the endpoints of `registered`
/// that belong to it: its owner name and the pool.
pub fn load_pool(
    origin: &Name,
    key: &str,
    spec: &PoolSpec,
    registered: &[Registered],
) -> Result<(Name, super::Pool), ZoneError> {
    let at = FieldPath::default().key("pools").key(key);
    let file = toml_path(Path::new(""), origin);
    let invalid = |field: FieldPath, message: String| field_error(&file, field, message);
    let owner = Name::parse(key, Some(origin))
        .map_err(|e| invalid(at.clone(), format!("invalid name: {e}")))?
        .to_lowercase();
    let mut alone = ZoneSpec::default();
    alone.pools.insert(key.to_owned(), spec.clone());
    let owner_key = owner.to_ascii();
    let mine: Vec<Registered> = registered
        .iter()
        .filter(|r| absolute(origin, &r.pool).as_deref() == Some(owner_key.as_str()))
        .cloned()
        .collect();
    add_registered(&mut alone, origin, &mine)
        .map_err(|message| invalid(FieldPath::default().key("registrations"), message))?;
    let pool = alone.pools.remove(key).expect("inserted above");
    let built = super::pool::build_pool(origin, &owner, &pool, &at);
    built
        .map(|p| (owner, p))
        .map_err(|e| invalid(e.field, e.message))
}

/// A field's error in a zone built from its model, where there is no text to give a line of.
fn field_error(file: &Path, field: FieldPath, message: String) -> ZoneError {
    ZoneError::Invalid {
        at: Location {
            file: file.to_owned(),
            line: None,
        },
        field: field.to_string(),
        message,
    }
}

fn load_master(path: &Path, origin: &Name) -> Result<Vec<hickory_proto::rr::Record>, ZoneError> {
    let text = read(path)?;
    master::parse_file(&text, path, origin).map_err(|e| ZoneError::Invalid {
        at: Location {
            file: e.file,
            line: e.line,
        },
        field: String::new(),
        message: e.message,
    })
}

/// `name` made absolute against `origin`, in lower case (registrations name pools so already).
fn absolute(origin: &Name, name: &str) -> Option<String> {
    if name.ends_with('.') && !name.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(name.to_owned());
    }
    let name = Name::parse(name, Some(origin)).ok()?;
    Some(name.to_lowercase().to_ascii())
}

/// Adds the endpoints registered through the API to their pools (and datacenters).
fn add_registered(
    spec: &mut ZoneSpec,
    origin: &Name,
    registered: &[Registered],
) -> Result<(), String> {
    if registered.is_empty() {
        return Ok(());
    }
    // Each pool's name made absolute once: a zone of many pools and registrations would
    // otherwise compare every pair.
    let keys: HashMap<String, String> = spec
        .pools
        .keys()
        .filter_map(|k| Some((absolute(origin, k)?, k.clone())))
        .collect();
    for r in registered {
        let key = absolute(origin, &r.pool).and_then(|name| keys.get(&name));
        let pool = key.and_then(|k| spec.pools.get_mut(k)).ok_or_else(|| {
            format!(
                "{} is registered in pool {}, which is gone",
                r.address, r.pool
            )
        })?;
        let mut endpoint = EndpointSpec::at(r.address);
        endpoint.weight = r.weight;
        let endpoints = match (&r.datacenter, pool.policy) {
            (Some(name), PolicyKind::Geo) => {
                let dc = pool.datacenters.iter_mut().find(|d| d.name == *name);
                let dc = dc.ok_or_else(|| format!("pool {} has no datacenter {name}", r.pool))?;
                &mut dc.endpoints
            }
            (None, PolicyKind::Geo) => {
                return Err(format!(
                    "{}: a geo pool's endpoint needs its datacenter",
                    r.address
                ));
            }
            (Some(_), _) => return Err(format!("pool {} has no datacenters", r.pool)),
            (None, _) => &mut pool.endpoints,
        };
        endpoints.push(endpoint);
    }
    Ok(())
}
