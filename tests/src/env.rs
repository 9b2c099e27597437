//! The test bed's coordinates, read from the env file `make testbed` writes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where the test bed's servers and tools are.
#[derive(Debug, Clone)]
pub struct TestbedEnv {
    pub kubeconfig: PathBuf,
    pub kubernetes_version: String,
    pub kafka_bootstrap: String,
    /// Kafka's secured listeners (see `tests/testbed/services.sh`): SSL with required client
    /// certificates; SASL_SSL with PLAIN and SCRAM-SHA-256/512; SASL_SSL with SCRAM-SHA-512
    /// only. All with the server certificate of `tls_dir`.
    pub kafka_ssl_bootstrap: String,
    pub kafka_sasl_bootstrap: String,
    pub kafka_scram512_bootstrap: String,
    /// The SASL user the test bed made (PLAIN and both SCRAMs), and its password.
    pub kafka_sasl_username: String,
    pub kafka_sasl_password: String,
    /// The Kafka distribution (its `libs/` has the broker's command-line tools).
    pub kafka_home: PathBuf,
    pub mqtt_url: String,
    pub mqtt_host: String,
    pub mqtt_port: u16,
    pub toxiproxy_url: String,
    /// Mosquitto and Kafka behind toxiproxy's `mqtt` and `kafka` proxies (see
    /// `tests/testbed/lib.sh`), for network faults.
    pub mqtt_proxied_port: u16,
    pub kafka_proxied_bootstrap: String,
    /// The three-broker Kafka cluster (`service.sh start kafka-cluster`; nodes 1-3).
    pub kafka_cluster_bootstrap: String,
    /// HiveMQ CE, the second MQTT broker: plain (`mqtt://`) and TLS (`mqtts://`, the test
    /// CA's server certificate).
    pub hivemq_url: String,
    pub hivemq_port: u16,
    pub hivemq_tls_url: String,
    /// The test CA, server and client certificates (`ca.crt`, `server.*`, `client.*`), an
    /// untrusted CA (`other/ca.crt`), and an expired server and client certificate from the
    /// test CA (`expired/server.*`, `expired/client.*`).
    pub tls_dir: PathBuf,
    /// The test bed's state directory (data, logs, pids).
    pub dir: PathBuf,
    pub logs: PathBuf,
    /// `service.sh start|stop|restart <name>`.
    pub service_script: PathBuf,
    /// kubectl, helm and the other test-bed binaries.
    pub bin: PathBuf,
    /// The kubelet + containerd node, when the test bed runs one (`make testbed` as root).
    pub real_node: Option<RealNode>,
    /// The test bed's own networks, which tests may reach besides loopback (the real node's
    /// pod network).
    pub networks: Vec<String>,
    /// Ranges the test bed declares (KWOK's pod IPs, the Service range) but nothing serves:
    /// unreachable on this host while the test bed is up, never routed off the machine.
    pub unserved_ranges: Vec<String>,
}

/// The test bed's real node and the brokers as its pods reach them.
#[derive(Debug, Clone)]
pub struct RealNode {
    pub name: String,
    pub mqtt_url: String,
    pub kafka_bootstrap: String,
}

fn env_file() -> PathBuf {
    if let Ok(path) = std::env::var("TESTBED_ENV") {
        return PathBuf::from(path);
    }
    crate::repo_root().join("target/testbed/env")
}

/// The test bed's coordinates. Panics, with what to do, when the test bed is not running.
pub fn env() -> &'static TestbedEnv {
    static ENV: OnceLock<TestbedEnv> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = env_file();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "the test bed is not running ({}: {e}); start it with `make testbed`, or run `make test`",
                path.display()
            )
        });
        parse(&text).unwrap_or_else(|missing| panic!("{}: missing {missing}", path.display()))
    })
}

/// A comma-separated list.
fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

