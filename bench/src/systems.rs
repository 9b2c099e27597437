//! The systems under test, as processes: bridge-runtime (release build of this workspace) and
//! the peer, Redpanda Connect (built by bench/build-peer.sh), each with one route per run.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;

use crate::procstat;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum System {
    /// bridge-runtime over MQTT 3.1.1, the protocol of the ceiling and of the peer.
    BridgeRuntime,
    /// bridge-runtime over MQTT 5, its default protocol.
    BridgeRuntimeMqtt5,
    RedpandaConnect,
}

impl System {
    pub fn name(self) -> &'static str {
        match self {
            System::BridgeRuntime => "bridge-runtime",
            System::BridgeRuntimeMqtt5 => "bridge-runtime-mqtt5",
            System::RedpandaConnect => "redpanda-connect",
        }
    }

    /// The protocol version bridge-runtime runs with.
    fn protocol_version(self) -> &'static str {
        match self {
            System::BridgeRuntimeMqtt5 => "5",
            _ => "3.1.1",
        }
    }
}

/// One route of a run: where it reads and where it writes.
#[derive(Debug, Clone)]
pub enum Route {
    /// `<prefix>/+/state` at `qos` into `topic`, keyed by the device level.
    MqttToKafka {
        prefix: String,
        qos: u8,
        topic: String,
    },
    /// `topic` from the beginning into `<prefix>/cmd` at `qos`.
    KafkaToMqtt {
        topic: String,
        prefix: String,
        qos: u8,
    },
}

pub struct Setup<'a> {
    pub dir: &'a Path,
    pub peer: &'a Path,
    pub mqtt_port: u16,
    pub kafka: &'a str,
    /// Mosquitto's and Kafka's process ids, for their CPU time during a run.
    pub brokers: [u32; 2],
}

/// A system running one route; killed when dropped.
pub struct Running {
    child: Child,
    pub system: System,
    http: SocketAddr,
    log: PathBuf,
}

fn bridge_config(name: &str, version: &str, route: &Route, s: &Setup, http: SocketAddr) -> String {
    let route = match route {
        Route::MqttToKafka { prefix, qos, topic } => format!(
            "mqttToKafka:\n  - name: m2k\n    mqtt: {{topicFilters: [\"{prefix}/+/state\"], qos: {qos}, shared: false}}\n    \
             kafka: {{topic: {topic}, key: \"${{topic[1]}}\"}}\n"
        ),
        Route::KafkaToMqtt { topic, prefix, qos } => format!(
            "kafkaToMqtt:\n  - name: k2m\n    kafka: {{topics: [{topic}], autoOffsetReset: earliest}}\n    \
             mqtt: {{topic: \"{prefix}/cmd\", qos: {qos}}}\n"
        ),
    };
    format!(
        "bridgeName: {name}\nmqtt: {{url: \"mqtt://127.0.0.1:{port}\", protocolVersion: \"{version}\"}}\n\
         kafka:\n  bootstrapServers: \"{kafka}\"\n  producer: {{acks: all, compression: lz4, lingerMs: 5}}\n\
         {route}http: {{listen: \"{http}\"}}\nlogging: {{level: warn}}\n",
        port = s.mqtt_port,
        kafka = s.kafka,
    )
}

/// Redpanda Connect with the same route and the nearest equivalent settings: a persistent
/// session (MQTT 3.1.1, its only version), acks=all idempotent lz4 batches of up to 5 ms.
fn peer_config(name: &str, route: &Route, s: &Setup, http: SocketAddr) -> String {
    let (input, output) = match route {
        Route::MqttToKafka { prefix, qos, topic } => (
            format!(
                "  mqtt:\n    urls: [\"tcp://127.0.0.1:{port}\"]\n    client_id: {name}\n    \
                 topics: [\"{prefix}/+/state\"]\n    qos: {qos}\n    clean_session: false\n",
                port = s.mqtt_port
            ),
            format!(
                "  kafka_franz:\n    seed_brokers: [\"{kafka}\"]\n    topic: {topic}\n    \
                 key: '${{! @mqtt_topic.split(\"/\").index(1) }}'\n    compression: lz4\n    \
                 batching: {{count: 1000, period: 5ms}}\n",
                kafka = s.kafka
            ),
        ),
        Route::KafkaToMqtt { topic, prefix, qos } => (
            format!(
                "  kafka_franz:\n    seed_brokers: [\"{kafka}\"]\n    topics: [{topic}]\n    \
                 consumer_group: {name}\n    start_from_oldest: true\n",
                kafka = s.kafka
            ),
            format!(
                "  mqtt:\n    urls: [\"tcp://127.0.0.1:{port}\"]\n    client_id: {name}-pub\n    \
                 topic: \"{prefix}/cmd\"\n    qos: {qos}\n    max_in_flight: 1000\n",
                port = s.mqtt_port
            ),
        ),
    };
    format!(
        "http: {{address: \"{http}\"}}\nlogger: {{level: WARN}}\ninput:\n{input}output:\n{output}"
    )
}

impl Running {
    /// Starts `system` with `route` under the client id / bridge name `name`.
    pub fn start(system: System, name: &str, route: &Route, s: &Setup) -> Result<Self> {
        let http: SocketAddr = format!("127.0.0.1:{}", testbed::bridge::free_port()).parse()?;
        let config = s.dir.join(format!("{name}.yaml"));
        let log = s.dir.join(format!("{name}.log"));
        let mut command = match system {
            System::BridgeRuntime | System::BridgeRuntimeMqtt5 => {
                let version = system.protocol_version();
                std::fs::write(&config, bridge_config(name, version, route, s, http))?;
                let mut c = Command::new(testbed::process::workspace_binary("bridge-runtime"));
                c.arg("--config").arg(&config);
                c
            }
            System::RedpandaConnect => {
                std::fs::write(&config, peer_config(name, route, s, http))?;
                let mut c = Command::new(s.peer);
                c.arg("run").arg(&config);
                c
            }
        };
        let child = command
            .stdout(std::fs::File::create(&log)?)
            .stderr(std::fs::File::options().append(true).open(&log)?)
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", system.name()))?;
        Ok(Self {
            child,
            system,
            http,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the system says it is ready (bridge-runtime `/readyz`, Redpanda Connect
    /// `/ready`: both report connected inputs and outputs).
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let path = match self.system {
            System::BridgeRuntime | System::BridgeRuntimeMqtt5 => "/readyz",
            System::RedpandaConnect => "/ready",
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((200, _)) = testbed::bridge::http_get(self.http, path) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}); see {}",
                    self.system.name(),
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not ready within {timeout:?}; see {}",
                    self.system.name(),
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a paused system keeps its connections while the
    /// broker queues for it.
    pub fn pause(&self, paused: bool) -> Result<()> {
        signal(self.pid(), if paused { "-STOP" } else { "-CONT" })
    }

    pub fn cpu_seconds(&self) -> f64 {
        procstat::cpu_seconds(self.pid())
    }

    pub fn rss_mib(&self) -> f64 {
        procstat::memory_mib(self.pid(), "VmRSS:")
    }

    pub fn peak_rss_mib(&self) -> f64 {
        procstat::memory_mib(self.pid(), "VmHWM:")
    }
}

/// Sends a signal with kill(1).
pub fn signal(pid: u32, which: &str) -> Result<()> {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill {which} {pid}: {status}");
    }
    Ok(())
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
