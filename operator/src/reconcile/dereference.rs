//! Step 2: read what the spec references outside itself, the Secrets' values. A missing
//! Secret or key blocks the rollout until it appears (the Secret watch brings the bridge back).

use mkb_api::crd::MqttKafkaBridgeSpec;

use super::Stop;
use crate::bridge::Bridge;
use crate::context::Context;
use crate::k8s::secrets;
use crate::secret_refs::SecretValues;

pub async fn secret_values(
    ctx: &Context,
    bridge: &Bridge<'_>,
    spec: &MqttKafkaBridgeSpec,
) -> Result<SecretValues, Stop> {
    secrets::read(&ctx.client, &bridge.namespace, spec)
        .await?
        .map_err(Stop::Blocked)
}
