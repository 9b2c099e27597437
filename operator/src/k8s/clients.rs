//! The operator's two API clients. Watches are long polls that may stay quiet for minutes, so
//! their client has no read timeout (the watcher has its own idle timeout). Every other
//! request gets one: a request the API server never answers then fails and is retried,
//! instead of holding a reconciliation (or the leader's renewal) forever.

use std::time::Duration;

use kube::{Client, Config};

/// How long the API server may take to start answering a request (or pause within one).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Clients {
    /// For gets, lists, applies, patches, deletes and Events.
    pub requests: Client,
    /// For the controller's watches.
    pub watches: Client,
}

/// Both clients, from the in-cluster service account or KUBECONFIG.
pub async fn connect() -> Result<Clients, kube::Error> {
    let config = Config::infer().await.map_err(kube::Error::InferConfig)?;
    Ok(Clients {
        requests: Client::try_from(with_request_timeout(config.clone(), REQUEST_TIMEOUT))?,
        watches: Client::try_from(config)?,
    })
}

fn with_request_timeout(mut config: Config, timeout: Duration) -> Config {
    config.read_timeout = Some(timeout);
    // Counted from each request, not from when its pooled connection went idle.
    config.reset_reader_on_write = true;
    config
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::Api;

    use super::*;

    /// Issue 35: the client had no request timeout (kube 5's read_timeout defaults to none).
    #[tokio::test]
    async fn a_request_the_api_server_never_answers_fails_after_the_timeout() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        // Accepts connections and never answers them.
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let config = Config::new(url.parse().expect("url"));
        let client =
            Client::try_from(with_request_timeout(config, Duration::from_secs(1))).expect("client");
        let api = Api::<ConfigMap>::namespaced(client, "default");
        let started = Instant::now();
        let answer = tokio::time::timeout(Duration::from_secs(20), api.get_opt("x")).await;
        held.abort();
        let result = answer.expect("the request still waits after 20 s");
        assert!(result.is_err(), "a request nobody answered succeeded");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
