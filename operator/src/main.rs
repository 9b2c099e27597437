//! The MqttKafkaBridge operator.

fn main() -> std::process::ExitCode {
    eprintln!("mkb-operator: the reconciler is not available yet (issue 6)");
    std::process::ExitCode::FAILURE
}
