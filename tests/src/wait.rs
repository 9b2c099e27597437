//! Waiting for a condition with a deadline, never a fixed sleep. On timeout the test fails
//! with what it was waiting for, after printing the test bed's logs.

use std::future::Future;
use std::time::{Duration, Instant};

const POLL: Duration = Duration::from_millis(100);

/// Polls `check` until it returns `Some`, or panics after `timeout`.
pub fn wait_until<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    wait_until_seen(what, timeout, || check().ok_or_else(String::new))
}

/// As `wait_until`, where `check` says what it saw when the condition does not hold yet;
/// the last of these is in the failure message.
pub fn wait_until_seen<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match check() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            timed_out(what, timeout, &seen);
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
    wait_until_seen_async(what, timeout, || {
        let checked = check();
        async move { checked.await.ok_or_else(String::new) }
    })
    .await
}

/// As `wait_until_async`, where `check` says what it saw when the condition does not hold
/// yet; the last of these is in the failure message.
pub async fn wait_until_seen_async<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        if Instant::now() >= deadline {
            timed_out(what, timeout, &seen);
        }
        tokio::time::sleep(POLL).await;
    }
}

fn timed_out(what: &str, timeout: Duration, last_seen: &str) -> ! {
    let mut message = format!("timed out after {timeout:?} waiting for {what}");
    if !last_seen.is_empty() {
        message.push_str("; last seen: ");
        message.push_str(last_seen);
    }
    // Said before the logs as well, so a reader of a cut output still finds it.
    eprintln!("{message}");
    if let Ok(env) = std::panic::catch_unwind(crate::env) {
        env.dump_logs(10);
    }
    panic!("{message}");
}
