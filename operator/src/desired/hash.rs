//! The hash that rolls the pods: it covers the rendered configuration and the values of the
//! referenced Secret keys (the values themselves never leave this function).

use sha2::{Digest, Sha256};

/// Hex SHA-256 of the configuration and of each `(secret, key, value)`; `None` for a missing key.
pub fn config_hash(config: &str, secrets: &[(String, String, Option<Vec<u8>>)]) -> String {
    let mut h = Sha256::new();
    h.update(config.as_bytes());
    for (name, key, value) in secrets {
        h.update([0u8]);
        h.update(name.as_bytes());
        h.update([0u8]);
        h.update(key.as_bytes());
        match value {
            Some(v) => {
                h.update([1u8]);
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
            None => h.update([2u8]),
        }
    }
    hex::encode(h.finalize())
}
