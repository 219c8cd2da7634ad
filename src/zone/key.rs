//! Owner names as the zone tree keys them: the wire form (length-prefixed labels, no root
//! byte), lower-cased (RFC 4343). Hashing and comparing these bytes costs a few dozen
//! instructions where hickory's `Name` hashes byte by byte and compares through a case-folding
//! label walk (together ≈ 1,000 instructions a lookup, measured with callgrind). The suffix of
//! a name is a slice of its key, so zone-cut walks and zone matching allocate nothing.

use hickory_proto::rr::Name;

/// A name's key, built on the stack.
#[derive(Clone)]
pub struct NameKey {
    bytes: [u8; 255],
    len: u8,
    /// Where each label starts in `bytes`.
    starts: [u8; 128],
    labels: u8,
}

impl NameKey {
    pub fn new(name: &Name) -> Self {
        let mut key = Self {
            bytes: [0; 255],
            len: 0,
            starts: [0; 128],
            labels: 0,
        };
        for label in name.iter() {
            let start = usize::from(key.len);
            // A valid name fits in 255 bytes with its root byte; stop short of overflow anyway.
            let Some(end) = Some(start + 1 + label.len()).filter(|&e| e <= 255) else {
                break;
            };
            key.bytes[start] = label.len() as u8;
            for (to, from) in key.bytes[start + 1..end].iter_mut().zip(label) {
                *to = from.to_ascii_lowercase();
            }
            key.starts[usize::from(key.labels)] = start as u8;
            key.labels += 1;
            key.len = end as u8;
        }
        key
    }

    /// The key of a name written uncompressed in a message: `starts` are the offsets of its
    /// labels in `message` (as `dns::wire::question_labels` finds them), one after the other.
    /// `None` if they do not describe a name that fits.
    pub fn from_wire(message: &[u8], starts: &[u16]) -> Option<Self> {
        let mut key = Self::empty();
        key.read_wire(message, starts).then_some(key)
    }

    /// A key to fill (the root's).
    pub fn empty() -> Self {
        Self {
            bytes: [0; 255],
            len: 0,
            starts: [0; 128],
            labels: 0,
        }
    }

    /// Makes this the key of the name at `starts` in `message` (see [`NameKey::from_wire`]):
    /// its labels are checked, then copied in one go and lower-cased together. False (and
    /// this key unusable) if they do not describe a name that fits.
    pub fn read_wire(&mut self, message: &[u8], starts: &[u16]) -> bool {
        let Some(&first) = starts.first() else {
            (self.len, self.labels) = (0, 0);
            return true;
        };
        let first = usize::from(first);
        let mut end = first;
        for (i, &at) in starts.iter().enumerate() {
            let (at, slot) = (usize::from(at), self.starts.get_mut(i));
            let (Some(&len), Some(slot)) = (message.get(at), slot) else {
                return false;
            };
            if at != end || len > 63 || at + 1 + usize::from(len) - first > 255 {
                return false;
            }
            *slot = (at - first) as u8;
            end = at + 1 + usize::from(len);
        }
        let Some(name) = message.get(first..end) else {
            return false;
        };
        let bytes = &mut self.bytes[..name.len()];
        bytes.copy_from_slice(name);
        // Length bytes are under 64: lower-casing leaves them alone.
        bytes.make_ascii_lowercase();
        (self.len, self.labels) = (name.len() as u8, starts.len() as u8);
        true
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    pub fn num_labels(&self) -> usize {
        usize::from(self.labels)
    }

    /// The key of the name's last `n` labels (`n` ≤ [`NameKey::num_labels`]; 0 is the root).
    pub fn suffix(&self, n: usize) -> &[u8] {
        let labels = self.num_labels();
        match n {
            0 => &[],
            n if n >= labels => self.as_bytes(),
            n => &self.bytes[usize::from(self.starts[labels - n])..usize::from(self.len)],
        }
    }
}

/// The key of `name`, owned (for the tree's own keys).
pub fn owned(name: &Name) -> Box<[u8]> {
    NameKey::new(name).as_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_and_keep_label_boundaries() {
        let key = |s: &str| NameKey::new(&Name::from_ascii(s).unwrap());
        assert_eq!(
            key("WWW.Example.TEST.").as_bytes(),
            key("www.example.test.").as_bytes()
        );
        assert_eq!(
            key("www.example.test.").as_bytes(),
            b"\x03www\x07example\x04test"
        );
        assert_ne!(key("w.ww.test.").as_bytes(), key("ww.w.test.").as_bytes());
        let k = key("a.b.example.test.");
        assert_eq!(k.num_labels(), 4);
        assert_eq!(k.suffix(2), key("example.test.").as_bytes());
        assert_eq!(k.suffix(4), k.as_bytes());
        assert_eq!(k.suffix(0), b"");
        assert_eq!(key(".").as_bytes(), b"");
        // From a message: the same key as from the decoded name.
        let message = b"\x00\x00\x03WwW\x07exAmple\x04test\x00";
        let wire = NameKey::from_wire(message, &[2, 6, 14]).unwrap();
        assert_eq!(wire.as_bytes(), key("www.example.test.").as_bytes());
        assert_eq!(wire.suffix(1), b"\x04test");
        assert!(NameKey::from_wire(message, &[2, 6, 40]).is_none());
    }
}
