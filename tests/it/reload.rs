//! SIGHUP re-reads the zones folder, all or nothing.

use crate::harness::Server;

#[test]
fn sighup_applies_a_good_change_and_refuses_a_broken_one() {
    let s = Server::start_default();
    let file = s.zones_dir().join("example.test.toml");
    let original = std::fs::read_to_string(&file).unwrap();
    assert_eq!(s.dig(&["new.example.test", "A"]).status, "NXDOMAIN");

    let added = format!(
        "{original}\n[[records]]\nname = \"new\"\ntype = \"A\"\ndata = [\"203.0.113.7\"]\n"
    );
    std::fs::write(&file, &added).unwrap();
    s.signal("HUP");
    s.wait_log("reloaded zones", 1);
    let r = s.dig(&["new.example.test", "A"]);
    assert_eq!(r.answer_data(), ["203.0.113.7"], "{}", r.raw);

    // A broken file is refused with file, line and field; the old answers stay.
    let broken = added.replace("weight = 3", "weight = \"heavy\"");
    std::fs::write(&file, broken).unwrap();
    s.signal("HUP");
    s.wait_log("reload refused", 1);
    let log = s.log();
    assert!(
        log.contains("example.test.toml:") && log.contains("pools.api.endpoints[0].weight"),
        "{log}"
    );
    assert_eq!(
        s.dig(&["new.example.test", "A"]).answer_data(),
        ["203.0.113.7"]
    );
    assert_eq!(s.dig(&["www.example.test", "A"]).answer.len(), 4);

    // A new broken zone beside the good one refuses the whole set too.
    std::fs::write(&file, &original).unwrap();
    std::fs::write(s.zones_dir().join("other.test.toml"), "ns = [\n").unwrap();
    s.signal("HUP");
    s.wait_log("reload refused", 2);
    assert_eq!(
        s.dig(&["new.example.test", "A"]).answer_data(),
        ["203.0.113.7"]
    );
    assert_eq!(s.dig(&["other.test", "SOA"]).status, "REFUSED");
}
