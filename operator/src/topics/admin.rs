//! The operator's Kafka admin clients: one per distinct connection (addresses, security
//! settings and credentials), built from the bridge's spec and the values of the Secrets it
//! references, and kept for later reconciliations.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mkb_api::crd::{KafkaSpec, SecretKeyRef};
use mkb_api::kafka_properties::{security_properties, TlsMaterial};
use rdkafka::admin::AdminClient;
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientConfig;
use sha2::{Digest, Sha256};

use crate::secret_refs::SecretValues;

/// librdkafka hands a client's log lines and errors to its main queue, which nothing polls
/// for an admin client: so it logs nothing (its queue would only grow, see `get`), and
/// `why_unreachable` asks a polled probe instead.
pub type Admin = AdminClient<DefaultClientContext>;

/// Records the first connection failure librdkafka reports to a probe.
#[derive(Default)]
struct ProbeContext {
    failure: Mutex<Option<String>>,
}

impl ProbeContext {
    fn record(&self, failure: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert_with(|| steady(&failure).to_owned());
        }
    }
}

/// librdkafka's report without its thread name and timing ("(after 315ms in state
/// AUTH_REQ)"), so the status message stays the same from one attempt to the next.
fn steady(report: &str) -> &str {
    let report = match report.strip_prefix("[thrd:") {
        Some(rest) => rest.split_once("]: ").map_or(report, |(_, r)| r),
        None => report,
    };
    match report.rfind(" (after ") {
        Some(at) if report.ends_with(')') => &report[..at],
        _ => report,
    }
}

impl ProducerContext for ProbeContext {
    type DeliveryOpaque = ();

    fn delivery(&self, _: &DeliveryResult<'_>, _: ()) {}
}

impl ClientContext for ProbeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        self.record(format!("{error}: {reason}"));
    }

    // A failed connection attempt (refused, TLS handshake, SASL authentication) is logged by
    // librdkafka under FAIL with the broker and the cause.
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        if fac == "FAIL" {
            self.record(log_message.to_owned());
        } else {
            tracing::debug!(?level, facility = fac, "librdkafka: {log_message}");
        }
    }
}

/// Why a connection fails: a short-lived producer-type client with the same settings,
/// polled until librdkafka reports a failure or `timeout` passes. Blocking.
pub fn why_unreachable(config: &ClientConfig, timeout: Duration) -> Option<String> {
    let probe: BaseProducer<ProbeContext> =
        config.create_with_context(ProbeContext::default()).ok()?;
    // Asking for metadata makes it connect.
    let _ = probe
        .client()
        .fetch_metadata(None, Duration::from_millis(1));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        probe.poll(Duration::from_millis(100));
        if let Some(failure) = probe.context().failure.lock().ok().and_then(|f| f.clone()) {
            return Some(failure);
        }
    }
    None
}

/// Admin clients by connection fingerprint.
#[derive(Default)]
pub struct AdminClients {
    clients: Mutex<HashMap<String, Arc<Admin>>>,
}

/// An admin client and the settings it was made with (for `why_unreachable`).
pub struct Connection {
    pub admin: Arc<Admin>,
    pub config: ClientConfig,
}

/// Most cached clients; past it the cache starts over (each client holds threads and sockets).
const MAX_CLIENTS: usize = 64;

impl AdminClients {
    /// The client for this connection, created on first use.
    pub fn get(&self, kafka: &KafkaSpec, secrets: &SecretValues) -> Result<Connection, String> {
        let config = client_config(kafka, secrets)?;
        let key = fingerprint(&config);
        let mut clients = self
            .clients
            .lock()
            .map_err(|_| "the admin client cache is poisoned".to_owned())?;
        if let Some(admin) = clients.get(&key) {
            let admin = admin.clone();
            return Ok(Connection { admin, config });
        }
        let mut quiet = config.clone();
        quiet.set_log_level(RDKafkaLogLevel::Emerg);
        let admin: Admin = quiet
            .create_with_context(DefaultClientContext)
            .map_err(|e| format!("cannot create a Kafka admin client: {e}"))?;
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let admin = Arc::new(admin);
        clients.insert(key, admin.clone());
        Ok(Connection { admin, config })
    }
}

/// A hash of every property, so the key reveals no credential. (`config_map()` masks the
/// sensitive values, so each is read with `get`: a new password must make a new client.)
fn fingerprint(config: &ClientConfig) -> String {
    let mut hasher = Sha256::new();
    for k in config.config_map().keys() {
        let v = config.get(k).unwrap_or_default();
        hasher.update(k.as_bytes());
        hasher.update([0]);
        hasher.update(v.as_bytes());
        hasher.update([0]);
    }
    hex::encode(hasher.finalize())
}

