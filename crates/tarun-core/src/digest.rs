//! Typed blake3 digests: what an artifact's bytes hash to, and what a node's inputs hash to.
//!
//! The two are kept apart by type so that a node key can never be looked up as an object (or the
//! reverse); both print and serialise as 64 lowercase hex digits.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Marker for the digest of an artifact's content.
#[derive(Debug, Clone, Copy)]
pub enum Object {}

/// Marker for the digest of a node's key material.
#[derive(Debug, Clone, Copy)]
pub enum Key {}

/// A blake3 digest of a particular kind.
pub struct Digest<K> {
    hash: blake3::Hash,
    kind: PhantomData<fn() -> K>,
}

/// The content digest of a stored artifact.
pub type ObjectDigest = Digest<Object>;
/// The cache key of a node.
pub type NodeKey = Digest<Key>;

impl<K> Digest<K> {
    pub fn from_hash(hash: blake3::Hash) -> Self {
        Self {
            hash,
            kind: PhantomData,
        }
    }

    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self::from_hash(blake3::hash(bytes))
    }

    /// Hashes everything a reader yields, without holding it in memory.
    pub fn of_reader(mut reader: impl Read) -> std::io::Result<Self> {
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Self::from_hash(hasher.finalize()))
    }

    pub fn to_hex(&self) -> String {
        self.hash.to_hex().to_string()
    }

    /// The first 12 hex digits, for messages.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_owned()
    }
}

impl<K> Clone for Digest<K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Digest<K> {}
impl<K> PartialEq for Digest<K> {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash
    }
}
impl<K> Eq for Digest<K> {}
impl<K> Hash for Digest<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.hash.as_bytes().hash(state);
    }
}
impl<K> PartialOrd for Digest<K> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<K> Ord for Digest<K> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.hash.as_bytes().cmp(other.hash.as_bytes())
    }
}

impl<K> fmt::Display for Digest<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl<K> fmt::Debug for Digest<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.short())
    }
}

impl<K> FromStr for Digest<K> {
    type Err = blake3::HexError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        blake3::Hash::from_hex(s).map(Self::from_hash)
    }
}

impl<K> Serialize for Digest<K> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de, K> Deserialize<'de> for Digest<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The digest of a study's data, as the node kinds compute it (what the data is, by content):
/// part of every node key. It is text rather than a blake3 [`Digest`] because a command that
/// only plans, where the data is not on this machine, uses a placeholder that no record has
/// (`data-unavailable`). It serialises as that text, in key material and Slurm tasks alike.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataDigest(String);

impl DataDigest {
    pub fn new(digest: impl Into<String>) -> Self {
        DataDigest(digest.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DataDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for DataDigest {
    fn from(digest: String) -> Self {
        DataDigest(digest)
    }
}

impl From<&str> for DataDigest {
    fn from(digest: &str) -> Self {
        DataDigest(digest.to_owned())
    }
}

/// Hashes a serialisable value through its canonical JSON form: object keys sorted at every
/// level (whatever map type produced them, and whether or not some dependency turns on
/// serde_json's `preserve_order`), no whitespace.
pub fn digest_json<K, T: Serialize>(value: &T) -> Digest<K> {
    digest_value(&serde_json::to_value(value).expect("key material is plain data"))
}

/// [`digest_json`] of a value that is already JSON, without copying it first.
pub fn digest_value<K>(value: &serde_json::Value) -> Digest<K> {
    let mut hasher = blake3::Hasher::new();
    write_canonical(value, &mut hasher);
    Digest::from_hash(hasher.finalize())
}

/// The canonical text of a JSON value (what [`digest_json`] hashes), for `--explain` output.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = Vec::new();
    write_canonical(value, &mut out);
    String::from_utf8(out).expect("JSON is UTF-8")
}

fn write_canonical(value: &serde_json::Value, out: &mut impl std::io::Write) {
    use serde_json::Value;
    let io = "writing to memory cannot fail";
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.write_all(b"{").expect(io);
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.write_all(b",").expect(io);
                }
                serde_json::to_writer(&mut *out, k).expect(io);
                out.write_all(b":").expect(io);
                write_canonical(v, out);
            }
            out.write_all(b"}").expect(io);
        }
        Value::Array(items) => {
            out.write_all(b"[").expect(io);
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.write_all(b",").expect(io);
                }
                write_canonical(v, out);
            }
            out.write_all(b"]").expect(io);
        }
        scalar => serde_json::to_writer(&mut *out, scalar).expect(io),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let d = ObjectDigest::of_bytes(b"abc");
        // blake3("abc"), from the reference implementation's test vectors (b3sum).
        assert_eq!(
            d.to_hex(),
            "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"
        );
        let back: ObjectDigest = d.to_hex().parse().unwrap();
        assert_eq!(back, d);
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<ObjectDigest>(&json).unwrap(), d);
    }

    #[test]
    fn a_data_digest_serialises_as_its_text() {
        let d = DataDigest::new("data-unavailable");
        assert_eq!(serde_json::to_string(&d).unwrap(), r#""data-unavailable""#);
        assert_eq!(
            serde_json::from_str::<DataDigest>(r#""abc""#).unwrap(),
            "abc".into()
        );
    }

    #[test]
    fn reader_equals_bytes() {
        let data = vec![7u8; 200_000];
        assert_eq!(
            ObjectDigest::of_reader(&data[..]).unwrap(),
            ObjectDigest::of_bytes(&data)
        );
    }

    #[test]
    fn json_digest_ignores_insertion_order() {
        let mut a = serde_json::Map::new();
        a.insert("x".into(), 1.into());
        a.insert("y".into(), 2.into());
        let mut b = serde_json::Map::new();
        b.insert("y".into(), 2.into());
        b.insert("x".into(), 1.into());
        assert_eq!(digest_json::<Key, _>(&a), digest_json::<Key, _>(&b));
    }
}
