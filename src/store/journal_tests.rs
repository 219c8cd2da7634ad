//! The journal's own tests.

use super::*;
use crate::store::change::ZoneEdit;

fn dir() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("meridian-journal-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

#[test]
fn replay_keeps_the_latest_text_of_each_zone() {
    let dir = dir();
    let j = Journal::open(&dir, |_| None).unwrap();
    let t = j.append(&name("a.test."), Some("one"), || None).unwrap();
    j.append(&name("b.test."), Some("b"), || None).unwrap();
    let t2 = j.append(&name("a.test."), Some("two"), || None).unwrap();
    let t3 = j.append(&name("b.test."), None, || None).unwrap();
    assert!(t2.end > t.end);
    j.sync(t3).unwrap();
    drop(j);
    let j = Journal::open(&dir, |_| None).unwrap();
    let text = |origin: &str| j.latest(&name(origin)).map(|e| e.text);
    assert_eq!(text("a.test."), Some(Some("two".into())));
    assert_eq!(text("b.test."), Some(None));
    assert_eq!(text("c.test."), None);
}

#[test]
fn a_torn_or_corrupt_tail_is_cut_off() {
    let dir = dir();
    let j = Journal::open(&dir, |_| None).unwrap();
    let t = j.append(&name("a.test."), Some("kept"), || None).unwrap();
    j.sync(t).unwrap();
    drop(j);
    let good = std::fs::metadata(dir.join(FILE)).unwrap().len();
    let torn = record::encode(&Record::Zone(name("a.test."), Some("lost".into())), Some(9));
    for tail in [&torn[..torn.len() - 3], &[0xff; 5][..]] {
        let mut bytes = std::fs::read(dir.join(FILE)).unwrap();
        bytes.truncate(good as usize);
        bytes.extend_from_slice(tail);
        std::fs::write(dir.join(FILE), &bytes).unwrap();
        let j = Journal::open(&dir, |_| None).unwrap();
        assert_eq!(
            j.latest(&name("a.test.")).unwrap().text,
            Some("kept".into())
        );
        assert_eq!(std::fs::metadata(dir.join(FILE)).unwrap().len(), good);
    }
    // A flipped bit in the last record: that record is dropped, the earlier ones kept.
    let j = Journal::open(&dir, |_| None).unwrap();
    j.sync(j.append(&name("a.test."), Some("newer"), || None).unwrap())
        .unwrap();
    drop(j);
    let mut bytes = std::fs::read(dir.join(FILE)).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(dir.join(FILE), &bytes).unwrap();
    let j = Journal::open(&dir, |_| None).unwrap();
    assert_eq!(
        j.latest(&name("a.test.")).unwrap().text,
        Some("kept".into())
    );
}

#[test]
fn concurrent_changes_share_syncs_and_all_become_durable() {
    let dir = dir();
    let j = std::sync::Arc::new(Journal::open(&dir, |_| None).unwrap());
    let threads: Vec<_> = (0..8)
        .map(|n| {
            let j = j.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let origin = name(&format!("z{n}.test."));
                    let t = j.append(&origin, Some(&format!("{i}")), || None).unwrap();
                    j.sync(t).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(j);
    let j = Journal::open(&dir, |_| None).unwrap();
    for n in 0..8 {
        let origin = name(&format!("z{n}.test."));
        assert_eq!(j.latest(&origin).unwrap().text, Some("49".into()));
    }
}

#[test]
fn compaction_writes_the_files_and_empties_the_journal() {
    let dir = dir();
    let j = Journal::open(&dir, |_| None).unwrap();
    j.append(&name("a.test."), Some("text"), || None).unwrap();
    let written = Mutex::new(Vec::new());
    j.compact(
        |origin, text| {
            written
                .lock()
                .unwrap()
                .push((origin.to_ascii(), text.map(str::to_owned)));
            Ok(())
        },
        |_| None,
    )
    .unwrap();
    assert_eq!(
        *written.lock().unwrap(),
        [("a.test.".to_owned(), Some("text".to_owned()))]
    );
    assert!(j.is_empty());
    drop(j);
    // What is left is the tag the zone keeps: no change to replay.
    let j = Journal::open(&dir, |_| Some("text".into())).unwrap();
    assert!(j.is_empty() && j.latest(&name("a.test.")).is_none());
    assert_eq!(
        j.tag(&name("a.test."), || Some("text".into())),
        Some(digest("text"))
    );
}

fn patch(weight: u32) -> ZoneEdit {
    let json = format!(
        r#"{{"edit": {{"op": "patch_endpoint", "with": {{"pool": "www", "address": "192.0.2.1", "patch": {{"weight": {weight}}}}}}}, "serial": {weight}}}"#
    );
    serde_json::from_str(&json).unwrap()
}

const ZONE: &str = "ns = [\"ns1\"]\n[soa]\nmname = \"ns1\"\nrname = \"hm\"\nserial = 1\n\n# the pool\n[pools.www]\nendpoints = [\"192.0.2.1\"]\n";

#[test]
fn edits_replay_over_the_file_and_keep_the_zone_tag() {
    let dir = dir();
    let origin = name("a.test.");
    let file = |_: &Name| Some(ZONE.to_owned());
    let j = Journal::open(&dir, file).unwrap();
    j.append_edit(&origin, &patch(2), || Some(ZONE.to_owned()))
        .unwrap();
    let t = j
        .append_edit(&origin, &patch(3), || Some(ZONE.to_owned()))
        .unwrap();
    j.sync(t).unwrap();
    let tag = j.tag(&origin, || None).unwrap();
    assert_ne!(tag, digest(ZONE), "an edit changes the tag");
    let latest = j.latest(&origin).unwrap().latest(&origin).unwrap().unwrap();
    assert!(
        latest.contains("weight = 3") && latest.contains("serial = 3"),
        "{latest}"
    );
    assert!(latest.contains("# the pool"), "comments kept: {latest}");
    drop(j);
    // A torn edit after them is cut off; the replay gives the same text and tag.
    let torn = record::encode(&Record::Edit(origin.clone(), Box::new(patch(9))), Some(9));
    let mut bytes = std::fs::read(dir.join(FILE)).unwrap();
    bytes.extend_from_slice(&torn[..torn.len() - 1]);
    std::fs::write(dir.join(FILE), &bytes).unwrap();
    let j = Journal::open(&dir, file).unwrap();
    assert_eq!(j.tag(&origin, || None), Some(tag));
    let replayed = j.latest(&origin).unwrap().latest(&origin).unwrap();
    assert_eq!(replayed.as_deref(), Some(latest.as_str()));
    // Compacted into its file, the zone keeps its tag.
    let written = Mutex::new(None);
    j.compact(
        |_, text| {
            *written.lock().unwrap() = text.map(str::to_owned);
            Ok(())
        },
        |_| None,
    )
    .unwrap();
    let written = written.lock().unwrap().clone().unwrap();
    assert_eq!(written, latest);
    assert_eq!(j.tag(&origin, || Some(written.clone())), Some(tag));
    // A file edited by hand since has its own digest as its tag.
    assert_eq!(j.tag(&origin, || Some("x".into())), Some(digest("x")));
}

#[test]
fn changes_made_during_a_compaction_stay_in_the_journal() {
    let dir = dir();
    let origin = name("a.test.");
    std::fs::write(dir.join("a.test.toml"), ZONE).unwrap();
    let file = |_: &Name| std::fs::read_to_string(dir.join("a.test.toml")).ok();
    let j = Journal::open(&dir, file).unwrap();
    let first = j.append_edit(&origin, &patch(2), || file(&origin)).unwrap();
    let during = Mutex::new(None);
    j.compact(
        |_, text| {
            // A change arriving while the file is written.
            let ticket = j.append_edit(&origin, &patch(3), || file(&origin)).unwrap();
            *during.lock().unwrap() = Some(ticket);
            std::fs::write(dir.join("a.test.toml"), text.unwrap())
        },
        file,
    )
    .unwrap();
    j.sync(first).unwrap();
    j.sync(during.lock().unwrap().unwrap()).unwrap();
    let on_disk = file(&origin).unwrap();
    assert!(on_disk.contains("weight = 2"), "{on_disk}");
    let tag = j.tag(&origin, || None).unwrap();
    let latest = j.latest(&origin).unwrap().latest(&origin).unwrap().unwrap();
    assert!(latest.contains("weight = 3"), "{latest}");
    drop(j);
    // Restarted: the file, then the change made during the compaction, with the same tag.
    let j = Journal::open(&dir, file).unwrap();
    let replayed = j.latest(&origin).unwrap().latest(&origin).unwrap().unwrap();
    assert_eq!(replayed, latest);
    assert_eq!(j.tag(&origin, || None), Some(tag));
}

#[test]
fn async_waiters_are_synced_by_the_syncer_thread() {
    let dir = dir();
    let j = std::sync::Arc::new(Journal::open(&dir, |_| None).unwrap());
    syncer::spawn(&j).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    runtime.block_on(async {
        let waits: Vec<_> = (0..64)
            .map(|i| {
                let t = j
                    .append(&name("a.test."), Some(&format!("{i}")), || None)
                    .unwrap();
                tokio::spawn(j.clone().wait(t))
            })
            .collect();
        for w in waits {
            w.await.unwrap().unwrap();
        }
    });
    let state = j.lock();
    assert_eq!(state.durable, state.appended, "every record synced");
}

#[test]
fn an_edit_replayed_onto_a_file_that_has_it_gives_the_same_zone() {
    // A crash after a compaction wrote the file, before it replaced the journal.
    let origin = name("a.test.");
    let remove: ZoneEdit = serde_json::from_str(
        r#"{"edit": {"op": "remove_pool", "with": {"name": "www"}}, "serial": 2}"#,
    )
    .unwrap();
    let mut entry = Entry::replayed(Changes::default(), Some(ZONE.to_owned()), None);
    entry.edits = vec![patch(5), remove.clone()];
    let once = entry.latest(&origin).unwrap().unwrap();
    assert!(!once.contains("[pools.www]"), "{once}");
    let mut again = Entry::replayed(Changes::default(), Some(once.clone()), None);
    again.edits = vec![patch(5), remove];
    assert_eq!(again.latest(&origin).unwrap().unwrap(), once);
}

/// Thirty acknowledged zone texts, then damage at the start, in the middle, at the end, a
/// zeroed length and garbage appended: every intact record is applied, the file as it was is
/// kept aside, and the journal is left holding the intact records only.
#[test]
fn damage_keeps_every_intact_record() {
    let write_thirty = |dir: &Path| -> Vec<(usize, usize)> {
        let j = Journal::open(dir, |_| None).unwrap();
        let mut at = Vec::new();
        for i in 0..30 {
            let t = j
                .append(
                    &name(&format!("z{i}.test.")),
                    Some(&format!("text {i}")),
                    || None,
                )
                .unwrap();
            j.sync(t).unwrap();
        }
        drop(j);
        // Where each record starts and ends.
        let bytes = std::fs::read(dir.join(FILE)).unwrap();
        let mut from = 0;
        while let Some((_, _, len)) = record::decode(&bytes[from..]) {
            at.push((from, from + len));
            from += len;
        }
        // The first record says where numbering starts; the changes follow.
        at.remove(0);
        at
    };
    type Damage = fn(&mut Vec<u8>, &[(usize, usize)]);
    let cases: [(&str, Damage, &[usize]); 5] = [
        (
            "a flipped byte at the start",
            |b, r| b[r[0].0 + 14] ^= 0x40,
            &[0],
        ),
        (
            "a flipped byte in the middle",
            |b, r| b[r[15].0 + 14] ^= 0x40,
            &[15],
        ),
        (
            "a flipped byte at the end",
            |b, r| b[r[29].1 - 1] ^= 0x40,
            &[29],
        ),
        (
            "a zeroed length",
            |b, r| b[r[15].0..r[15].0 + 4].fill(0),
            &[15],
        ),
        (
            "garbage appended",
            |b, _| b.extend_from_slice(&[0xa5; 100]),
            &[],
        ),
    ];
    for (what, damage, lost) in cases {
        let dir = dir();
        let ranges = write_thirty(&dir);
        let mut bytes = std::fs::read(dir.join(FILE)).unwrap();
        damage(&mut bytes, &ranges);
        std::fs::write(dir.join(FILE), &bytes).unwrap();
        let j = Journal::open(&dir, |_| None).unwrap();
        // A change lost before a sound one shows as a gap in the sequence numbers (the i-th
        // change is number i + 1; the first record says numbering starts at 1), and stays one
        // after the rewrite. A lost last change is a torn tail.
        let gaps: Vec<_> = lost
            .iter()
            .filter(|&&i| i < 29)
            .map(|&i| i as u64 + 1..=i as u64 + 1)
            .collect();
        assert_eq!(j.lost(), gaps, "{what}");
        for i in 0..30 {
            let text = j.latest(&name(&format!("z{i}.test."))).map(|e| e.text);
            match lost.contains(&i) {
                true => assert_eq!(text, None, "{what}: record {i}"),
                false => assert_eq!(text, Some(Some(format!("text {i}"))), "{what}: record {i}"),
            }
        }
        drop(j);
        // A damaged middle leaves a copy of the file as it was; the journal holds what is sound.
        let asides: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("damaged"))
            .collect();
        let middle = lost.iter().any(|&i| i < 29);
        assert_eq!(asides.len(), usize::from(middle), "{what}");
        let j = Journal::open(&dir, |_| None).unwrap();
        let kept = (0..30)
            .filter(|i| j.latest(&name(&format!("z{i}.test."))).is_some())
            .count();
        assert_eq!(kept, 30 - lost.len(), "{what}: reopened");
        assert_eq!(j.lost(), gaps, "{what}: reopened");
    }
}

/// A pool created, then patched: with its creation lost to damage, the patch has nothing to
/// apply to. The start stops rather than guess; `check` names the edit, `repair` drops it and
/// keeps the rest.
#[test]
fn an_edit_that_depended_on_a_lost_change_stops_the_start_until_repaired() {
    use crate::store::Store;
    let dir = dir();
    let origin = name("a.test.");
    std::fs::write(dir.join("a.test.toml"), ZONE).unwrap();
    let store = crate::store::FileStore::open(dir.clone()).unwrap();
    let new_pool = r#"{"edit": {"op": "set_pool", "with": {"name": "new", "pool": {"endpoints": ["192.0.2.9"]}}}, "serial": 5}"#;
    let patch_new = r#"{"edit": {"op": "patch_endpoint", "with": {"pool": "new", "address": "192.0.2.9", "patch": {"weight": 4}}}, "serial": 6}"#;
    let edits = [
        patch(2),
        serde_json::from_str(new_pool).unwrap(),
        serde_json::from_str(patch_new).unwrap(),
        patch(7),
    ];
    for edit in &edits {
        let ticket = store.append_edit(&origin, edit).unwrap();
        store.sync(ticket).unwrap();
    }
    drop(store);
    // The record of the new pool damaged: the third, after the one that says where numbering
    // starts and the first patch.
    let mut bytes = std::fs::read(dir.join(FILE)).unwrap();
    let (_, _, next) = record::decode(&bytes).unwrap();
    let (_, _, first) = record::decode(&bytes[next..]).unwrap();
    bytes[next + first + 20] ^= 0x40;
    std::fs::write(dir.join(FILE), &bytes).unwrap();
    let error = crate::store::FileStore::open(dir.clone())
        .unwrap()
        .load(None)
        .unwrap_err();
    assert!(error.to_string().contains("lost to damage"), "{error}");
    let report = crate::store::repair::check(&dir).unwrap();
    assert_eq!(report.lost, vec![2..=2]);
    assert_eq!(report.not_applying.len(), 1, "{report}");
    assert_eq!(report.not_applying[0].0, Some(3), "{report}");
    assert!(!report.is_sound());
    let repaired = crate::store::repair::repair(&dir).unwrap();
    assert!(
        repaired.kept_at.as_ref().is_some_and(|p| p.exists()),
        "{repaired}"
    );
    assert!(crate::store::repair::check(&dir).unwrap().is_sound());
    let store = crate::store::FileStore::open(dir.clone()).unwrap();
    let zones = store.load(None).unwrap();
    let doc = store.read(&origin).unwrap().unwrap().text;
    assert!(
        doc.contains("weight = 7") && !doc.contains("[pools.new]"),
        "{doc}"
    );
    assert_eq!(zones.iter().next().unwrap().serial(), 7);
}
