//! Reading secret values from where the configuration says they are. Values are never logged;
//! errors name the field and the file or variable, not the value.

use mkb_api::config::SecretSource;

/// Reads a secret; `field` is its configuration path, for the error.
pub fn read(secret: &SecretSource, field: &str) -> Result<String, String> {
    match (&secret.file, &secret.env) {
        (Some(file), _) => std::fs::read_to_string(file)
            .map(|v| v.trim_end_matches(['\r', '\n']).to_owned())
            .map_err(|e| format!("{field}: cannot read secret file {file}: {e}")),
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| format!("{field}: environment variable {var} is not set (or not UTF-8)")),
        (None, None) => Err(format!("{field}: set file or env")),
    }
}

/// The path of a secret that must be a file (TLS material).
pub fn file_path<'a>(secret: &'a SecretSource, field: &str) -> Result<&'a str, String> {
    secret
        .file
        .as_deref()
        .ok_or_else(|| format!("{field}: TLS material must be read from a file"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_files_without_trailing_newline_and_env_vars() {
        let path = std::env::temp_dir().join(format!("secret-test-{}", std::process::id()));
        std::fs::write(&path, "s3cret\n").expect("write");
        let from_file = SecretSource {
            file: Some(path.display().to_string()),
            env: None,
        };
        assert_eq!(
            read(&from_file, "mqtt.auth.password").as_deref(),
            Ok("s3cret")
        );
        let _ = std::fs::remove_file(&path);
        let missing = SecretSource {
            file: None,
            env: Some("MKB_TEST_SURELY_UNSET_VAR".into()),
        };
        let err = read(&missing, "kafka.sasl.password").expect_err("unset");
        assert_eq!(err, "kafka.sasl.password: environment variable MKB_TEST_SURELY_UNSET_VAR is not set (or not UTF-8)");
    }
}
