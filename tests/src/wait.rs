//! Waiting for a condition with a deadline, never a fixed sleep. On timeout the test fails
//! with what it was waiting for, after printing the test bed's logs.

use std::future::Future;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() >= deadline {
            timed_out(what, timeout);
        }
        std::thread::sleep(POLL);
    }
}

/// Polls the async `check` until it returns `Some`, or panics after `timeout`.
pub async fn wait_until_async<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if Instant::now() >= deadline {
            timed_out(what, timeout);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn timed_out(what: &str, timeout: Duration) -> ! {
    if let Ok(env) = std::panic::catch_unwind(crate::env) {
        env.dump_logs(20);
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}
