//! librdkafka's security properties for the TLS and SASL settings, shared by the runtime (TLS
//! material in files) and the operator's admin client (TLS material held in memory), so both
//! reach Kafka the same way.

use crate::connection::{SaslSettings, TlsSettings};

/// How a piece of TLS material reaches librdkafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsMaterial {
    /// A PEM file (`ssl.*.location`).
    Path(String),
    /// PEM text (`ssl.*.pem`).
    Pem(String),
}

/// The properties for `tls` and `sasl`. `material` resolves a TLS reference and `password`
/// the SASL password; each gets the field's path below `kafka` (e.g. `tls.ca`) for its errors.
pub fn security_properties<S>(
    tls: Option<&TlsSettings<S>>,
    sasl: Option<&SaslSettings<S>>,
    mut material: impl FnMut(&S, &str) -> Result<TlsMaterial, String>,
    password: impl FnOnce(&S, &str) -> Result<String, String>,
) -> Result<Vec<(&'static str, String)>, String> {
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => "plaintext",
        (true, false) => "ssl",
        (false, true) => "sasl_plaintext",
        (true, true) => "sasl_ssl",
    };
    let mut properties = vec![("security.protocol", protocol.to_owned())];
    if let Some(tls) = tls {
        let mut add = |reference: &S, field: &str, location: &'static str, pem: &'static str| {
            properties.push(match material(reference, field)? {
                TlsMaterial::Path(path) => (location, path),
                TlsMaterial::Pem(text) => (pem, text),
            });
            Ok::<(), String>(())
        };
        if let Some(ca) = &tls.ca {
            add(ca, "tls.ca", "ssl.ca.location", "ssl.ca.pem")?;
        }
        if let (Some(cert), Some(key)) = (&tls.client_certificate, &tls.client_key) {
            add(
                cert,
                "tls.clientCertificate",
                "ssl.certificate.location",
                "ssl.certificate.pem",
            )?;
            add(key, "tls.clientKey", "ssl.key.location", "ssl.key.pem")?;
        }
        if tls.insecure_skip_verify {
            properties.push(("enable.ssl.certificate.verification", "false".to_owned()));
            properties.push(("ssl.endpoint.identification.algorithm", "none".to_owned()));
        }
    }
    if let Some(sasl) = sasl {
        properties.push(("sasl.mechanism", sasl.mechanism.as_kafka_str().to_owned()));
        properties.push(("sasl.username", sasl.username.clone()));
        properties.push(("sasl.password", password(&sasl.password, "sasl.password")?));
    }
    Ok(properties)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::SaslMechanism;

    fn tls(insecure: bool) -> TlsSettings<&'static str> {
        TlsSettings {
            ca: Some("ca"),
            client_certificate: Some("cert"),
            client_key: Some("key"),
            server_name: None,
            insecure_skip_verify: insecure,
        }
    }

    #[test]
    fn plaintext_without_tls_or_sasl() {
        let p =
            security_properties::<&str>(None, None, |_, _| unreachable!(), |_, _| unreachable!());
        assert_eq!(p, Ok(vec![("security.protocol", "plaintext".to_owned())]));
    }

    #[test]
    fn files_or_pem_text_and_sasl_over_tls() {
        let sasl = SaslSettings {
            mechanism: SaslMechanism::ScramSha512,
            username: "bridge".into(),
            password: "pw",
        };
        let files = security_properties(
            Some(&tls(false)),
            Some(&sasl),
            |r, _| Ok(TlsMaterial::Path(format!("/s/{r}"))),
            |_, _| Ok("secret".to_owned()),
        )
        .expect("properties");
        let get = |p: &[(&str, String)], k: &str| {
            p.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone())
        };
        assert_eq!(
            get(&files, "security.protocol").as_deref(),
            Some("sasl_ssl")
        );
        assert_eq!(get(&files, "ssl.ca.location").as_deref(), Some("/s/ca"));
        assert_eq!(get(&files, "ssl.key.location").as_deref(), Some("/s/key"));
        assert_eq!(
            get(&files, "sasl.mechanism").as_deref(),
            Some("SCRAM-SHA-512")
        );
        assert_eq!(get(&files, "sasl.password").as_deref(), Some("secret"));
        assert_eq!(get(&files, "enable.ssl.certificate.verification"), None);
        let pem = security_properties(
            Some(&tls(true)),
            None,
            |r, _| Ok(TlsMaterial::Pem(format!("PEM {r}"))),
            |_, _| unreachable!(),
        )
        .expect("properties");
        assert_eq!(get(&pem, "security.protocol").as_deref(), Some("ssl"));
        assert_eq!(
            get(&pem, "ssl.certificate.pem").as_deref(),
            Some("PEM cert")
        );
        assert_eq!(
            get(&pem, "ssl.endpoint.identification.algorithm").as_deref(),
            Some("none")
        );
        let failed = security_properties(
            Some(&tls(false)),
            None,
            |_, field| Err(format!("{field}: missing")),
            |_, _| unreachable!(),
        );
        assert_eq!(failed, Err("tls.ca: missing".to_owned()));
    }
}
