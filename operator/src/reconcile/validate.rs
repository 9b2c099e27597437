//! Step 1, without a client: read the spec and validate it. An invalid spec stops the
//! reconciliation; the running children are left as they are.

use mkb_api::connection::insecure_tls_warning;
use mkb_api::crd::{validate_spec, MqttKafkaBridgeSpec};

use super::Stop;
use crate::bridge::Bridge;
use crate::status::{Observed, TlsVerification};

/// The bridge's spec once it is valid; what the status shows of it is noted in `observed`.
pub fn spec(bridge: &Bridge<'_>, observed: &mut Observed) -> Result<MqttKafkaBridgeSpec, Stop> {
    let spec = bridge.spec().map_err(Stop::Invalid)?;
    observed.spec_replicas = spec.replicas;
    if let Err(errors) = validate_spec(&bridge.name, &spec) {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(Stop::Invalid(message));
    }
    observed.tls_verification =
        match insecure_tls_warning("spec.", spec.mqtt.tls.as_ref(), spec.kafka.tls.as_ref()) {
            Some(warning) => TlsVerification::Skipped(warning),
            None => TlsVerification::Verified,
        };
    Ok(spec)
}
