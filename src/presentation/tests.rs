use super::*;

fn origin() -> Name {
    Name::from_ascii("example.test.").unwrap()
}

fn wire(rtype: &str, data: &str) -> Result<Vec<u8>, String> {
    parse_data(type_code(rtype).unwrap(), data, &origin())
}

fn text(rtype: &str, data: &str) -> String {
    let code = type_code(rtype).unwrap();
    let bytes = wire(rtype, data).unwrap_or_else(|e| panic!("{rtype} {data}: {e}"));
    let written = rdata_text(code, &bytes);
    // What is written reads back to the same bytes.
    let again = parse_data(code, &written, &origin()).unwrap_or_else(|e| panic!("{written}: {e}"));
    assert_eq!(again, bytes, "{rtype} {data} -> {written}");
    written
}

/// (type, data as written, data as we write it) for every type with a presentation form.
const CASES: &[(&str, &str, &str)] = &[
    ("A", "192.0.2.1", "192.0.2.1"),
    ("AAAA", "2001:db8::1", "2001:db8::1"),
    ("NS", "ns1", "ns1.example.test."),
    (
        "SOA",
        "ns1 hostmaster 1 1h 600 2w 300",
        "ns1.example.test. hostmaster.example.test. 1 3600 600 1209600 300",
    ),
    ("MX", "10 mail", "10 mail.example.test."),
    ("TXT", "\"v=spf1 mx -all\"", "\"v=spf1 mx -all\""),
    ("TXT", "\"a\" \"b c\" d", "\"a\" \"b c\" \"d\""),
    (
        "TXT",
        "\"caf\\195\\169\" \"\\059\"",
        "\"caf\\195\\169\" \";\"",
    ),
    (
        "TXT",
        "( \"v=DKIM1; k=rsa; \" ; part one\n \"p=MIGf\" )",
        "\"v=DKIM1; k=rsa; \" \"p=MIGf\"",
    ),
    ("HINFO", "\"PC\" Linux", "\"PC\" \"Linux\""),
    (
        "RP",
        "admin.example.test. txt",
        "admin.example.test. txt.example.test.",
    ),
    ("AFSDB", "1 afs", "1 afs.example.test."),
    (
        "LOC",
        "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000m 10m",
        "52 22 23.000 N 4 53 32.000 E -2.00m 0.00m 10000.00m 10.00m",
    ),
    (
        "LOC",
        "51 30 N 0 7 W 0m",
        "51 30 0.000 N 0 7 0.000 W 0.00m 1.00m 10000.00m 10.00m",
    ),
    ("SRV", "10 60 5060 sip", "10 60 5060 sip.example.test."),
    (
        "NAPTR",
        "100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:info@example.test!\" .",
        "100 10 \"u\" \"E2U+sip\" \"!^.*$!sip:info@example.test!\" .",
    ),
    ("KX", "10 kx", "10 kx.example.test."),
    ("CERT", "PGP 0 0 AQID", "3 0 0 AQID"),
    ("DNAME", "other.test.", "other.test."),
    (
        "APL",
        "1:192.168.32.0/21 !1:192.168.38.0/28 2:2001:db8::/32",
        "1:192.168.32.0/21 !1:192.168.38.0/28 2:2001:db8::/32",
    ),
    (
        "DS",
        "60485 5 1 2BB183AF5F22588179A53B0A 98631FAD1A292118",
        "60485 5 1 2BB183AF5F22588179A53B0A98631FAD1A292118",
    ),
    (
        "SSHFP",
        "2 1 123456789abcdef67890123456789abcdef67890",
        "2 1 123456789ABCDEF67890123456789ABCDEF67890",
    ),
    (
        "IPSECKEY",
        "10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==",
        "10 1 2 192.0.2.38 AQNRU3mG7TVTO2BkR47usntb102uFJtugbo6BSGvgqt4AQ==",
    ),
    (
        "IPSECKEY",
        "10 3 2 gw.example.test. AQID",
        "10 3 2 gw.example.test. AQID",
    ),
    ("IPSECKEY", "10 0 0 .", "10 0 0 ."),
    (
        "RRSIG",
        "A 13 3 300 20261231000000 20261201000000 12345 example.test. AQID",
        "A 13 3 300 20261231000000 20261201000000 12345 example.test. AQID",
    ),
    (
        "NSEC",
        "next.example.test. A AAAA RRSIG NSEC TYPE65280",
        "next.example.test. A AAAA RRSIG NSEC TYPE65280",
    ),
    (
        "DNSKEY",
        "257 3 ECDSAP256SHA256 AQID BAUG",
        "257 3 13 AQIDBAUG",
    ),
    (
        "DHCID",
        "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=",
        "AAIBY2/AuCccgoJbsaxcQc9TUapptP69lOjxfNuVAA2kjEA=",
    ),
    (
        "NSEC3",
        "1 1 12 aabbccdd 2vptu5timamqttgl4luu9kg21e0aor3s A RRSIG",
        "1 1 12 AABBCCDD 2VPTU5TIMAMQTTGL4LUU9KG21E0AOR3S A RRSIG",
    ),
    ("NSEC3PARAM", "1 0 0 -", "1 0 0 -"),
    ("TLSA", "3 1 1 0123456789ABCDEF", "3 1 1 0123456789ABCDEF"),
    ("SMIMEA", "3 1 1 0123456789ABCDEF", "3 1 1 0123456789ABCDEF"),
    ("CDS", "0 0 0 00", "0 0 0 00"),
    ("CDNSKEY", "0 3 0 AA==", "0 3 0 AA=="),
    ("OPENPGPKEY", "mQINBFte stZZ", "mQINBFtestZZ"),
    ("CSYNC", "66 3 A NS AAAA", "66 3 A NS AAAA"),
    (
        "ZONEMD",
        "2018031500 1 1 FEBE3D4CE2EC2FFA4BA99D46CD69D6D29711E55217057BEE7EB1A7B641A47BA7FED2DD5B97AE499FAFA4F22C6BD647DE",
        "2018031500 1 1 FEBE3D4CE2EC2FFA4BA99D46CD69D6D29711E55217057BEE7EB1A7B641A47BA7FED2DD5B97AE499FAFA4F22C6BD647DE",
    ),
    (
        "SVCB",
        "1 . alpn=h2,h3 port=8443 ipv4hint=192.0.2.1,192.0.2.2",
        "1 . alpn=\"h2,h3\" port=\"8443\" ipv4hint=\"192.0.2.1,192.0.2.2\"",
    ),
    (
        "HTTPS",
        "1 . ipv6hint=2001:db8::1 alpn=\"h3\" no-default-alpn",
        "1 . alpn=\"h3\" no-default-alpn ipv6hint=\"2001:db8::1\"",
    ),
    ("HTTPS", "0 svc.example.test.", "0 svc.example.test."),
    ("SPF", "\"v=spf1 -all\"", "\"v=spf1 -all\""),
    ("NID", "10 0014:4fff:ff20:ee64", "10 0014:4fff:ff20:ee64"),
    ("L32", "10 10.1.2.0", "10 10.1.2.0"),
    ("L64", "10 2001:0db8:1140:1000", "10 2001:0db8:1140:1000"),
    ("LP", "10 l64-subnet1", "10 l64-subnet1.example.test."),
    ("EUI48", "00-00-5e-00-53-2a", "00-00-5e-00-53-2a"),
    (
        "EUI64",
        "00-00-5e-ef-10-00-00-2a",
        "00-00-5e-ef-10-00-00-2a",
    ),
    (
        "URI",
        "10 1 \"ftp://ftp1.example.com/public\"",
        "10 1 \"ftp://ftp1.example.com/public\"",
    ),
    (
        "CAA",
        "0 issue \"letsencrypt.org; validationmethods=dns-01\"",
        "0 issue \"letsencrypt.org; validationmethods=dns-01\"",
    ),
    ("CAA", "128 tbs \"Unknown\"", "128 tbs \"Unknown\""),
    ("TYPE65280", "\\# 4 0A000001", "\\# 4 0A000001"),
    ("TYPE65281", "\\# 0", "\\# 0"),
];

