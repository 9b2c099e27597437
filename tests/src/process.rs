//! Child processes of a test (bridge-runtime, the operator): output goes to a log file that
//! is printed when the test fails; the process is killed when the handle is dropped.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The path of a binary built from this workspace (next to the test executable's directory).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> (a test) or target/<profile>/<bin> -> target/<profile>/<name>
    let mut dir = exe.parent().expect("target directory");
    if dir.ends_with("deps") {
        dir = dir.parent().expect("target directory");
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace` (make test does)",
        path.display()
    );
    path
}

/// Runs `command` to completion with `input` on its standard input (none: /dev/null) and
/// returns what it wrote; panics, naming `what`, when it cannot be run.
pub fn output_with_input(command: &mut Command, input: Option<&str>, what: &str) -> Output {
    use std::io::Write;
    let mut child = command
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    if let (Some(input), Some(mut pipe)) = (input, child.stdin.take()) {
        pipe.write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write to {what}: {e}"));
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what} did not finish: {e}"))
}

/// Where test processes write their logs.
pub fn test_log_dir() -> PathBuf {
    let dir = crate::repo_root().join("target/test-logs");
    std::fs::create_dir_all(&dir).expect("create target/test-logs");
    dir
}

/// Prints the last `lines` lines of a file to stderr (the test's captured output).
pub fn print_tail(path: &Path, lines: usize) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    eprintln!(
        "---- last {} lines of {} ----",
        all.len() - start,
        path.display()
    );
    for line in &all[start..] {
        eprintln!("{}", shorten(line, MAX_LINE));
    }
}

/// Longer log lines are cut in a failing test's output, so the failure itself stays in view.
const MAX_LINE: usize = 300;

fn shorten(line: &str, max: usize) -> &str {
    match line.char_indices().nth(max) {
        Some((cut, _)) => &line[..cut],
        None => line,
    }
}

/// A running child process whose output goes to a log file.
pub struct ChildProcess {
    name: String,
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl ChildProcess {
    /// Starts `command`, sending stdout and stderr to `target/test-logs/<name>.log`.
    pub fn spawn(name: &str, mut command: Command) -> Self {
        let log = test_log_dir().join(format!("{name}.log"));
        let file = File::create(&log).expect("create log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Self {
            name: name.to_owned(),
            child,
            log,
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `Some(status)` once the process has exited.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().ok().flatten();
        }
        self.exit
    }

    /// kill -9, and wait for it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        self.exit = self.child.wait().ok();
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit.
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.pid().to_string();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM {pid} failed");
        self.wait_exit(timeout)
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return status;
            }
            if Instant::now() >= deadline {
                print_tail(&self.log, 40);
                panic!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            print_tail(&self.log, 60);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_log_lines_are_cut_at_a_character_boundary() {
        assert_eq!(super::shorten("abc", 5), "abc");
        assert_eq!(super::shorten("äöüß", 2), "äö");
    }
}