/// librdkafka properties for the bridge's connection. TLS material goes in as PEM text
/// (`ssl.*.pem`): the operator holds it in memory and writes no file.
pub fn client_config(kafka: &KafkaSpec, secrets: &SecretValues) -> Result<ClientConfig, String> {
    let value = |r: &SecretKeyRef, field: &str| -> Result<String, String> {
        let bytes = secrets
            .get(r)
            .ok_or_else(|| format!("{field}: Secret {} key {:?} was not read", r.name, r.key))?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            format!(
                "{field}: Secret {} key {:?} is not UTF-8 text",
                r.name, r.key
            )
        })
    };
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &kafka.bootstrap_servers)
        .set("client.id", "mkb-operator")
        // A metadata request of a producer-type client (the admin client is one) would
        // otherwise create a missing topic with the broker's defaults.
        .set("allow.auto.create.topics", "false")
        .set("reconnect.backoff.ms", "500")
        .set("reconnect.backoff.max.ms", "10000");
    let properties = security_properties(
        kafka.tls.as_ref(),
        kafka.sasl.as_ref(),
        |r, field| value(r, &format!("spec.kafka.{field}")).map(TlsMaterial::Pem),
        |r, field| value(r, &format!("spec.kafka.{field}")),
    )?;
    for (key, v) in properties {
        c.set(key, v);
    }
    Ok(c)
}

/// How long one admin request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long to wait for the cluster to answer at all before calling it unavailable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;
    use mkb_api::connection::{SaslMechanism, SaslSettings, TlsSettings};

    #[test]
    fn a_failure_report_loses_its_thread_and_timing() {
        assert_eq!(
            steady("[thrd:sasl_ssl://k:9095/bootstrap]: sasl_ssl://k:9095/bootstrap: SASL authentication error: Authentication failed (after 315ms in state AUTH_REQ)"),
            "sasl_ssl://k:9095/bootstrap: SASL authentication error: Authentication failed"
        );
        assert_eq!(steady("Local: Timed out"), "Local: Timed out");
    }

    fn kafka() -> KafkaSpec {
        serde_json::from_value(serde_json::json!({"bootstrapServers": "k1:9093,k2:9093"}))
            .expect("valid")
    }

    fn secret(name: &str, key: &str) -> SecretKeyRef {
        SecretKeyRef {
            name: name.into(),
            key: key.into(),
        }
    }

    #[test]
    fn plaintext_by_default_and_never_auto_creating() {
        let c = client_config(&kafka(), &SecretValues::default()).expect("config");
        assert_eq!(c.get("security.protocol"), Some("plaintext"));
        assert_eq!(c.get("bootstrap.servers"), Some("k1:9093,k2:9093"));
        assert_eq!(c.get("allow.auto.create.topics"), Some("false"));
    }

    #[test]
    fn tls_material_and_sasl_come_from_the_secret_values() {
        let mut k = kafka();
        k.tls = Some(TlsSettings {
            ca: Some(secret("kafka-ca", "ca.crt")),
            client_certificate: Some(secret("client", "tls.crt")),
            client_key: Some(secret("client", "tls.key")),
            server_name: None,
            insecure_skip_verify: false,
        });
        k.sasl = Some(SaslSettings {
            mechanism: SaslMechanism::ScramSha512,
            username: "bridge".into(),
            password: secret("kafka-user", "password"),
        });
        let mut values = SecretValues::default();
        values.insert(secret("kafka-ca", "ca.crt"), b"CA PEM".to_vec());
        values.insert(secret("client", "tls.crt"), b"CERT PEM".to_vec());
        values.insert(secret("client", "tls.key"), b"KEY PEM".to_vec());
        values.insert(secret("kafka-user", "password"), b"s3cret".to_vec());
        let c = client_config(&k, &values).expect("config");
        assert_eq!(c.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(c.get("ssl.ca.pem"), Some("CA PEM"));
        assert_eq!(c.get("ssl.certificate.pem"), Some("CERT PEM"));
        assert_eq!(c.get("ssl.key.pem"), Some("KEY PEM"));
        assert_eq!(c.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(c.get("sasl.password"), Some("s3cret"));
        let key = fingerprint(&c);
        assert!(!key.contains("s3cret") && key.len() == 64);
        values.insert(secret("kafka-user", "password"), b"other".to_vec());
        let changed = client_config(&k, &values).expect("config");
        assert_ne!(fingerprint(&changed), key, "a new password is a new client");
        values.remove(&secret("kafka-ca", "ca.crt"));
        let missing = client_config(&k, &values).expect_err("missing value");
        assert_eq!(
            missing,
            "spec.kafka.tls.ca: Secret kafka-ca key \"ca.crt\" was not read"
        );
    }
}
