//! A private Mosquitto for one test, on its own port, for broker behaviour the shared test-bed
//! broker must not have: ACLs that refuse topics, packet-size limits.

use std::process::Command;
use std::time::Duration;

use crate::bridge::free_port;
use crate::process::{test_log_dir, ChildProcess};
use crate::wait_until;

/// A Mosquitto process on 127.0.0.1 that lives as long as this value.
pub struct Broker {
    /// The plain listener (for the tests' own clients).
    pub port: u16,
    /// The TLS listener, when started with [`Broker::start_tls`].
    pub tls_port: Option<u16>,
    /// The listener that requires a password ([`Broker::start_with_password`]).
    pub auth_port: Option<u16>,
    _process: ChildProcess,
}

const LOGGING: &str = "log_dest stdout\nlog_type error\nlog_type warning\nlog_type notice\n";

/// Started as root, Mosquitto would switch to the 'mosquitto' user; keep the current one.
fn run_as() -> String {
    std::env::var("USER").unwrap_or_else(|_| "root".to_owned())
}

/// A TLS listener with the test bed's server certificate.
#[derive(Default)]
pub struct TlsListener {
    /// Refuse clients without a certificate signed by the test CA.
    pub require_client_certificate: bool,
    /// Present the test CA's server certificate that expired in 2020.
    pub expired_server_certificate: bool,
}

impl Broker {
    /// Starts Mosquitto (installed by the test bed) with anonymous access, `settings` added to
    /// its configuration, and `acl` (Mosquitto's acl_file syntax) when given.
    pub fn start(name: &str, settings: &str, acl: Option<&str>) -> Self {
        Self::start_on(free_port(), name, settings, acl)
    }

    /// A broker with a plain listener and a TLS listener (`tls_port`).
    pub fn start_tls(name: &str, tls: TlsListener) -> Self {
        let tls_port = free_port();
        let dir = crate::env().tls_dir.clone();
        let server = if tls.expired_server_certificate {
            dir.join("expired")
        } else {
            dir.clone()
        };
        let listener = format!(
            "listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\nrequire_certificate {require}\n",
            ca = dir.join("ca.crt").display(),
            cert = server.join("server.crt").display(),
            key = server.join("server.key").display(),
            require = tls.require_client_certificate,
        );
        let mut broker = Self::start_on(free_port(), name, &listener, None);
        wait_until(
            &format!("private Mosquitto's TLS listener on port {tls_port}"),
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", tls_port)).ok(),
        );
        broker.tls_port = Some(tls_port);
        broker
    }

    /// Like [`Broker::start`], on a given port (to bring a stopped broker back).
    pub fn start_on(port: u16, name: &str, settings: &str, acl: Option<&str>) -> Self {
        let dir = test_log_dir().join(format!("{name}-mosquitto"));
        std::fs::create_dir_all(&dir).expect("create the broker's directory");
        let acl_line = match acl {
            Some(rules) => {
                let path = dir.join("acl");
                std::fs::write(&path, rules).expect("write the ACL file");
                format!("acl_file {}\n", path.display())
            }
            None => String::new(),
        };
        let config = format!(
            "user {user}\nlistener {port} 127.0.0.1\nallow_anonymous true\n{acl_line}{settings}\n{LOGGING}",
            user = run_as()
        );
        Self::launch(name, port, &dir, &config)
    }

    /// A broker with a plain anonymous listener (`port`, for the tests' clients) and one that
    /// requires `username` / `password` (`auth_port`).
    pub fn start_with_password(name: &str, username: &str, password: &str) -> Self {
        let (port, auth_port) = (free_port(), free_port());
        let dir = test_log_dir().join(format!("{name}-mosquitto"));
        std::fs::create_dir_all(&dir).expect("create the broker's directory");
        let passwd = dir.join("passwd");
        let status = Command::new("mosquitto_passwd")
            .arg("-c")
            .arg("-b")
            .arg(&passwd)
            .args([username, password])
            .status()
            .expect("run mosquitto_passwd");
        assert!(status.success(), "mosquitto_passwd failed: {status}");
        let config = format!(
            "per_listener_settings true\nuser {user}\nlistener {port} 127.0.0.1\nallow_anonymous true\nlistener {auth_port} 127.0.0.1\nallow_anonymous false\npassword_file {passwd}\n{LOGGING}",
            user = run_as(),
            passwd = passwd.display()
        );
        let mut broker = Self::launch(name, port, &dir, &config);
        broker.auth_port = Some(auth_port);
        broker
    }

    fn launch(name: &str, port: u16, dir: &std::path::Path, config: &str) -> Self {
        let config_path = dir.join("mosquitto.conf");
        std::fs::write(&config_path, config).expect("write the broker's configuration");
        let mut command = Command::new("mosquitto");
        command.arg("-c").arg(&config_path);
        let process = ChildProcess::spawn(&format!("{name}-mosquitto"), command);
        wait_until(
            &format!("private Mosquitto on port {port}"),
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        );
        Self {
            port,
            tls_port: None,
            auth_port: None,
            _process: process,
        }
    }

    /// The broker's URL for a bridge configuration.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}
