//! DNSSEC keys (the first part of online signing): `meridian keygen` writes a key readable by
//! its owner only and prints the DNSKEY and a DS that ldns computes the same; a zone naming it
//! serves DNSKEY, CDS and CDNSKEY at its apex; a key file readable by others, or not a key,
//! refuses the zone at start and in `meridian check`.

use std::process::Command;

use crate::harness::{Reply, Server, TempDir, ZONE_HEAD, binary, rdata, repo};
use crate::proxy::{Change, Proxy};

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

/// `meridian keygen --zone t.test` in the empty folder `dir`: the key file and what it printed.
fn keygen(dir: &TempDir) -> (std::path::PathBuf, String) {
    let (ok, printed, err) = meridian(&dir.0, &["keygen", "--zone", "t.test"]);
    assert!(ok, "{err}");
    let file = std::fs::read_dir(&dir.0).unwrap().next().unwrap().unwrap();
    (file.path(), printed)
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
    let (key, printed) = keygen(&keys);
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
    let geoip = repo().join("geoip/meridian-test.mmdb");
    let s = Server::start_geo(&[("t.test.toml", &zone)], Some(&geoip));
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
    let delv_via = |port: u16, anchor: &std::path::Path, name: &str, rtype: &str| {
        let out = Command::new("delv")
            .args(["@127.0.0.1", "-p", &port.to_string(), "-a"])
            .arg(anchor)
            .args(["+root=t.test", name, rtype])
            .output()
            .expect("delv is installed (bind9-dnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let delv =
        |anchor: &std::path::Path, name: &str, rtype: &str| delv_via(s.port, anchor, name, rtype);
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
    // The geo pool's answer for a Client Subnet (a proxy adds it to delv's queries): London's
    // goes to eu, Mountain View's to us, each validated.
    for (subnet, want) in [([81, 2, 69], "198.51.100.1"), ([8, 8, 8], "203.0.113.1")] {
        let option = [&[0, 1, 24, 0][..], &subnet].concat();
        let proxy = Proxy::start(s.port, Change::ClientSubnet(option));
        let out = delv_via(proxy.port, &good, "geo.t.test", "A");
        assert!(out.contains("; fully validated"), "{subnet:?}: {out}");
        assert!(out.contains(want), "{subnet:?} answered by {want}: {out}");
    }
    // ldns's drill chases the same signatures from the DNSKEY as trust anchor.
    let dnskey = printed.lines().find(|l| l.contains(" DNSKEY ")).unwrap();
    let trusted = keys.0.join("trusted.key");
    std::fs::write(
        &trusted,
        format!("{}\n", dnskey.split(" ;").next().unwrap()),
    )
    .unwrap();
    let drill = |port: u16, name: &str, rtype: &str| {
        let out = Command::new("drill")
            .arg("-k")
            .arg(&trusted)
            .args(["-S", "-p", &port.to_string(), "@127.0.0.1", name, rtype])
            .output()
            .expect("drill is installed (ldnsutils)");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    for (name, rtype) in [
        ("mail.t.test", "A"),
        ("rr.t.test", "A"),
        ("mail.t.test", "AAAA"),
        ("nothing.t.test", "A"),
    ] {
        let out = drill(s.port, name, rtype);
        assert!(
            out.contains(";; Chase successful"),
            "drill {name} {rtype}: {out}"
        );
    }
    // A reply whose RRSIG lost one bit on the way does not validate.
    let proxy = Proxy::start(s.port, Change::Rrsig { qtype: 1 });
    let out = delv_via(proxy.port, &good, "mail.t.test", "A");
    assert!(!out.contains("fully validated"), "{out}");
    assert!(out.contains("RRSIG failed to verify"), "{out}");
    let out = drill(proxy.port, "mail.t.test", "A");
    assert!(!out.contains("Chase successful"), "drill, tampered: {out}");
    drop(proxy);
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

/// `[dnssec] validity_secs` and `inception_back_secs` set the RRSIGs' validity; signatures
/// are at most an hour old; a validity that cannot work is refused by `check`.
#[test]
fn signatures_are_valid_as_the_zone_says() {
    let keys = TempDir::new();
    let (key, _) = keygen(&keys);
    let zone = |validity: u32| {
        format!(
            "{ZONE_HEAD}[[records]]\nname = \"mail\"\ntype = \"A\"\ndata = [\"192.0.2.25\"]\n\
             [dnssec]\nkeys = [\"{}\"]\nvalidity_secs = {validity}\ninception_back_secs = 600\n",
            key.display()
        )
    };
    let s = Server::start(&[("t.test.toml", &zone(86_400))]);
    let r = s.dig(&["+dnssec", "mail.t.test", "A"]);
    let rrsig = r
        .answer
        .iter()
        .find(|l| Reply::rtype(l) == "RRSIG")
        .unwrap_or_else(|| panic!("{}", r.raw));
    let fields: Vec<String> = rdata(rrsig).split(' ').map(str::to_owned).collect();
    let (expiration, inception) = (epoch(&fields[4]), epoch(&fields[5]));
    assert_eq!(expiration - inception, 86_400 + 600, "{rrsig}");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let made = inception + 600;
    assert!(made <= now && now - made <= 3600, "made {made}, now {now}");
    drop(s);
    // Three hours at least (signatures are remade hourly): less is refused.
    let home = TempDir::new();
    std::fs::create_dir(home.0.join("zones")).unwrap();
    std::fs::write(home.0.join("zones/t.test.toml"), zone(3600)).unwrap();
    std::fs::write(home.0.join("m.toml"), "").unwrap();
    let (ok, _, err) = meridian(&home.0, &["check", "--config", "m.toml"]);
    assert!(!ok && err.contains("validity_secs = 3600"), "{err}");
}

/// Unix seconds of an RRSIG time as dig prints it (YYYYMMDDHHmmSS, UTC).
fn epoch(stamp: &str) -> i64 {
    let n = |range: std::ops::Range<usize>| stamp[range].parse::<i64>().unwrap();
    let (y, m, d) = (n(0..4), n(4..6), n(6..8));
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + n(8..10) * 3600 + n(10..12) * 60 + n(12..14)
}

/// Zonemaster (Debian's zonemaster-cli), every test module, against the signed zone served on
/// port 53 of a network namespace of the test's own (Zonemaster asks port 53 only; the
/// namespace has nothing but loopback, so the root servers are unreachable and the parent is
/// the DS given): no CRITICAL, no ERROR but the loopback artefact, no DNSSEC warning; with
/// another key's DS, DNSSEC02 reports the mismatch.
#[test]
fn zonemaster_finds_no_dnssec_error() {
    let dir = TempDir::new();
    let zones = dir.0.join("zones");
    std::fs::create_dir(&zones).unwrap();
    let keys = TempDir::new();
    let (key, printed) = keygen(&keys);
    let (_, other) = keygen(&TempDir::new());
    std::fs::rename(&key, zones.join("k.pem")).unwrap();
    let zone = "ns = [\"ns1\", \"ns2\"]\n[soa]\nmname = \"ns1\"\nrname = \"hostmaster\"\n\
                serial = 2026112901\nrefresh = 14400\nretry = 3600\n\
                [[records]]\nname = \"ns1\"\ntype = \"A\"\ndata = [\"127.0.0.1\"]\n\
                [[records]]\nname = \"ns2\"\ntype = \"A\"\ndata = [\"127.0.0.2\"]\n\
                [[records]]\nname = \"@\"\ntype = \"MX\"\ndata = [\"10 mail\"]\n\
                [[records]]\nname = \"mail\"\ntype = \"A\"\ndata = [\"192.0.2.25\"]\n\
                [[records]]\nname = \"*.wild\"\ntype = \"A\"\ndata = [\"192.0.2.9\"]\n\
                [pools.www]\nendpoints = [\"192.0.2.1\", \"192.0.2.2\"]\n\
                [dnssec]\nkeys = [\"k.pem\"]\n";
    std::fs::write(zones.join("t.test.toml"), zone).unwrap();
    let config =
        "[server]\nlisten = [\"127.0.0.1:53\", \"127.0.0.2:53\"]\n[zones]\ndirectory = \"zones\"\n";
    std::fs::write(dir.0.join("m.toml"), config).unwrap();
    // The DS as Zonemaster takes it: tag,algorithm,type,digest.
    let ds = |printed: &str| {
        let line = printed.lines().find(|l| l.contains(" DS ")).unwrap();
        line.split_whitespace()
            .skip(3)
            .collect::<Vec<_>>()
            .join(",")
    };
    let script = format!(
        "ip link set lo up || exit 90\n\
         {binary} serve --config m.toml 2> server.log &\n\
         server=$!\n\
         for _ in $(seq 100); do dig +short +time=1 +tries=1 @127.0.0.2 t.test SOA | grep -q . && break; sleep 0.1; done\n\
         for ds in \"$1\" \"$2\"; do\n\
           echo \"@@@ zonemaster with DS $ds\"\n\
           timeout 300 zonemaster-cli --no-ipv6 --level INFO --show-testcase --ns ns1.t.test/127.0.0.1 \
             --ns ns2.t.test/127.0.0.2 --ds \"$ds\" t.test\n\
         done\n\
         kill $server; wait $server",
        binary = binary()
    );
    let out = Command::new("unshare")
        .args(["-n", "bash", "-c", &script, "zonemaster"])
        .args([ds(&printed), ds(&other)])
        .current_dir(&dir.0)
        .output()
        .expect("unshare (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = std::fs::read_to_string(dir.0.join("server.log")).unwrap_or_default();
    let detail = format!(
        "{text}\n{}\nserver: {log}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<&str> = text.split("@@@ ").skip(1).collect();
    assert_eq!(runs.len(), 2, "{detail}");
    let level = |line: &str, level: &str| line.split_whitespace().nth(1) == Some(level);
    let good = runs[0];
    let ran = good
        .lines()
        .any(|l| l.contains("DNSSEC05") && l.contains("algorithm number 13"));
    assert!(ran, "Zonemaster ran its DNSSEC tests: {detail}");
    for line in good.lines() {
        assert!(!level(line, "CRITICAL"), "{line}\n{detail}");
        if level(line, "ERROR") {
            assert!(
                line.contains("ADDRESS01") && line.contains("'Loopback'"),
                "{line}\n{detail}"
            );
        }
        let dnssec = line
            .split_whitespace()
            .nth(2)
            .is_some_and(|t| t.starts_with("DNSSEC"));
        assert!(!(dnssec && level(line, "WARNING")), "{line}\n{detail}");
    }
    let wrong = runs[1];
    assert!(
        wrong
            .lines()
            .any(|l| l.contains("DNSSEC02") && level(l, "ERROR")),
        "another key's DS: {detail}"
    );
}
