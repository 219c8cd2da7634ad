//! Test certificates made with `openssl`: a CA (`ca.pem`, made once per folder) and leaf
//! certificates it signs, for the TLS tests (DNS over TLS, etcd with client certificates).

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "openssl {args:?}: {err}");
}

/// A P-256 key and certificate `<file>.key`/`<file>.pem` in `dir` for subject `name`, with the
/// X.509 extensions `extensions` (one per line), signed by the folder's CA.
pub fn leaf(dir: &Path, file: &str, name: &str, extensions: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !dir.join("ca.pem").exists() {
        let ca = [
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
        ];
        openssl(dir, &[&["req", "-x509"][..], &ec, &ca].concat());
    }
    let (key, csr, pem, ext) = (
        format!("{file}.key"),
        format!("{file}.csr"),
        format!("{file}.pem"),
        format!("{file}.ext"),
    );
    std::fs::write(dir.join(&ext), extensions).unwrap();
    let subject = format!("/CN={name}");
    let request = ["-keyout", &key, "-out", &csr, "-subj", &subject];
    openssl(dir, &[&["req"][..], &ec, &request].concat());
    let sign = [
        "x509",
        "-req",
        "-in",
        &csr,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        &pem,
        "-days",
        "2",
        "-extfile",
        &ext,
    ];
    openssl(dir, &sign);
}