fn parse(text: &str) -> Result<TestbedEnv, String> {
    let vars: HashMap<&str, &str> = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let get = |k: &str| {
        vars.get(k)
            .map(|v| v.to_string())
            .ok_or_else(|| k.to_owned())
    };
    Ok(TestbedEnv {
        kubeconfig: get("KUBECONFIG")?.into(),
        kubernetes_version: get("KUBERNETES_VERSION")?,
        kafka_bootstrap: get("KAFKA_BOOTSTRAP")?,
        kafka_ssl_bootstrap: get("KAFKA_SSL_BOOTSTRAP")?,
        kafka_sasl_bootstrap: get("KAFKA_SASL_BOOTSTRAP")?,
        kafka_scram512_bootstrap: get("KAFKA_SCRAM512_BOOTSTRAP")?,
        kafka_sasl_username: get("KAFKA_SASL_USERNAME")?,
        kafka_sasl_password: get("KAFKA_SASL_PASSWORD")?,
        kafka_home: get("KAFKA_HOME")?.into(),
        mqtt_url: get("MQTT_URL")?,
        mqtt_host: get("MQTT_HOST")?,
        mqtt_port: get("MQTT_PORT")?
            .parse()
            .map_err(|_| "a numeric MQTT_PORT".to_owned())?,
        toxiproxy_url: get("TOXIPROXY_URL")?,
        mqtt_proxied_port: get("MQTT_PROXIED_PORT")?
            .parse()
            .map_err(|_| "a numeric MQTT_PROXIED_PORT".to_owned())?,
        kafka_proxied_bootstrap: get("KAFKA_PROXIED_BOOTSTRAP")?,
        kafka_cluster_bootstrap: get("KAFKA_CLUSTER_BOOTSTRAP")?,
        hivemq_url: get("HIVEMQ_URL")?,
        hivemq_port: get("HIVEMQ_PORT")?
            .parse()
            .map_err(|_| "a numeric HIVEMQ_PORT".to_owned())?,
        hivemq_tls_url: get("HIVEMQ_TLS_URL")?,
        tls_dir: get("TESTBED_TLS_DIR")?.into(),
        dir: get("TESTBED_DIR")?.into(),
        logs: get("TESTBED_LOGS")?.into(),
        service_script: get("TESTBED_SERVICE")?.into(),
        bin: get("TESTBED_BIN")?.into(),
        networks: list(&get("TESTBED_NETWORKS")?),
        unserved_ranges: list(&get("TESTBED_UNSERVED_RANGES")?),
        real_node: match get("REAL_NODE") {
            Ok(name) => Some(RealNode {
                name,
                mqtt_url: get("POD_MQTT_URL")?,
                kafka_bootstrap: get("POD_KAFKA_BOOTSTRAP")?,
            }),
            Err(_) => None,
        },
    })
}

impl TestbedEnv {
    /// Stops, starts or restarts a test-bed service (`mosquitto`, `kafka`, `kafka-cluster`,
    /// `kafka-cluster/N`, `hivemq`, `toxiproxy`, ...), waiting until it is ready again; `kill`
    /// is kill -9 of one cluster node.
    pub fn service(&self, action: &str, name: &str) {
        let status = std::process::Command::new(&self.service_script)
            .args([action, name])
            .status()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.service_script.display()));
        assert!(
            status.success(),
            "`service.sh {action} {name}` failed: {status}"
        );
    }

    /// Prints the last lines of every test-bed log, for a failing test's output.
    pub fn dump_logs(&self, lines: usize) {
        let Ok(entries) = std::fs::read_dir(&self.logs) else {
            return;
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            crate::process::print_tail(&path, lines);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_the_env_file() {
        let text = "# comment\nKUBECONFIG=/k\nKUBERNETES_VERSION=v1\nKAFKA_BOOTSTRAP=127.0.0.1:1\nKAFKA_SSL_BOOTSTRAP=127.0.0.1:3\nKAFKA_SASL_BOOTSTRAP=127.0.0.1:4\nKAFKA_SCRAM512_BOOTSTRAP=127.0.0.1:5\nKAFKA_SASL_USERNAME=u\nKAFKA_SASL_PASSWORD=p\nKAFKA_HOME=/kafka\nMQTT_URL=mqtt://h:2\nMQTT_HOST=h\nMQTT_PORT=2\nTOXIPROXY_URL=http://t\nMQTT_PROXIED_PORT=6\nKAFKA_PROXIED_BOOTSTRAP=127.0.0.1:7\nKAFKA_CLUSTER_BOOTSTRAP=127.0.0.1:8,127.0.0.1:9\nHIVEMQ_URL=mqtt://h:10\nHIVEMQ_PORT=10\nHIVEMQ_TLS_URL=mqtts://h:11\nTESTBED_TLS_DIR=/tls\nTESTBED_DIR=/d\nTESTBED_LOGS=/d/logs\nTESTBED_SERVICE=/s.sh\nTESTBED_BIN=/bin\nTESTBED_NETWORKS=10.88.0.0/16\nTESTBED_UNSERVED_RANGES=10.244.0.0/16,10.96.0.0/16\n";
        let env = super::parse(text).expect("parses");
        assert_eq!(env.mqtt_port, 2);
        assert_eq!(env.kafka_bootstrap, "127.0.0.1:1");
        assert_eq!(env.kafka_home, std::path::Path::new("/kafka"));
        assert!(env.real_node.is_none());
        assert_eq!(env.networks, ["10.88.0.0/16"]);
        assert_eq!(env.unserved_ranges, ["10.244.0.0/16", "10.96.0.0/16"]);
        let with_node =
            format!("{text}REAL_NODE=n\nPOD_MQTT_URL=mqtt://g:2\nPOD_KAFKA_BOOTSTRAP=g:9\n");
        let node = super::parse(&with_node).expect("parses").real_node;
        assert_eq!(node.map(|n| n.kafka_bootstrap), Some("g:9".to_owned()));
        assert_eq!(
            super::parse("KUBECONFIG=/k\n").map(|_| ()),
            Err("KUBERNETES_VERSION".to_owned())
        );
    }
}