#[test]
fn every_type_reads_and_writes_back() {
    for &(rtype, data, expected) in CASES {
        assert_eq!(text(rtype, data), expected, "{rtype} {data}");
    }
}

#[test]
fn the_generic_form_is_read_for_known_types_and_checked() {
    assert_eq!(wire("A", "\\# 4 C0000201").unwrap(), [192, 0, 2, 1]);
    assert!(wire("A", "\\# 3 C00002").is_err());
    assert!(wire("A", "\\# 4 C00002").is_err(), "length disagrees");
    assert!(
        wire("TYPE65280", "0A000001").is_err(),
        "unknown types need \\#"
    );
}

#[test]
fn lengths_are_refused_where_they_are_written() {
    let long = "x".repeat(256);
    let err = wire("TXT", &format!("\"{long}\"")).unwrap_err();
    assert!(err.contains("256 octets"), "{err}");
    assert!(wire("TXT", &format!("\"{}\"", "x".repeat(255))).is_ok());
    let many = vec![format!("\"{}\"", "x".repeat(255)); 257].join(" ");
    assert!(wire("TXT", &many).unwrap_err().contains("65535"));
    assert!(wire("CAA", "0 is-sue \"x\"").is_err());
    assert!(wire("MX", "10").is_err());
    assert!(wire("MX", "10 a b").is_err());
    assert!(wire("A", "192.0.2.1 junk").is_err());
    assert!(wire("OPT", "\\# 0").is_err());
}

