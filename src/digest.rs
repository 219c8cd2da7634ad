//! SHA-256, the one digest the server uses (sha2 is named only here): API token hashes, the
//! journal's record checksums and zone tags, zone files' content stamps.

use sha2::{Digest, Sha256};

/// The SHA-256 of `parts`, one after the other.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}
