//! Looking for secret values where users can read: logs, ConfigMaps, Events, statuses.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

/// A secret value under a name that can be printed (the value itself never is).
pub struct Secret {
    pub name: String,
    /// The forms it could leak in: the value, its Base64 (how Secrets travel in the
    /// Kubernetes API) and its bytes as `Debug` prints them (`[115, 51, …]`).
    forms: Vec<String>,
}

impl Secret {
    /// A password or token: found as itself, as its Base64 or as its bytes.
    pub fn value(name: &str, value: &str) -> Self {
        Self {
            name: name.to_owned(),
            forms: vec![
                value.to_owned(),
                STANDARD.encode(value),
                format!("{:?}", value.as_bytes()),
            ],
        }
    }

    /// A PEM private key file: found when any line of its Base64 body shows up (as text or as
    /// `Debug` bytes), or a stretch of the whole file's Base64 (the form of a Secret that
    /// holds it).
    pub fn private_key(name: &str, path: &std::path::Path) -> Self {
        let pem = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut forms: Vec<String> = pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 16)
            .map(str::to_owned)
            .collect();
        assert!(!forms.is_empty(), "{} holds no PEM body", path.display());
        let as_bytes: Vec<String> = forms
            .iter()
            .map(|line| format!("{:?}", line.as_bytes()).replace(['[', ']'], ""))
            .collect();
        forms.extend(as_bytes);
        let encoded = STANDARD.encode(&pem);
        // Base64 of the whole file, past the header: 4-character groups stay aligned.
        forms.extend(encoded.get(96..160).map(str::to_owned));
        Self {
            name: name.to_owned(),
            forms,
        }
    }
}

/// The names of the secrets found in `text` (empty: none).
pub fn leaked<'a>(text: &str, secrets: &'a [Secret]) -> Vec<&'a str> {
    secrets
        .iter()
        .filter(|s| s.forms.iter().any(|f| text.contains(f.as_str())))
        .map(|s| s.name.as_str())
        .collect()
}

/// Fails unless `process` logged at trace level, and when its log holds any of `secrets`.
pub fn assert_none_in_trace_log(process: &crate::process::ChildProcess, secrets: &[Secret]) {
    let log = process.log_text();
    let path = process.log_path().display();
    assert!(log.contains(" TRACE "), "{path} is not at trace level");
    let found = leaked(&log, secrets);
    assert!(found.is_empty(), "{found:?} in {path}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_value_its_base64_or_its_bytes_and_names_it() {
        let secrets = [Secret::value("kafka password", "s3cr3t-value")];
        assert_eq!(leaked("login s3cr3t-value", &secrets), ["kafka password"]);
        let encoded = STANDARD.encode("s3cr3t-value");
        assert_eq!(
            leaked(&format!("{{\"password\":\"{encoded}\"}}"), &secrets).len(),
            1
        );
        let bytes = format!("{:?}", b"s3cr3t-value".to_vec());
        assert_eq!(leaked(&format!("ByteString({bytes})"), &secrets).len(), 1);
        assert!(leaked("nothing here", &secrets).is_empty());
    }

    #[test]
    fn finds_a_line_of_a_private_key_as_text_or_bytes() {
        let body = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7";
        let path = std::env::temp_dir().join(format!("{}.key", crate::unique("secrets-test")));
        std::fs::write(
            &path,
            format!("-----BEGIN PRIVATE KEY-----\n{body}\n-----END PRIVATE KEY-----\n"),
        )
        .expect("write the key");
        let secrets = [Secret::private_key("the key", &path)];
        let _ = std::fs::remove_file(&path);
        assert_eq!(leaked(&format!("key={body}"), &secrets), ["the key"]);
        let bytes = format!("{:?}", format!("x{body}").as_bytes());
        assert_eq!(leaked(&bytes, &secrets).len(), 1);
        assert!(leaked("-----BEGIN PRIVATE KEY-----", &secrets).is_empty());
    }
}
