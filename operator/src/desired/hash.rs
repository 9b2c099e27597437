//! The hash that rolls the pods: it covers the rendered configuration and the values of the
//! referenced Secret keys (the values themselves never leave this function).

use sha2::{Digest, Sha256};

use crate::secret_refs::SecretValues;

/// Hex SHA-256 of the configuration and of each referenced Secret key with its value.
pub fn config_hash(config: &str, secrets: &SecretValues) -> String {
    let mut h = Sha256::new();
    h.update(config.as_bytes());
    for (r, value) in secrets.iter() {
        h.update([0u8]);
        h.update(r.name.as_bytes());
        h.update([0u8]);
        h.update(r.key.as_bytes());
        // A present value; the encoding once had a marker for absent ones, kept so that an
        // upgraded operator computes the same hash and rolls no pod.
        h.update([1u8]);
        h.update((value.len() as u64).to_be_bytes());
        h.update(value);
    }
    hex::encode(h.finalize())
}
