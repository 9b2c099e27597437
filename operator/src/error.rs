//! Why a reconciliation failed (it is retried with backoff), with a short label per kind for
//! the errors metric.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("cannot render the runtime configuration: {0}")]
    Render(#[from] serde_yaml::Error),
    #[error("cannot encode the status: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the object has no {0}")]
    Incomplete(&'static str),
    #[error("the API server refused {kind} {name}: {message}")]
    Apply {
        kind: String,
        name: String,
        message: String,
    },
    #[error("{kind} {name} exists and does not belong to this bridge; the operator leaves it alone (rename the bridge, or delete that {kind})")]
    NotOwned { kind: String, name: String },
}

impl Error {
    /// A short label for the errors metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Kube(kube::Error::Api(_)) => "api_error",
            Error::Kube(_) => "api_unreachable",
            Error::Render(_) | Error::Json(_) => "encoding",
            Error::Incomplete(_) => "incomplete_object",
            Error::Apply { .. } => "apply_refused",
            Error::NotOwned { .. } => "not_owned",
        }
    }

    /// Whether the API server refused an object of the bridge (quota, admission, validation,
    /// a name another object holds): the status says so, besides the retry.
    pub fn blocks_rollout(&self) -> bool {
        matches!(self, Error::Apply { .. } | Error::NotOwned { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::Error;

    #[test]
    fn error_reasons_for_the_metric() {
        assert_eq!(Error::Incomplete("uid").reason(), "incomplete_object");
        let refused = Error::NotOwned {
            kind: "Service".into(),
            name: "b".into(),
        };
        assert_eq!(refused.reason(), "not_owned");
        assert!(refused.blocks_rollout());
        assert!(!Error::Incomplete("uid").blocks_rollout());
    }
}
