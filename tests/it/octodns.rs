//! The octoDNS provider (integrations/octodns) driven by the real octoDNS from PyPI, installed
//! by `.ci/run` into target/octodns, against a Meridian started here: every record type both
//! ways, a dynamic record with geo rules and fallbacks answered per region, a value taken down,
//! syncs that plan nothing the second time, a dump that syncs back to the same zone, refusals.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Server, TempDir, cannot_run, repo, token_hash};

const ZONE: &str = r#"ttl = 300
ns = ["ns1.types.test."]
[soa]
mname = "ns1.types.test."
rname = "hostmaster.types.test."
serial = 1
"#;

const LONG_TXT: &str = concat!(
    "\"v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAzdeX01lJH2YkRlq0D6fYR5T0dDbXovQEB",
    "5ZeGhnhqxWOl1y8vQsUKfbjNA3hCl2mAQ9HdpqzSqzq1UtU8AoiuFZdx1JsW6DMqybgVhZkYwn4Tq2i6Nhv5eiFdk4fEFTiF",
    "JsdUDqUzS3SIw3Aq0XwL3Wj7zzpjNkBK4XQ3oVdFbmEmDdwLfvX9uM1uAZzEUabc\" \"ysLOjbWuAbS6Mvn3XrRvGQvTH0beMCHcv",
    "8Kk4dH0TsJXyb2P0Z3kqqiMXCpH\""
);

/// Every type octoDNS and Meridian both serve, as an operator writes them in TOML.
const RECORDS: &[(&str, &str, &[&str])] = &[
    ("ns1", "A", &["192.0.2.1"]),
    ("a", "A", &["192.0.2.10", "192.0.2.11"]),
    ("aaaa", "AAAA", &["2001:db8::10"]),
    (
        "@",
        "CAA",
        &[
            "0 issue \"letsencrypt.org\"",
            "128 iodef \"mailto:sec@types.test\"",
        ],
    ),
    ("alias", "CNAME", &["a.types.test."]),
    ("moved", "DNAME", &["elsewhere.test."]),
    ("sub", "NS", &["ns.elsewhere.test."]),
    (
        "sub",
        "DS",
        &["60485 13 2 D4B7D520E7BB5F0F67674A0CCEB1E3E0614B93C4F9E99B8383F6A1E4469DA50A"],
    ),
    ("svc", "HTTPS", &["1 . alpn=\"h2,h3\" port=8443"]),
    ("svc2", "SVCB", &["1 svc.types.test. port=8443"]),
    (
        "loc",
        "LOC",
        &["52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m"],
    ),
    ("@", "MX", &["10 mx1.types.test.", "20 mx2.types.test."]),
    (
        "naptr",
        "NAPTR",
        &["100 10 \"S\" \"SIP+D2U\" \"\" _sip._udp.types.test."],
    ),
    (
        "openpgp",
        "OPENPGPKEY",
        &["mQINBFit2jsBEADrbl5vjVxYeAE0g0IDYCBpHirv1Sjlqxx5gjtPhb2YhvyDMXjq"],
    ),
    ("ptr", "PTR", &["a.types.test."]),
    ("@", "SPF", &["\"v=spf1 -all\""]),
    ("_sip._tcp", "SRV", &["10 60 5060 sip.types.test."]),
    (
        "ssh",
        "SSHFP",
        &["1 1 0123456789ABCDEF0123456789ABCDEF01234567"],
    ),
    (
        "_443._tcp",
        "TLSA",
        &["3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF"],
    ),
    (
        "@",
        "TXT",
        // octoDNS keeps a TXT value as one string, split every 255 characters when written.
        &["\"v=spf1 -all\"", "\"with a semicolon; here\"", LONG_TXT],
    ),
    (
        "_ftp._tcp",
        "URI",
        &["10 1 \"ftp://ftp.types.test/public\""],
    ),
];

/// The octoDNS commands, if `.ci/run` installed them.
fn octodns() -> Option<PathBuf> {
    let bin = repo().join("target/octodns/bin");
    if bin.join("octodns-sync").exists() {
        return Some(bin);
    }
    cannot_run("octoDNS tests: target/octodns is missing (`.ci/run` installs octoDNS there)");
    None
}

/// A Meridian with zone `types.test` (and `extra` zones) and an API with a write and a read
/// token, and an octoDNS configuration folder for it.
struct Setup {
    server: Server,
    dir: TempDir,
    bin: PathBuf,
}

