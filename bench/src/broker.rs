//! The benchmark's own Mosquitto: QoS 0 queued for offline sessions too, unlimited queues, no
//! disk persistence (the drain runs measure the client, not the disk).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct Mosquitto {
    child: Child,
    pub port: u16,
}

impl Mosquitto {
    pub fn start(dir: &Path) -> Result<Self> {
        let port = testbed::bridge::free_port();
        std::fs::create_dir_all(dir)?;
        let conf = dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
                 max_queued_messages 0\nmax_queued_bytes 0\nqueue_qos0_messages true\n\
                 max_inflight_messages 1000\nmax_packet_size 1048576\nlog_dest stderr\nlog_type error\n"
            ),
        )?;
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("mosquitto.log"))?)
            .spawn()
            .context("starting mosquitto (apt install mosquitto; make testbed installs it)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("mosquitto did not listen on {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self { child, port })
    }
}

impl Mosquitto {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
