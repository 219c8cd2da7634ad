//! DNSSEC keys (the first part of online signing): `meridian keygen` writes a key readable by
//! its owner only and prints the DNSKEY and a DS that ldns computes the same; a zone naming it
//! serves DNSKEY, CDS and CDNSKEY at its apex; a key file readable by others, or not a key,
//! refuses the zone at start and in `meridian check`.

use std::process::Command;

use crate::harness::{Server, TempDir, ZONE_HEAD, binary};

/// Runs `meridian` with `args` in `dir`: (success, stdout, stderr).
fn meridian(dir: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(binary())
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[test]
fn keygen_makes_a_key_whose_dnskey_and_ds_the_zone_serves() {
    let dir = TempDir::new();
    let (ok, printed, err) = meridian(
        &dir.0,
        &[
            "keygen",
            "--zone",
            "t.test",
            "--algorithm",
            "ecdsap256sha256",
        ],
    );
    assert!(ok, "{err}");
    let file = std::fs::read_dir(&dir.0)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let dnskey = printed
        .lines()
        .find(|l| l.contains(" DNSKEY "))
        .unwrap()
        .to_owned();
    let ds = printed
        .lines()
        .find(|l| l.contains(" DS "))
        .unwrap()
        .to_owned();
    // `meridian ds` prints the same again.
    let (ok, again, err) = meridian(&dir.0, &["ds", "--zone", "t.test", file.to_str().unwrap()]);
    assert!(ok, "{err}");
    assert_eq!(again, printed);
    // ldns computes the same DS from the DNSKEY.
    let key_file = dir.0.join("k.key");
    std::fs::write(
        &key_file,
        format!("{}\n", dnskey.split(" ;").next().unwrap()),
    )
    .unwrap();
    let ldns = Command::new("ldns-key2ds")
        .args(["-n", "-2"])
        .arg(&key_file)
        .output()
        .expect("ldns-key2ds is installed (ldnsutils)");
    let theirs = String::from_utf8_lossy(&ldns.stdout).to_lowercase();
    let digest = ds.split_whitespace().last().unwrap().to_lowercase();
    assert!(theirs.contains(&digest), "{theirs} vs {ds}");

    // The zone serves the key at its apex (a key file named by its absolute path here).
    let with_key = |path: &str| format!("{ZONE_HEAD}[dnssec]\nkeys = [\"{path}\"]\n");
    let s = Server::start(&[("t.test.toml", &with_key(file.to_str().unwrap()))]);
    let key = dnskey.split_whitespace().nth(6).unwrap();
    let served = s.dig(&["t.test", "DNSKEY"]).answer_data().join(" ");
    assert!(served.replace(' ', "").contains(key), "{served} vs {key}");
    let cds = s
        .dig(&["t.test", "CDS"])
        .answer_data()
        .join(" ")
        .replace(' ', "")
        .to_lowercase();
    assert!(cds.contains(&digest), "{cds}");
    assert_eq!(s.dig(&["t.test", "CDNSKEY"]).answer.len(), 1);
    // A key others can read, or a file that is not a key, refuses the zone.
    drop(s);
    let home = TempDir::new();
    let zones = home.0.join("zones");
    std::fs::create_dir(&zones).unwrap();
    let zone = with_key(file.file_name().unwrap().to_str().unwrap());
    std::fs::write(zones.join("t.test.toml"), zone).unwrap();
    let copy = zones.join(file.file_name().unwrap());
    std::fs::copy(&file, &copy).unwrap();
    // `check` warns when the parent's DS (as the operator says it is) matches no key.
    std::fs::write(home.0.join("m.toml"), "").unwrap();
    let stale = format!(
        "{}parent_ds = [\"1 13 2 AB\"]\n",
        with_key(file.file_name().unwrap().to_str().unwrap())
    );
    std::fs::write(zones.join("t.test.toml"), stale).unwrap();
    let (ok, _, err) = meridian(&home.0, &["check", "--config", "m.toml"]);
    assert!(
        ok && err.contains("no DS in dnssec.parent_ds matches"),
        "{err}"
    );
    let current = ds.split(" DS ").nth(1).unwrap();
    let matching = format!(
        "{}parent_ds = [\"{current}\"]\n",
        with_key(file.file_name().unwrap().to_str().unwrap())
    );
    std::fs::write(zones.join("t.test.toml"), matching).unwrap();
    let (ok, _, err) = meridian(&home.0, &["check", "--config", "m.toml"]);
    assert!(ok && !err.contains("parent_ds"), "{err}");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(home.0.join("m.toml"), "").unwrap();
    let (ok, _, err) = meridian(&home.0, &["check", "--config", "m.toml"]);
    assert!(!ok && err.contains("readable by others"), "{err}");
    std::fs::write(&copy, "not a key").unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (ok, _, err) = meridian(&home.0, &["check", "--config", "m.toml"]);
    assert!(!ok && err.contains("not a PEM private key"), "{err}");
}

/// Online signing validated by `delv` with the zone's DS as trust anchor: static records, a
/// round-robin pool (several orders), a geo pool, a CNAME chain, NODATA, NXDOMAIN, a wildcard
/// answer and its NODATA; with a wrong anchor validation fails; without DO nothing changes.
#[test]
fn signed_answers_validate_with_delv() {
    let keys = TempDir::new();
    let (ok, printed, err) = meridian(&keys.0, &["keygen", "--zone", "t.test"]);
    assert!(ok, "{err}");
    let key = std::fs::read_dir(&keys.0)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let zone = format!(
        "{ZONE_HEAD}[[records]]\nname = \"@\"\ntype = \"MX\"\ndata = [\"10 mail\"]\n\
         [[records]]\nname = \"mail\"\ntype = \"A\"\ndata = [\"192.0.2.25\"]\n\
         [[records]]\nname = \"@\"\ntype = \"TXT\"\ndata = [\"\\\"signed\\\"\"]\n\
         [[records]]\nname = \"alias\"\ntype = \"CNAME\"\ndata = [\"rr\"]\n\
         [[records]]\nname = \"*.wild\"\ntype = \"A\"\ndata = [\"192.0.2.200\"]\n\
         [[records]]\nname = \"sub\"\ntype = \"NS\"\ndata = [\"ns.sub\"]\n\
         [[records]]\nname = \"ns.sub\"\ntype = \"A\"\ndata = [\"192.0.2.99\"]\n\
         [pools.rr]\nendpoints = [\"192.0.2.1\", \"192.0.2.2\", \"192.0.2.3\"]\n\
         [pools.geo]\npolicy = \"geo\"\n\
         [[pools.geo.datacenters]]\nname = \"eu\"\nlatitude = 50.1\nlongitude = 8.7\nendpoints = [\"198.51.100.1\"]\n\
         [[pools.geo.datacenters]]\nname = \"us\"\nlatitude = 40.7\nlongitude = -74.0\nendpoints = [\"203.0.113.1\"]\n\
         [dnssec]\nkeys = [\"{}\"]\n",
        key.display()
    );
    let s = Server::start(&[("t.test.toml", &zone)]);
    let anchor = |ds_line: &str| {
        let f: Vec<&str> = ds_line.split_whitespace().collect();
        let path = keys.0.join(format!("anchor-{}.conf", f[3]));
        let text = format!(
            "trust-anchors {{ \"t.test.\" static-ds {} {} {} \"{}\"; }};\n",
            f[3], f[4], f[5], f[6]
        );
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = anchor(printed.lines().find(|l| l.contains(" DS ")).unwrap());
    let delv = |anchor: &std::path::Path, name: &str, rtype: &str| {
        let out = Command::new("delv")
            .args(["@127.0.0.1", "-p", &s.port.to_string(), "-a"])
            .arg(anchor)
            .args(["+root=t.test", name, rtype])
            .output()
            .expect("delv is installed (bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let positive = [
        ("t.test", "SOA"),
        ("t.test", "MX"),
        ("t.test", "TXT"),
        ("t.test", "DNSKEY"),
        ("mail.t.test", "A"),
        ("rr.t.test", "A"),
        ("rr.t.test", "A"),
        ("rr.t.test", "A"),
        ("geo.t.test", "A"),
        ("alias.t.test", "A"),
        ("x.wild.t.test", "A"),
    ];
    for (name, rtype) in positive {
        let out = delv(&good, name, rtype);
        assert!(out.contains("; fully validated"), "{name} {rtype}: {out}");
        assert!(out.contains("RRSIG"), "{name} {rtype}: {out}");
    }
    for (name, rtype) in [
        ("mail.t.test", "AAAA"),
        ("nothing.t.test", "A"),
        ("x.wild.t.test", "TXT"),
        ("sub.t.test", "DS"),
    ] {
        let out = delv(&good, name, rtype);
        assert!(
            out.contains("negative response, fully validated"),
            "{name} {rtype}: {out}"
        );
    }
    // Another key's DS as the anchor: nothing validates.
    let (ok, other, err) = meridian(&keys.0, &["keygen", "--zone", "t.test"]);
    assert!(ok, "{err}");
    let wrong = anchor(other.lines().find(|l| l.contains(" DS ")).unwrap());
    let out = delv(&wrong, "mail.t.test", "A");
    assert!(!out.contains("fully validated"), "{out}");
    // Without DO, answers carry no signature (and no NSEC).
    let plain = s.dig(&["mail.t.test", "A"]);
    assert!(!plain.raw.contains("RRSIG"), "{}", plain.raw);
    let nx = s.dig(&["nothing.t.test", "A"]);
    assert_eq!(nx.status, "NXDOMAIN");
    assert!(!nx.raw.contains("NSEC"), "{}", nx.raw);
}

/// A KSK and a ZSK (and a pre-published next ZSK): the DNSKEY set is signed by the KSK, the
/// rest by the ZSK, and delv validates both from the KSK's DS.
#[test]
fn a_ksk_and_a_zsk_split_the_signing() {
    let keys = TempDir::new();
    let mut made = Vec::new();
    for _ in 0..3 {
        let (ok, printed, err) = meridian(&keys.0, &["keygen", "--zone", "t.test"]);
        assert!(ok, "{err}");
        let tag = printed
            .lines()
            .find(|l| l.contains(" DS "))
            .unwrap()
            .to_owned();
        made.push(tag);
    }
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&keys.0)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    // The KSK is the file whose tag the first DS names.
    let ksk_tag = made[0].split_whitespace().nth(3).unwrap().to_owned();
    let ksk = files
        .iter()
        .position(|f| f.to_string_lossy().contains(&format!("+{:0>5}.", ksk_tag)))
        .unwrap();
    let ksk = files.remove(ksk);
    let zone = format!(
        "{ZONE_HEAD}[dnssec]\nksk = [\"{}\"]\nzsk = [\"{}\"]\npublish = [\"{}\"]\n",
        ksk.display(),
        files[0].display(),
        files[1].display()
    );
    let s = Server::start(&[("t.test.toml", &zone)]);
    let f: Vec<&str> = made[0].split_whitespace().collect();
    let anchor = keys.0.join("anchor.conf");
    let text = format!(
        "trust-anchors {{ \"t.test.\" static-ds {} {} {} \"{}\"; }};\n",
        f[3], f[4], f[5], f[6]
    );
    std::fs::write(&anchor, text).unwrap();
    for (name, rtype) in [("t.test", "DNSKEY"), ("ns1.t.test", "A"), ("t.test", "SOA")] {
        let out = Command::new("delv")
            .args(["@127.0.0.1", "-p", &s.port.to_string(), "-a"])
            .arg(&anchor)
            .args(["+root=t.test", name, rtype])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.contains("; fully validated"), "{name} {rtype}: {out}");
    }
    // Three keys published; the DNSKEY set signed by the KSK alone, the SOA by the ZSK alone.
    let dnskeys = s.dig(&["t.test", "DNSKEY", "+dnssec"]);
    let count = |rtype: &str| {
        dnskeys
            .answer
            .iter()
            .filter(|l| l.split(' ').nth(3) == Some(rtype))
            .count()
    };
    assert_eq!(count("DNSKEY"), 3, "{}", dnskeys.raw);
    assert_eq!(count("RRSIG"), 1, "{}", dnskeys.raw);
    let soa = s.dig(&["t.test", "SOA", "+dnssec"]);
    assert_eq!(
        soa.answer
            .iter()
            .filter(|l| l.split(' ').nth(3) == Some("RRSIG"))
            .count(),
        1,
        "{}",
        soa.raw
    );
}