impl Setup {
    fn start(zones: &[(&str, &str)], extra: &str) -> Option<Self> {
        let bin = octodns()?;
        let config = format!(
            "{extra}\n[api]\nlisten = \"127.0.0.1:0\"\n\
             [[api.tokens]]\nname = \"octodns\"\nsha256 = \"{}\"\nscope = \"write\"\n\
             [[api.tokens]]\nname = \"reader\"\nsha256 = \"{}\"\nscope = \"read\"\n",
            token_hash("write-token"),
            token_hash("read-token")
        );
        let server = Server::start_config(zones, &config);
        let dir = TempDir::new();
        std::fs::create_dir_all(dir.0.join("config")).unwrap();
        Some(Self { server, dir, bin })
    }

    /// Writes octoDNS's config: zone `zone` from `source` (a folder of YAML) to Meridian.
    fn config(&self, name: &str, zone: &str, source: &str) -> PathBuf {
        let text = format!(
            "---\nproviders:\n  config:\n    class: octodns.provider.yaml.YamlProvider\n    \
             directory: {source}\n    enforce_order: false\n  meridian:\n    \
             class: octodns_meridian.MeridianProvider\n    url: http://{}\n    \
             token: env/MERIDIAN_TOKEN\nzones:\n  {zone}:\n    sources: [config]\n    \
             targets: [meridian]\n",
            self.server.api_addr()
        );
        let path = self.dir.0.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs an octoDNS command with `token`: (success, its output).
    fn run(&self, command: &str, args: &[&str], token: &str) -> (bool, String) {
        let out = Command::new(self.bin.join(command))
            .args(args)
            .current_dir(&self.dir.0)
            .env("MERIDIAN_TOKEN", token)
            .output()
            .expect("octoDNS runs");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// `octodns-sync`; `doit`: applies the plan (with `--force`: the tests change whole
    /// zones, past octoDNS's 30 % guard).
    fn sync(&self, config: &Path, doit: bool) -> String {
        let mut args = vec!["--config-file", config.to_str().unwrap()];
        if doit {
            args.extend(["--doit", "--force"]);
        }
        let (ok, out) = self.run("octodns-sync", &args, "write-token");
        assert!(ok, "octodns-sync failed:\n{out}");
        out
    }

    /// `octodns-dump` of `zone` from Meridian (with the read token) into `into`: its output.
    fn dump(&self, config: &Path, into: &Path, zone: &str) -> String {
        let args = [
            "--config-file",
            config.to_str().unwrap(),
            "--output-dir",
            into.to_str().unwrap(),
            zone,
            "meridian",
        ];
        let (ok, out) = self.run("octodns-dump", &args, "read-token");
        assert!(ok, "octodns-dump failed:\n{out}");
        out
    }

    fn serial(&self, zone: &str) -> u32 {
        let answer = self.server.dig(&[zone, "SOA"]).answer_data();
        answer[0].split(' ').nth(2).unwrap().parse().unwrap()
    }
}

fn types_zone() -> String {
    let mut text = ZONE.to_owned();
    for (name, rtype, data) in RECORDS {
        let data: Vec<String> = data.iter().map(|d| format!("'{d}'")).collect();
        text.push_str(&format!(
            "[[records]]\nname = \"{name}\"\ntype = \"{rtype}\"\ndata = [{}]\n",
            data.join(", ")
        ));
    }
    text
}

fn owner(name: &str) -> String {
    match name {
        "@" => "types.test".to_owned(),
        _ => format!("{name}.types.test"),
    }
}

/// Every record set of `RECORDS` as Meridian answers it now (sorted answer lines).
fn answers(server: &Server) -> Vec<(String, Vec<String>)> {
    RECORDS
        .iter()
        .map(|(name, rtype, _)| {
            let reply = server.dig(&[&owner(name), rtype, "+norec"]);
            // A delegation's NS comes as a referral.
            let mut lines = match reply.answer.is_empty() {
                true => reply.authority,
                false => reply.answer,
            };
            lines.sort();
            (format!("{name} {rtype}"), lines)
        })
        .collect()
}

/// Dumped from Meridian, deleted through octoDNS, synced back from the dump: every type
/// read and written, answered as before; the second sync plans nothing.
#[test]
fn every_record_type_is_read_and_written_and_answered_as_before() {
    let zone = types_zone();
    let Some(setup) = Setup::start(&[("types.test.toml", &zone)], "") else {
        return;
    };
    let before = answers(&setup.server);
    for (what, lines) in &before {
        assert!(!lines.is_empty(), "{what} is served to begin with");
    }
    let api = setup.server.api_addr();
    let dump = setup.dir.0.join("dump");
    let config = setup.config("dump.yaml", "types.test.", "./dump");
    let out = setup.dump(&config, &dump, "types.test.");
    assert!(!out.contains("left alone"), "every type is read: {out}");
    let dumped = std::fs::read_to_string(dump.join("types.test.yaml")).unwrap();

    // Only the name server left: every other record set deleted through octoDNS.
    let bare = "---\n'':\n  type: NS\n  value: ns1.types.test.\n  ttl: 300\nns1:\n  type: A\n  value: 192.0.2.1\n  ttl: 300\n";
    std::fs::create_dir_all(setup.dir.0.join("bare")).unwrap();
    std::fs::write(setup.dir.0.join("bare/types.test.yaml"), bare).unwrap();
    let out = setup.sync(&setup.config("bare.yaml", "types.test.", "./bare"), true);
    assert!(
        out.contains(&format!("Deletes={}", RECORDS.len() - 1)),
        "{out}"
    );
    assert_eq!(setup.server.dig(&["a.types.test", "A"]).status, "NXDOMAIN");

    // And back from the dump.
    let out = setup.sync(&config, true);
    assert!(
        out.contains(&format!("Creates={}", RECORDS.len() - 1)),
        "{out}"
    );
    assert_eq!(answers(&setup.server), before, "answered as before ({api})");
    let out = setup.sync(&config, false);
    assert!(out.contains("No changes were planned"), "{out}\n{dumped}");
}

const OCTO_ZONE: &str = r#"ttl = 300
ns = ["ns1.octo.test."]
[soa]
mname = "ns1.octo.test."
rname = "hostmaster.octo.test."
serial = 1
[[records]]
name = "ns1"
type = "A"
data = ["192.0.2.1"]
[pools.sticky]
policy = "sticky"
endpoints = ["192.0.2.61", "192.0.2.62"]
[pools.weighted]
policy = "weighted"
endpoints = [{ address = "192.0.2.71", weight = 3 }, "192.0.2.72"]
"#;

/// A dynamic record as an NS1 or Route 53 user writes it: three pools with fallbacks, rules by
/// continent and country, a catch-all, and the record's own values as the last resort.
const DYNAMIC: &str = r#"---
'':
  ttl: 300
  type: NS
  value: ns1.octo.test.
ns1:
  ttl: 300
  type: A
  value: 192.0.2.1
www:
  dynamic:
    pools:
      ap:
        fallback: eu
        values:
          - status: up
            value: 198.51.100.21
      eu:
        fallback: us
        values:
          - status: up
            value: 198.51.100.1
            weight: 2
          - status: up
            value: 198.51.100.2
      us:
        values:
          - status: up
            value: 198.51.100.11
    rules:
      - geos: [AF, EU]
        pool: eu
      - geos: [AS-JP, NA-US-CA, OC]
        pool: ap
      - pool: us
  ttl: 60
  type: A
  values: [203.0.113.1]
"#;

/// DB-IP City Lite, for answers by region.
fn real_geoip() -> Option<PathBuf> {
    let path = repo().join("geoip/real/dbip-city-lite.mmdb");
    if path.exists() {
        return Some(path);
    }
    cannot_run(
        "octoDNS geo checks: geoip/real/dbip-city-lite.mmdb is missing (`.ci/run` downloads it)",
    );
    None
}

fn www(server: &Server, subnet: &str) -> Vec<String> {
    let mut answer = server
        .dig(&["www.octo.test", "A", &format!("+subnet={subnet}")])
        .answer_data();
    answer.sort();
    answer
}

#[test]
fn a_dynamic_record_steers_by_region_and_a_value_taken_down_leaves_the_answers() {
    let Some(db) = real_geoip() else { return };
    let geoip = format!("[geoip]\ndatabase = \"{}\"\n", db.display());
    let Some(setup) = Setup::start(&[("octo.test.toml", OCTO_ZONE)], &geoip) else {
        return;
    };
    let yaml = setup.dir.0.join("config/octo.test.yaml");
    std::fs::write(&yaml, DYNAMIC).unwrap();
    let config = setup.config("octodns.yaml", "octo.test.", "./config");
    // Read first: a weighted pool is a dynamic record of one pool.
    let before = setup.dir.0.join("before");
    setup.dump(&config, &before, "octo.test.");
    let dumped = std::fs::read_to_string(before.join("octo.test.yaml")).unwrap();
    let weighted = dumped
        .split("\nweighted:\n")
        .nth(1)
        .expect("the weighted pool");
    assert!(
        weighted.contains("value: 192.0.2.71\n          weight: 3"),
        "{dumped}"
    );
    let out = setup.sync(&config, true);
    assert!(
        out.contains("Creates=1, Updates=0, Deletes=1"),
        "www created, the weighted pool deleted: {out}"
    );
    let out = setup.sync(&config, false);
    assert!(
        out.contains("No changes were planned"),
        "a second sync plans nothing: {out}"
    );

    // Each region from its pool: GB and Kenya (eu, weighted 2:1), the US (us, the catch-all),
    // Japan and Australia (ap).
    let eu = ["198.51.100.1", "198.51.100.2"];
    assert_eq!(www(&setup.server, "81.2.69.0/24"), eu);
    assert_eq!(www(&setup.server, "41.90.0.0/24"), eu);
    assert_eq!(www(&setup.server, "8.8.8.0/24"), ["198.51.100.11"]);
    assert_eq!(www(&setup.server, "1.0.16.0/24"), ["198.51.100.21"]);
    assert_eq!(www(&setup.server, "203.2.218.0/24"), ["198.51.100.21"]);
    // The sticky pool octoDNS cannot express is left alone.
    assert_eq!(setup.server.dig(&["sticky.octo.test", "A"]).answer.len(), 2);
    // A province is the pool's subdivision map (the database here has none to answer by).
    let (_, _, pool) = setup.server.http(
        "GET",
        "/zones/octo.test/pools/www",
        Some("read-token"),
        None,
        &[],
    );
    let pool: serde_json::Value = serde_json::from_str(&pool).unwrap();
    assert_eq!(
        pool["map"]["subdivision"]["US-CA"],
        serde_json::json!(["ap", "eu", "us", "octodns-values"])
    );
    assert_eq!(
        pool["map"]["country"]["JP"],
        pool["map"]["subdivision"]["US-CA"]
    );

    // One value down: a plan of one update, applied as one change (the serial moves by one).
    let down = DYNAMIC.replace(
        "          - status: up\n            value: 198.51.100.1\n",
        "          - status: down\n            value: 198.51.100.1\n",
    );
    assert_ne!(down, DYNAMIC);
    std::fs::write(&yaml, &down).unwrap();
    let serial = setup.serial("octo.test");
    let out = setup.sync(&config, true);
    assert!(out.contains("Creates=0, Updates=1, Deletes=0"), "{out}");
    assert_eq!(setup.serial("octo.test"), serial + 1, "one API change");
    assert_eq!(www(&setup.server, "81.2.69.0/24"), ["198.51.100.2"]);
    assert!(
        setup
            .sync(&config, false)
            .contains("No changes were planned")
    );

    // Every eu value down: Europe falls through to us, Japan through eu to us.
    let all_down = down.replace(
        "          - status: up\n            value: 198.51.100.2\n",
        "          - status: down\n            value: 198.51.100.2\n",
    );
    std::fs::write(&yaml, &all_down).unwrap();
    setup.sync(&config, true);
    assert_eq!(www(&setup.server, "81.2.69.0/24"), ["198.51.100.11"]);

    // Dumped from Meridian, the zone syncs back with nothing to change.
    let dump = setup.dir.0.join("dump");
    let out = setup.dump(&config, &dump, "octo.test.");
    assert!(out.contains("sticky.octo.test. is left alone"), "{out}");
    // The weighted pool was not in the config: the first sync deleted it.
    assert_eq!(
        setup.server.dig(&["weighted.octo.test", "A"]).status,
        "NXDOMAIN"
    );
    let back = setup.config("back.yaml", "octo.test.", "./dump");
    let out = setup.sync(&back, false);
    assert!(out.contains("No changes were planned"), "{out}");
}

#[test]
fn refusals_are_clear_and_change_nothing() {
    let Some(setup) = Setup::start(&[("octo.test.toml", OCTO_ZONE)], "") else {
        return;
    };
    std::fs::write(setup.dir.0.join("config/octo.test.yaml"), DYNAMIC).unwrap();
    let config = setup.config("octodns.yaml", "octo.test.", "./config");
    let serial = setup.serial("octo.test");
    let args = ["--config-file", config.to_str().unwrap(), "--doit"];

    let (ok, out) = setup.run("octodns-sync", &args, "read-token");
    assert!(
        !ok && out.contains("403"),
        "a read token cannot write: {out}"
    );

    let (ok, out) = setup.run("octodns-sync", &args, "wrong-token");
    assert!(!ok && out.contains("401"), "an unknown token: {out}");

    std::fs::write(setup.dir.0.join("config/other.test.yaml"), "---\n").unwrap();
    let other = setup.config("other.yaml", "other.test.", "./config");
    let (ok, out) = setup.run(
        "octodns-sync",
        &["--config-file", other.to_str().unwrap(), "--doit"],
        "write-token",
    );
    assert!(!ok && out.contains("does not serve this zone"), "{out}");

    let alias = "---\n'':\n  - type: ALIAS\n    value: elsewhere.test.\n  - ttl: 300\n    \
                 type: NS\n    value: ns1.octo.test.\n";
    std::fs::write(setup.dir.0.join("config/octo.test.yaml"), alias).unwrap();
    let (ok, out) = setup.run("octodns-sync", &args, "write-token");
    assert!(!ok && out.contains("ALIAS"), "an unsupported record: {out}");
    assert_eq!(setup.serial("octo.test"), serial, "nothing was changed");
    assert!(setup.server.dig(&["www.octo.test", "A"]).answer.is_empty());

    // A change at the name of a pool octoDNS cannot express is left out, loudly.
    let sticky = format!("{DYNAMIC}sticky:\n  type: A\n  value: 192.0.2.99\n");
    std::fs::write(setup.dir.0.join("config/octo.test.yaml"), sticky).unwrap();
    let out = setup.sync(&config, true);
    assert!(
        out.contains("sticky is a pool octoDNS cannot express"),
        "{out}"
    );
    assert_eq!(
        setup.server.dig(&["sticky.octo.test", "A"]).answer.len(),
        2,
        "left alone"
    );
    let www = setup.server.dig(&["www.octo.test", "A"]).answer;
    assert!(!www.is_empty(), "the rest of the plan is applied");
}

/// The `yaml <path>` blocks of docs/octodns.md: (path, text).
fn doc_files() -> Vec<(String, String)> {
    let page = std::fs::read_to_string(repo().join("docs/octodns.md")).unwrap();
    let mut files = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in page.lines() {
        match (&mut current, line.strip_prefix("```yaml ")) {
            (None, Some(path)) => current = Some((path.trim().to_owned(), String::new())),
            (Some(_), _) if line == "```" => files.push(current.take().unwrap()),
            (Some((_, text)), _) => {
                text.push_str(line);
                text.push('\n');
            }
            _ => {}
        }
    }
    files
}

/// The migration example of docs/octodns.md, as written there (the API's address aside),
/// against a Meridian serving the zone: synced, answered, planned again with nothing to do.
#[test]
fn the_migration_example_in_the_docs_runs() {
    let zone = "ttl = 3600\nns = [\"ns1.example.test.\"]\n[soa]\nmname = \"ns1.example.test.\"\n\
                rname = \"hostmaster.example.test.\"\nserial = 1\n[[records]]\nname = \"ns1\"\n\
                type = \"A\"\ndata = [\"192.0.2.1\"]\n";
    let Some(setup) = Setup::start(&[("example.test.toml", zone)], "") else {
        return;
    };
    let files = doc_files();
    let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(names, ["config/example.test.yaml", "octodns.yaml"]);
    for (path, text) in &files {
        let text = text.replace("127.0.0.1:8053", &setup.server.api_addr().to_string());
        std::fs::write(setup.dir.0.join(path), text).unwrap();
    }
    let config = setup.dir.0.join("octodns.yaml");
    let out = setup.sync(&config, true);
    assert!(
        out.contains("Creates=2, Updates=1"),
        "ns2, www and the root NS: {out}"
    );
    assert!(
        setup
            .sync(&config, false)
            .contains("No changes were planned")
    );
    let ns = setup.server.dig(&["example.test", "NS"]).answer_data();
    assert_eq!(ns, ["ns1.example.test.", "ns2.example.test."]);
    // The pool's check is the record's health check; nothing answers it here, so every pool
    // is down and the record's own value answers, as octoDNS describes.
    let (status, _, pool) = setup.server.http(
        "GET",
        "/zones/example.test/pools/www",
        Some("read-token"),
        None,
        &[],
    );
    assert_eq!(status, 200, "{pool}");
    let pool: serde_json::Value = serde_json::from_str(&pool).unwrap();
    assert_eq!(pool["check"]["type"], "http");
    assert_eq!(pool["check"]["port"], 8080);
    assert_eq!(pool["check"]["path"], "/health");
    assert_eq!(pool["check"]["host"], "www.example.test");
    crate::harness::eventually(
        std::time::Duration::from_secs(10),
        "every pool down",
        || setup.server.dig(&["www.example.test", "A"]).answer_data() == ["203.0.113.1"],
    );
}