#[test]
fn messages_give_uncompressed_data() {
    // An MX whose exchange is a pointer to "example.test." at offset 0.
    let mut message = vec![7];
    message.extend_from_slice(b"example");
    message.push(4);
    message.extend_from_slice(b"test");
    message.push(0);
    let start = message.len();
    message.extend_from_slice(&[0, 10, 4, b'm', b'a', b'i', b'l', 0xc0, 0]);
    let got = rdata_from_message(15, &message, start, message.len()).unwrap();
    assert_eq!(rdata_text(15, &got), "10 mail.example.test.");
    assert!(rdata_from_message(15, &message, start, message.len() - 1).is_err());
}

#[test]
fn records_keep_their_data_exactly() {
    for (rtype, data) in [
        ("TXT", "\"v=spf1 mx -all\""),
        (
            "CAA",
            "0 issue \"letsencrypt.org;validationmethods=dns-01\"",
        ),
        ("MX", "10 Mail.Example.Test."),
        ("TYPE65280", "\\# 4 0A000001"),
    ] {
        let code = type_code(rtype).unwrap();
        let bytes = wire(rtype, data).unwrap();
        let record = record(origin(), 300, code, bytes.clone()).unwrap();
        assert_eq!(record_wire(&record), bytes, "{rtype}");
        assert_eq!(record_text(&record), rdata_text(code, &bytes));
    }
    // Canonical form lowers the names of the types RFC 4034 §6.2 lists, and no others.
    let rp = wire("RP", "Admin.Example.Test. T.Example.Test.").unwrap();
    assert_eq!(
        rdata_text(17, &canonical_rdata(17, &rp)),
        "admin.example.test. t.example.test."
    );
    let txt = wire("TXT", "\"ABC\"").unwrap();
    assert_eq!(canonical_rdata(16, &txt), txt);
}

mod master_files {
    use super::*;
    use std::path::Path;

    fn read(text: &str) -> Result<Vec<master::ParsedRecord>, master::MasterError> {
        master::parse(
            text,
            Path::new("/nonexistent/example.test.zone"),
            &origin(),
            Path::new("/nonexistent"),
        )
    }

    #[test]
    fn directives_owners_ttls_and_classes() {
        let text = "$TTL 1h\n@ IN SOA ns hm 1 2 3 4 5\n  IN NS ns\nns 60 IN A 192.0.2.1\n   IN 70 AAAA 2001:db8::1\n$ORIGIN sub.example.test.\nwww A 192.0.2.2\n";
        let got = read(text).unwrap();
        let summary: Vec<(String, u32, u16, usize)> = got
            .iter()
            .map(|r| (name_text(&r.owner), r.ttl, r.rtype, r.line))
            .collect();
        assert_eq!(
            summary,
            [
                ("example.test.".into(), 3600, 6, 2),
                ("example.test.".into(), 3600, 2, 3),
                ("ns.example.test.".into(), 60, 1, 4),
                ("ns.example.test.".into(), 70, 28, 5),
                ("www.sub.example.test.".into(), 3600, 1, 7),
            ]
        );
    }

    #[test]
    fn errors_name_their_line() {
        let text = "@ IN SOA ns hm 1 2 3 4 5\n@ NS ns\nbad IN A 999.1.1.1\n";
        let err = read(text).unwrap_err();
        assert_eq!(err.line, Some(3));
        assert!(err.message.contains("999.1.1.1"), "{}", err.message);
        assert_eq!(read("x CH TXT \"a\"\n").unwrap_err().line, Some(1));
        assert!(read("$GENERATE 1-2 a$ A 192.0.2.$\n").is_err());
    }

    #[test]
    fn includes_stay_inside_the_zones_folder() {
        let dir = std::env::temp_dir().join(format!("meridian-include-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("parts")).unwrap();
        std::fs::write(dir.join("parts/hosts.inc"), "www A 192.0.2.80\n").unwrap();
        let zone = dir.join("example.test.zone");
        let text = "$INCLUDE parts/hosts.inc\n$INCLUDE /etc/passwd\n";
        let err = master::parse(text, &zone, &origin(), &dir).unwrap_err();
        assert_eq!(err.line, Some(2));
        assert!(
            err.message.contains("outside the zones folder"),
            "{}",
            err.message
        );
        let got = master::parse("$INCLUDE parts/hosts.inc sub\n", &zone, &origin(), &dir).unwrap();
        assert_eq!(name_text(&got[0].owner), "www.sub.example.test.");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
